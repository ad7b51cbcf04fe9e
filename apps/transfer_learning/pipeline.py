"""Transfer learning on Spark: a network trained on one data set, fine-tuned on another.

The World Bank / dogs-vs-cats workflow of the Analytics Zoo talks, on data that is here
offline: the shipped ``lenet5.mnist`` (trained on MNIST) is fine-tuned on scikit-learn's real
UCI optical digits (1,797 scans of another acquisition, 8x8, framed like MNIST at the source's
input size), with K labelled images per class, next to the same network trained from scratch
and a logistic regression on the pixels, every model fitted by
:class:`~sparkzoo.trainer.KerasEstimator`, all scored on one fixed held-out part. Any folder
tree of images (``<class>/<image>``, local or ``hdfs://``) and any zoo image classifier (a
pretrained tag, or a family with weights from a path or URI) work the same way.

The steps, each a function here::

    source = load_source("lenet5.mnist")                    # the model, its card, its input
    data = digit_images(spark, source)                      # raw pixels at the source's size
    data = preprocess(data, source)                         # the card's preprocessing
    held_out, pool = split(data, test_fraction=0.3, seed=0)
    curve = learning_curve(source, pool, held_out, [5, 10, 50, None], freeze_to="conv2")
    learning_curve_figure(curve)
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import cv2
import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import NullLocator
from pyspark.sql import Window
from pyspark.sql import functions as F
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression

from sparkzoo import keras2 as keras
from sparkzoo import models
from sparkzoo.datasets.images import ImageSet
from sparkzoo.datasets.transforms import Resize
from sparkzoo.models.registry import ModelCard, apply_preprocessing
from sparkzoo.models.transfer import default_cut, load_weights, new_head
from sparkzoo.trainer import KerasEstimator

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

METHODS = ("fine_tune", "scratch", "logistic")
BASELINE = "sklearn_logistic"
PIXELS, LABEL = "pixels", "label"
DEFAULT_SOURCE = "lenet5.mnist"
# MNIST's framing: the digit fills the centre 20x20 of its 28x28 image.
DIGIT_SHARE = 20 / 28


@dataclass
class Source:
    """The source network: its name, its card (input shape, raw input, preprocessing) and a
    function building it with its trained weights."""

    name: str
    card: ModelCard
    weights: str | None = None
    sha256: str | None = None

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return tuple(self.card.input["shape"])

    def build(self) -> keras.Model:
        """The source model with its trained weights."""
        if self.weights is None:
            return models.get(self.name)
        return load_weights(models.get(self.card.family, **self.card.config), self.weights,
                            self.sha256)  # fmt: skip

    def build_untrained(self) -> keras.Model:
        """The same architecture with fresh random weights."""
        return models.get(self.card.family, **self.card.config)


def load_source(
    name: str = DEFAULT_SOURCE,
    weights: str | None = None,
    sha256: str | None = None,
    input_shape: Sequence[int] | None = None,
) -> Source:
    """A zoo image classifier as the source: a pretrained tag (``lenet5.mnist``: its card says
    everything), or a family (``resnet18``) with ``weights`` from a path, ``hdfs://`` or
    ``https://`` URI (checked against ``sha256``) and its ``input_shape``; a family's card has no
    preprocessing of its own, so raw 0-255 pixels are scaled to [0, 1]."""
    try:
        card = models.card(name)
    except KeyError as exc:  # UnknownModelError: its message lists the zoo's names
        raise ValueError(f"--source: {exc.args[0]}") from None
    if card.task != "image-classification":
        raise ValueError(f"--source {name!r} is a {card.task} model, not an image classifier")
    if not card.file:  # a family: weights and the input shape come from the user
        if weights is None:
            raise ValueError(
                f"--source {name!r} is a family without shipped weights: give --weights "
                "PATH_OR_URI (and --sha256) of a trained model, or a pretrained tag such as "
                f"{DEFAULT_SOURCE!r}"
            )
        shape = list(input_shape or card.config.get("input_shape") or [])
        if len(shape) != 3:
            raise ValueError(f"--source {name!r} needs --input-shape H W C")
        card = ModelCard(
            name=name,
            family=name,
            task=card.task,
            summary=card.summary,
            config={**card.config, "input_shape": shape},
            input={"shape": shape, "raw": "pixels 0-255"},
            preprocessing={"scale": 1 / 255},
        )
    elif weights is not None:
        raise ValueError(f"--source {name!r} has shipped weights; --weights is for a family")
    return Source(name, card, weights, sha256)


# ---- data ---------------------------------------------------------------------------------
def frame_digits(images: np.ndarray, shape: Sequence[int]) -> np.ndarray:
    """8x8 digits (0-16, ink high) as raw pixels at ``shape`` (H, W, C), 0-255, white on black,
    the digit in the centre ``DIGIT_SHARE`` of the image as MNIST frames its digits."""
    height, width, channels = shape
    inner_h, inner_w = round(height * DIGIT_SHARE), round(width * DIGIT_SHARE)
    top, left = (height - inner_h) // 2, (width - inner_w) // 2
    framed = np.zeros((len(images), height, width, channels), np.float32)
    for i, image in enumerate(np.asarray(images, np.float32).reshape(-1, 8, 8)):
        digit = cv2.resize(image * (255 / 16), (inner_w, inner_h), interpolation=cv2.INTER_LINEAR)
        framed[i, top : top + inner_h, left : left + inner_w, :] = digit[..., None]
    return np.clip(framed, 0, 255)


def digit_images(spark: SparkSession, source: Source) -> DataFrame:
    """The 1,797 real UCI optical digits (scikit-learn), framed at the source's input size:
    ``pixels`` (raw, flat ``array<float>``) and ``label`` (0-9)."""
    bunch = load_digits()
    pixels = frame_digits(bunch.data, source.input_shape).reshape(len(bunch.data), -1)
    frame = pd.DataFrame({PIXELS: list(pixels), LABEL: bunch.target.astype(np.int64)})
    return spark.createDataFrame(frame, f"{PIXELS} array<float>, {LABEL} long")


def folder_images(spark: SparkSession, path: str, source: Source) -> tuple[DataFrame, list[str]]:
    """Images in class folders under ``path`` (``<class>/<file>``, local or ``hdfs://``),
    resized to the source's input size: ``pixels`` (raw) and ``label`` (the class's index in
    the sorted folder names); also the class names. Files that do not decode are left out."""
    height, width, channels = source.input_shape
    images = ImageSet.read(
        spark, path, labels=True, color="gray" if channels == 1 else "rgb", on_error="drop"
    )
    if not images.classes or len(images.classes) < 2:
        raise ValueError(f"{path} must hold one folder per class (at least 2), as <class>/<image>")
    df = images.transform(Resize((height, width))).to_arrays(PIXELS)
    return df.select(PIXELS, F.col("label_id").cast("long").alias(LABEL)), list(images.classes)


def preprocess(df: DataFrame, source: Source) -> DataFrame:
    """``pixels`` through the source card's preprocessing (on the executors)."""
    spec, shape, name = dict(source.card.preprocessing), source.input_shape, source.name

    def apply(frames):
        for frame in frames:
            x = np.stack(frame[PIXELS].to_numpy()).reshape(-1, *shape)
            x = apply_preprocessing(spec, x, shape, name).reshape(len(frame), -1)
            yield frame.assign(**{PIXELS: list(x)})

    return df.mapInPandas(apply, df.schema)


