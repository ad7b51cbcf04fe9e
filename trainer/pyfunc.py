"""A :class:`KerasModel` as an MLflow pyfunc model, with a signature built from its columns.

``mlflow.pyfunc.load_model(uri).predict(df[feature_cols])``, ``mlflow.pyfunc.spark_udf(spark,
uri)(*feature_cols)`` and ``mlflow models serve -m uri`` then score exactly what
``KerasModel.transform`` scores: the same column conversion (numbers, fixed-length arrays, ML
vectors), the same reshaping into the model's inputs, the same output columns.
"""

from __future__ import annotations

import importlib.metadata
import math
import os
import tempfile
from typing import Any

import mlflow
import numpy as np
import pandas as pd
import tensorflow as tf
from mlflow.exceptions import MlflowException
from mlflow.models import ModelSignature
from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE
from mlflow.types.schema import AnyType, Array, ColSpec, Schema

from sparkzoo.trainer.arrays import ColumnSpec, fit_to_shapes
from sparkzoo.trainer.rank_training import load_keras_model
from sparkzoo.trainer.scoring import classify, run_model

ARTIFACT = "keras_model"


class KerasPyfuncModel(mlflow.pyfunc.PythonModel):
    """Scores a pandas DataFrame of the feature columns; returns the output columns (one output
    of several values alone: a 2-D array; one value per row: a 1-D array)."""

    def __init__(
        self,
        features: list[ColumnSpec],
        input_shapes: list[tuple],
        output_cols: list[str],
        output_shapes: list[tuple],
        prediction_col: str | None = None,
        probability_col: str | None = None,
        batch_size: int = 1024,
        custom_objects: dict | None = None,
    ):
        self.features = list(features)
        self.input_shapes = [tuple(s) for s in input_shapes]
        self.output_cols = list(output_cols)
        self.output_shapes = [tuple(s) for s in output_shapes]
        self.prediction_col = prediction_col
        self.probability_col = probability_col
        self.batch_size = batch_size
        self.custom_objects = custom_objects or {}
        self.keras_model = None

    def load_context(self, context) -> None:
        with open(context.artifacts[ARTIFACT], "rb") as handle:
            self.keras_model = load_keras_model(handle.read(), self.custom_objects)

    def predict(self, context, model_input: pd.DataFrame, params: dict | None = None):
        if not isinstance(model_input, pd.DataFrame):
            model_input = pd.DataFrame(model_input)
        names = [f.name for f in self.features]
        missing = [n for n in names if n not in model_input.columns]
        if missing:
            raise MlflowException(
                f"the input lacks the feature column(s) {missing}; the model reads {names}",
                error_code=INVALID_PARAMETER_VALUE,
            )
        try:
            arrays = [_column_array(model_input[f.name], f) for f in self.features]
            xs = fit_to_shapes(arrays, self.input_shapes, "feature", names)
        except ValueError as exc:
            raise MlflowException(str(exc), error_code=INVALID_PARAMETER_VALUE) from None
        outputs = run_model(self.keras_model, xs, self.batch_size, len(self.output_cols))
        columns: dict[str, Any] = {}
        for name, values, shape in zip(self.output_cols, outputs, self.output_shapes, strict=True):
            values = values.reshape(len(values), -1)
            columns[name] = (
                values[:, 0].astype(np.float64)
                if math.prod(shape) == 1
                else values.astype(np.float32)
            )
        if self.prediction_col or self.probability_col:
            predicted, probabilities = classify(outputs[0])
            if self.prediction_col:
                columns[self.prediction_col] = predicted
            if self.probability_col:
                columns[self.probability_col] = probabilities
        if len(columns) == 1:
            return next(iter(columns.values()))
        return pd.DataFrame(
            {k: list(v) if v.ndim > 1 else v for k, v in columns.items()}, index=model_input.index
        )

    def signature(self) -> ModelSignature:
        inputs = [ColSpec(_input_type(f), f.name) for f in self.features]
        outputs = [
            ColSpec("double" if math.prod(shape) == 1 else Array("float"), name)
            for name, shape in zip(self.output_cols, self.output_shapes, strict=True)
        ]
        if self.prediction_col:
            outputs.append(ColSpec("double", self.prediction_col))
        if self.probability_col:
            outputs.append(ColSpec(Array("double"), self.probability_col))
        return ModelSignature(Schema(inputs), Schema(outputs))


