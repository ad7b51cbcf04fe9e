"""The Keras 2 API that sparkzoo's models and trainer are written for, whatever ``tf.keras``
means in this process.

On TensorFlow >= 2.16, ``tf.keras`` is Keras 3 unless ``TF_USE_LEGACY_KERAS=1`` was set before
TensorFlow first resolved it, which another library (``mlflow.tensorflow``, ``import keras``)
may already have done when sparkzoo is imported. So sparkzoo never goes through ``tf.keras``:
this module stands for the ``tf_keras`` package where it is installed (the current stack) and
for ``tf.keras`` otherwise (TensorFlow 2.15, whose ``tf.keras`` is Keras 2). It loads on the
first attribute used, so importing it does not import TensorFlow.

Example::

    from sparkzoo import keras2 as keras
    keras.layers.Dense(10)          # a tf_keras layer on TensorFlow 2.21, tf.keras on 2.15
"""

from __future__ import annotations

import importlib
import importlib.util
from types import ModuleType
from typing import Any

_module: ModuleType | None = None


def module() -> ModuleType:
    """The Keras 2 package itself (``tf_keras``, or ``tf.keras`` where tf_keras is absent)."""
    global _module
    if _module is None:
        if importlib.util.find_spec("tf_keras") is not None:
            _module = importlib.import_module("tf_keras")
        else:
            import tensorflow as tf

            _module = tf.keras
    return _module


def is_tf_keras() -> bool:
    """True where the Keras 2 API comes from the tf_keras package (TensorFlow >= 2.16)."""
    return module().__name__.startswith("tf_keras")


def __getattr__(name: str) -> Any:
    return getattr(module(), name)
