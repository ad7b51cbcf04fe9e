"""A :class:`KerasModel` or a zoo model as an MLflow pyfunc model, with a signature built from
its columns.

``mlflow.pyfunc.load_model(uri).predict(df[feature_cols])``, ``mlflow.pyfunc.spark_udf(spark,
uri)(*feature_cols)`` and ``mlflow models serve -m uri`` then score exactly what
``KerasModel.transform`` scores: the same column conversion (numbers, fixed-length arrays, ML
vectors, image structs or their pixels as a flat array), the same reshaping into the model's
inputs, the same output columns.

A zoo name (``lenet5.mnist``, any pretrained tag or family) goes through the same
:class:`KerasPyfuncModel` (:func:`zoo_pyfunc_model`, :func:`save_zoo_model`,
:func:`log_zoo_model`): one column per Keras input (``pixels`` for an image, else the input's
name: ``token_ids``, ``window``, ``user_id``...), the raw values the card describes, the card's
numeric preprocessing (``scale``, ``mean``, ``std``, ``offset``; ids checked against ``min``
and ``max``) applied in ``predict``. A value that does not fit (a missing column, a row of the
wrong length, an id out of range) raises an ``MlflowException`` with
``INVALID_PARAMETER_VALUE`` naming the column: HTTP 400 from the scoring server.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import logging
import math
import os
import shutil
import tempfile
from collections.abc import Iterator
from typing import Any

import mlflow
import numpy as np
import pandas as pd
import tensorflow as tf
from mlflow.exceptions import MlflowException
from mlflow.models import Model, ModelSignature
from mlflow.models.model import MLMODEL_FILE_NAME
from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE
from mlflow.types.schema import AnyType, Array, ColSpec, Schema

from sparkzoo import keras2 as keras
from sparkzoo import models
from sparkzoo.models.registry import apply_preprocessing
from sparkzoo.trainer.arrays import ColumnSpec, fit_to_shapes, image_pixels, is_image_value
from sparkzoo.trainer.backends import compile_model
from sparkzoo.trainer.rank_training import keras_model_bytes, load_keras_model
from sparkzoo.trainer.scoring import classify, run_model

ARTIFACT = "keras_model"
# A zoo model's columns: a model's one image input is ``pixels`` (``image`` is an encoded file
# in the object-detection pipeline's model); the other inputs keep their Keras names.
IMAGE_COLUMN = "pixels"
CLASSIFIER_TASKS = ("image-classification", "text-classification", "tabular-classification")
OUTPUT_COLUMNS = {
    "binary-hashing": "activations",
    "time-series-forecasting": "forecast",
    "time-series-reconstruction": "reconstruction",
    "recommendation": "probability",
    "object-detection": "rows",
    "image-similarity": "similarity",
}
# The card preprocessing a pyfunc model applies: numbers in, numbers out (tokenising text or
# resizing an image is the client's job, as the card's ``input`` says).
NUMERIC_PREPROCESSING = ("scale", "mean", "std", "offset", "min", "max")


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
        preprocessing: list[dict | None] | None = None,
        typed_arrays: bool = True,
    ):
        self.features = list(features)
        self.input_shapes = [tuple(s) for s in input_shapes]
        self.output_cols = list(output_cols)
        self.output_shapes = [tuple(s) for s in output_shapes]
        self.prediction_col = prediction_col
        self.probability_col = probability_col
        self.batch_size = batch_size
        self.custom_objects = custom_objects or {}
        # Per model input (one feature column each): the card's numeric preprocessing.
        self.preprocessing = list(preprocessing) if preprocessing else None
        # False: array columns are ``Any`` in the signature, so MLflow does not check each
        # element of each row before ``predict`` (which checks them itself): at 32 MNIST rows
        # a request, MLflow's checks take longer than LeNet-5 does.
        self.typed_arrays = typed_arrays
        self.keras_model = None
        self._engine = None  # keras_model's traced inference graph (:meth:`_traced`)

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_engine": None}  # a traced graph does not pickle

    def load_context(self, context) -> None:
        with open(context.artifacts[ARTIFACT], "rb") as handle:
            self.keras_model = load_keras_model(handle.read(), self.custom_objects)

    def _traced(self):
        """``keras_model`` as the tensorflow backend runs it (``sparkzoo.trainer.backends``):
        its graph, traced on the first call; Keras called eagerly runs layer by layer."""
        if self._engine is None or self._engine.model is not self.keras_model:
            self._engine = compile_model(self.keras_model)
        return self._engine

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
        if len(model_input) == 0:
            return self._no_rows(model_input.index)
        try:
            arrays = [_column_array(model_input[f.name], f) for f in self.features]
            xs = fit_to_shapes(arrays, self.input_shapes, "feature", names)
            if self.preprocessing:
                xs = [
                    _preprocess(x, spec, name)
                    for x, spec, name in zip(xs, self.preprocessing, names, strict=True)
                ]
        except ValueError as exc:
            raise MlflowException(str(exc), error_code=INVALID_PARAMETER_VALUE) from None
        try:
            outputs = run_model(self._traced(), xs, self.batch_size, len(self.output_cols))
        except tf.errors.InvalidArgumentError as exc:  # e.g. an id past an embedding's end
            raise MlflowException(
                f"the model cannot score these {names} values: {exc.message.splitlines()[0]}",
                error_code=INVALID_PARAMETER_VALUE,
            ) from None
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

    def _no_rows(self, index: pd.Index):
        """The answer to an input without rows, in the shape of any other answer."""
        names = [*self.output_cols, *filter(None, (self.prediction_col, self.probability_col))]
        if len(names) == 1:
            return np.zeros(0)
        return pd.DataFrame({name: [] for name in names}, index=index)

    def signature(self) -> ModelSignature:
        inputs = [ColSpec(_input_type(f, self.typed_arrays), f.name) for f in self.features]
        outputs = [
            ColSpec("double" if math.prod(shape) == 1 else Array("float"), name)
            for name, shape in zip(self.output_cols, self.output_shapes, strict=True)
        ]
        if self.prediction_col:
            outputs.append(ColSpec("double", self.prediction_col))
        if self.probability_col:
            outputs.append(ColSpec(Array("double"), self.probability_col))
        return ModelSignature(Schema(inputs), Schema(outputs))


def _input_type(spec: ColumnSpec, typed_arrays: bool = True):
    """The MLflow type of a feature column. MLflow has no vector or image type: a Spark ML
    vector column (or a list in JSON) and an image column (structs, or the pixels as a list)
    are taken as they come and converted in ``predict``; so is an array column when not
    ``typed_arrays``."""
    if spec.kind in ("vector", "image") or (spec.kind == "array" and not typed_arrays):
        return AnyType()
    element = "long" if spec.integer else "double"
    return element if spec.kind == "scalar" else Array(element)


def _column_array(column: pd.Series, spec: ColumnSpec) -> np.ndarray:
    """A pandas column as the trainer's array for ``spec``: ``(rows,)`` or ``(rows, size)``."""
    try:
        if spec.kind == "scalar":
            return column.to_numpy().astype(spec.dtype)
        rows = [_flat(value) for value in column]
    except (TypeError, ValueError) as exc:
        raise ValueError(f"feature column {spec.name!r} must hold numbers: {exc}") from None
    widths = {len(r) for r in rows}
    if widths != {spec.size} and rows:
        raise ValueError(
            f"feature column {spec.name!r} must hold {spec.size} values per row, got "
            f"{sorted(widths)}"
        )
    return np.stack(rows).astype(spec.dtype) if rows else np.zeros((0, spec.size), spec.dtype)


