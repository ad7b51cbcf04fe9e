"""Test tiers and shared fixtures.

Tiers are markers: unmarked tests are fast unit tests (plain ``pytest`` runs only those);
``spark`` tests share one session-scoped ``local[2]`` SparkSession; ``hdfs`` tests need the
local HDFS; ``slow`` tests build wheels, start processes or train. ``make test`` runs them all.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def pytest_collection_modifyitems(config, items):
    # A test that takes the `spark` fixture is a spark-tier test, whether or not it says so.
    for item in items:
        if "spark" in getattr(item, "fixturenames", ()) and not item.get_closest_marker("spark"):
            item.add_marker(pytest.mark.spark)


@pytest.fixture(scope="session")
def spark():
    """One local[2] SparkSession for the whole test session, UI off, stopped at the end."""
    from sparkzoo import init_spark

    # Functions defined in test modules are pickled by reference: executors' Python workers
    # (children of the JVM started below) must be able to import the test modules too.
    tests_dir = str(Path(__file__).parent)
    os.environ["PYTHONPATH"] = os.pathsep.join(
        filter(None, [tests_dir, os.environ.get("PYTHONPATH")])
    )

    session = init_spark(
        "local[2]",
        app_name="sparkzoo-tests",
        **{"spark.ui.enabled": "false", "spark.sql.shuffle.partitions": "4"},
    )
    yield session
    session.stop()


def run_python(
    code: str, cwd: Path | None = None, env: dict | None = None, timeout: int = 300
) -> subprocess.CompletedProcess:
    """Run ``code`` in a fresh interpreter (this one), so imports start from nothing."""
    full_env = {**os.environ, **(env or {})}
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=cwd,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
