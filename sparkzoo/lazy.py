"""Lazy package exports: a package names what it offers and where it lives, and a name's
module (TensorFlow, Spark, ...) loads only when the name is first used.

Example (a package's ``__init__.py``)::

    __getattr__, __dir__ = lazy_exports(__name__, {"KerasEstimator": "estimator"})
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable
from typing import Any


def lazy_exports(
    package: str, exports: dict[str, str]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """The module ``__getattr__`` and ``__dir__`` of ``package``: ``exports`` maps each name to
    the submodule that defines it; a name is imported on first use, then cached in the
    package's namespace (later lookups skip ``__getattr__``)."""

    def __getattr__(name: str) -> Any:
        module = exports.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(f"{package}.{module}"), name)
        setattr(sys.modules[package], name, value)
        return value

    def __dir__() -> list[str]:
        return sorted(set(vars(sys.modules[package])) | set(exports))

    return __getattr__, __dir__
