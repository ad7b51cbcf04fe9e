"""KerasModel: a trained Keras model as a Spark ML Transformer (distributed inference)."""

from __future__ import annotations

import hashlib
import json
import math
import os
import tempfile
from dataclasses import asdict
from typing import Any

from pyspark.ml import Transformer
from pyspark.ml.param import Param, Params

from sparkzoo import fs
from sparkzoo.trainer.columns import (
    ColumnSpec,
    as_array_column,
    batch_to_arrays,
    describe_columns,
    fit_to_shapes,
)
from sparkzoo.trainer.rank_training import load_keras_model

# Keras models loaded in this Python worker, by the digest of their bytes: a reused worker
# loads a model once, not once per task.
_LOADED: dict[str, Any] = {}


def _cached_model(digest: str, model_bytes: bytes, custom_objects: dict | None):
    if digest not in _LOADED:
        _LOADED.clear()  # keep one model per worker
        _LOADED[digest] = load_keras_model(model_bytes, custom_objects)
    return _LOADED[digest]


class KerasModel(Transformer):
    """Adds the model's predictions to a DataFrame: ``transform(df)`` runs the model on Arrow
    batches in the executors, loading it once per Python worker.

    Each output column holds a double when the model's output has one value per row, else an
    array of floats. Returned by :meth:`KerasEstimator.fit`; ``save``/``load`` a directory.
    """

    feature_cols = Param(
        Params._dummy(), "feature_cols", "input columns, in the model's input order"
    )
    output_cols = Param(
        Params._dummy(), "output_cols", "names of the prediction columns, one per model output"
    )
    batch_size = Param(Params._dummy(), "batch_size", "rows per model call in transform")

    def __init__(
        self,
        model_bytes: bytes,
        features: list[ColumnSpec],
        input_shapes: list[tuple],
        output_shapes: list[tuple],
        output_cols: list[str] | None = None,
        batch_size: int = 1024,
        run_id: str | None = None,
        history: dict | None = None,
        custom_objects: dict | None = None,
    ):
        super().__init__()
        output_cols = list(output_cols or ["prediction"])
        if len(output_cols) != len(output_shapes):
            raise ValueError(
                f"output_cols {output_cols} name {len(output_cols)} columns but the "
                f"model has {len(output_shapes)} outputs"
            )
        self._setDefault(batch_size=1024, output_cols=["prediction"])
        self._set(
            feature_cols=[f.name for f in features], output_cols=output_cols, batch_size=batch_size
        )
        self.model_bytes = model_bytes
        self.features = list(features)
        self.input_shapes = [tuple(s) for s in input_shapes]
        self.output_shapes = [tuple(s) for s in output_shapes]
        self.run_id = run_id
        self.history = history or {}
        self.custom_objects = custom_objects or {}
        self.summary: dict = {}  # how the fit went (set by KerasEstimator.fit)
        self._broadcasts: dict[int, Any] = {}  # one broadcast of the bytes per SparkContext
        self._digest = hashlib.sha256(model_bytes).hexdigest()

    def _broadcast(self, sc):
        """The model bytes as a Spark broadcast, made once per SparkContext, not per transform."""
        key = id(sc._jsc)
        if key not in self._broadcasts:
            self._broadcasts[key] = sc.broadcast(self.model_bytes)
        return self._broadcasts[key]

    def keras_model(self):
        """The trained model as a ``tf.keras.Model`` on the driver."""
        return load_keras_model(self.model_bytes, self.custom_objects)

    def _output_fields(self):
        from pyspark.sql.types import ArrayType, DoubleType, FloatType, StructField

        return [
            StructField(name, DoubleType() if math.prod(shape) == 1 else ArrayType(FloatType()))
            for name, shape in zip(
                self.getOrDefault("output_cols"), self.output_shapes, strict=True
            )
        ]

    def _transform(self, dataset):
        from pyspark.sql.types import StructType

        names = self.getOrDefault("feature_cols")
        described = describe_columns(dataset, names, "feature")
        prepared, temp_specs = dataset, []
        for i, ((name, kind, _), spec) in enumerate(zip(described, self.features, strict=True)):
            temp = f"__sparkzoo_input_{i}"
            prepared = prepared.withColumn(temp, prepared[name])
            if kind != "scalar":
                prepared = as_array_column(prepared, temp, kind)
            temp_specs.append(ColumnSpec(temp, kind, spec.size, spec.integer))
        output_fields = self._output_fields()
        schema = StructType([*prepared.schema.fields, *output_fields])
        broadcast = self._broadcast(dataset.sparkSession.sparkContext)
        predict = _predict_batches(
            self._digest,
            broadcast,
            temp_specs,
            self.input_shapes,
            names,
            [f.name for f in output_fields],
            [f.dataType.simpleString() == "double" for f in output_fields],
            self.getOrDefault("batch_size"),
            self.custom_objects,
        )
        return prepared.mapInArrow(predict, schema).drop(*[s.name for s in temp_specs])

    # ---- persistence ---------------------------------------------------------------------
    def save(self, path: str) -> None:
        """Write the model to directory ``path`` (``model.keras`` + ``metadata.json``): a local
        path or an ``hdfs://`` URI.

        The files are written to a local temporary directory, copied to a temporary name beside
        ``path`` and renamed into place. Example: ``fitted.save("hdfs://127.0.0.1:9000/m/lenet")``.
        """
        if fs.exists(path):
            raise FileExistsError(f"{path} exists; remove it or choose another path")
        with tempfile.TemporaryDirectory(prefix="sparkzoo-model-") as temp:
            with open(os.path.join(temp, "model.keras"), "wb") as handle:
                handle.write(self.model_bytes)
            with open(os.path.join(temp, "metadata.json"), "w") as handle:
                json.dump(self._metadata(), handle, indent=2)
            fs.put(temp, path)

    def _metadata(self) -> dict:
        return {
            "format": "sparkzoo.KerasModel/1",
            "features": [asdict(f) for f in self.features],
            "input_shapes": self.input_shapes,
            "output_shapes": self.output_shapes,
            "output_cols": self.getOrDefault("output_cols"),
            "batch_size": self.getOrDefault("batch_size"),
            "run_id": self.run_id,
            "history": self.history,
            "sha256": self._digest,
        }

    @classmethod
    def load(cls, path: str, custom_objects: dict | None = None) -> KerasModel:
        meta_path = fs.join(path, "metadata.json")
        if not fs.exists(meta_path):
            raise FileNotFoundError(f"{path} holds no saved KerasModel (no metadata.json)")
        meta = json.loads(fs.read_bytes(meta_path))
        model_bytes = fs.read_bytes(fs.join(path, "model.keras"))
        if hashlib.sha256(model_bytes).hexdigest() != meta["sha256"]:
            raise ValueError(f"{path}/model.keras does not match the sha256 in its metadata.json")
        return cls(
            model_bytes,
            [ColumnSpec(**f) for f in meta["features"]],
            meta["input_shapes"],
            meta["output_shapes"],
            meta["output_cols"],
            meta["batch_size"],
            meta.get("run_id"),
            meta.get("history"),
            custom_objects,
        )


