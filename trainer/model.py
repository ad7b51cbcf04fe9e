"""KerasModel: a trained Keras model as a Spark ML Transformer (distributed inference)."""

from __future__ import annotations

import hashlib
import math
from dataclasses import asdict
from typing import Any

import numpy as np
import pyarrow as pa
from pyspark.ml import Transformer
from pyspark.ml.functions import array_to_vector
from pyspark.ml.util import MLReadable, MLWritable

from sparkzoo.arrow import collect_batches, dense_list
from sparkzoo.trainer.backends import (
    BACKENDS,
    INT8,
    OpenVinoModel,
    compile_model,
    ir_bytes,
    quantize_graph,
    read_ir,
)
from sparkzoo.trainer.columns import (
    ColumnSpec,
    as_array_column,
    batch_to_arrays,
    describe_columns,
    fit_to_shapes,
    is_flat_array,
)
from sparkzoo.trainer.inference import map_batches
from sparkzoo.trainer.params import (
    NamedParamErrors,
    at_least,
    column_names,
    one_of,
    optional,
    to_string,
    typed_param,
    with_accessors,
)
from sparkzoo.trainer.persistence import ModelReader, ModelWriter
from sparkzoo.trainer.rank_training import load_keras_model
from sparkzoo.trainer.scoring import classify, run_model


class _ModelParams(NamedParamErrors):
    feature_cols = typed_param(
        "feature_cols", "input columns, in the model's input order", column_names()
    )
    output_cols = typed_param(
        "output_cols", "names of the prediction columns, one per model output", column_names()
    )
    prediction_col = typed_param(
        "prediction_col",
        "a double column of the predicted class: argmax of the first output's scores, or "
        "score >= 0.5 for one sigmoid value; None: none",
        optional(to_string),
    )
    probability_col = typed_param(
        "probability_col",
        "a Spark ML vector column of the first output's class scores ([1 - p, p] for one "
        "sigmoid value); None: none",
        optional(to_string),
    )
    batch_size = typed_param("batch_size", "rows per model call in transform", at_least(1))
    backend = typed_param(
        "backend",
        "the engine that runs the model in transform: 'tensorflow' (the Keras model's traced "
        "graph), "
        "'openvino' (the model compiled by OpenVINO for the CPU, once per Python worker) or "
        "'openvino-int8' (the 8-bit model made by quantize(calibration_df))",
        one_of(*BACKENDS, INT8),
    )


