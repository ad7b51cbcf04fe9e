"""Image similarity search on Spark (the MLSlistings use case of Analytics Zoo): images ->
embeddings -> an index -> the top-k most similar images of a query, and how good they are.

Two embeddings of every image, computed on the executors in Arrow batches with the models
loaded once per Python worker:

- ``vector``: transfer learning from a zoo classifier, the pretrained ``lenet5.mnist`` cut at
  its penultimate layer ``fc2`` (84 floats), optionally fine-tuned first with a new head
  through :class:`sparkzoo.trainer.KerasEstimator` (:func:`fine_tune`); compared by cosine
  distance;
- ``code``: the ``deepbit.mnist`` 32-bit binary code (``np.packbits`` bytes), compared by
  Hamming distance.

The index is a DataFrame (Parquet) of ``id, split, label, label_id, path, vector, code``.
:func:`search` ranks it against one query by brute force on Spark (a distance per row, then
Spark's top-k), which is exact and fine up to millions of rows; no approximate index is built.
:func:`evaluate` measures retrieval mAP@k with the class labels as relevance, against
PCA + sign hashing of the same length and raw-pixel cosine, in the same run.

Example::

    from sparkzoo.apps.image_similarity import pipeline as P

    P.write_mnist_folder("digits", sample_rate=0.2)        # real MNIST digits as PNGs
    images = P.read_images(spark, "digits")                # path, split, label, pixels
    index = P.embed(images, P.Embedder())                       # + vector, code
    top = P.search(index, P.query_embedding("q.png"), k=8, by="code")
"""

from __future__ import annotations

import functools
import hashlib
import io
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
from matplotlib.figure import Figure
from pyspark.sql import functions as F

from sparkzoo import fs
from sparkzoo import keras2 as keras
from sparkzoo.apps.image_similarity.inputs import SPLITS, write_mnist_folder
from sparkzoo.arrow import to_numpy
from sparkzoo.datasets import images as images_lib
from sparkzoo.datasets.images import ImageSet
from sparkzoo.datasets.index import nearest
from sparkzoo.datasets.transforms import Resize
from sparkzoo.models.deepbit import pca_sign_hash
from sparkzoo.models.registry import card, preprocessor
from sparkzoo.models.registry import get as zoo_model
from sparkzoo.models.retrieval import cosine_distance, hamming_distance, map_at_k
from sparkzoo.models.transfer import cut, new_head
from sparkzoo.trainer import KerasEstimator
from sparkzoo.trainer.backends import compile_model
from sparkzoo.trainer.inference import map_batches, worker_model

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession


VECTOR_TAG = "lenet5.mnist"  # the zoo classifier the float vectors come from
CUT_AT = "fc2"  # its penultimate layer (84 units), the input of the classifier
CODE_TAG = "deepbit.mnist"  # the zoo binary hasher
IMAGE_SHAPE = (28, 28, 1)  # what both models take: grey 28 x 28
INDEX_COLUMNS = ("id", "split", "label", "label_id", "path", "vector", "code")
EMBEDDINGS_SCHEMA = pa.schema([("vector", pa.list_(pa.float32())), ("code", pa.binary())])
BY = ("code", "vector")

# ---- images ------------------------------------------------------------------------------------