def _predict_batches(
    digest,
    broadcast,
    specs,
    input_shapes,
    names,
    output_names,
    scalar_outputs,
    batch_size,
    custom_objects,
):
    def predict(batches):
        import numpy as np
        import pyarrow as pa

        model = None
        for batch in batches:
            if model is None:
                model = _cached_model(digest, broadcast.value, custom_objects)
            if batch.num_rows == 0:
                outputs = [np.zeros((0, 1), np.float32) for _ in output_names]
            else:
                xs = fit_to_shapes(batch_to_arrays(batch, specs), input_shapes, "feature", names)
                outputs = _run_model(model, xs, batch_size, len(output_names))
            columns = list(batch.columns)
            for values, scalar in zip(outputs, scalar_outputs, strict=True):
                values = values.reshape(len(values), -1)
                if scalar:
                    columns.append(pa.array(values[:, 0].astype(np.float64)))
                else:
                    flat = pa.array(values.astype(np.float32).ravel())
                    offsets = pa.array(
                        np.arange(0, values.size + 1, values.shape[1], dtype=np.int32)
                    )
                    columns.append(pa.ListArray.from_arrays(offsets, flat))
            names_out = [*batch.schema.names, *output_names]
            yield pa.RecordBatch.from_arrays(columns, names=names_out)

    return predict


def _run_model(model, xs, batch_size: int, n_outputs: int):
    import numpy as np

    chunks: list[list] = [[] for _ in range(n_outputs)]
    rows = len(xs[0])
    for start in range(0, rows, batch_size):
        part = [x[start : start + batch_size] for x in xs]
        out = model(part[0] if len(part) == 1 else part, training=False)
        out = out if isinstance(out, (list, tuple)) else [out]
        for i, o in enumerate(out):
            chunks[i].append(o.numpy())
    return [np.concatenate(c) for c in chunks]
