"""Inference backends: the engine that runs a Keras model's forward pass on the executors.

- ``"tensorflow"`` (the default): the Keras model's inference pass traced once into a
  TensorFlow graph (:class:`TensorFlowModel`), as Keras' own ``predict`` runs it. Called
  eagerly, ``model(x, training=False)`` runs layer by layer without the graph's fused
  kernels: twice the CPU a row for the ``ssd_lite.scenes`` detector (docs/benchmarks.md);
- ``"openvino"``: the model's inference graph converted with ``openvino.convert_model`` and
  compiled for the CPU once per Python worker, in 32-bit floats (``INFERENCE_PRECISION_HINT
  f32``: on CPUs with bfloat16 units OpenVINO would otherwise compute in bfloat16 and move the
  outputs by up to ~1e-1), its threads not pinned to cores (Spark's workers would share one). Its outputs match TensorFlow's within :data:`OPENVINO_TOLERANCE`;
- ``"openvino-int8"`` (:data:`INT8`, ``KerasModel`` only): the same graph quantised to 8-bit
  integers by NNCF's post-training quantisation (:func:`quantize_graph`), calibrated on sample
  rows, the rest of the graph in 32-bit floats. It needs those rows, so it is made by
  ``KerasModel.quantize(calibration_df)``, not chosen by name alone. Its outputs are close to
  TensorFlow's, not equal: docs/trainer.md gives the agreement measured on the zoo's models.

Each is called like the Keras model: ``compiled(x, training=False)`` returns one numpy array,
or a list for a model with several outputs, so :func:`sparkzoo.trainer.scoring.run_model` and
the detectors run any backend unchanged.

Example::

    fast = compile_model(keras.models.load_model(path), "openvino", threads=1)
    scores = fast(images, training=False)          # numpy, as model(images) would give

    ir = ir_bytes(quantize_graph(model, [calibration_images]))   # 8 bits, a few seconds
    faster = OpenVinoModel(model, threads=1, graph=read_ir(ir))
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from typing import Any

import numpy as np

from sparkzoo import extras

BACKENDS = ("tensorflow", "openvino")
INT8 = "openvino-int8"  # KerasModel's backend once KerasModel.quantize has calibrated it
OPENVINO_TOLERANCE = 1e-4  # largest |OpenVINO - TensorFlow| on the zoo's models, float32


def check_backend(backend: str, choices: tuple[str, ...] = BACKENDS) -> str:
    """``backend`` when it is one of ``choices`` (:data:`BACKENDS`), else a ValueError naming
    them."""
    if backend not in choices:
        raise ValueError(f"backend {backend!r} unknown; choose one of {list(choices)}")
    return backend


def compile_model(model: Any, backend: str = "tensorflow", threads: int | None = 1) -> Any:
    """``model`` (a ``keras.Model``) ready to run on ``backend``: a :class:`TensorFlowModel`
    for ``"tensorflow"`` (TensorFlow's threads are the process's, set by
    ``sparkzoo.trainer.threads``), an :class:`OpenVinoModel` on ``threads`` CPU threads for
    ``"openvino"``."""
    if check_backend(backend) == "tensorflow":
        return TensorFlowModel(model)
    return OpenVinoModel(model, threads)


class CompiledModel:
    """A Keras model's inference pass on some engine, called as the model is:
    ``compiled(x)``, ``compiled([x1, x2])`` or ``compiled({"user": u, "item": i})`` (by input
    name) gives numpy (a list for several outputs).
    ``input_shape``, ``output_shape`` and ``name`` are the Keras model's, so code that reads
    them (a detector's anchors) works on any backend. Subclasses run :meth:`_run`."""

    def __init__(self, model: Any, dtypes: list[np.dtype]) -> None:
        self._dtypes = dtypes
        self._input_names = list(model.input_names)
        self._several = len(model.outputs) > 1
        self.input_shape = model.input_shape
        self.output_shape = model.output_shape
        self.name = model.name

    def _run(self, inputs: list[np.ndarray]) -> list[np.ndarray]:
        raise NotImplementedError

    def __call__(self, inputs: Any, training: bool = False) -> Any:
        if isinstance(inputs, dict):  # by input name, as Keras takes a dict
            missing = [name for name in self._input_names if name not in inputs]
            if missing:
                raise ValueError(f"the model's inputs {missing} are missing from {list(inputs)}")
            inputs = [inputs[name] for name in self._input_names]
        xs = inputs if isinstance(inputs, (list, tuple)) else [inputs]
        if len(xs) != len(self._dtypes):
            raise ValueError(f"the model takes {len(self._dtypes)} inputs, got {len(xs)}")
        feed = [np.ascontiguousarray(x, dtype) for x, dtype in zip(xs, self._dtypes, strict=True)]
        outputs = self._run(feed)
        return outputs if self._several else outputs[0]

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r})"


class TensorFlowModel(CompiledModel):
    """A Keras model's inference pass traced once (``training=False``, a free batch
    dimension) into a TensorFlow graph, which TensorFlow optimises as it does for Keras'
    ``predict``: a convolution, its bias and its activation become one fused kernel."""

    def __init__(self, model: Any) -> None:
        self._forward = inference_function(model)
        super().__init__(model, [np.dtype(t.dtype.as_numpy_dtype) for t in model.inputs])
        self.model = model

    def _run(self, inputs: list[np.ndarray]) -> list[np.ndarray]:
        out = self._forward(*inputs)
        return [np.asarray(o) for o in (out if isinstance(out, (list, tuple)) else [out])]


