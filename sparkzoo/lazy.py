"""Lazy package exports: a package names what it offers and where it lives, and a name's
module (TensorFlow, Spark, ...) loads only when the name is first used.

A name may need one of sparkzoo's extras (``sparkzoo.extras``): then a missing extra raises an
ImportError that names it (``pip install "sparkzoo[spark]"``) before the module is imported.

Example (a package's ``__init__.py``)::

    __getattr__, __dir__ = lazy_exports(
        __name__, {"KerasEstimator": "estimator"}, needs={"KerasEstimator": "spark"}
    )
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable
from typing import Any

from sparkzoo import extras


def lazy_exports(
    package: str, exports: dict[str, str], needs: dict[str, str] | None = None
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """The module ``__getattr__`` and ``__dir__`` of ``package``: ``exports`` maps each name to
    the submodule that defines it; a name is imported on first use, then cached in the
    package's namespace (later lookups skip ``__getattr__``). ``needs`` maps a name to the
    extra it needs (checked by :func:`sparkzoo.extras.require` before its import)."""
    needs = needs or {}

    def __getattr__(name: str) -> Any:
        module = exports.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        if name in needs:
            extras.require(needs[name], f"{package}.{name}")
        value = getattr(importlib.import_module(f"{package}.{module}"), name)
        setattr(sys.modules[package], name, value)
        return value

    def __dir__() -> list[str]:
        return sorted(set(vars(sys.modules[package])) | set(exports))

    return __getattr__, __dir__
