"""Search over an index of embeddings on Spark: brute-force top-k, and near-duplicate pairs.

An index is any DataFrame (or pandas frame) with an embedding column: binary codes as packed
bytes (``code``, compared by Hamming distance) or float vectors (``vector``, compared by
cosine distance). The distances are :mod:`sparkzoo.models.retrieval`'s.

- :func:`nearest`: the ``k`` rows nearest to one query: a distance for every row on the
  executors (exact, fine up to millions of rows; no approximate index), then Spark's top-k;
  optionally only the nearest row per group (e.g. the best object of each image);
- :func:`nearest_rows`: the same on a pandas frame, on the driver;
- :func:`duplicate_pairs`: pairs of rows whose codes are within a few bits, found by an
  equi-join on the code's bytes instead of comparing every pair.

Example::

    from sparkzoo.datasets.index import nearest

    nearest(index, query_code, "code", k=8, order=("id",)).show()
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from pyspark.sql import Window
from pyspark.sql import functions as F
from pyspark.sql.types import DoubleType, StructField, StructType

from sparkzoo.arrow import to_numpy
from sparkzoo.models.retrieval import cosine_distance, hamming_distance

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

METRICS = {"code": "hamming", "vector": "cosine"}


def _metric(column: str, metric: str | None, k: int) -> str:
    """The metric of a search (by default the column's), checked with its ``k``."""
    metric = metric or METRICS.get(column)
    if metric not in ("hamming", "cosine"):
        raise ValueError(f"metric must be 'hamming' or 'cosine', not {metric!r}")
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    return metric


def distances(values: Any, query: Any, metric: str) -> np.ndarray:
    """The distance of each value to ``query``: packed codes (bytes, or a ``(n, bytes)``
    uint8 array) by Hamming, vectors by cosine.

    Example::

        distances(frame["code"], query["code"], "hamming")
    """
    if metric == "hamming":
        q = np.frombuffer(bytes(query), np.uint8)
        if isinstance(values, np.ndarray) and values.dtype == np.uint8 and values.ndim == 2:
            codes = values
        else:
            codes = np.frombuffer(b"".join(bytes(v) for v in values), np.uint8)
            codes = codes.reshape(len(values), -1) if len(values) else np.zeros((0, q.size))
        if len(codes) and codes.shape[1] != q.size:
            raise ValueError(f"the query code has {q.size} bytes, the index codes {codes.shape[1]}")
        return hamming_distance(q, codes, packed=True)[0].astype(np.float64)
    vectors = np.stack(list(values)) if len(values) else np.zeros((0, np.size(query)))
    return cosine_distance(np.asarray(query, np.float64)[None], vectors)[0]


def _distance_batches(
    batches: Iterator[pa.RecordBatch], query: Any, column: str, metric: str
) -> Iterator[pa.RecordBatch]:
    for batch in batches:
        present = pc.is_valid(batch.column(column))
        batch = batch.filter(present)
        if batch.num_rows:
            d = distances(to_numpy(batch.column(column)), query, metric)
            yield pa.RecordBatch.from_arrays(
                [*batch.columns, pa.array(d, pa.float64())],
                names=[*batch.schema.names, "distance"],
            )


def nearest(
    df: DataFrame,
    query: Any,
    column: str,
    metric: str | None = None,
    k: int = 5,
    order: Sequence[str] = (),
    one_per: str | None = None,
    within: Sequence[str] = (),
) -> DataFrame:
    """The ``k`` rows of ``df`` nearest to ``query`` (a packed code for ``metric="hamming"``,
    a vector for ``"cosine"``; default: by the column's name, ``code`` or ``vector``), with a
    ``distance`` column, nearest first, ties broken by ``order``. Rows without an embedding
    are skipped. ``one_per``: keep only the nearest row of each value of that column (ties by
    ``within``) before the top-k.

    Example::

        nearest(features, q["code"], "code", k=5, order=("image_id",), one_per="image_id",
                within=("object",))
    """
    metric = _metric(column, metric, k)
    missing = sorted({column, *order, *within, *([one_per] if one_per else [])} - set(df.columns))
    if missing:
        raise ValueError(f"the index lacks the column(s) {missing}; it has {df.columns}")
    query = bytes(query) if metric == "hamming" else np.asarray(query, np.float32)
    schema = StructType([*df.schema.fields, StructField("distance", DoubleType())])

    def run(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        return _distance_batches(batches, query, column, metric)

    scored = df.mapInArrow(run, schema)
    if one_per:
        best = Window.partitionBy(one_per).orderBy("distance", *within)
        scored = scored.withColumn("__n", F.row_number().over(best)).where("__n = 1").drop("__n")
    return scored.orderBy("distance", *order).limit(int(k))


def nearest_rows(
    frame: pd.DataFrame,
    query: Any,
    column: str,
    metric: str | None = None,
    k: int = 5,
    order: Sequence[str] = (),
    one_per: str | None = None,
    within: Sequence[str] = (),
) -> pd.DataFrame:
    """:func:`nearest` on a pandas frame (on the driver), same arguments and order.

    Example::

        nearest_rows(features.toPandas(), q["vector"], "vector", k=5)
    """
    metric = _metric(column, metric, k)
    frame = frame[frame[column].notna()]
    d = distances(frame[column].to_numpy(), query, metric) if len(frame) else []
    frame = frame.assign(distance=d)
    if one_per:
        frame = frame.sort_values(["distance", *within], kind="stable")
        frame = frame.groupby(one_per, sort=False).head(1)
    return frame.sort_values(["distance", *order], kind="stable").head(k)


def duplicate_pairs(
    features: DataFrame, max_distance: int = 2, max_cosine: float | None = None
) -> DataFrame:
    """Near-duplicate pairs among rows of ``image_id, object, class, code[, vector]``: codes
    within ``max_distance`` bits (and, when ``max_cosine`` is given, vectors within that
    cosine distance).

    Candidates come from an equi-join on code bytes: a 32-bit code has 4 bytes, and two codes
    at most 3 bits apart agree exactly on at least one byte (pigeonhole), so no pair within
    ``max_distance`` < bytes is missed while unrelated codes are never compared. Returns a
    DataFrame ``a_image, a_object, b_image, b_object, a_class, b_class, hamming [, cosine]``
    with ``a`` before ``b``.

    Example::

        duplicate_pairs(spark.read.parquet(out + "/features"), max_distance=1).show()
    """
    first = features.where("code IS NOT NULL").select("code").first()
    if first is None:
        raise ValueError("the features hold no codes: run with a code model (deepbit.mnist)")
    nbytes = len(first.code)
    if not 0 <= max_distance < nbytes:
        raise ValueError(
            f"max_distance must be in [0, {nbytes - 1}] for {nbytes * 8}-bit codes (the byte "
            f"join finds pairs up to {nbytes - 1} bits apart), not {max_distance}"
        )
    with_vectors = max_cosine is not None
    items = features.where("code IS NOT NULL").select(
        F.concat_ws("#", "image_id", F.col("object").cast("string")).alias("key"),
        "image_id",
        "object",
        "class",
        "code",
        *(["vector"] if with_vectors else []),
    )
    bands = items.select(
        "key",
        F.posexplode(F.array(*[F.substring("code", i + 1, 1) for i in range(nbytes)])).alias(
            "band", "value"
        ),
    )
    pairs = (
        bands.alias("x")
        .join(bands.alias("y"), ["band", "value"])
        .where(F.col("x.key") < F.col("y.key"))
        .select(F.col("x.key").alias("a"), F.col("y.key").alias("b"))
        .distinct()
    )
    a, b = items.alias("a"), items.alias("b")
    joined = pairs.join(a, F.col("a") == F.col("a.key")).join(b, F.col("b") == F.col("b.key"))
    cols = [
        F.col("a.image_id").alias("a_image"),
        F.col("a.object").alias("a_object"),
        F.col("b.image_id").alias("b_image"),
        F.col("b.object").alias("b_object"),
        F.col("a.class").alias("a_class"),
        F.col("b.class").alias("b_class"),
        F.col("a.code").alias("a_code"),
        F.col("b.code").alias("b_code"),
    ]
    if with_vectors:
        cols += [F.col("a.vector").alias("a_vector"), F.col("b.vector").alias("b_vector")]
    out_schema = (
        "a_image string, a_object int, b_image string, b_object int, a_class string, "
        "b_class string, hamming int" + (", cosine double" if with_vectors else "")
    )

    def measure(frames: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        for frame in frames:
            if not len(frame):
                continue
            xa = np.stack([np.frombuffer(c, np.uint8) for c in frame.pop("a_code")])
            xb = np.stack([np.frombuffer(c, np.uint8) for c in frame.pop("b_code")])
            ham = np.unpackbits(xa ^ xb, axis=1).sum(axis=1)
            frame = frame.assign(hamming=ham.astype(np.int32))
            keep = ham <= max_distance
            if with_vectors:
                va, vb = np.stack(frame.pop("a_vector")), np.stack(frame.pop("b_vector"))
                cos = 1 - (va * vb).sum(1) / np.maximum(
                    np.linalg.norm(va, axis=1) * np.linalg.norm(vb, axis=1), 1e-12
                )
                frame = frame.assign(cosine=cos)
                keep &= cos <= max_cosine
            yield frame[keep]

    return joined.select(*cols).mapInPandas(measure, out_schema)


__all__ = ["METRICS", "distances", "duplicate_pairs", "nearest", "nearest_rows"]