class OpenVinoModel(CompiledModel):
    """A Keras model's inference graph compiled by OpenVINO for the CPU.

    The graph is traced with ``training=False`` (augmentation layers and dropout drop out) and
    a free batch dimension (:func:`openvino_graph`). ``graph``:
    an OpenVINO model made from ``model`` beforehand (:func:`quantize_graph`, :func:`read_ir`)
    to compile instead of converting ``model`` again.
    """

    def __init__(self, model: Any, threads: int | None = 1, graph: Any = None) -> None:
        graph = openvino_graph(model) if graph is None else graph
        # No pinning: OpenVINO pins its threads to cores by default, each process from the
        # first core, so Spark's Python workers (one per task slot) all ran on the same core.
        # Two single-thread detector loops side by side: 3,000 rows/s each pinned, 6,400 not.
        config = {"INFERENCE_PRECISION_HINT": "f32", "ENABLE_CPU_PINNING": False}
        if threads:
            config["INFERENCE_NUM_THREADS"] = int(threads)
        self._compiled = _openvino().Core().compile_model(graph, "CPU", config)
        super().__init__(
            model, [np.dtype(port.get_element_type().to_dtype()) for port in graph.inputs]
        )

    def _run(self, inputs: list[np.ndarray]) -> list[np.ndarray]:
        result = self._compiled(inputs)
        # copies: the arrays OpenVINO returns are the infer request's own buffers, which its
        # next call overwrites
        return [np.array(result[port], copy=True) for port in self._compiled.outputs]

    def runtime_precisions(self) -> set[str]:
        """The element types OpenVINO runs the compiled graph's operations in: ``{"f32",
        "i32"}`` for a float model; ``"i8"`` and ``"u8"`` among them once quantised."""
        return {
            op.get_rt_info()["runtimePrecision"].astype(str)
            for op in self._compiled.get_runtime_model().get_ops()
        }


def _openvino() -> Any:
    """The ``openvino`` module, imported on first use (the [openvino] extra)."""
    return extras.import_module("openvino", "openvino", "the openvino backends")


def inference_function(model: Any) -> Any:
    """``model``'s inference pass as a TensorFlow concrete function: traced once with
    ``training=False`` (augmentation layers and dropout drop out), each input with a free
    batch dimension, so batches of any size run the same graph."""
    import tensorflow as tf

    specs = [
        tf.TensorSpec((None, *tensor.shape[1:]), tensor.dtype, name=f"input_{i}")
        for i, tensor in enumerate(model.inputs)
    ]
    single = len(specs) == 1

    def forward(*xs):
        return model(xs[0] if single else list(xs), training=False)

    return tf.function(forward).get_concrete_function(*specs)


def openvino_graph(model: Any) -> Any:
    """``model``'s inference graph (:func:`inference_function`) as an ``openvino.Model``,
    its weights frozen into constants."""
    from tensorflow.python.framework.convert_to_constants import (
        convert_variables_to_constants_v2,
    )

    # A frozen graph: the weights as constants. Converting the traced function with its
    # variables left OpenVINO to look their values up, and a second model in the same
    # process sometimes got another model's weights.
    frozen = convert_variables_to_constants_v2(inference_function(model))
    return _openvino().convert_model(
        frozen.graph.as_graph_def(),
        input=[t.name for t in frozen.inputs],
        output=[t.name for t in frozen.outputs],
    )


def quantize_graph(model: Any, inputs: list[np.ndarray]) -> Any:
    """``model``'s OpenVINO graph quantised to 8-bit integers by NNCF's post-training
    quantisation, calibrated on the rows of ``inputs`` (one array per model input, rows
    first; NNCF's default is 300 rows). Weights and activations of the convolutions and
    dense layers become 8-bit, with a fast bias correction; the rest stays in floats."""
    nncf = extras.import_module("nncf", "openvino", "8-bit quantisation (KerasModel.quantize)")
    rows = len(inputs[0])
    if rows == 0:
        raise ValueError("quantize_graph needs at least one calibration row, got none")
    items = [[x[i : i + 1] for x in inputs] for i in range(rows)]
    graph = openvino_graph(model)
    # NNCF draws its progress bars on stdout, which is a program's output (a bench's JSON
    # lines, a pipe): progress goes to stderr, as a log does
    with contextlib.redirect_stdout(sys.stderr):
        return nncf.quantize(
            graph,
            nncf.Dataset(items, lambda item: item if len(item) > 1 else item[0]),
            subset_size=rows,
        )


def ir_bytes(graph: Any) -> tuple[bytes, bytes]:
    """An OpenVINO model as its IR: the ``.xml`` topology and the ``.bin`` weights, as bytes
    (weights kept in 32 bits: OpenVINO would otherwise halve the float ones on saving)."""
    with tempfile.TemporaryDirectory(prefix="sparkzoo-ir-") as folder:
        xml = os.path.join(folder, "model.xml")
        _openvino().save_model(graph, xml, compress_to_fp16=False)
        with open(xml, "rb") as topology, open(xml[: -len(".xml")] + ".bin", "rb") as weights:
            return topology.read(), weights.read()


def read_ir(ir: tuple[bytes, bytes]) -> Any:
    """The ``openvino.Model`` of :func:`ir_bytes`' output, read from memory."""
    ov = _openvino()
    xml, weights = ir
    return ov.Core().read_model(xml, ov.Tensor(np.frombuffer(weights, np.uint8).copy()))


__all__ = [
    "BACKENDS",
    "INT8",
    "OPENVINO_TOLERANCE",
    "CompiledModel",
    "OpenVinoModel",
    "TensorFlowModel",
    "check_backend",
    "compile_model",
    "inference_function",
    "ir_bytes",
    "openvino_graph",
    "quantize_graph",
    "read_ir",
]