def split(df: DataFrame, test_fraction: float = 0.3, seed: int = 0) -> tuple[DataFrame, DataFrame]:
    """A fixed held-out part (about ``test_fraction`` of the rows) and the pool the labelled
    examples are drawn from, both cached."""
    marked = df.withColumn("_u", F.rand(seed))
    held_out = marked.where(F.col("_u") < test_fraction).drop("_u").cache()
    pool = marked.where(F.col("_u") >= test_fraction).drop("_u").cache()
    return held_out, pool


def labelled(pool: DataFrame, per_class: int | None, seed: int = 0) -> DataFrame:
    """``per_class`` rows of each class, drawn at random from the pool (None: the whole pool)."""
    if per_class is None:
        return pool
    order = Window.partitionBy(LABEL).orderBy(F.rand(seed + 1))
    return (
        pool.withColumn("_n", F.row_number().over(order)).where(F.col("_n") <= per_class).drop("_n")
    )


# ---- the three models ---------------------------------------------------------------------
def build_model(method: str, source: Source, num_classes: int, freeze_to: str | None):
    """A compiled-later Keras model for ``method``: ``fine_tune`` (the source with a new head,
    layers up to ``freeze_to`` frozen), ``scratch`` (the same network with random weights, all
    trainable) or ``logistic`` (softmax regression on the pixels)."""
    if method == "fine_tune":
        return new_head(source.build(), num_classes, freeze_to=freeze_to, name="fine_tune")
    if method == "scratch":
        return new_head(source.build_untrained(), num_classes, name="scratch")
    if method == "logistic":
        return keras.Sequential(
            [
                keras.Input((math.prod(source.input_shape),), name=PIXELS),
                keras.layers.Dense(num_classes, activation="softmax", name="predictions"),
            ],
            name="logistic",
        )
    raise ValueError(f"method must be one of {METHODS}, got {method!r}")