@with_accessors
class KerasModel(Transformer, _ModelParams, MLReadable, MLWritable):
    """Adds the model's predictions to a DataFrame: ``transform(df)`` runs the model on Arrow
    batches in the executors, loading it once per Python worker.

    Each output column holds a double when the model's output has one value per row, else an
    array of floats. For a classifier, ``prediction_col`` adds the class as a double and
    ``probability_col`` the scores as a Spark ML vector, which is what Spark ML's
    ``MulticlassClassificationEvaluator`` and ``BinaryClassificationEvaluator`` read.

    Returned by :meth:`KerasEstimator.fit`. A Spark ML stage: ``write().save(path)`` (or
    ``save(path)``) and ``KerasModel.load(path)``, for a local path or an ``hdfs://`` URI, inside
    a ``PipelineModel`` too. Accessors in Spark's and Horovod's naming: ``setOutputCols``,
    ``getModel()`` (the ``keras.Model``), ``getHistory()``, ``getFeatureColumns()``, ...
    """

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
        prediction_col: str | None = None,
        probability_col: str | None = None,
        label_cols: list[str] | None = None,
        backend: str = "tensorflow",
    ):
        super().__init__()
        self._setDefault(
            batch_size=1024,
            output_cols=["prediction"],
            prediction_col=None,
            probability_col=None,
            backend="tensorflow",
        )
        self.output_shapes = [tuple(s) for s in output_shapes]
        self._set(
            feature_cols=[f.name for f in features],
            output_cols=list(output_cols or ["prediction"]),
            batch_size=batch_size,
            prediction_col=prediction_col,
            probability_col=probability_col,
            backend=backend,
        )
        self.model_bytes = model_bytes
        self.features = list(features)
        self.input_shapes = [tuple(s) for s in input_shapes]
        self.label_cols = list(label_cols or [])
        self.run_id = run_id
        self.model_uri: str | None = None  # the MLflow model logged by fit, if any
        self.history = history or {}
        self.custom_objects = custom_objects or {}
        self.summary: dict = {}  # how the fit went (set by KerasEstimator.fit)
        # the OpenVINO IR (.xml, .bin) of the 8-bit model made by quantize(), else None
        self.int8_ir: tuple[bytes, bytes] | None = None
        self._broadcasts: dict[tuple, Any] = {}  # one broadcast per SparkContext and content
        self._digest = hashlib.sha256(model_bytes).hexdigest()

    def _set(self, **kwargs: Any):
        super()._set(**kwargs)
        cols = kwargs.get("output_cols")
        if cols is not None and len(cols) != len(self.output_shapes):
            raise ValueError(
                f'Invalid param value given for param "output_cols". {cols} name {len(cols)} '
                f"columns but the model has {len(self.output_shapes)} outputs"
            )
        return self

    def _broadcast(self, sc, value: Any, digest: str):
        """``value`` (the model's bytes, or its 8-bit IR) as a Spark broadcast, made once per
        SparkContext and content, not per transform."""
        key = (id(sc._jsc), digest)
        if key not in self._broadcasts:
            self._broadcasts[key] = sc.broadcast(value)
        return self._broadcasts[key]

    def keras_model(self):
        """The trained model as a ``keras.Model`` on the driver."""
        return load_keras_model(self.model_bytes, self.custom_objects)

    # Horovod's KerasModel accessors.
    def getModel(self):
        """The trained ``keras.Model`` (loaded on the driver)."""
        return self.keras_model()

    def getHistory(self) -> dict[str, list[float]]:
        """Per-epoch metrics of the fit, as Keras' ``History.history``: name -> list."""
        return self.history

    def getFeatureColumns(self) -> list[str]:
        return self.getOrDefault("feature_cols")

    def getLabelColumns(self) -> list[str]:
        return self.label_cols

    def getRunId(self) -> str | None:
        """The MLflow run of the fit, if it was tracked."""
        return self.run_id

    # ---- transform ---------------------------------------------------------------------------
    def _added_columns(self) -> list[str]:
        names = list(self.getOrDefault("output_cols"))
        names += [c for c in (self.getPredictionCol(), self.getProbabilityCol()) if c]
        return names

    def _output_schema(self) -> pa.Schema:
        """The added columns, declared once in Arrow (Spark's types follow from it)."""
        fields = [
            (name, pa.float64() if math.prod(shape) == 1 else dense_list(pa.float32()))
            for name, shape in zip(
                self.getOrDefault("output_cols"), self.output_shapes, strict=True
            )
        ]
        if self.getPredictionCol():
            fields.append((self.getPredictionCol(), pa.float64()))
        if self.getProbabilityCol():  # an array here; a Spark ML vector after the Arrow step
            fields.append((self.getProbabilityCol(), dense_list(pa.float64())))
        return pa.schema(fields)

    def _transform(self, dataset):
        names = self.getOrDefault("feature_cols")
        added = self._added_columns()
        if len(set(added)) != len(added):
            raise ValueError(f"KerasModel would add the columns {added}: a name appears twice")
        clash = [c for c in added if c in dataset.columns]
        if clash:
            raise ValueError(
                f"the DataFrame already has column(s) {clash} that KerasModel would add; "
                "rename them or choose other names with setOutputCols / setPredictionCol / "
                "setProbabilityCol"
            )
        prepared, specs, temps = self._prepared_features(dataset)
        sc = dataset.sparkSession.sparkContext
        broadcast = self._broadcast(sc, self.model_bytes, self._digest)
        custom_objects, input_shapes = self.custom_objects, self.input_shapes
        backend, key = self.getBackend(), f"{self._digest}:{self.getBackend()}"
        if backend == INT8:
            if self.int8_ir is None:
                raise ValueError(
                    f"backend {INT8!r} runs the 8-bit model that KerasModel.quantize("
                    "calibration_df) makes; this KerasModel has not been quantised: call "
                    "quantize, or choose backend 'tensorflow' or 'openvino'"
                )
            ir_digest = ":".join(self._int8_sha256())
            ir, key = self._broadcast(sc, self.int8_ir, ir_digest), f"{key}:{ir_digest}"

            def load():
                keras_model = load_keras_model(broadcast.value, custom_objects)
                return OpenVinoModel(keras_model, graph=read_ir(ir.value))
        else:

            def load():
                return compile_model(load_keras_model(broadcast.value, custom_objects), backend)

        scored = map_batches(
            prepared,
            load,
            _predictor(
                self.getOrDefault("output_cols"),
                [math.prod(shape) == 1 for shape in self.output_shapes],
                self.getPredictionCol(),
                self.getProbabilityCol(),
                self.getOrDefault("batch_size"),
            ),
            self._output_schema(),
            key=key,
            read=lambda batch: fit_to_shapes(
                batch_to_arrays(batch, specs), input_shapes, "feature", names
            ),
        ).drop(*temps)
        probability = self.getProbabilityCol()
        if probability:
            scored = scored.withColumn(probability, array_to_vector(scored[probability]))
        return scored

    def _prepared_features(self, dataset):
        """``dataset`` with its feature columns ready for the executors: the DataFrame, one
        :class:`ColumnSpec` per feature column as read there, and the temporary columns
        added (vectors and nested arrays get a flat copy; everything else is read in place)."""
        names = self.getOrDefault("feature_cols")
        described = describe_columns(dataset, names, "feature")
        prepared, specs, temps = dataset, [], []
        for i, ((name, kind, _), spec) in enumerate(zip(described, self.features, strict=True)):
            if kind in ("scalar", "image") or is_flat_array(dataset, name):
                # Read as it is: a copy would travel to Python and back with every row (for
                # a 96 x 96 x 3 image, 27,648 floats converted one by one in each direction).
                specs.append(ColumnSpec(name, kind, spec.size, spec.integer))
                continue
            temp = f"__sparkzoo_input_{i}"
            prepared = as_array_column(prepared.withColumn(temp, prepared[name]), temp, kind)
            specs.append(ColumnSpec(temp, kind, spec.size, spec.integer))
            temps.append(temp)
        return prepared, specs, temps

    # ---- 8-bit integers ----------------------------------------------------------------------
    def quantize(self, dataset, rows: int = 300) -> KerasModel:
        """A copy of this model that runs quantised to 8-bit integers on OpenVINO (backend
        ``"openvino-int8"``): NNCF's post-training quantisation, calibrated on the first
        ``rows`` rows of ``dataset``'s feature columns, which are read as ``transform`` reads
        them. Runs on the driver, in seconds for the zoo's models; the copy carries the
        quantised model (an OpenVINO IR) to the executors and through ``save`` / ``load``.

        The calibration rows should look like the rows to score: pass a sample of them
        (``df.sample(fraction, seed=0)``), not one class. NNCF's default and advice is 300.
        The outputs then differ from TensorFlow's by more than ``backend="openvino"``'s:
        docs/trainer.md gives the agreement measured on the zoo's models.

        Example::

            fast = model.quantize(train_df.sample(0.05, seed=0))
            fast.transform(test_df)                 # fast.getBackend() == "openvino-int8"
        """
        if isinstance(rows, bool) or not isinstance(rows, int) or rows < 1:
            raise ValueError(f"quantize: rows must be a positive integer, got {rows!r}")
        names = self.getOrDefault("feature_cols")
        prepared, specs, _ = self._prepared_features(dataset)
        batches = collect_batches(prepared.select(*[s.name for s in specs]).limit(rows))
        parts = [
            fit_to_shapes(batch_to_arrays(b, specs), self.input_shapes, "feature", names)
            for b in batches
            if b.num_rows
        ]
        if not parts:
            raise ValueError(
                f"quantize: the calibration DataFrame has no rows (feature columns {names}); "
                "it needs some of the rows to score, ideally about 300"
            )
        inputs = [np.concatenate(tensors) for tensors in zip(*parts, strict=True)]
        quantised = self.copy()
        quantised.int8_ir = ir_bytes(quantize_graph(self.keras_model(), inputs))
        return quantised._set(backend=INT8)

    def _int8_sha256(self) -> list[str]:
        """The sha256 of each part of :attr:`int8_ir` (.xml, .bin): its identity in the
        executors' model cache and in the saved metadata."""
        return [hashlib.sha256(part).hexdigest() for part in self.int8_ir]

    # ---- persistence -------------------------------------------------------------------------
    def write(self) -> ModelWriter:
        """A Spark ML writer: ``write().save(path)``, ``write().overwrite().save(path)``."""
        return ModelWriter(self)

    @classmethod
    def read(cls) -> ModelReader:
        return ModelReader(cls)

    @classmethod
    def load(cls, path: str, custom_objects: dict | None = None) -> KerasModel:
        """Read a model saved by :meth:`save` / ``write().save()`` (local path or ``hdfs://``).

        Example: ``KerasModel.load("hdfs://127.0.0.1:9000/models/lenet")``.
        """
        return cls.read().custom_objects(custom_objects).load(path)

    def save_metadata(self) -> dict:
        """What :class:`ModelWriter` stores beside the ``.keras`` file."""
        return {
            "features": [asdict(f) for f in self.features],
            "input_shapes": self.input_shapes,
            "output_shapes": self.output_shapes,
            "label_cols": self.label_cols,
            "run_id": self.run_id,
            "history": self.history,
            "sha256": self._digest,
            "int8_sha256": self._int8_sha256() if self.int8_ir is not None else None,
        }

    @classmethod
    def from_saved(
        cls, model_bytes: bytes, meta: dict, params: dict, custom_objects: dict | None
    ) -> KerasModel:
        """The model :class:`ModelReader` read: files, metadata and Param values."""
        return cls(
            model_bytes,
            [ColumnSpec(**f) for f in meta["features"]],
            meta["input_shapes"],
            meta["output_shapes"],
            params.get("output_cols"),
            params.get("batch_size", 1024),
            meta.get("run_id"),
            meta.get("history"),
            custom_objects,
            prediction_col=params.get("prediction_col"),
            probability_col=params.get("probability_col"),
            label_cols=meta.get("label_cols"),
            backend=params.get("backend", "tensorflow"),
        )


def _predictor(output_names, scalar_outputs, prediction_col, probability_col, batch_size):
    """The per-batch function of :meth:`KerasModel.transform`: the model's inputs (numpy) in,
    its output columns (one value per row: 1-D; else ``(rows, width)``) and the classifier's
    columns out."""

    def predict(model, xs: list[np.ndarray]) -> dict[str, np.ndarray]:
        outputs = run_model(model, xs, batch_size, len(output_names))
        out = {}
        for name, values, scalar in zip(output_names, outputs, scalar_outputs, strict=True):
            values = values.reshape(len(values), -1)
            out[name] = values[:, 0] if scalar else values
        if prediction_col or probability_col:
            predicted, probabilities = classify(outputs[0])
            if prediction_col:
                out[prediction_col] = predicted
            if probability_col:
                out[probability_col] = probabilities
        return out

    return predict
