"""Small helpers for the records sparkzoo writes (metrics.json, relay messages, benchmarks)."""

from __future__ import annotations

import os
from typing import Any


def jsonable(value: Any) -> Any:
    """``json.dumps(..., default=jsonable)``: numpy scalars and arrays as numbers and lists,
    anything else as its ``str``."""
    if hasattr(value, "item"):  # numpy scalars
        return value.item()
    if hasattr(value, "tolist"):
        return value.tolist()
    return str(value)


def loadavg() -> list[float]:
    """The 1, 5 and 15-minute load averages, recorded beside every measured figure."""
    try:
        with open("/proc/loadavg") as handle:
            return [float(v) for v in handle.read().split()[:3]]
    except OSError:
        return list(os.getloadavg())
