"""Shared pieces of the benchmarks: figures as JSON lines, medians, load average."""

from __future__ import annotations

import json
import platform
import statistics
import sys
from functools import cache
from importlib import metadata

from sparkzoo.records import loadavg


def emit(name: str, runs: list[float], target: str, unit: str = "ratio", **extra) -> dict:
    """Print one figure as a JSON line: the median of ``runs`` with the runs themselves."""
    figure = {
        "name": name,
        "value": round(statistics.median(runs), 4),
        "unit": unit,
        "target": target,
        "runs": [round(r, 4) for r in runs],
        "loadavg": loadavg(),
        "stack": stack(),
        **extra,
    }
    print(json.dumps(figure), flush=True)
    return figure


@cache
def stack() -> dict[str, str]:
    """The versions a figure was measured on: the two stacks differ (docs/trainer.md)."""
    versions = {"python": platform.python_version()}
    for name, distributions in (
        ("spark", ["pyspark"]),
        ("tensorflow", ["tensorflow", "tensorflow-cpu"]),
    ):
        for distribution in distributions:
            try:
                versions[name] = metadata.version(distribution)
                break
            except metadata.PackageNotFoundError:
                continue
    return versions


def note(text: str) -> None:
    """Progress for a person, on stderr (stdout carries only the JSON figures)."""
    print(f"[bench] {text}", file=sys.stderr, flush=True)


def steady(samples_per_s: list[float]) -> float:
    """Steady-state throughput: the median over epochs after the first (which pays start-up)."""
    later = samples_per_s[1:] or samples_per_s
    return statistics.median(later)
