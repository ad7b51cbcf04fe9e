"""Models on the executors: the one inference layer under ``KerasModel.transform``, the
object-detection step, image-similarity embedding and recommendation scoring.

- :func:`worker_model`: a model loaded once per Python worker (Spark reuses its workers across
  tasks) in a small bounded cache, after :func:`~sparkzoo.trainer.threads.configure_threads`
  has sized TensorFlow for one task slot;
- :func:`run_batches`: the executor side, plain Python: Arrow batches in, each turned into
  numpy inputs (``read``), given to ``fn(model, inputs)`` which returns numpy columns, which
  become Arrow columns of the declared ``schema`` (``sparkzoo.arrow``);
- :func:`map_batches`: the Spark side: ``mapInArrow`` over a DataFrame, with the output
  schema declared once, in Arrow.

``fn`` sees numpy only, so each app's per-batch function is tested without Spark.

Example::

    import pyarrow as pa

    def score(model, inputs):                      # numpy in, numpy out
        return {"score": model(inputs["x"], training=False).numpy()[:, 0]}

    scored = map_batches(df, lambda: keras.models.load_model(path), score,
                         pa.schema([("score", pa.float32())]), key=path)
"""

from __future__ import annotations

import uuid
from collections import OrderedDict
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
from pyspark.sql.types import StructType

from sparkzoo.arrow import spark_schema, to_arrow, to_numpy
from sparkzoo.trainer.threads import configure_threads

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

MAX_MODELS = 3  # models kept per Python worker; the least recently used goes first

_MODELS: OrderedDict[str, Any] = OrderedDict()

Reader = Callable[[pa.RecordBatch], Any]
BatchFunction = Callable[[Any, Any], dict[str, Any]]


def worker_model(key: str, load: Callable[[], Any], threads: int | None = 1) -> Any:
    """The model ``load()`` returns, loaded once per Python worker under ``key`` (bounded
    to :data:`MAX_MODELS`); TensorFlow is sized to ``threads`` before the first load.

    Example::

        detector = worker_model("ssd_lite.scenes", lambda: load_detector("ssd_lite.scenes"))
    """
    if key in _MODELS:
        _MODELS.move_to_end(key)
        return _MODELS[key]
    configure_threads(threads)
    model = load()
    _MODELS[key] = model
    while len(_MODELS) > MAX_MODELS:
        _MODELS.popitem(last=False)
    return model


def columns(batch: pa.RecordBatch) -> dict[str, np.ndarray]:
    """Every column of ``batch`` as numpy (``sparkzoo.arrow.to_numpy``): the default ``read``."""
    return {name: to_numpy(batch.column(i)) for i, name in enumerate(batch.schema.names)}


def run_batches(
    batches: Iterator[pa.RecordBatch],
    load: Callable[[], Any],
    fn: BatchFunction,
    schema: pa.Schema,
    *,
    key: str,
    read: Reader = columns,
    keep_input: bool = True,
    threads: int | None = 1,
) -> Iterator[pa.RecordBatch]:
    """The executor side of :func:`map_batches` (also what a test or a bare loop runs): for
    each non-empty batch, ``fn(model, read(batch))`` gives ``{column: values}`` for every
    field of ``schema``; with ``keep_input`` the batch's own columns come first (and ``fn``
    must return one value per input row), else ``fn`` may return any number of rows.
    The model is loaded on the first non-empty batch."""
    model = None
    for batch in batches:
        if batch.num_rows == 0:
            continue
        if model is None:
            model = worker_model(key, load, threads)
        out = fn(model, read(batch))
        missing = [f.name for f in schema if f.name not in out]
        if missing:
            raise ValueError(f"the batch function returned no column(s) {missing}")
        arrays = [to_arrow(out[f.name], f.type) for f in schema]
        if keep_input:
            wrong = [f.name for f, a in zip(schema, arrays, strict=True) if len(a) != len(batch)]
            if wrong:
                raise ValueError(
                    f"the batch function returned {[len(out[n]) for n in wrong]} values for "
                    f"column(s) {wrong}, not one per input row ({batch.num_rows})"
                )
            arrays = [*batch.columns, *arrays]
            names = [*batch.schema.names, *schema.names]
        else:
            names = schema.names
        if len(arrays[0]):
            yield pa.RecordBatch.from_arrays(arrays, names=names)


def map_batches(
    df: DataFrame,
    load: Callable[[], Any],
    fn: BatchFunction,
    schema: pa.Schema,
    *,
    key: str | None = None,
    read: Reader = columns,
    keep_input: bool = True,
    threads: int | None = 1,
) -> DataFrame:
    """``df`` run through a model on the executors in Arrow batches (``mapInArrow``): the
    model is ``load()``-ed once per Python worker (cached under ``key``; default: a new key
    per call), each batch becomes ``fn(model, read(batch))`` (numpy in, numpy out), and the
    result has ``df``'s columns (with ``keep_input``) plus the columns of ``schema``.
    ``threads``: TensorFlow threads per Python worker (Spark runs one worker per task slot).

    Example::

        map_batches(images, load_embedders, embed_batch,
                    pa.schema([("vector", pa.list_(pa.float32())), ("code", pa.binary())]))
    """
    clash = [name for name in schema.names if keep_input and name in df.columns]
    if clash:
        raise ValueError(f"the DataFrame already has the output column(s) {clash}")
    key = key or uuid.uuid4().hex
    kept = df.schema.fields if keep_input else []
    out_schema = StructType([*kept, *spark_schema(schema).fields])

    def run(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        return run_batches(
            batches, load, fn, schema, key=key, read=read, keep_input=keep_input, threads=threads
        )

    return df.mapInArrow(run, out_schema)


__all__ = ["MAX_MODELS", "columns", "map_batches", "run_batches", "worker_model"]