def check_freeze_to(source: Source, freeze_to: str | None) -> str:
    """The layer to freeze up to (default: the source's cut, i.e. the whole backbone); an
    unknown name fails here, listing the source's layers, before any training."""
    model = source.build()
    names = [layer.name for layer in model.layers]
    layer = freeze_to or default_cut(model)
    if layer not in names:
        raise ValueError(f"--freeze-to {layer!r}: {source.name} has no such layer; its layers "
                         f"are {', '.join(names)}")  # fmt: skip
    return layer


@dataclass
class Curve:
    """Held-out accuracy per method and labels per class (None: every pooled row)."""

    per_class: list[int | None]
    accuracy: dict[str, list[float]] = field(default_factory=dict)
    fit_seconds: dict[str, list[float]] = field(default_factory=dict)
    train_rows: list[int] = field(default_factory=list)
    held_out_rows: int = 0
    num_classes: int = 10
    models: dict[str, Any] = field(default_factory=dict)  # the last fitted model per method


def learning_curve(
    source: Source,
    pool: DataFrame,
    held_out: DataFrame,
    per_class: Sequence[int | None],
    num_classes: int,
    freeze_to: str | None = None,
    methods: Sequence[str] = METHODS,
    workers: int = 2,
    epochs: int = 30,
    batch_size: int = 16,
    learning_rate: float = 3e-3,
    seed: int = 0,
    baseline: bool = True,
    progress=print,
) -> Curve:
    """Train every method on ``per_class`` labelled images of each class (same rows for all
    methods), each with the same budget through ``KerasEstimator`` on ``workers`` ranks, and
    score it on ``held_out``; with ``baseline``, also scikit-learn's logistic regression."""
    curve = Curve(list(per_class), held_out_rows=held_out.count(), num_classes=num_classes)
    for k in per_class:
        train = labelled(pool, k, seed).cache()
        rows = train.count()
        if rows < workers:
            raise ValueError(f"{rows} labelled rows cannot feed {workers} workers")
        curve.train_rows.append(rows)
        for method in methods:
            model = build_model(method, source, num_classes, freeze_to)
            start = time.perf_counter()
            fitted = KerasEstimator(
                model=model,
                optimizer=keras.optimizers.Adam(learning_rate),
                loss="sparse_categorical_crossentropy",
                metrics=["accuracy"],
                feature_cols=[PIXELS],
                label_cols=[LABEL],
                batch_size=batch_size,
                epochs=epochs,
                num_workers=workers,
                seed=seed,
                log_to_mlflow=False,
                tensorboard=False,
                verbose=0,
                output_cols=["scores"],
                prediction_col="prediction",
            ).fit(train)
            seconds = time.perf_counter() - start
            accuracy = held_out_accuracy(fitted, held_out)
            curve.accuracy.setdefault(method, []).append(accuracy)
            curve.fit_seconds.setdefault(method, []).append(round(seconds, 2))
            curve.models[method] = fitted
            label = "all" if k is None else k
            progress(f"{label} per class ({rows} rows): {method} held-out accuracy "
                     f"{accuracy:.3f} ({seconds:.0f} s)")  # fmt: skip
        if baseline:
            start = time.perf_counter()
            accuracy = sklearn_baseline(train, held_out, seed)
            curve.accuracy.setdefault(BASELINE, []).append(accuracy)
            curve.fit_seconds.setdefault(BASELINE, []).append(round(time.perf_counter() - start, 2))
            progress(f"{'all' if k is None else k} per class: scikit-learn logistic regression "
                     f"held-out accuracy {accuracy:.3f}")  # fmt: skip
        train.unpersist()
    return curve


