"""A Spark standalone cluster on 127.0.0.1 from the ``pyspark`` wheel's own ``spark-class``.

``start`` launches a master and N workers (executors run this interpreter), waits until every
worker has registered, and records the processes in ``<dir>/cluster.json``; ``stop`` ends
exactly those processes; ``status`` says whether it is up and where.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import asdict, dataclass
from pathlib import Path

from sparkzoo.info import java_version

DEFAULT_DIR = Path.home() / ".cache" / "sparkzoo" / "cluster"


@dataclass
class ClusterInfo:
    url: str
    web_ui: str
    workers: int
    cores: int
    memory: str
    pids: list[int]
    dir: str


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _spark_class() -> str:
    # pyspark's install folder, found without importing it (the CLI imports this module)
    spec = importlib.util.find_spec("pyspark")
    if spec is None or spec.origin is None:
        raise ModuleNotFoundError("No module named 'pyspark'", name="pyspark")
    path = Path(spec.origin).parent / "bin" / "spark-class"
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing: reinstall pyspark")
    return str(path)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    return True


def _state_file(state_dir: Path) -> Path:
    return state_dir / "cluster.json"


def status(state_dir: Path = DEFAULT_DIR) -> ClusterInfo | None:
    """The running cluster recorded in ``state_dir``, or None."""
    path = _state_file(Path(state_dir))
    if not path.exists():
        return None
    info = ClusterInfo(**json.loads(path.read_text()))
    return info if all(_alive(pid) for pid in info.pids) else None


def _alive_workers(web_ui: str) -> int:
    try:
        with urllib.request.urlopen(f"{web_ui}/json/", timeout=2) as response:
            return int(json.load(response).get("aliveworkers", 0))
    except (OSError, ValueError):
        return 0


def start(
    workers: int = 2,
    cores: int = 1,
    memory: str = "1g",
    state_dir: Path = DEFAULT_DIR,
    timeout: float = 90,
    fake_gpus: int = 0,
) -> ClusterInfo:
    """Start a master and ``workers`` workers on 127.0.0.1; return once all have registered.

    ``fake_gpus``: each worker offers that many GPU resources (addresses "0", "1", ...) found
    by a discovery script that reports them without any GPU being there (Spark does not check
    them): Spark's GPU scheduling, and what the trainer does with it, tested on a machine
    without GPUs.
    """
    state_dir = Path(state_dir)
    running = status(state_dir)
    if running is not None:
        return running
    if not _java_available():
        raise RuntimeError("Java was not found (JAVA_HOME or PATH): a Spark cluster needs Java 17")
    state_dir.mkdir(parents=True, exist_ok=True)
    env = {
        **os.environ,
        "SPARK_LOCAL_IP": "127.0.0.1",
        "SPARK_HOME": str(Path(_spark_class()).parents[1]),
        "PYSPARK_PYTHON": sys.executable,
        "SPARK_WORKER_DIR": str(state_dir / "work"),
        "SPARK_LOG_DIR": str(state_dir / "logs"),
    }
    if fake_gpus:
        script = state_dir / "fake_gpus.sh"
        addresses = json.dumps({"name": "gpu", "addresses": [str(i) for i in range(fake_gpus)]})
        script.write_text(f"#!/usr/bin/env bash\necho '{addresses}'\n")
        script.chmod(0o755)
        env["SPARK_WORKER_OPTS"] = (
            f"-Dspark.worker.resource.gpu.amount={fake_gpus} "
            f"-Dspark.worker.resource.gpu.discoveryScript={script}"
        )
    port, ui_port = _free_port(), _free_port()
    url, web_ui = f"spark://127.0.0.1:{port}", f"http://127.0.0.1:{ui_port}"
    spark_class = _spark_class()
    pids = []

    def launch(name: str, *args: str) -> None:
        log = open(state_dir / f"{name}.log", "ab")  # noqa: SIM115 - the child keeps it
        process = subprocess.Popen(
            [spark_class, *args],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        pids.append(process.pid)

    launch(
        "master",
        "org.apache.spark.deploy.master.Master",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--webui-port",
        str(ui_port),
    )
    for i in range(workers):
        launch(
            f"worker{i}",
            "org.apache.spark.deploy.worker.Worker",
            "--host",
            "127.0.0.1",
            "--cores",
            str(cores),
            "--memory",
            memory,
            "--webui-port",
            str(_free_port()),
            url,
        )
    info = ClusterInfo(url, web_ui, workers, cores, memory, pids, str(state_dir))
    _state_file(state_dir).write_text(json.dumps(asdict(info), indent=2))
    deadline = time.monotonic() + timeout
    while _alive_workers(web_ui) < workers:
        if time.monotonic() > deadline or not all(_alive(p) for p in pids):
            stop(state_dir)
            raise RuntimeError(
                f"the Spark cluster did not come up within {timeout:.0f} s; "
                f"see the logs in {state_dir}"
            )
        time.sleep(0.5)
    return info


def stop(state_dir: Path = DEFAULT_DIR, timeout: float = 20) -> bool:
    """End the processes recorded in ``state_dir`` (only those). True if any were running."""
    path = _state_file(Path(state_dir))
    if not path.exists():
        return False
    pids = json.loads(path.read_text())["pids"]
    running = [p for p in pids if _alive(p)]
    for pid in running:
        with contextlib.suppress(OSError):
            os.killpg(pid, signal.SIGTERM)  # each was started in its own session: its group
    deadline = time.monotonic() + timeout
    while any(_alive(p) for p in running) and time.monotonic() < deadline:
        time.sleep(0.2)
    for pid in running:
        if _alive(pid):
            with contextlib.suppress(OSError):
                os.killpg(pid, signal.SIGKILL)
    for pid in running:  # reap our own children so none lingers as a zombie
        with contextlib.suppress(ChildProcessError, OSError):
            os.waitpid(pid, os.WNOHANG)
    path.unlink()
    return bool(running)


def _java_available() -> bool:
    return java_version()[0] is not None