def read_images(
    spark: SparkSession,
    folder: str,
    query_fraction: float = 0.2,
    seed: int = 0,
    sample_rate: float = 1.0,
) -> DataFrame:
    """The images under ``folder`` as a Spark DataFrame of ``id`` (long, a hash of the path),
    ``split``, ``label``, ``label_id``, ``path`` and ``pixels`` (784 floats, 0-255: decoded grey
    by OpenCV on the executors, resized to 28 x 28).

    Layouts: ``folder/{database,query}/<class>/<image>`` (as :func:`write_mnist_folder`
    writes), or ``folder/<class>/<image>``, whose ``query_fraction`` (by a hash of the path,
    so deterministic) becomes the query split. A class is the name of the folder holding the
    image. Unreadable images raise a ``ValueError`` naming the file.

    Example::

        images = read_images(spark, "hdfs://nn:9000/listings/photos", query_fraction=0.1)
    """

    if not fs.exists(folder):
        raise FileNotFoundError(f"input folder {folder!r} does not exist")
    if not 0.0 < query_fraction < 1.0:
        raise ValueError(f"query_fraction must be in (0, 1), got {query_fraction}")
    names = set(fs.listdir(folder)) if fs.isdir(folder) else set()
    names = {n.rstrip("/").rsplit("/", 1)[-1] for n in names}
    resize = Resize(IMAGE_SHAPE[:2])
    if set(SPLITS) <= names:
        # One listing of both splits: class ids (sorted folder names) are shared.
        parts = [fs.join(folder, split) for split in SPLITS]
        images = ImageSet.read(spark, parts, labels=True, color="gray")
        df = images.transform(resize).to_arrays("pixels")
        df = df.withColumn("split", F.element_at(F.split("path", "/"), -3))
    else:
        images = ImageSet.read(spark, folder, labels=True, color="gray")
        df = images.transform(resize).to_arrays("pixels")
        bucket = F.abs(F.xxhash64("path", F.lit(seed))) % 10_000
        df = df.withColumn(
            "split",
            F.when(bucket < int(query_fraction * 10_000), "query").otherwise("database"),
        )
    if sample_rate < 1.0:
        df = df.sample(fraction=sample_rate, seed=seed)
    df = df.persist()
    # One pass decodes every image (kept in memory for the next steps) and finds bad files.
    problem = F.when(F.col("error").isNotNull(), F.concat_ws(": ", "path", "error"))
    check = df.agg(
        F.count(F.lit(1)).alias("rows"), F.slice(F.collect_list(problem), 1, 3).alias("bad")
    ).first()
    if check.bad or not check.rows:
        df.unpersist()
        if check.bad:
            raise ValueError(f"unreadable image(s) under {folder}: {'; '.join(check.bad)}")
        raise ValueError(f"no image left under {folder} (after --sample-rate {sample_rate})")
    return df.select(F.xxhash64("path").alias("id"), "split", "label", "label_id", "path", "pixels")


def query_pixels(path: str) -> np.ndarray:
    """One image file (local or ``hdfs://``) as the 784 raw grey values the index holds,
    decoded and resized exactly as :func:`read_images` does on the executors.

    Example::

        pixels = query_pixels("query.png")        # (784,) float32, 0-255
    """
    image = images_lib.load_image(path, color="gray")
    return Resize(IMAGE_SHAPE[:2])(image).astype(np.float32).reshape(-1)


def read_thumbnail(path: str) -> np.ndarray:
    """An image file as RGB (or grey) pixels for the results figure."""
    image = images_lib.load_image(path, color="rgb")
    if np.all(image == image[..., :1]):
        return image[..., 0]  # a grey image shown with a grey colour map
    return image


# ---- embeddings ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Embedder:
    """Which models embed the images: ``vector_tag`` cut at ``cut_at`` (with ``weights`` of a
    fine-tuned copy when given: a list of arrays, or a Spark broadcast of one) and the binary
    hasher ``code_tag``. Picklable; the executors build the models once per Python worker.

    Example::

        Embedder()                                     # lenet5.mnist fc2 + deepbit.mnist
        Embedder(weights=fine_tune(spark, images)[0])   # fine-tuned vectors
    """

    vector_tag: str = VECTOR_TAG
    cut_at: str = CUT_AT
    code_tag: str = CODE_TAG
    weights: Any = field(default=None, compare=False)
    weights_digest: str = ""
    batch_size: int = 256

    @property
    def key(self) -> str:
        return f"{self.vector_tag}:{self.cut_at}:{self.code_tag}:{self.weights_digest}"

    def with_weights(self, weights: Any) -> Embedder:
        """A copy that uses ``weights`` (list of arrays or a broadcast of one) for the vectors."""
        values = weights.value if hasattr(weights, "value") else weights
        digest = hashlib.sha256(b"".join(np.asarray(w).tobytes() for w in values)).hexdigest()
        return Embedder(
            self.vector_tag, self.cut_at, self.code_tag, weights, digest[:16], self.batch_size
        )

    def load(self) -> tuple[Any, Any]:
        """(vector model, code model), built now, as the tensorflow backend runs them: their
        traced graphs (``sparkzoo.trainer.backends.TensorFlowModel``; ``.model`` is the Keras
        model)."""
        vectors = cut(zoo_model(self.vector_tag), self.cut_at)
        if self.weights is not None:
            values = self.weights.value if hasattr(self.weights, "value") else self.weights
            vectors.set_weights(list(values))
        return compile_model(vectors), compile_model(zoo_model(self.code_tag))

    def models(self) -> tuple[Any, Any]:
        """(vector model, code model) as :meth:`load` gives them, built once per Python worker
        (the inference layer's cache)."""
        return worker_model(self.key, self.load)


