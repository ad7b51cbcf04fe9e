"""The one inference layer (sparkzoo.trainer.inference), the Arrow builders (sparkzoo.arrow)
and the index search (sparkzoo.datasets.index): the executor side runs without Spark."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from sparkzoo.arrow import dense_list, list_array, spark_schema, to_arrow, to_numpy
from sparkzoo.datasets.index import distances, nearest, nearest_rows
from sparkzoo.trainer import inference


class _Doubler:
    """A stand-in model: plain numpy, so the layer's own behaviour is what is tested."""

    loads = 0

    def __init__(self):
        _Doubler.loads += 1

    def __call__(self, x):
        return 2 * x


def _batch(rows: int, start: int = 0) -> pa.RecordBatch:
    x = np.arange(start, start + rows * 3, dtype=np.float32).reshape(rows, 3)
    return pa.RecordBatch.from_arrays(
        [pa.array(np.arange(start, start + rows)), list_array(x)], names=["id", "x"]
    )


SCHEMA = pa.schema([("y", pa.list_(pa.float32())), ("total", pa.float64())])


def _double(model, inputs):
    y = model(inputs["x"])
    return {"y": y, "total": y.sum(axis=1).astype(np.float64)}


def test_run_batches_keeps_the_input_and_loads_the_model_once_per_worker():
    _Doubler.loads = 0
    batches = [_batch(2), _batch(0), _batch(1, start=10)]
    out = list(inference.run_batches(iter(batches), _Doubler, _double, SCHEMA, key="doubler-1"))
    assert [b.schema.names for b in out] == [["id", "x", "y", "total"]] * 2  # empty batch skipped
    assert to_numpy(out[0].column("y")).tolist() == [[0, 2, 4], [6, 8, 10]]
    assert out[1].column("total").to_pylist() == [2 * (10 + 11 + 12)]
    list(inference.run_batches(iter([_batch(1)]), _Doubler, _double, SCHEMA, key="doubler-1"))
    assert _Doubler.loads == 1  # a reused worker does not load it again


def test_run_batches_may_change_the_row_count_without_the_input():
    def explode(model, inputs):
        ids = np.repeat(inputs["id"], 2)
        return {"id": ids, "part": np.tile([0, 1], len(inputs["id"]))}

    schema = pa.schema([("id", pa.int64()), ("part", pa.int32())])
    out = list(
        inference.run_batches(
            iter([_batch(3)]), _Doubler, explode, schema, key="explode", keep_input=False
        )
    )
    assert out[0].to_pydict() == {"id": [0, 0, 1, 1, 2, 2], "part": [0, 1] * 3}


def test_run_batches_names_a_missing_or_misaligned_column():
    with pytest.raises(ValueError, match=r"no column\(s\) \['total'\]"):
        list(
            inference.run_batches(
                iter([_batch(2)]), _Doubler, lambda m, i: {"y": i["x"]}, SCHEMA, key="k1"
            )
        )

    def short(model, inputs):
        return {"y": inputs["x"][:1], "total": np.zeros(1)}

    with pytest.raises(ValueError, match="not one per input row"):
        list(inference.run_batches(iter([_batch(2)]), _Doubler, short, SCHEMA, key="k2"))


def test_the_worker_cache_is_bounded():
    for n in range(inference.MAX_MODELS + 2):
        inference.worker_model(f"bounded-{n}", lambda n=n: n)
    kept = [k for k in inference._MODELS if k.startswith("bounded-")]
    assert len(inference._MODELS) <= inference.MAX_MODELS
    assert kept[-1] == f"bounded-{inference.MAX_MODELS + 1}"  # the newest stays


def test_arrow_round_trips_and_spark_types():
    ragged = list_array([np.ones(2), None, np.zeros(1)], np.int32)
    assert ragged.to_pylist() == [[1, 1], None, [0]]
    assert to_numpy(pa.array([[1.0, 2.0], [3.0, 4.0]])).shape == (2, 2)
    assert to_arrow(np.array([0.5, 1.0]), pa.float64()).to_pylist() == [0.5, 1.0]
    assert to_arrow([b"a", None], pa.binary()).to_pylist() == [b"a", None]
    spark = spark_schema(SCHEMA)
    assert [f.dataType.simpleString() for f in spark.fields] == ["array<float>", "double"]


def test_dense_lists_are_arrays_spark_copies_without_null_checks():
    from pyspark.sql.types import ArrayType, FloatType

    nested = pa.list_(pa.field("item", dense_list(pa.float32()), nullable=False))
    schema = pa.schema(
        [("y", dense_list(pa.float32())), ("z", nested), ("w", pa.list_(pa.int32()))]
    )
    fields = spark_schema(schema).fields
    assert fields[0].dataType == ArrayType(FloatType(), containsNull=False)
    assert fields[1].dataType == ArrayType(ArrayType(FloatType(), False), False)
    assert fields[2].dataType.containsNull  # items nullable unless declared otherwise
    # values built for the dense type carry it, so the batch matches its declaration
    array = to_arrow(np.ones((2, 3), np.float32), dense_list(pa.float32()))
    assert array.type == dense_list(pa.float32()) and array.to_pylist() == [[1, 1, 1]] * 2


def _index() -> pd.DataFrame:
    codes = [[0] * 8, [1] + [0] * 7, [1] * 8, [1] * 7 + [0]]
    return pd.DataFrame(
        {
            "id": [0, 1, 2, 3],
            "image_id": ["a", "a", "b", "c"],
            "object": [0, 1, 0, 0],
            "code": [np.packbits(np.array(c, np.uint8)).tobytes() for c in codes],
            "vector": list(np.array([[1, 0], [0.9, 0.1], [0, 1], [0.1, 1]], np.float32)),
        }
    )


def test_nearest_rows_by_hamming_and_cosine_and_one_per_group():
    index = _index()
    query = np.packbits(np.ones(8, np.uint8)).tobytes()
    top = nearest_rows(index, query, "code", k=3, order=("id",))
    assert top["id"].tolist() == [2, 3, 1] and top["distance"].tolist() == [0, 1, 7]
    per_image = nearest_rows(index, [1.0, 0.0], "vector", k=3, one_per="image_id")
    assert per_image["image_id"].tolist() == ["a", "c", "b"]
    assert per_image["object"].tolist() == [0, 0, 0]
    with pytest.raises(ValueError, match="metric must be"):
        nearest_rows(index, query, "code", metric="euclid")
    with pytest.raises(ValueError, match="query code has 2 bytes"):
        distances(index["code"], b"\x00\x00", "hamming")


@pytest.mark.spark
def test_nearest_on_spark_matches_the_pandas_search(spark):
    index = _index()
    frame = spark.createDataFrame(index.assign(vector=[v.tolist() for v in index["vector"]]))
    query = np.packbits(np.ones(8, np.uint8)).tobytes()
    on_spark = nearest(frame, query, "code", k=3, order=("id",)).toPandas()
    assert (
        on_spark["id"].tolist()
        == nearest_rows(index, query, "code", k=3, order=("id",))["id"].tolist()
    )
    grouped = nearest(frame, [1.0, 0.0], "vector", k=3, one_per="image_id", within=("object",))
    assert grouped.toPandas()["image_id"].tolist() == ["a", "c", "b"]
    with pytest.raises(ValueError, match=r"lacks the column\(s\) \['nope'\]"):
        nearest(frame, query, "code", order=("nope",))
