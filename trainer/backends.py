"""Inference backends: the engine that runs a Keras model's forward pass on the executors.

- ``"tensorflow"`` (the default): the Keras model itself, ``model(x, training=False)``;
- ``"openvino"``: the model's inference graph converted with ``openvino.convert_model`` and
  compiled for the CPU once per Python worker, in 32-bit floats (``INFERENCE_PRECISION_HINT
  f32``: on CPUs with bfloat16 units OpenVINO would otherwise compute in bfloat16 and move the
  outputs by up to ~1e-1). Its outputs match TensorFlow's within :data:`OPENVINO_TOLERANCE`.

The converted model is called like the Keras one: ``compiled(x, training=False)`` returns one
numpy array, or a list for a model with several outputs, so :func:`sparkzoo.trainer.scoring.
run_model` and the detectors run either backend unchanged.

Example::

    fast = compile_model(tf.keras.models.load_model(path), "openvino", threads=1)
    scores = fast(images, training=False)          # numpy, as model(images) would give
"""

from __future__ import annotations

from typing import Any

import numpy as np

BACKENDS = ("tensorflow", "openvino")
OPENVINO_TOLERANCE = 1e-4  # largest |OpenVINO - TensorFlow| on the zoo's models, float32


def check_backend(backend: str) -> str:
    """``backend`` when it is one of :data:`BACKENDS`, else a ValueError naming both."""
    if backend not in BACKENDS:
        raise ValueError(f"backend {backend!r} unknown; choose one of {list(BACKENDS)}")
    return backend


def compile_model(model: Any, backend: str = "tensorflow", threads: int | None = 1) -> Any:
    """``model`` (a ``tf.keras.Model``) ready to run on ``backend``: the model itself for
    ``"tensorflow"``, an :class:`OpenVinoModel` on ``threads`` CPU threads for ``"openvino"``."""
    if check_backend(backend) == "tensorflow":
        return model
    return OpenVinoModel(model, threads)


class OpenVinoModel:
    """A Keras model's inference graph compiled by OpenVINO for the CPU.

    The graph is traced with ``training=False`` (augmentation layers and dropout drop out) and
    a free batch dimension; ``input_shape``, ``output_shape`` and ``name`` are the Keras
    model's, so code that reads them (a detector's anchors) works on either backend.
    """

    def __init__(self, model: Any, threads: int | None = 1) -> None:
        import openvino as ov
        import tensorflow as tf
        from tensorflow.python.framework.convert_to_constants import (
            convert_variables_to_constants_v2,
        )

        specs = [
            tf.TensorSpec((None, *tensor.shape[1:]), tensor.dtype, name=f"input_{i}")
            for i, tensor in enumerate(model.inputs)
        ]
        single = len(specs) == 1

        def forward(*xs):
            return model(xs[0] if single else list(xs), training=False)

        traced = tf.function(forward).get_concrete_function(*specs)
        # A frozen graph: the weights as constants. Converting the traced function with its
        # variables left OpenVINO to look their values up, and a second model in the same
        # process sometimes got another model's weights.
        frozen = convert_variables_to_constants_v2(traced)
        graph = ov.convert_model(
            frozen.graph.as_graph_def(),
            input=[t.name for t in frozen.inputs],
            output=[t.name for t in frozen.outputs],
        )
        config = {"INFERENCE_PRECISION_HINT": "f32"}
        if threads:
            config["INFERENCE_NUM_THREADS"] = int(threads)
        self._compiled = ov.Core().compile_model(graph, "CPU", config)
        self._dtypes = [np.dtype(spec.dtype.as_numpy_dtype) for spec in specs]
        self._several = len(model.outputs) > 1
        self.input_shape = model.input_shape
        self.output_shape = model.output_shape
        self.name = model.name

    def __call__(self, inputs: Any, training: bool = False) -> Any:
        xs = inputs if isinstance(inputs, (list, tuple)) else [inputs]
        if len(xs) != len(self._dtypes):
            raise ValueError(f"the model takes {len(self._dtypes)} inputs, got {len(xs)}")
        feed = [np.ascontiguousarray(x, dtype) for x, dtype in zip(xs, self._dtypes, strict=True)]
        result = self._compiled(feed)
        # copies: the arrays OpenVINO returns are the infer request's own buffers, which its
        # next call overwrites
        outputs = [np.array(result[port], copy=True) for port in self._compiled.outputs]
        return outputs if self._several else outputs[0]

    def __repr__(self) -> str:
        return f"OpenVinoModel({self.name!r})"


__all__ = ["BACKENDS", "OPENVINO_TOLERANCE", "OpenVinoModel", "check_backend", "compile_model"]