def _input_type(spec: ColumnSpec):
    """The MLflow type of a feature column. MLflow has no vector type: a Spark ML vector
    column (or a list in JSON) is taken as it comes and converted in ``predict``."""
    if spec.kind == "vector":
        return AnyType()
    element = "long" if spec.integer else "double"
    return element if spec.kind == "scalar" else Array(element)


def _column_array(column: pd.Series, spec: ColumnSpec) -> np.ndarray:
    """A pandas column as the trainer's array for ``spec``: ``(rows,)`` or ``(rows, size)``."""
    if spec.kind == "scalar":
        return column.to_numpy().astype(spec.dtype)
    rows = [_flat(value) for value in column]
    widths = {len(r) for r in rows}
    if widths != {spec.size} and rows:
        raise ValueError(
            f"feature column {spec.name!r} must hold {spec.size} values per row, got "
            f"{sorted(widths)}"
        )
    return np.stack(rows).astype(spec.dtype) if rows else np.zeros((0, spec.size), spec.dtype)


def _flat(value) -> np.ndarray:
    if hasattr(value, "toArray"):  # a Spark ML vector
        value = value.toArray()
    elif isinstance(value, dict) and "values" in value:  # a vector as spark_udf passes it
        value = _vector_values(value)
    return np.asarray(value, dtype=np.float64).ravel()


def _vector_values(struct: dict) -> np.ndarray:
    """The values of a Spark ML vector in its stored form: ``{type: 1, values}`` (dense) or
    ``{type: 0, size, indices, values}`` (sparse)."""
    values = np.asarray(struct["values"], dtype=np.float64)
    if struct.get("type") == 1:
        return values
    dense = np.zeros(int(struct["size"]), np.float64)
    dense[np.asarray(struct["indices"], dtype=np.int64)] = values
    return dense


def pyfunc_model(fitted) -> KerasPyfuncModel:
    """The pyfunc form of a fitted :class:`KerasModel`."""
    return KerasPyfuncModel(
        fitted.features,
        fitted.input_shapes,
        fitted.getOutputCols(),
        fitted.output_shapes,
        fitted.getPredictionCol(),
        fitted.getProbabilityCol(),
        fitted.getBatchSize(),
        fitted.custom_objects,
    )


def _requirements() -> list[str]:
    """What serving the model needs: this TensorFlow (and tf_keras, whose Keras 2 API the
    current stack uses: a fresh process would otherwise get Keras 3), MLflow and sparkzoo."""
    requirements = [f"tensorflow=={tf.__version__}", f"mlflow=={mlflow.__version__}", "sparkzoo"]
    if tf.keras.__name__.startswith("tf_keras"):
        requirements.append(f"tf_keras=={importlib.metadata.version('tf_keras')}")
    return requirements


def log_pyfunc_model(
    fitted,
    input_example: pd.DataFrame | None = None,
    registered_model_name: str | None = None,
    name: str = "model",
) -> str:
    """Log ``fitted`` to the active MLflow run as a pyfunc model with a signature; returns its
    model URI. ``registered_model_name`` also registers it in the Model Registry."""

    python_model = pyfunc_model(fitted)
    with tempfile.TemporaryDirectory(prefix="sparkzoo-pyfunc-") as temp:
        path = os.path.join(temp, "model.keras")
        with open(path, "wb") as handle:
            handle.write(fitted.model_bytes)
        info = mlflow.pyfunc.log_model(
            name=name,
            python_model=python_model,
            artifacts={ARTIFACT: path},
            signature=python_model.signature(),
            input_example=input_example,
            registered_model_name=registered_model_name,
            # Named here: MLflow's own inference of the requirements takes seconds.
            pip_requirements=_requirements(),
        )
    return info.model_uri
