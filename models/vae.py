"""A convolutional variational autoencoder (Kingma & Welling, ICLR 2014) and its measures.

An encoder maps an image to the mean and log-variance of a diagonal Gaussian over a small
latent space; a decoder maps a latent point back to per-pixel Bernoulli probabilities.
:class:`VAEModel` trains both on the negative evidence lower bound (ELBO): the reconstruction
cross-entropy of an image decoded from a sampled latent point, plus the KL divergence of the
encoder's Gaussian from the standard normal prior (weighted by ``beta``). Its ``fit`` takes
images only (labels, if given, are ignored); as a Keras model it maps an image to the
reconstruction of its latent mean, deterministically.

Helpers: :func:`encode` (the latent means, the embedding), :func:`decode` (images of latent
points), :func:`evaluate` (held-out ELBO and reconstruction error with a fixed noise seed)
and :func:`pca_reconstruction_mse`, the baseline of the same latent size.

Example::

    vae = models.get("vae", latent_dim=2)
    vae.compile(keras.optimizers.Adam(1e-3))   # the loss is built in
    vae.fit(images, epochs=10)                    # images in [0, 1], (n, 28, 28, 1)
    z = encode(vae, images)                       # (n, 2)
    evaluate(vae, held_out)                       # {'elbo': -140.2, ...}
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import tensorflow as tf

from sparkzoo import keras2 as keras
from sparkzoo.models.objectives import ObjectivesModel
from sparkzoo.models.registry import image_classification_example, register

_EPSILON = 1e-7  # probabilities are clipped to [eps, 1 - eps] in the cross-entropy


def reconstruction_loss(images: tf.Tensor, probabilities: tf.Tensor) -> tf.Tensor:
    """Per image: the Bernoulli cross-entropy of ``images`` (values in [0, 1]) under the
    decoded ``probabilities``, summed over pixels (nats), shape ``(batch,)``.

    Example::

        reconstruction_loss(tf.ones((1, 2, 2, 1)), tf.ones((1, 2, 2, 1)))   # [~0.0]
    """
    images = tf.reshape(tf.cast(images, tf.float32), [tf.shape(images)[0], -1])
    p = tf.clip_by_value(tf.reshape(probabilities, tf.shape(images)), _EPSILON, 1 - _EPSILON)
    return -tf.reduce_sum(images * tf.math.log(p) + (1 - images) * tf.math.log(1 - p), axis=1)


def kl_divergence(z_mean: tf.Tensor, z_log_var: tf.Tensor) -> tf.Tensor:
    """Per example: KL(N(z_mean, exp(z_log_var)) || N(0, I)) in nats, shape ``(batch,)``.

    Example::

        kl_divergence(tf.zeros((1, 2)), tf.zeros((1, 2)))   # [0.0]
    """
    return -0.5 * tf.reduce_sum(1.0 + z_log_var - tf.square(z_mean) - tf.exp(z_log_var), axis=1)


@keras.saving.register_keras_serializable(package="sparkzoo")
class VAEModel(ObjectivesModel):
    """A functional ``image -> reconstruction`` model (through its nested ``encoder`` and
    ``decoder``) whose ``fit`` minimises the negative ELBO.

    Build it like a functional model, ``VAEModel(inputs, outputs, beta=1.0)`` (or with
    :func:`vae`); the graph must hold a model layer named ``encoder`` (image -> ``[z_mean,
    z_log_var]``) and one named ``decoder`` (latent point -> probabilities). ``train_step``
    samples ``z = z_mean + exp(z_log_var / 2) * eps`` and reports ``loss`` (reconstruction +
    beta * KL + regularisation, per image), ``reconstruction_loss`` and ``kl_loss``;
    ``test_step`` reports the same on validation data. ``beta`` travels with saved models.

    Example::

        net = vae((28, 28, 1), latent_dim=2)
        net.compile("adam")
        net.fit(images, epochs=3)      # logs loss, reconstruction_loss, kl_loss
    """

    TERMS = ("loss", "reconstruction_loss", "kl_loss")

    def __init__(
        self,
        inputs: Any,
        outputs: Any,
        name: str | None = None,
        trainable: bool = True,
        *,
        beta: float = 1.0,
        **kwargs: Any,
    ) -> None:
        # Functional's positional arguments, then keyword-only ones: Keras then saves and
        # revives this class as a functional graph (as DeepBitModel does).
        super().__init__(inputs, outputs, name=name, trainable=trainable, **kwargs)
        self.beta = float(beta)
        self.track_terms()

    @property
    def encoder(self) -> keras.Model:
        return self.get_layer("encoder")

    @property
    def decoder(self) -> keras.Model:
        return self.get_layer("decoder")

    def get_config(self) -> dict:
        return {**super().get_config(), "beta": self.beta}

    @classmethod
    def from_config(cls, config: dict, custom_objects: dict | None = None) -> VAEModel:
        config = dict(config)
        beta = float(config.pop("beta", 1.0))
        model = super().from_config(config, custom_objects)
        model.beta = beta
        return model

    def objectives(
        self, images: tf.Tensor, training: bool, noise: tf.Tensor | None = None
    ) -> dict[str, tf.Tensor]:
        """The batch means of the negative ELBO (``loss``) and its two terms; ``noise`` is the
        standard normal draw of the reparameterisation (default: a fresh one)."""
        images = tf.convert_to_tensor(images, tf.float32)
        z_mean, z_log_var = self.encoder(images, training=training)
        if noise is None:
            noise = tf.random.normal(tf.shape(z_mean))
        z = z_mean + tf.exp(0.5 * z_log_var) * noise
        probabilities = self.decoder(z, training=training)
        terms = {
            "reconstruction_loss": tf.reduce_mean(reconstruction_loss(images, probabilities)),
            "kl_loss": tf.reduce_mean(kl_divergence(z_mean, z_log_var)),
        }
        total = terms["reconstruction_loss"] + self.beta * terms["kl_loss"]
        terms["loss"] = total
        return terms


@register(
    "vae",
    task="generative-autoencoder",
    tiny={"input_shape": (8, 8, 1), "latent_dim": 2, "filters": (4, 8), "dense_units": 8},
    example=image_classification_example,
    loss=None,  # the negative ELBO is part of VAEModel.train_step
    metrics=(),
)
def vae(
    input_shape: tuple[int, ...] = (28, 28, 1),
    latent_dim: int = 2,
    filters: Sequence[int] = (32, 64),
    dense_units: int = 16,
    beta: float = 1.0,
    name: str = "vae",
) -> VAEModel:
    """Convolutional VAE: strided 3x3 convolutions -> a Gaussian over ``latent_dim`` -> mirror
    transposed convolutions -> per-pixel Bernoulli probabilities.

    The encoder halves the image once per entry of ``filters`` (so height and width must be
    divisible by ``2 ** len(filters)``), then a ``dense_units`` ReLU layer gives ``z_mean`` and
    ``z_log_var``; the decoder mirrors it. Inputs are images in [0, 1]. ``beta`` weights the
    KL term (1: the ELBO; above 1: a beta-VAE).

    Example::

        net = vae((28, 28, 1), latent_dim=2)        # a 2-D latent space to plot
        net = vae((32, 32, 3), latent_dim=16, filters=(32, 64, 128))
    """
    height, width, channels = (int(v) for v in input_shape)
    stride = 2 ** len(filters)
    if not filters or height % stride or width % stride:
        raise ValueError(
            f"vae needs height and width divisible by 2 ** len(filters) = {stride}, got "
            f"input_shape {tuple(input_shape)} with filters {tuple(filters)}"
        )
    if latent_dim < 1:
        raise ValueError(f"vae needs latent_dim >= 1, got {latent_dim}")
    layers = keras.layers

    image = keras.Input((height, width, channels), name="image")
    x = image
    for i, count in enumerate(filters):
        x = layers.Conv2D(count, 3, strides=2, padding="same", activation="relu",
                          name=f"encoder_conv{i + 1}")(x)  # fmt: skip
    x = layers.Flatten(name="encoder_flatten")(x)
    x = layers.Dense(dense_units, activation="relu", name="encoder_dense")(x)
    z_mean = layers.Dense(latent_dim, name="z_mean")(x)
    z_log_var = layers.Dense(latent_dim, name="z_log_var")(x)
    encoder = keras.Model(image, [z_mean, z_log_var], name="encoder")

    latent = keras.Input((latent_dim,), name="latent")
    small = (height // stride, width // stride, filters[-1])
    y = layers.Dense(int(np.prod(small)), activation="relu", name="decoder_dense")(latent)
    y = layers.Reshape(small, name="decoder_reshape")(y)
    for i, count in enumerate(reversed(filters)):
        y = layers.Conv2DTranspose(count, 3, strides=2, padding="same", activation="relu",
                                   name=f"decoder_deconv{i + 1}")(y)  # fmt: skip
    probabilities = layers.Conv2DTranspose(
        channels, 3, padding="same", activation="sigmoid", name="probabilities"
    )(y)
    decoder = keras.Model(latent, probabilities, name="decoder")

    inputs = keras.Input((height, width, channels), name="image")
    mean, _ = encoder(inputs)
    return VAEModel(inputs, decoder(mean), beta=beta, name=name)


def encode(model: VAEModel, x: Any, batch_size: int = 256) -> np.ndarray:
    """The latent means (the embedding) of images in [0, 1]: ``(n, latent_dim)`` float32.

    Example::

        encode(net, images[:3])        # array([[ 0.41, -1.2], ...], dtype=float32)
    """
    z_mean, _ = model.encoder.predict(np.asarray(x, np.float32), batch_size=batch_size, verbose=0)
    return np.asarray(z_mean, np.float32)


def decode(model: VAEModel, z: Any, batch_size: int = 256) -> np.ndarray:
    """Images (per-pixel probabilities in [0, 1]) of latent points ``z``, ``(n, latent_dim)``.

    Example::

        decode(net, np.random.default_rng(0).standard_normal((16, 2)))   # 16 new digits
    """
    z = np.asarray(z, np.float32)
    return np.asarray(model.decoder.predict(z, batch_size=batch_size, verbose=0), np.float32)


def evaluate(model: VAEModel, x: Any, seed: int = 0, batch_size: int = 500) -> dict[str, float]:
    """Held-out measures of images ``x`` in [0, 1], the same on every call (the sampling noise
    comes from ``seed``): ``elbo`` (mean per image, nats; higher is better; one sample),
    ``reconstruction_loss`` and ``kl_loss`` (its two terms), and ``reconstruction_mse`` (mean
    squared error per pixel of the reconstruction of the latent mean).

    Example::

        evaluate(net, held_out)   # {'elbo': -141.3, 'reconstruction_loss': 135.9, ...}
    """
    x = np.asarray(x, np.float32)
    rng = np.random.default_rng(seed)
    sums = {"reconstruction_loss": 0.0, "kl_loss": 0.0, "squared_error": 0.0}
    for start in range(0, len(x), batch_size):
        part = x[start : start + batch_size]
        z_mean, z_log_var = model.encoder(part, training=False)
        noise = rng.standard_normal(z_mean.shape).astype(np.float32)
        z = z_mean + tf.exp(0.5 * z_log_var) * noise
        sums["reconstruction_loss"] += float(
            tf.reduce_sum(reconstruction_loss(part, model.decoder(z, training=False)))
        )
        sums["kl_loss"] += float(tf.reduce_sum(kl_divergence(z_mean, z_log_var)))
        mean_image = model.decoder(z_mean, training=False).numpy()
        sums["squared_error"] += float(np.sum((mean_image - part) ** 2) / np.prod(part.shape[1:]))
    n = len(x)
    measures = {
        "reconstruction_loss": sums["reconstruction_loss"] / n,
        "kl_loss": sums["kl_loss"] / n,
        "reconstruction_mse": sums["squared_error"] / n,
    }
    return {"elbo": -(measures["reconstruction_loss"] + measures["kl_loss"]), **measures}


def pca_reconstruction_mse(train_x: Any, x: Any, components: int, seed: int = 0) -> float:
    """Baseline: mean squared error per pixel of ``x`` reconstructed from its projection on the
    top ``components`` principal directions of ``train_x`` (values clipped to [0, 1], as the
    images are). The linear autoencoder of the same latent size.

    Example::

        pca_reconstruction_mse(train_images, held_out, components=2)    # 0.056
    """
    # scikit-learn (about a second to import) for this baseline only: every rank that
    # builds a zoo model imports all the family modules, this one included.
    from sklearn.decomposition import PCA

    train = np.asarray(train_x, np.float64).reshape(len(train_x), -1)
    data = np.asarray(x, np.float64).reshape(len(x), -1)
    pca = PCA(n_components=components, random_state=seed).fit(train)
    rebuilt = np.clip(pca.inverse_transform(pca.transform(data)), 0.0, 1.0)
    return float(np.mean((rebuilt - data) ** 2))
