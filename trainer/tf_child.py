"""The fresh process one TensorFlow worker trains in (started by :mod:`.tf_launcher`).

TensorFlow cannot enable collective ops twice in one process, and Spark reuses its Python
workers, so each rank trains in a child of its barrier task. The child dies with that task
(``PR_SET_PDEATHSIG``), reads its job from ``<workdir>/job.pkl``, calls the rank function on
its partition (``<workdir>/partition.arrow``; ``log_to_driver`` works there) and leaves rank 0's result in
``<workdir>/result.pkl``; a failure goes to the driver's relay and to ``<workdir>/error.json``.

The job's function arrives pickled a second time, as bytes: only this process unpickles it, so
only here are the modules it needs (the training code, TensorFlow) imported. Keep this module's
own imports light: every rank's start-up pays for them.
"""

from __future__ import annotations

import ctypes
import json
import os
import signal
import sys
import traceback
from collections.abc import Iterator

import cloudpickle
import pyarrow as pa

from sparkzoo.trainer.relay import RelayClient, current_client

JOB, PARTITION, RESULT, ERROR = "job.pkl", "partition.arrow", "result.pkl", "error.json"
_PR_SET_PDEATHSIG = 1


def die_with_parent(parent_pid: int) -> None:
    """Have the kernel SIGKILL this process when its parent (the barrier task) dies."""
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG) failed")
    if os.getppid() != parent_pid:  # the parent died before prctl took effect
        os._exit(1)


def read_partition(path: str | None) -> Iterator[pa.RecordBatch]:
    """The partition's Arrow batches, memory-mapped from the file the task wrote."""
    if path is None or not os.path.exists(path):
        return
    with pa.memory_map(path) as source:
        reader = pa.ipc.open_file(source)
        for i in range(reader.num_record_batches):
            yield reader.get_batch(i)


def _write_atomically(path: str, data: bytes) -> None:
    with open(path + ".tmp", "wb") as handle:
        handle.write(data)
    os.replace(path + ".tmp", path)


def main(workdir: str) -> int:
    with open(os.path.join(workdir, JOB), "rb") as handle:
        job = cloudpickle.load(handle)
    fn = cloudpickle.loads(job["fn"])
    info = job["info"]
    with RelayClient(job["relay"], info.rank) as client, current_client(client):
        try:
            result = fn(read_partition(job["partition"]), info, client)
            if info.rank == 0:
                _write_atomically(os.path.join(workdir, RESULT), cloudpickle.dumps(result))
        except BaseException as exc:
            error = f"{type(exc).__name__}: {exc}"
            trace = traceback.format_exc()
            client.send("error", error=error, traceback=trace)
            report = json.dumps({"error": error, "traceback": trace}).encode()
            _write_atomically(os.path.join(workdir, ERROR), report)
            return 1
    return 0


def run(workdir: str, parent_pid: int) -> int:
    die_with_parent(parent_pid)
    return main(workdir)


def child_command(workdir: str) -> list[str]:
    """The command line of a child of this process that runs the job in ``workdir``.

    ``-c`` rather than ``-m``: runpy warns when it would run a module that is already imported
    a second time as ``__main__``, and ``-c`` imports this module once, by its name.
    """
    entry = "import sys; from sparkzoo.trainer.tf_child import run; "
    entry += "sys.exit(run(sys.argv[1], int(sys.argv[2])))"
    return [sys.executable, "-c", entry, workdir, str(os.getpid())]
