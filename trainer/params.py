"""Typed Spark ML Params for :class:`KerasEstimator` and :class:`KerasModel`.

Every Param carries a type converter, so a bad value fails when it is set (in the constructor,
a ``setX`` call, ``copy(extra)`` or a ``ParamGridBuilder`` grid point), naming the Param. The
:func:`with_accessors` class decorator adds Spark's and Horovod's accessor names: ``setBatchSize``
/ ``getBatchSize`` for ``batch_size``, ``setFeatureCols`` / ``getFeatureCols``, ...
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from typing import Any

import numpy as np
from pyspark.ml.param import Param, Params, TypeConverters

Converter = Callable[[Any], Any]


def typed_param(name: str, doc: str, converter: Converter) -> Param:
    """A class-level Param (Spark copies it onto each instance)."""
    return Param(Params._dummy(), name, doc, typeConverter=converter)


def camel(name: str) -> str:
    """``batch_size`` -> ``BatchSize``: the suffix of Spark's ``setX``/``getX`` accessors."""
    return "".join(part[:1].upper() + part[1:] for part in name.split("_"))


def with_accessors(cls: type) -> type:
    """Add ``setX(value) -> self`` and ``getX()`` for every Param the class declares."""
    for attr in dir(cls):
        if not isinstance(getattr(cls, attr, None), Param):
            continue
        suffix = camel(attr)

        def setter(self, value, _name=attr):
            self._set(**{_name: value})
            return self

        def getter(self, _name=attr):
            return self.getOrDefault(_name)

        for prefix, method in (("set", setter), ("get", getter)):
            method.__name__ = f"{prefix}{suffix}"
            method.__qualname__ = f"{cls.__name__}.{method.__name__}"
            verb = "Sets" if prefix == "set" else "Gets"
            method.__doc__ = f"{verb} the value of :py:attr:`{attr}`."
            if not hasattr(cls, method.__name__):
                setattr(cls, method.__name__, method)
    return cls


class NamedParamErrors(Params):
    """Values refused by a converter for range or choice (a ``ValueError``) name their Param,
    as Spark already does for type errors."""

    def _set(self, **kwargs: Any):
        for name, value in kwargs.items():
            try:
                super()._set(**{name: value})
            except ValueError as exc:
                raise ValueError(f'Invalid param value given for param "{name}". {exc}') from None
        return self


# ---- converters ------------------------------------------------------------------------------
def optional(converter: Converter) -> Converter:
    def convert(value):
        return None if value is None else converter(value)

    return convert


def to_int(value) -> int:
    if isinstance(value, bool):
        raise TypeError(f"expected an integer, got {value!r}")
    return TypeConverters.toInt(value)


def at_least(minimum: float, converter: Converter = to_int) -> Converter:
    def convert(value):
        converted = converter(value)
        if converted < minimum:
            raise ValueError(f"must be >= {minimum}, got {value!r}")
        return converted

    return convert


def positive(converter: Converter) -> Converter:
    def convert(value):
        converted = converter(value)
        if not converted > 0:
            raise ValueError(f"must be > 0, got {value!r}")
        return converted

    return convert


def to_float(value) -> float:
    if isinstance(value, bool):
        raise TypeError(f"expected a number, got {value!r}")
    converted = TypeConverters.toFloat(value)
    if math.isnan(converted):
        raise ValueError("must not be NaN")
    return converted


def to_bool(value) -> bool:
    return TypeConverters.toBoolean(value)


def to_string(value) -> str:
    return TypeConverters.toString(value)


def column_names(allow_empty: bool = False) -> Converter:
    def convert(value):
        if isinstance(value, str):
            raise TypeError(f"expected a list of column names, got the string {value!r}")
        names = TypeConverters.toListString(value)
        if not names and not allow_empty:
            raise ValueError("needs at least one column name")
        if len(set(names)) != len(names):
            raise ValueError(f"names a column twice: {names}")
        return names

    return convert


