"""Spark ML persistence for :class:`KerasEstimator` and :class:`KerasModel`.

A saved stage is a folder, on a local path or ``hdfs://``::

    metadata/part-00000   Spark's stage metadata (one JSON line: class, uid, paramMap, ...),
                          which Spark's Pipeline and CrossValidator readers read
    model.keras           the Keras model (a fitted model's weights; an estimator's model
                          when it was given as a model rather than a function)
    params.pkl            an estimator's Param values that are not JSON (model-building
                          functions, optimizer and loss objects, callbacks), cloudpickled
    model-int8.xml, .bin  a quantised model's OpenVINO IR (``KerasModel.quantize``), if any

Everything is written to a local temporary folder first and copied to a temporary name beside
the target, then renamed into place: a failed save leaves nothing behind, and an overwrite
replaces the old folder only once the new one is complete. Saving onto an existing path fails
unless ``write().overwrite()``. As with any pickle, load only stages you trust.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import time
from typing import Any

import cloudpickle
import pyspark
from pyspark.ml.util import MLReader, MLWriter

from sparkzoo import fs
from sparkzoo import keras2 as keras
from sparkzoo.trainer.rank_training import keras_model_bytes, load_keras_model

METADATA_FILE = os.path.join("metadata", "part-00000")
MODEL_FILE = "model.keras"
PICKLED_PARAMS_FILE = "params.pkl"
INT8_FILES = ("model-int8.xml", "model-int8.bin")  # KerasModel.int8_ir, when quantised
LEGACY_METADATA_FILE = "metadata.json"  # KerasModel.save before it was a Spark ML stage


def class_name(cls: type) -> str:
    return f"{cls.__module__}.{cls.__name__}"


def _is_json(value: Any) -> bool:
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return False
    return True


class _StageWriter(MLWriter):
    """Writes one stage's folder (subclasses add their files in :meth:`write_files`)."""

    def __init__(self, instance):
        super().__init__()
        self.instance = instance

    def write_files(self, folder: str) -> tuple[dict, dict]:
        """Write the stage's own files into the local ``folder``; return the Params to record
        in the metadata's ``paramMap`` and any extra metadata."""
        raise NotImplementedError

    def save(self, path: str) -> None:
        """Save the stage to ``path`` (local or ``hdfs://``); refuses an existing path unless
        :meth:`overwrite` was called."""
        if not isinstance(path, str):
            raise TypeError(f"path should be a string, got {type(path).__name__}")
        if fs.exists(path) and not self.shouldOverwrite:
            raise FileExistsError(
                f"{path} already exists; use write().overwrite().save(path) to replace it"
            )
        self.saveImpl(path)

    def saveImpl(self, path: str) -> None:
        with tempfile.TemporaryDirectory(prefix="sparkzoo-stage-") as folder:
            params, extra = self.write_files(folder)
            metadata = {
                "class": class_name(type(self.instance)),
                "timestamp": round(time.time() * 1000),
                "sparkVersion": pyspark.__version__,
                "uid": self.instance.uid,
                "paramMap": params,
                "defaultParamMap": {
                    p.name: v for p, v in self.instance._defaultParamMap.items() if _is_json(v)
                },
                **extra,
            }
            os.makedirs(os.path.join(folder, "metadata"))
            with open(os.path.join(folder, METADATA_FILE), "w") as handle:
                handle.write(json.dumps(metadata, separators=(",", ":")) + "\n")
            open(os.path.join(folder, "metadata", "_SUCCESS"), "w").close()
            fs.put(folder, path, overwrite=self.shouldOverwrite)


class _StageReader(MLReader):
    def __init__(self, cls: type):
        super().__init__()
        self.cls = cls

    def metadata(self, path: str) -> dict:
        """The stage metadata at ``path``, checked to be of this reader's class."""
        file = fs.join(path, METADATA_FILE)
        if not fs.exists(file):
            raise FileNotFoundError(
                f"{path} holds no saved {self.cls.__name__} (no {METADATA_FILE})"
            )
        metadata = json.loads(fs.read_bytes(file).decode().splitlines()[0])
        saved_class = metadata.get("class", "")
        if saved_class.rsplit(".", 1)[-1] != self.cls.__name__:
            raise ValueError(
                f"{path} holds a saved {saved_class or 'stage of unknown class'}, "
                f"not a {self.cls.__name__}"
            )
        return metadata


# ---- KerasModel ----------------------------------------------------------------------------------
class ModelWriter(_StageWriter):
    def write_files(self, folder: str) -> tuple[dict, dict]:
        model = self.instance
        files = {MODEL_FILE: model.model_bytes}
        if model.int8_ir is not None:
            files.update(zip(INT8_FILES, model.int8_ir, strict=True))
        for name, content in files.items():
            with open(os.path.join(folder, name), "wb") as handle:
                handle.write(content)
        params = {p.name: model.getOrDefault(p) for p in model.params if model.isDefined(p)}
        return params, {"sparkzoo": model.save_metadata()}


