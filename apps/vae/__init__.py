"""A variational autoencoder on Spark: the zoo's convolutional VAE trained on real MNIST digits,
new digits drawn from it, images embedded as latent vectors (``python -m sparkzoo.apps.vae``;
see its README)."""