def _preprocess(x: np.ndarray, spec: dict | None, column: str) -> np.ndarray:
    """A model input after a card's numeric preprocessing: ids checked against ``min`` and
    ``max``, then ``offset`` added; ``scale``, ``mean`` and ``std`` as
    :func:`~sparkzoo.models.registry.apply_preprocessing` applies them."""
    if not spec:
        return x
    low, high = spec.get("min"), spec.get("max")
    outside = np.zeros(x.shape, bool)
    if low is not None:
        outside |= x < low
    if high is not None:
        outside |= x > high
    if outside.any():
        raise ValueError(
            f"feature column {column!r} holds {x[outside].ravel()[0]}, outside the model's "
            f"range {low}..{high}"
        )
    if "offset" in spec:
        x = x + np.asarray(spec["offset"]).astype(x.dtype)
    if any(key in spec for key in ("scale", "mean", "std")):
        x = apply_preprocessing(spec, x, name=column)
    return x


def _flat(value) -> np.ndarray:
    if hasattr(value, "toArray"):  # a Spark ML vector
        value = value.toArray()
    elif is_image_value(value):  # an image struct, as a dict or a Row
        value = image_pixels(value)
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


def pip_requirements() -> list[str]:
    """What serving the model needs: this TensorFlow (and tf_keras, whose Keras 2 API the
    current stack uses: a fresh process would otherwise get Keras 3), MLflow and sparkzoo."""
    requirements = [f"tensorflow=={tf.__version__}", f"mlflow=={mlflow.__version__}", "sparkzoo"]
    if keras.is_tf_keras():
        requirements.append(f"tf_keras=={importlib.metadata.version('tf_keras')}")
    return requirements


