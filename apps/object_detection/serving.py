"""The whole detect -> crop -> embed pipeline as one MLflow pyfunc model.

Input: a DataFrame with an ``image`` column, the bytes of an encoded image file (PNG, JPEG...)
per row; over REST, base64 in JSON (the signature's ``binary`` type: MLflow's scoring server
decodes it). Output, one row per image: the kept objects' ``boxes`` (normalised ``y1, x1, y2,
x2``), ``scores``, ``classes``, ``codes`` (the deepbit binary codes, as hex) and ``vectors``
(LeNet-5's 84-wide penultimate layer), and ``error``: None, or why the image could not be
read (the other images of the request are scored; an image that is not bytes at all, or a
request without the ``image`` column, gets HTTP 400 naming it). Params (``params`` in the
JSON body): ``keep`` (``"all"`` objects scoring at least ``score_threshold``, or the
``"top"`` one) and ``score_threshold``.

The models are the zoo's shipped weights, built by :func:`pipeline.load_models` when the
model loads; the saved model records their sha256 and refuses to load on a sparkzoo whose
weights differ.

Example::

    save_pipeline_model("/tmp/od")            # or log_pipeline_model() in an MLflow run
    model = mlflow.pyfunc.load_model("/tmp/od")
    model.predict(pd.DataFrame({"image": [open("scene.png", "rb").read()]}))
    # sparkzoo serve object_detection  (the same model behind MLflow's scoring server)
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import asdict, replace
from typing import Any

import mlflow
import numpy as np
import pandas as pd
from mlflow.exceptions import MlflowException
from mlflow.models import ModelSignature
from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE
from mlflow.types.schema import Array, ColSpec, ParamSchema, ParamSpec, Schema

from sparkzoo import models
from sparkzoo.apps.object_detection.pipeline import PipelineConfig, load_models, process_images
from sparkzoo.datasets.images import decode_image
from sparkzoo.trainer.pyfunc import pip_requirements

NAME = "object_detection"  # what `sparkzoo serve` calls this model
IMAGE_COLUMN = "image"
OUTPUT_COLUMNS = ("boxes", "scores", "classes", "codes", "vectors", "error")
# Serving answers with every object over the threshold; the Spark job's default is the top one.
DEFAULT_CONFIG = PipelineConfig(keep="all")


class DetectionPipelineModel(mlflow.pyfunc.PythonModel):
    """Encoded images in, each image's kept objects out (see the module's docstring)."""

    def __init__(self, config: PipelineConfig = DEFAULT_CONFIG):
        self.config = config
        self.weights = _weights(config)
        self.models: tuple | None = None

    def load_context(self, context) -> None:
        current = _weights(self.config)
        if current != self.weights:
            raise MlflowException(
                f"this model was saved with the zoo weights {self.weights}; this sparkzoo ships "
                f"{current}: save the model again"
            )
        self.models = load_models(self.config)

    def predict(self, context, model_input: pd.DataFrame, params: dict | None = None):
        if not isinstance(model_input, pd.DataFrame):
            model_input = pd.DataFrame(model_input)
        if IMAGE_COLUMN not in model_input.columns:
            raise MlflowException(
                f"the input lacks the column {IMAGE_COLUMN!r} (encoded image bytes, base64 in "
                f"JSON); it has {list(model_input.columns)}",
                error_code=INVALID_PARAMETER_VALUE,
            )
        config = _with_params(self.config, params or {})
        if self.models is None:
            self.models = load_models(self.config)
        decoded = [_decode(value, row) for row, value in enumerate(model_input[IMAGE_COLUMN])]
        good = [i for i, (image, _) in enumerate(decoded) if image is not None]
        found = process_images([decoded[i][0] for i in good], config, self.models)
        objects: dict[int, list[dict[str, Any]]] = dict(zip(good, found, strict=True))
        records = [
            _record([o for o in objects.get(i, []) if o["kept"]], error)
            for i, (_, error) in enumerate(decoded)
        ]
        return pd.DataFrame(records, columns=list(OUTPUT_COLUMNS), index=model_input.index)

    def signature(self) -> ModelSignature:
        inputs = Schema([ColSpec("binary", IMAGE_COLUMN)])
        outputs = Schema(
            [
                ColSpec(Array(Array("double")), "boxes"),
                ColSpec(Array("double"), "scores"),
                ColSpec(Array("string"), "classes"),
                ColSpec(Array("string"), "codes"),
                ColSpec(Array(Array("double")), "vectors"),
                ColSpec("string", "error", required=False),
            ]
        )
        params = ParamSchema(
            [
                ParamSpec("keep", "string", self.config.keep),
                ParamSpec("score_threshold", "double", self.config.score_threshold),
            ]
        )
        return ModelSignature(inputs, outputs, params)


def _weights(config: PipelineConfig) -> dict[str, str | None]:
    """The sha256 of each zoo model the pipeline runs (None for a packaged detector)."""
    names = (config.detector, config.code_model, config.vector_model)
    return {name: models.card(name).sha256 for name in names if name}


def _with_params(config: PipelineConfig, params: dict) -> PipelineConfig:
    """``config`` with the request's ``keep`` and ``score_threshold`` (400 when invalid, or
    below the detector's floor)."""
    changes = {k: params[k] for k in ("keep", "score_threshold") if params.get(k) is not None}
    try:
        new = replace(config, **changes)
    except (TypeError, ValueError) as exc:
        raise MlflowException(
            f"bad params {changes}: {exc}", error_code=INVALID_PARAMETER_VALUE
        ) from None
    if new.score_threshold < config.min_score:
        raise MlflowException(
            f"score_threshold {new.score_threshold} is below the detector's floor "
            f"{config.min_score}",
            error_code=INVALID_PARAMETER_VALUE,
        )
    return new