def _preprocessed(tag: str, pixels: np.ndarray) -> np.ndarray:
    shape = tuple(card(tag).input.get("shape", IMAGE_SHAPE))
    return preprocessor(tag)(np.asarray(pixels, np.float32).reshape(-1, *shape))


def embed_pixels(
    pixels: np.ndarray, embedder: Embedder, models: tuple[Any, Any] | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """(vectors ``(n, d)`` float32, codes ``(n, bits/8)`` packed uint8) of raw 0-255 images
    ``(n, 784)``, each model fed its card's preprocessing.

    Example::

        vectors, codes = embed_pixels(query_pixels("q.png")[None], Embedder())
    """
    pixels = np.asarray(pixels, np.float32)
    if pixels.ndim != 2 or pixels.shape[1] != math.prod(IMAGE_SHAPE):
        raise ValueError(
            f"pixels must be (n, {math.prod(IMAGE_SHAPE)}) raw grey values, got {pixels.shape}"
        )
    vector_model, code_model = models or embedder.models()
    vectors, codes = [], []
    for start in range(0, len(pixels), embedder.batch_size):
        part = pixels[start : start + embedder.batch_size]
        vectors.append(np.asarray(vector_model(_preprocessed(embedder.vector_tag, part))))
        activations = np.asarray(code_model(_preprocessed(embedder.code_tag, part)))
        codes.append(np.packbits(activations > 0.5, axis=1))
    if not vectors:
        return np.zeros((0, vector_model.output_shape[-1]), np.float32), np.zeros((0, 0), np.uint8)
    return np.concatenate(vectors).astype(np.float32), np.concatenate(codes)


def embed(
    images: DataFrame, embedder: Embedder | None = None, keep_pixels: bool = False
) -> DataFrame:
    """Add ``vector`` (array<float>) and ``code`` (binary, packed bits) to a DataFrame with a
    ``pixels`` column of 784 raw grey values, on the executors (``mapInArrow``), each Python
    worker loading the models once. ``pixels`` is dropped unless ``keep_pixels``.

    Example::

        index = embed(read_images(spark, "digits"))
        index.select("id", "label", "code").show(3)
    """
    embedder = embedder or Embedder()
    if "pixels" not in images.columns:
        raise ValueError(f"embed needs a 'pixels' column; the DataFrame has {images.columns}")

    def embed_batch(models: tuple[Any, Any], pixels: np.ndarray) -> dict[str, Any]:
        vectors, codes = embed_pixels(pixels, embedder, models)
        return {"vector": vectors, "code": [c.tobytes() for c in codes]}

    index = map_batches(
        images,
        embedder.load,
        embed_batch,
        EMBEDDINGS_SCHEMA,
        key=embedder.key,
        read=lambda batch: to_numpy(batch.column("pixels")).reshape(batch.num_rows, -1),
    )
    return index if keep_pixels else index.drop("pixels")


# ---- fine-tuning through the distributed trainer ----------------------------------------------


def _fine_tune_model(tag: str, cut_at: str, num_classes: int, freeze_to: str | None):
    return new_head(zoo_model(tag), num_classes, cut_at=cut_at, freeze_to=freeze_to)


def scaled_pixels(images: DataFrame, tag: str = VECTOR_TAG, col: str = "x") -> DataFrame:
    """``images`` with ``col``: the ``pixels`` with ``tag``'s card preprocessing applied as a
    Spark expression (``scale``, and one ``mean``/``std`` for grey images)."""

    spec = dict(card(tag).preprocessing)
    scale = float(spec.pop("scale", 1.0))
    mean = np.ravel(spec.pop("mean", 0.0))
    std = np.ravel(spec.pop("std", 1.0))
    if spec or len(mean) != 1 or len(std) != 1:
        raise ValueError(f"{tag}'s preprocessing {card(tag).preprocessing} is not for grey images")
    m, s = float(mean[0]), float(std[0])
    return images.withColumn(col, F.transform("pixels", lambda v: (v * scale - m) / s))


def fine_tune(
    spark: SparkSession,
    images: DataFrame,
    epochs: int = 2,
    workers: int = 2,
    freeze_to: str | None = "conv2",
    batch_size: int = 32,
    seed: int = 0,
    embedder: Embedder | None = None,
) -> tuple[list[np.ndarray], dict]:
    """Transfer learning: ``embedder.vector_tag`` with a new softmax head over the classes of
    the ``database`` rows of ``images`` (layers up to ``freeze_to`` frozen), trained by
    :class:`~sparkzoo.trainer.KerasEstimator` on ``workers`` Horovod ranks. Returns the weights
    of the model cut at ``embedder.cut_at`` (for :meth:`Embedder.with_weights`) and a summary.

    Example::

        weights, summary = fine_tune(spark, images, epochs=2)
        index = embed(images, Embedder().with_weights(spark.sparkContext.broadcast(weights)))
    """

    embedder = embedder or Embedder()
    train = images.filter(F.col("split") == "database").filter(F.col("label_id").isNotNull())
    num_classes = (train.agg(F.max("label_id")).first()[0] or 0) + 1
    if num_classes < 2:
        raise ValueError("fine-tuning needs labelled database images of at least 2 classes")
    build = functools.partial(
        _fine_tune_model, embedder.vector_tag, embedder.cut_at, num_classes, freeze_to
    )
    estimator = KerasEstimator(
        model=build,
        optimizer=keras.optimizers.Adam(1e-3),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
        feature_cols=["x"],
        label_cols=["label_id"],
        batch_size=batch_size,
        epochs=epochs,
        num_workers=workers,
        seed=seed,
        log_to_mlflow=False,
        run_name="image-similarity-fine-tune",
        verbose=1,
    )
    fitted = estimator.fit(scaled_pixels(train.select("pixels", "label_id"), embedder.vector_tag))
    weights = cut(fitted.keras_model(), embedder.cut_at).get_weights()
    summary = {
        "classes": num_classes,
        "epochs": epochs,
        "workers": workers,
        "frozen_up_to": freeze_to,
        "fit_s": round(fitted.summary.get("fit_s", 0.0), 1),
        "final": {k: round(float(v[-1]), 4) for k, v in fitted.history.items() if v},
    }
    return weights, summary


def weights_to_bytes(weights: Sequence[np.ndarray]) -> bytes:
    """Model weights (a list of arrays) as ``.npz`` bytes, in order."""

    buffer = io.BytesIO()
    np.savez(buffer, *[np.asarray(w) for w in weights])
    return buffer.getvalue()


def weights_from_bytes(data: bytes) -> list[np.ndarray]:
    """The list of arrays :func:`weights_to_bytes` wrote."""

    with np.load(io.BytesIO(data)) as arrays:
        return [arrays[f"arr_{i}"] for i in range(len(arrays.files))]


# ---- search ------------------------------------------------------------------------------------


def search(
    index: DataFrame, query: dict[str, Any], k: int = 8, by: str = "code", split: str | None = None
) -> DataFrame:
    """The ``k`` rows of ``index`` nearest to ``query`` (``{"vector": ..., "code": bytes}``, as
    :func:`query_embedding` gives): Hamming distance between codes (``by="code"``) or cosine
    distance between vectors (``by="vector"``), computed for every row on the executors
    (brute force, exact), then Spark's top-k; ties broken by ``id``. ``split`` keeps one split.
    Returns a DataFrame with a ``distance`` column, nearest first.

    Example::

        search(index, query_embedding("q.png"), k=5, by="vector").show()
    """
    if by not in BY:
        raise ValueError(f"by must be one of {BY}, got {by!r}")
    if split is not None:
        index = index.filter(F.col("split") == split)
    return nearest(index, query[by], by, k=k, order=("id",))


def query_embedding(path_or_pixels: str | np.ndarray, embedder: Embedder | None = None) -> dict:
    """``{"pixels", "vector", "code"}`` of one query image (a path, or 784 raw grey values),
    computed on the driver by the same functions as the index.

    Example::

        q = query_embedding("hdfs://nn:9000/queries/sofa.jpg")
    """
    pixels = query_pixels(path_or_pixels) if isinstance(path_or_pixels, str) else path_or_pixels
    pixels = np.asarray(pixels, np.float32).reshape(1, -1)
    vectors, codes = embed_pixels(pixels, embedder or Embedder())
    return {"pixels": pixels[0], "vector": vectors[0], "code": codes[0].tobytes()}


# ---- evaluation ----------------------------------------------------------------------------


def evaluate(
    frame,
    ks: Sequence[int | None] = (100, None),
    bits: int | None = None,
    seed: int = 0,
    extra_vectors: dict[str, np.ndarray] | None = None,
) -> dict[str, Any]:
    """Retrieval mAP@k of the held-out ``query`` rows against the ``database`` rows of
    ``frame`` (pandas: ``split``, ``label``, ``pixels``, ``vector``, ``code``), relevance = same
    label, for: the binary codes (Hamming) vs PCA + sign hashing of the same number of bits
    fitted on the database pixels; the transfer-learned vectors (cosine) vs raw pixels
    (cosine). ``None`` in ``ks`` means the whole database (key ``map``). ``extra_vectors``
    (name -> ``(len(frame), d)`` array, row-aligned with ``frame``) adds more cosine rankings.

    Example::

        evaluate(embed(images, keep_pixels=True).toPandas())["codes"]["map_at_100"]
    """
    missing = {"split", "label", "pixels", "vector", "code"} - set(frame.columns)
    if missing:
        raise ValueError(f"evaluate needs columns {sorted(missing)}; it has {list(frame.columns)}")
    extra = {}
    for name, values in (extra_vectors or {}).items():
        values = np.asarray(values, np.float32)
        if len(values) != len(frame):
            raise ValueError(f"extra vectors {name!r}: {len(values)} rows for {len(frame)}")
        extra[name] = values
    labelled = frame["label"].notna().to_numpy()
    frame = frame[labelled]
    is_db = (frame["split"] == "database").to_numpy()
    is_q = (frame["split"] == "query").to_numpy()
    db, q = frame[is_db], frame[is_q]
    if len(db) == 0 or len(q) == 0:
        raise ValueError(f"evaluation needs database and query rows, got {len(db)} and {len(q)}")
    if db["label"].nunique() < 2:
        raise ValueError("evaluation needs at least 2 classes among the database images")
    y_db, y_q = db["label"].to_numpy(), q["label"].to_numpy()

    def stack(part, col, dtype):
        return np.stack(
            [
                np.frombuffer(v, np.uint8) if dtype is bytes else np.asarray(v, dtype)
                for v in part[col]
            ]
        )

    code_db = np.unpackbits(stack(db, "code", bytes), axis=1)
    code_q = np.unpackbits(stack(q, "code", bytes), axis=1)
    bits = bits or code_db.shape[1]
    code_db, code_q = code_db[:, :bits], code_q[:, :bits]
    pix_db, pix_q = stack(db, "pixels", np.float32) / 255.0, stack(q, "pixels", np.float32) / 255.0
    pca_db = pca_sign_hash(pix_db, pix_db, bits, seed)
    pca_q = pca_sign_hash(pix_db, pix_q, bits, seed)
    distances = {
        "codes": hamming_distance(code_q, code_db),
        "pca_sign": hamming_distance(pca_q, pca_db),
        "vectors": cosine_distance(stack(q, "vector", np.float32), stack(db, "vector", np.float32)),
        "pixels_cosine": cosine_distance(pix_q, pix_db),
    }
    for name, values in extra.items():
        values = values[labelled]
        distances[name] = cosine_distance(values[is_q], values[is_db])
    result: dict[str, Any] = {
        name: {
            ("map" if k is None else f"map_at_{k}"): round(map_at_k(d, y_q, y_db, k), 4) for k in ks
        }
        for name, d in distances.items()
    }
    result["bits"] = int(bits)
    result["vector_dim"] = len(db["vector"].iloc[0])
    result["queries"] = len(q)
    result["database"] = len(db)
    result["classes"] = int(db["label"].nunique())
    return result


# ---- output ----------------------------------------------------------------------------------


def rename_paths(df: DataFrame, stage: str, output: str, col: str = "path") -> DataFrame:
    """``df`` with the staging folder's name in ``col`` replaced by the final output folder's
    (so the index names files where they will be once the run has succeeded)."""

    old = "/" + stage.rstrip("/").rsplit("/", 1)[-1] + "/"
    new = "/" + output.rstrip("/").rsplit("/", 1)[-1] + "/"
    replacement = new.replace("\\", "\\\\").replace("$", "\\$")  # Java's replacement syntax
    return df.withColumn(col, F.regexp_replace(col, re.escape(old), replacement))


def results_figure(
    query_image: np.ndarray,
    rows: dict[str, Sequence[tuple[np.ndarray, str]]],
    title: str = "query",
):
    """A matplotlib figure: the query on the left, then one row of results per entry of
    ``rows`` (``{row title: [(image, caption), ...]}``).

    Example::

        fig = results_figure(q_img, {"Hamming (deepbit)": [(img, "d=3 · 7"), ...]})
    """
    # A bare Figure (no pyplot): no global backend state, safe in executors and notebooks.
    columns = 1 + max((len(r) for r in rows.values()), default=0)
    fig = Figure(figsize=(1.3 * columns, 1.55 * len(rows)))
    axes = fig.subplots(len(rows), columns, squeeze=False)
    for r, (name, results) in enumerate(rows.items()):
        cells = [(query_image, title), *results]
        for c in range(columns):
            ax = axes[r][c]
            ax.axis("off")
            if c < len(cells):
                image, caption = cells[c]
                ax.imshow(image, cmap="gray" if np.ndim(image) == 2 else None)
                ax.set_title(caption, fontsize=7)
        axes[r][0].text(
            -0.15,
            0.5,
            name,
            rotation=90,
            fontsize=7,
            va="center",
            ha="right",
            transform=axes[r][0].transAxes,
        )
    fig.tight_layout()
    return fig


METHOD_NAMES = {
    "codes": "deepbit codes, Hamming",
    "pca_sign": "PCA + sign hash, Hamming",
    "vectors": "transfer vectors, cosine",
    "vectors_pretrained": "pretrained vectors, cosine",
    "pixels_cosine": "raw pixels, cosine",
}


def map_chart(retrieval: dict[str, Any]):
    """A matplotlib figure of mAP@k against k (the whole database last) for each ranking in
    ``retrieval`` (what :func:`evaluate` returns).

    Example::

        map_chart(evaluate(frame, ks=(10, 100, None))).savefig("map.png")
    """
    fig = Figure(figsize=(6.0, 3.4))
    ax = fig.subplots()
    for key, name in METHOD_NAMES.items():
        if key not in retrieval:
            continue
        cutoffs = list(retrieval[key])
        labels = [c.replace("map_at_", "@") if c != "map" else "all" for c in cutoffs]
        style = "--" if key in ("pca_sign", "pixels_cosine") else "-"
        ax.plot(labels, [retrieval[key][c] for c in cutoffs], style, marker="o", label=name)
    ax.set_xlabel("k (mAP@k; 'all' = whole database)")
    ax.set_ylabel("mAP")
    ax.set_ylim(0, 1)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    ax.set_title(
        f"{retrieval['queries']} held-out queries vs {retrieval['database']} images, "
        f"{retrieval['bits']} bits",
        fontsize=9,
    )
    fig.tight_layout()
    return fig


__all__ = [
    "BY",
    "CODE_TAG",
    "CUT_AT",
    "INDEX_COLUMNS",
    "VECTOR_TAG",
    "Embedder",
    "embed",
    "embed_pixels",
    "evaluate",
    "fine_tune",
    "map_chart",
    "query_embedding",
    "query_pixels",
    "read_images",
    "read_thumbnail",
    "rename_paths",
    "results_figure",
    "scaled_pixels",
    "search",
    "weights_from_bytes",
    "weights_to_bytes",
    "write_mnist_folder",  # from .inputs
]