@contextlib.contextmanager
def _keras_artifact(model_bytes: bytes) -> Iterator[dict[str, str]]:
    """The pyfunc artifacts of a Keras model (its ``.keras`` file), while MLflow copies them."""
    with tempfile.TemporaryDirectory(prefix="sparkzoo-pyfunc-") as temp:
        path = os.path.join(temp, "model.keras")
        with open(path, "wb") as handle:
            handle.write(model_bytes)
        yield {ARTIFACT: path}


class _Flavours:
    """MLflow's flavour protocol (``Model.log`` calls ``save_model``) for one model folder with
    two flavours: the signature-aware pyfunc (:class:`KerasPyfuncModel`: ``pyfunc.load_model``,
    ``spark_udf``, the scoring server) and MLflow's own ``tensorflow`` flavour, so that
    ``mlflow.tensorflow.load_model(uri)`` returns the Keras model, as MLflow's docs promise."""

    __name__ = "tensorflow"  # the flavour MLflow records for the logged model

    @staticmethod
    def save_model(
        path: str,
        mlflow_model,
        python_model: KerasPyfuncModel,
        model_bytes: bytes,
        **options,
    ) -> None:
        with _keras_artifact(model_bytes) as artifacts:
            mlflow.pyfunc.save_model(
                path,
                mlflow_model=mlflow_model,
                python_model=python_model,
                artifacts=artifacts,
                signature=python_model.signature(),
                # Named here: MLflow's own inference of the requirements takes seconds.
                pip_requirements=pip_requirements(),
                **options,
            )
        _add_tensorflow_flavour(path, mlflow_model, python_model, model_bytes)


def _add_tensorflow_flavour(
    path: str, mlflow_model, python_model: KerasPyfuncModel, model_bytes: bytes
) -> None:
    """Write the Keras model into ``path`` as ``mlflow.tensorflow.save_model`` does (its
    ``data/`` folder: the model, its Keras module, format and custom objects) and add the
    ``tensorflow`` flavour to ``mlflow_model``'s MLmodel file. MLflow writes the files itself,
    into a scratch folder, so their layout is always the one its ``load_model`` reads."""
    import mlflow.tensorflow

    keras_model = load_keras_model(model_bytes, python_model.custom_objects)
    # TensorFlow < 2.16 would write a SavedModel (seconds to trace); HDF5 is one quick file.
    # From 2.16, MLflow writes the native .keras file.
    legacy = tuple(int(p) for p in tf.__version__.split(".")[:2]) < (2, 16)
    with (
        tempfile.TemporaryDirectory(prefix="sparkzoo-tf-flavour-") as temp,
        _quiet(
            "mlflow.tensorflow"  # its warning of no signature: the pyfunc flavour has one
        ),
    ):
        scratch = os.path.join(temp, "model")
        mlflow.tensorflow.save_model(
            keras_model,
            scratch,
            custom_objects=python_model.custom_objects or None,
            pip_requirements=pip_requirements(),
            keras_model_kwargs={"save_format": "h5"} if legacy else None,
        )
        flavour = Model.load(scratch).flavors[mlflow.tensorflow.FLAVOR_NAME]
        data = os.path.join(path, flavour["data"])
        os.replace(os.path.join(scratch, flavour["data"]), data)
    if keras.is_tf_keras():
        # MLflow records `tensorflow.keras`, which a fresh process on TensorFlow >= 2.16 takes
        # for Keras 3 unless TF_USE_LEGACY_KERAS=1: name the Keras 2 package the model is for.
        flavour["keras_module"] = "tf_keras"
        with open(os.path.join(data, "keras_module.txt"), "w") as handle:
            handle.write("tf_keras")
    mlflow_model.add_flavor(mlflow.tensorflow.FLAVOR_NAME, **flavour)
    mlflow_model.save(os.path.join(path, MLMODEL_FILE_NAME))