def sklearn_baseline(train: DataFrame, held_out: DataFrame, seed: int = 0) -> float:
    """scikit-learn's ``LogisticRegression`` on the same labelled pixels, scored on the same
    held-out part: the established library's answer next to ours. Both parts are small (a few
    thousand rows at most) and are brought to the driver for it."""
    fit_rows, test_rows = train.toPandas(), held_out.toPandas()
    model = LogisticRegression(max_iter=2000, random_state=seed)
    model.fit(np.stack(fit_rows[PIXELS].to_numpy()), fit_rows[LABEL].to_numpy())
    predicted = model.predict(np.stack(test_rows[PIXELS].to_numpy()))
    return float(np.mean(predicted == test_rows[LABEL].to_numpy()))


def held_out_accuracy(fitted, held_out: DataFrame) -> float:
    """The share of held-out rows whose predicted class is the label (on Spark)."""
    scored = fitted.transform(held_out)
    hit = F.avg((F.col("prediction") == F.col(LABEL)).cast("double"))
    return float(scored.agg(hit).first()[0])


def learning_curve_figure(curve: Curve, title: str) -> Figure:
    """Held-out accuracy against labelled images per class, one line per method."""
    figure = Figure(figsize=(6.4, 4.2))
    axes = figure.subplots()
    # "all" sits at the mean labelled rows per class it had
    xs = [k if k is not None else round(rows / curve.num_classes)
          for k, rows in zip(curve.per_class, curve.train_rows, strict=True)]  # fmt: skip
    names = {"fine_tune": "fine-tuned source", "scratch": "same network from scratch",
             "logistic": "logistic regression on pixels",
             BASELINE: "scikit-learn LogisticRegression"}  # fmt: skip
    for method, accuracy in curve.accuracy.items():
        axes.plot(xs, accuracy, marker="o", label=names.get(method, method))
    axes.set_xscale("log")
    axes.xaxis.set_minor_locator(NullLocator())
    axes.set_xticks(xs, [str(k) if k is not None else f"all (~{x})" for k, x in
                         zip(curve.per_class, xs, strict=True)])  # fmt: skip
    axes.set_xlabel("labelled images per class")
    axes.set_ylabel(f"held-out accuracy ({curve.held_out_rows} images)")
    lowest = min((a for accuracy in curve.accuracy.values() for a in accuracy), default=0.0)
    axes.set_ylim(max(0.0, math.floor((lowest - 0.05) * 20) / 20), 1)
    axes.grid(alpha=0.3)
    axes.set_title(title)
    axes.legend(loc="lower right")
    figure.tight_layout()
    return figure


def parse_per_class(values: Sequence[str]) -> list[int | None]:
    """``--labels-per-class 5 10 all`` as ``[5, 10, None]``, sorted, "all" last."""
    parsed: list[int | None] = []
    for value in values:
        if str(value).lower() == "all":
            parsed.append(None)
            continue
        try:
            k = int(value)
        except ValueError:
            raise ValueError(f"--labels-per-class {value!r}: a positive integer or 'all'") from None
        if k < 1:
            raise ValueError(f"--labels-per-class {value!r}: a positive integer or 'all'")
        parsed.append(k)
    numbers = sorted({k for k in parsed if k is not None})
    return numbers + ([None] if None in parsed else [])