def one_of(*choices: str) -> Converter:
    def convert(value):
        if value not in choices:
            raise ValueError(f"must be one of {list(choices)}, got {value!r}")
        return value

    return convert


# Horovod's gradient compressors (``hvd.Compression.none`` and ``.fp16``) by their class names.
_HOROVOD_COMPRESSORS = {"NoneCompressor": None, "FP16Compressor": "fp16"}


def gradient_compression(value) -> str | None:
    """``'fp16'`` or ``None`` (no compression, Horovod's default), from those, ``'none'``, or
    Horovod's ``hvd.Compression.fp16`` / ``.none``: kept by name, so the Param saves and loads
    with the estimator."""
    if isinstance(value, str) and value.lower() in ("none", "fp16"):
        return None if value.lower() == "none" else "fp16"
    name = getattr(value, "__name__", type(value).__name__)
    if name in _HOROVOD_COMPRESSORS:
        return _HOROVOD_COMPRESSORS[name]
    raise ValueError(f"must be 'fp16', None or hvd.Compression.fp16 / .none, got {value!r}")


def to_list(value) -> list:
    if value is None:
        return []
    if isinstance(value, (str, bytes, dict)):
        raise TypeError(f"expected a list, got {type(value).__name__} {value!r}")
    return TypeConverters.toList(value)


def best_checkpoint_value(value):
    """None, or a Keras ``ModelCheckpoint`` with ``save_best_only=True`` (Horovod's
    ``BestModelCheckpoint`` is one): which epoch's weights the fitted model keeps."""
    if value is None:
        return None
    if not (hasattr(value, "monitor") and hasattr(value, "monitor_op")):
        raise TypeError(
            f"expected a keras.callbacks.ModelCheckpoint, got {type(value).__name__} {value!r}"
        )
    if not getattr(value, "save_best_only", False):
        raise ValueError(
            "checkpoint_callback decides which epoch's weights the fitted model keeps: give a "
            "ModelCheckpoint with save_best_only=True (rank 0 checkpoints every epoch anyway)"
        )
    return value


def best_of(callback) -> tuple[str, str] | None:
    """``(monitor, "min" or "max")`` of a checkpoint callback, or None."""
    if callback is None:
        return None
    bigger = callback.monitor_op in (np.greater, np.greater_equal)
    return str(callback.monitor), "max" if bigger else "min"


def to_dict(value) -> dict:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise TypeError(f"expected a dict, got {type(value).__name__}")
    return dict(value)


def model_source(value):
    """A Keras model, or a zero-argument function that builds one."""
    if not callable(value):
        raise TypeError(
            f"expected a Keras model or a function that builds one, got {type(value).__name__}"
        )
    return value


def anything(value):
    return value


def store_path(value) -> str | None:
    """A store as a path, an ``hdfs://`` URI, a ``pathlib`` path, or an object with a path
    (Horovod's ``Store.create(path)`` gives one with ``prefix_path``)."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    for attribute in ("prefix_path", "path"):
        path = getattr(value, attribute, None)
        if isinstance(path, (str, os.PathLike)):
            return os.fspath(path)
    raise TypeError(
        f"expected a store path (local or hdfs://) or an object with a prefix_path, "
        f"got {type(value).__name__}"
    )


def validation_value(value):
    """None, a fraction in (0, 1), the name of a boolean or 0/1 column whose true rows are held
    out (Horovod's contract), or a DataFrame of validation rows."""
    if value is None or (hasattr(value, "schema") and hasattr(value, "sparkSession")):
        return value
    if isinstance(value, str):
        try:
            fraction = float(value)
        except ValueError:
            if not value.strip():
                raise ValueError(
                    "must be a fraction, a column name or a DataFrame, got ''"
                ) from None
            return value  # a column name, checked against the DataFrame at fit
    else:
        fraction = to_float(value)
    if not 0.0 < fraction < 1.0:
        raise ValueError(
            f"must be a fraction in (0, 1), a column name or a DataFrame, got {value!r}"
        )
    return fraction