@contextlib.contextmanager
def _quiet(logger: str) -> Iterator[None]:
    """Only errors from ``logger`` while the block runs."""
    log = logging.getLogger(logger)
    level = log.level
    log.setLevel(logging.ERROR)
    try:
        yield
    finally:
        log.setLevel(level)


def _store(
    python_model: KerasPyfuncModel, model_bytes: bytes, path: str | None = None, **options
) -> str:
    """Save ``python_model`` with its Keras file, signature and requirements, in both flavours
    (:class:`_Flavours`), in the new folder ``path`` (returned), or, without ``path``, log it
    to the active MLflow run (its model URI returned). ``options`` go to MLflow (``name``,
    ``registered_model_name``, ``metadata``...)."""
    if path is not None:
        if os.path.exists(path):
            raise MlflowException(
                f"{path} already exists: save a model into a new folder",
                error_code=INVALID_PARAMETER_VALUE,
            )
        metadata = options.pop("metadata", None)
        mlflow_model = Model(metadata=metadata)
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        # Written into a scratch folder beside `path`, then renamed: a failure leaves no
        # half-written model behind.
        scratch = f"{path}.partial-{os.getpid()}"
        shutil.rmtree(scratch, ignore_errors=True)
        try:
            _Flavours.save_model(scratch, mlflow_model, python_model, model_bytes, **options)
            os.replace(scratch, path)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        return path
    name = options.pop("name")
    return Model.log(
        artifact_path=None,  # MLflow 3 still requires the deprecated argument; `name` counts
        name=name,
        flavor=_Flavours,
        python_model=python_model,
        model_bytes=model_bytes,
        **options,
    ).model_uri


def log_pyfunc_model(
    fitted,
    input_example: pd.DataFrame | None = None,
    registered_model_name: str | None = None,
    name: str = "model",
) -> str:
    """Log ``fitted`` to the active MLflow run as a pyfunc model with a signature; returns its
    model URI. ``registered_model_name`` also registers it in the Model Registry."""
    return _store(
        pyfunc_model(fitted),
        fitted.model_bytes,
        name=name,
        input_example=_as_json_values(input_example, fitted.features),
        registered_model_name=registered_model_name,
    )


def _as_json_values(example: pd.DataFrame | None, features: list[ColumnSpec]):
    """An input example as MLflow can store it (JSON): an image column's structs become their
    pixels as lists (which ``predict`` takes as it takes the structs)."""
    if example is None:
        return None
    example = example.copy()
    for spec in features:
        if spec.kind == "image" and spec.name in example:
            example[spec.name] = [image_pixels(v).tolist() for v in example[spec.name]]
    return example


# ---- zoo models -------------------------------------------------------------------------------


