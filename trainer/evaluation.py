"""A compiled Keras model's loss and metrics over a whole DataFrame, computed on the executors.

Each partition runs the model on its rows batch by batch (``test_on_batch`` without resetting)
and sends back only its metric *states*: a ``Mean``'s total and count, an ``AUC``'s confusion
counts, a ``Precision``'s true and false positives. Those add up across partitions, so the
driver sums them into the model's own metric objects and reads ``result()``: the same numbers
as ``model.evaluate`` over all rows in one process, without collecting the rows.

Example::

    from sparkzoo.trainer.evaluation import evaluate
    evaluate(model, df, ["features"], ["label"])   # {"loss": 0.21, "accuracy": 0.93}
"""

from __future__ import annotations

from typing import Any

import cloudpickle
import numpy as np
import pyarrow as pa
from pyspark.sql import DataFrame
from pyspark.sql.types import BinaryType, StructField, StructType

from sparkzoo import keras2 as keras
from sparkzoo.trainer.arrays import batch_to_arrays, fit_to_shapes
from sparkzoo.trainer.columns import prepare_columns
from sparkzoo.trainer.rank_training import (
    keras_model_bytes,
    keras_objects,
    load_keras_model,
    model_compile_settings,
)

_STATES = StructType([StructField("states", BinaryType())])


def evaluate(
    model: Any,
    df: DataFrame,
    feature_cols: list[str],
    label_cols: list[str],
    batch_size: int = 256,
    custom_objects: dict | None = None,
) -> dict[str, float]:
    """``model``'s loss and compiled metrics over every row of ``df`` (a dict, as Keras'
    ``evaluate(..., return_dict=True)``). ``model`` must be compiled; its optimizer is not
    used. Bad columns raise :class:`~sparkzoo.trainer.columns.ColumnError` naming them."""
    if not getattr(model, "_is_compiled", False):
        raise ValueError("evaluate needs a compiled model: its loss and metrics are measured")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    data = prepare_columns(df, list(feature_cols), list(label_cols))
    compile_args = model_compile_settings(model)
    compile_args.pop("optimizer")  # the optimizer never steps here
    payload = df.sparkSession.sparkContext.broadcast(
        cloudpickle.dumps((keras_model_bytes(model), compile_args, custom_objects or {}))
    )
    features, labels = data.features, data.labels
    input_shapes = [tuple(t.shape[1:]) for t in model.inputs]
    output_shapes = [tuple(t.shape[1:]) for t in model.outputs]

    def partition_states(batches):
        net = None
        for batch in batches:
            if batch.num_rows == 0:
                continue
            if net is None:
                net = _compiled(*cloudpickle.loads(payload.value))
            xs = _fit(batch_to_arrays(batch, features), input_shapes, "feature", features)
            ys = _fit(batch_to_arrays(batch, labels), output_shapes, "label", labels)
            for start in range(0, batch.num_rows, batch_size):
                net.test_on_batch(
                    _one_or_list([x[start : start + batch_size] for x in xs]),
                    _one_or_list([y[start : start + batch_size] for y in ys]),
                    reset_metrics=False,
                )
        if net is not None:
            states = [[v.numpy() for v in m.variables] for m in net.metrics]
            yield pa.RecordBatch.from_pydict({"states": [cloudpickle.dumps(states)]})

    rows = data.df.mapInArrow(partition_states, _STATES).collect()
    if not rows:
        raise ValueError("evaluate found no rows to measure")
    parts = [cloudpickle.loads(row["states"]) for row in rows]
    totals = [[sum(p[i][j] for p in parts) for j in range(len(m))] for i, m in enumerate(parts[0])]
    # The driver's copy of the model, its metrics built on one row, then set to the sums.
    net = _compiled(keras_model_bytes(model), compile_args, custom_objects or {})
    _build_metrics(net, features, labels, input_shapes, output_shapes)
    for metric, values in zip(net.metrics, totals, strict=True):
        for variable, value in zip(metric.variables, values, strict=True):
            variable.assign(value)
    return {m.name: float(np.asarray(m.result())) for m in net.metrics}


def _compiled(model_bytes: bytes, compile_args: dict, custom_objects: dict) -> Any:
    net = load_keras_model(model_bytes, custom_objects)
    net.compile(
        optimizer="sgd",  # never steps here
        loss=keras_objects(compile_args["loss"], keras.losses),
        metrics=keras_objects(list(compile_args["metrics"]), keras.metrics),
        loss_weights=compile_args["loss_weights"],
        weighted_metrics=keras_objects(compile_args["weighted_metrics"], keras.metrics),
    )
    return net


def _one_or_list(arrays: list[np.ndarray]):
    return arrays[0] if len(arrays) == 1 else arrays


def _fit(arrays, shapes, role, specs):
    return fit_to_shapes(arrays, shapes, role, [spec.name for spec in specs])


def _build_metrics(net, features, labels, input_shapes, output_shapes) -> None:
    """Create ``net``'s metric variables (Keras makes them on the first batch, from a row of
    zeros here), then zero them."""
    xs = _fit([np.zeros((1, f.size), f.dtype) for f in features], input_shapes, "feature", features)
    ys = _fit([np.zeros((1, y.size), y.dtype) for y in labels], output_shapes, "label", labels)
    net.test_on_batch(_one_or_list(xs), _one_or_list(ys))
    net.reset_metrics()