class ModelReader(_StageReader):
    def __init__(self, cls: type):
        super().__init__(cls)
        self._custom_objects: dict | None = None

    def custom_objects(self, custom_objects: dict | None) -> ModelReader:
        """Custom Keras objects the saved model needs to load."""
        self._custom_objects = custom_objects
        return self

    def load(self, path: str):
        if not fs.exists(fs.join(path, METADATA_FILE)) and fs.exists(
            fs.join(path, LEGACY_METADATA_FILE)
        ):
            return self._load_legacy(path)
        metadata = self.metadata(path)
        meta = metadata.get("sparkzoo")
        if meta is None:
            raise ValueError(f"{path}/{METADATA_FILE} has no 'sparkzoo' section")
        model_bytes = self._model_bytes(path, meta["sha256"])
        model = self.cls.from_saved(model_bytes, meta, metadata["paramMap"], self._custom_objects)
        if meta.get("int8_sha256"):
            model.int8_ir = tuple(
                _checked_bytes(path, name, digest)
                for name, digest in zip(INT8_FILES, meta["int8_sha256"], strict=True)
            )
        return model._resetUid(metadata["uid"])

    def _load_legacy(self, path: str):
        meta = json.loads(fs.read_bytes(fs.join(path, LEGACY_METADATA_FILE)))
        model_bytes = self._model_bytes(path, meta["sha256"])
        params = {"output_cols": meta["output_cols"], "batch_size": meta["batch_size"]}
        return self.cls.from_saved(model_bytes, meta, params, self._custom_objects)

    @staticmethod
    def _model_bytes(path: str, sha256: str) -> bytes:
        return _checked_bytes(path, MODEL_FILE, sha256)


def _checked_bytes(path: str, name: str, sha256: str) -> bytes:
    """The file ``name`` of the saved stage at ``path``, checked against its metadata's
    sha256."""
    file = fs.join(path, name)
    if not fs.exists(file):
        raise FileNotFoundError(f"{path} has no {name}")
    content = fs.read_bytes(file)
    if hashlib.sha256(content).hexdigest() != sha256:
        raise ValueError(f"{file} does not match the sha256 in its metadata")
    return content


def _keras_kind(value) -> str | None:
    """``optimizers``/``losses``/``metrics`` for a Keras object of that kind, else None."""
    for kind, base in (
        ("optimizers", keras.optimizers.Optimizer),
        ("losses", keras.losses.Loss),
        ("metrics", keras.metrics.Metric),
    ):
        if isinstance(value, base):
            return kind
    return None


# ---- KerasEstimator ------------------------------------------------------------------------------
class EstimatorWriter(_StageWriter):
    def write_files(self, folder: str) -> tuple[dict, dict]:
        estimator = self.instance
        json_params, pickled, keras_params = {}, {}, {}
        for param in estimator.params:
            if not estimator.isSet(param):
                continue
            value = estimator.getOrDefault(param)
            if param.name == "validation" and value is not None and not isinstance(value, float):
                raise ValueError(
                    "validation is a DataFrame, which a saved KerasEstimator cannot hold; set "
                    "validation to a fraction (or None) before saving"
                )
            kind = _keras_kind(value)
            if param.name == "model" and isinstance(value, keras.Model):
                with open(os.path.join(folder, MODEL_FILE), "wb") as handle:
                    handle.write(keras_model_bytes(value))
            elif kind is not None:  # Keras objects hold weak references: save their config
                keras_params[param.name] = kind
                json_params[param.name] = getattr(keras, kind).serialize(value)
            elif _is_json(value):
                json_params[param.name] = value
            else:
                pickled[param.name] = value
        if pickled:
            try:
                data = cloudpickle.dumps(pickled)
            except Exception as exc:
                raise ValueError(
                    f"cannot save the KerasEstimator Params {sorted(pickled)}: {exc}"
                ) from exc
            with open(os.path.join(folder, PICKLED_PARAMS_FILE), "wb") as handle:
                handle.write(data)
        return json_params, {"pickledParams": sorted(pickled), "kerasParams": keras_params}


class EstimatorReader(_StageReader):
    def load(self, path: str):
        metadata = self.metadata(path)
        params = dict(metadata["paramMap"])
        if metadata.get("kerasParams"):
            for name, kind in metadata["kerasParams"].items():
                params[name] = getattr(keras, kind).deserialize(params[name])
        if metadata.get("pickledParams"):
            params |= cloudpickle.loads(fs.read_bytes(fs.join(path, PICKLED_PARAMS_FILE)))
        model_file = fs.join(path, MODEL_FILE)
        if fs.exists(model_file):
            params["model"] = load_keras_model(
                fs.read_bytes(model_file), params.get("custom_objects")
            )
        return self.cls(**params)._resetUid(metadata["uid"])