def _decode(value: Any, row: int) -> tuple[np.ndarray | None, str | None]:
    """(image, None), or (None, why not) for bytes that are not an image. A value that is not
    bytes (nor a base64 string, as a pandas caller may pass) is a bad request."""
    if isinstance(value, str):
        try:
            value = base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            return None, f"row {row}: the image string is not base64"
    if not isinstance(value, (bytes, bytearray, memoryview)):
        raise MlflowException(
            f"column {IMAGE_COLUMN!r} row {row} holds {type(value).__name__}, not the bytes of "
            "an image file",
            error_code=INVALID_PARAMETER_VALUE,
        )
    try:
        return decode_image(value), None
    except ValueError as exc:
        return None, f"row {row}: {exc}"


def _record(kept: list[dict[str, Any]], error: str | None) -> dict[str, Any]:
    return {
        "boxes": [o["box"] for o in kept],
        "scores": [o["score"] for o in kept],
        "classes": [o["class"] for o in kept],
        "codes": [o["code"].hex() for o in kept if o["code"] is not None],
        "vectors": [o["vector"] for o in kept if o["vector"] is not None],
        "error": error,
    }


def save_pipeline_model(path: str, config: PipelineConfig = DEFAULT_CONFIG) -> str:
    """Save the pipeline as an MLflow pyfunc model in the new folder ``path``; returns it."""
    python_model = DetectionPipelineModel(config)
    mlflow.pyfunc.save_model(
        path,
        python_model=python_model,
        signature=python_model.signature(),
        pip_requirements=pip_requirements(),
        metadata={"sparkzoo_model": NAME, "config": asdict(config)},
    )
    return path


def log_pipeline_model(
    config: PipelineConfig = DEFAULT_CONFIG,
    registered_model_name: str | None = None,
    artifact: str = "model",
) -> str:
    """Log the pipeline to the active MLflow run as a pyfunc model; returns its model URI."""
    python_model = DetectionPipelineModel(config)
    info = mlflow.pyfunc.log_model(
        name=artifact,
        python_model=python_model,
        signature=python_model.signature(),
        registered_model_name=registered_model_name,
        pip_requirements=pip_requirements(),
        metadata={"sparkzoo_model": NAME, "config": asdict(config)},
    )
    return info.model_uri