def zoo_pyfunc_model(name: str) -> tuple[KerasPyfuncModel, Any]:
    """``(pyfunc model, Keras model)`` of a zoo name: a pretrained tag (its shipped weights)
    or a family (random weights, its default configuration). One feature column per Keras
    input (see the module's docstring); the outputs: ``scores`` and ``prediction`` (the class
    index as a double; the card's ``labels`` name it) for a classifier, one column named for
    the task otherwise (``activations``, ``forecast``, ``probability``...), or the Keras
    output names for several outputs.

    Example::

        python_model, net = zoo_pyfunc_model("lenet5.mnist")
        python_model.signature()      # pixels: Array(double) -> scores, prediction
    """
    card = models.card(name)
    if card.kind == "packaged":
        raise ValueError(
            f"{name!r} is a packaged detector, not a Keras model: serve it inside the "
            "object_detection pipeline's model"
        )
    net = models.get(name)
    keras_names = [t.name.split(":")[0] for t in net.inputs]
    images = [len(t.shape) == 4 for t in net.inputs]
    # The one image input is `pixels`; two (siamese's `a`, `b`) keep their names.
    columns = [
        IMAGE_COLUMN if image and sum(images) == 1 else n
        for image, n in zip(images, keras_names, strict=True)
    ]
    input_shapes = [tuple(t.shape[1:]) for t in net.inputs]
    if any(d is None for shape in input_shapes for d in shape):
        raise ValueError(f"{name!r} takes inputs of varying shape {input_shapes}; cannot serve it")
    features = [
        ColumnSpec(column, "scalar" if math.prod(shape) == 1 else "array", math.prod(shape),
                   t.dtype.is_integer)
        for column, shape, t in zip(columns, input_shapes, net.inputs, strict=True)
    ]  # fmt: skip
    zeros = [
        np.zeros((1, *shape), t.dtype.as_numpy_dtype)
        for shape, t in zip(input_shapes, net.inputs, strict=True)
    ]
    outputs = net(zeros[0] if len(zeros) == 1 else zeros, training=False)
    outputs = outputs if isinstance(outputs, (list, tuple)) else [outputs]
    output_shapes = [tuple(np.shape(o)[1:]) for o in outputs]
    classifier = card.task in CLASSIFIER_TASKS and len(outputs) == 1
    if classifier:
        output_cols = ["scores"]
    elif len(outputs) == 1:
        output_cols = [OUTPUT_COLUMNS.get(card.task, "outputs")]
    else:
        output_cols = list(net.output_names)
    python_model = KerasPyfuncModel(
        features,
        input_shapes,
        output_cols,
        output_shapes,
        prediction_col="prediction" if classifier else None,
        batch_size=256,
        custom_objects=_zoo_custom_objects(),
        typed_arrays=False,
        preprocessing=[
            _card_preprocessing(card.preprocessing, n, len(net.inputs)) for n in keras_names
        ],
    )
    return python_model, net


def _card_preprocessing(spec: dict, input_name: str, inputs: int) -> dict | None:
    """The numeric part of a card's preprocessing for one input: its own entry
    (``{"user_id": {"offset": -1, ...}}``), or the card's top-level keys for a one-input model."""
    own = spec.get(input_name)
    source = own if isinstance(own, dict) else spec if inputs == 1 else {}
    numeric = {key: source[key] for key in NUMERIC_PREPROCESSING if key in source}
    return numeric or None


def _zoo_custom_objects() -> dict:
    """The zoo's own Keras classes (``sparkzoo>...``), so a serving process that never built a
    zoo model can load the saved one: pickled by reference, they import their modules."""
    return {
        key: value
        for key, value in keras.saving.get_custom_objects().items()
        if key.startswith("sparkzoo>")
    }


def _zoo_metadata(name: str) -> dict:
    card = models.card(name)
    return {"sparkzoo_model": name, "sha256": card.sha256, "task": card.task}


def save_zoo_model(name: str, path: str) -> str:
    """Save zoo model ``name`` as an MLflow pyfunc model (with its signature) in the new
    folder ``path``; returns ``path``, which ``mlflow models serve -m`` takes.

    Example::

        save_zoo_model("lenet5.mnist", "/tmp/lenet")
        mlflow.pyfunc.load_model("/tmp/lenet").predict(pd.DataFrame({"pixels": rows}))
    """
    python_model, net = zoo_pyfunc_model(name)
    return _store(python_model, keras_model_bytes(net), path, metadata=_zoo_metadata(name))


def log_zoo_model(
    name: str, registered_model_name: str | None = None, artifact: str = "model"
) -> str:
    """Log zoo model ``name`` to the active MLflow run (one is started when none is) as a
    pyfunc model with a signature; returns its model URI.

    Example::

        uri = log_zoo_model("lenet5.mnist", registered_model_name="lenet")
        # mlflow models serve -m models:/lenet/1 --env-manager local
    """
    python_model, net = zoo_pyfunc_model(name)
    return _store(
        python_model,
        keras_model_bytes(net),
        name=artifact,
        registered_model_name=registered_model_name,
        metadata=_zoo_metadata(name),
    )
