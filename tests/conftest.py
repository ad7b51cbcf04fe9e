"""Test tiers and shared fixtures.

Tiers are markers: unmarked tests are fast unit tests (plain ``pytest`` runs only those);
``spark`` tests share one session-scoped ``local[2]`` SparkSession; ``hdfs`` tests need the
local HDFS; ``slow`` tests build wheels, start processes or train. ``make test`` runs them all.
"""

from __future__ import annotations

import atexit
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

# Horovod is on the classic stack only (Python 3.11, `make setup`); the current stack
# (Python 3.12, `make setup-current`) trains with TensorFlow's MultiWorkerMirroredStrategy.
HAS_HOROVOD = importlib.util.find_spec("horovod") is not None
NO_HOROVOD = (
    "needs Horovod, which only the classic stack has (`make setup`, .venv); "
    "this is the current stack"
)


def pytest_collection_modifyitems(config, items):
    # A test that takes the `spark` fixture is a spark-tier test, whether or not it says so.
    # Likewise a test that uses the local HDFS is an hdfs-tier test.
    tiers = {"spark": {"spark"}, "hdfs": {"hdfs", "hdfs_service"}}
    for item in items:
        names = set(getattr(item, "fixturenames", ()))
        for tier, fixtures in tiers.items():
            if names & fixtures and not item.get_closest_marker(tier):
                item.add_marker(getattr(pytest.mark, tier))
        # Skipped, never silently: `-ra` lists each one with the reason.
        if not HAS_HOROVOD and item.get_closest_marker("horovod"):
            item.add_marker(pytest.mark.skip(reason=NO_HOROVOD))


@pytest.fixture(autouse=True)
def _no_leaked_tracking_uri():
    """MLflow's ``set_tracking_uri`` exports ``MLFLOW_TRACKING_URI`` to every process started
    later; a test that calls it must not send the next tests' runs (and their subprocesses')
    to its store."""
    before = os.environ.get("MLFLOW_TRACKING_URI")
    yield
    if before is None:
        os.environ.pop("MLFLOW_TRACKING_URI", None)
    else:
        os.environ["MLFLOW_TRACKING_URI"] = before


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


@pytest.fixture(scope="session")
def hdfs_service(tmp_path_factory):
    """A real HDFS (NameNode + DataNode on 127.0.0.1) for the session; its ``HdfsInfo``.

    Started only when a selected test asks for it, in a temporary directory (the Hadoop jars
    come from the cache, downloaded on the first start of the machine), and stopped at the end
    of the session whether the tests passed or failed.
    """
    from sparkzoo.services import hdfs

    state = tmp_path_factory.mktemp("hdfs")
    atexit.register(hdfs.stop, state)  # should the session end without tearing down fixtures
    info = hdfs.start(state)
    try:
        yield info
    finally:
        hdfs.stop(state)


@pytest.fixture(scope="session")
def hdfs(hdfs_service) -> str:
    """The session's HDFS as a URI, ``hdfs://127.0.0.1:PORT``."""
    return hdfs_service.uri


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


def run_submit(app: str, output: Path, *args: str, timeout: int = 600) -> dict:
    """Run ``apps/<app>/submit.sh --master local[2] --output OUTPUT ARGS`` (spark-submit with
    this interpreter), assert it succeeded, and return the ``metrics.json`` it wrote."""
    result = subprocess.run(
        [str(REPO / "apps" / app / "submit.sh"), "--master", "local[2]", "--output", str(output),
         *args],
        env={**os.environ, "PYTHON": sys.executable},
        capture_output=True,
        text=True,
        timeout=timeout,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads((output / "metrics.json").read_text())
