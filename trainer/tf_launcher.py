"""The TensorFlow engine: a function run as N ``MultiWorkerMirroredStrategy`` workers.

``run_tf_ranks`` is :func:`sparkzoo.trainer.launcher.run_ranks` for TensorFlow's own
collectives. Each barrier task

1. writes its partition to an Arrow IPC file under the executor's local dir
   (``SPARK_LOCAL_DIRS``): the data never leaves the executor;
2. joins the world (:func:`.tf_ring.form_world`: port, ``allGather``, ``TF_CONFIG``);
3. starts a fresh child process with the same Python (:mod:`.tf_child`) — TensorFlow cannot
   enable collective ops twice in the reused Spark Python worker, so a second job in it
   would hang — which dies with the task (``PR_SET_PDEATHSIG``), binds TensorFlow's gRPC
   server to the task's address, and calls ``child_fn(batches, info, client)``;
4. relays the child's stdout/stderr to the driver (``[rank]<stdout>: ...``), waits on it,
   meets the other tasks at ``barrier()`` and returns rank 0's result.

A child that fails (an exception, a signal, a non-zero exit) fails its task with its
traceback, naming the rank; Spark then kills the stage's other tasks, and their children die
with them.
"""

from __future__ import annotations

import collections
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import cloudpickle
import pyarrow as pa
from pyspark import BarrierTaskContext

from sparkzoo.spark import executor_name
from sparkzoo.trainer import tf_child
from sparkzoo.trainer.feed import _local_dir
from sparkzoo.trainer.gpus import FROM_SPARK, task_gpu_addresses
from sparkzoo.trainer.launcher import check_slots, run_barrier_stage
from sparkzoo.trainer.relay import Message, RelayClient, relay_all_gather
from sparkzoo.trainer.tf_ring import WorkerInfo, bind_env, bind_library, form_world

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

# child_fn(batches, info, client) -> picklable result (only rank 0's reaches the driver). It
# runs in the child process: TensorFlow is imported there, never in the Spark worker.
ChildFunction = Callable[[Iterator[pa.RecordBatch], WorkerInfo, RelayClient], Any]

# Errors a worker raises because a peer went away, not because of its own fault.
TF_PEER_ERRORS = (
    "UnavailableError",
    "CancelledError",
    "DeadlineExceededError",
    "Collective ops is aborted",
    "failed to connect to all addresses",
    "Socket closed",
    "Connection reset by peer",
    "heartbeat",
)

_STDERR_TAIL_LINES = 40


class WorkerFailedError(RuntimeError):
    """Raised in a barrier task whose TensorFlow child failed (Spark shows its text)."""


def run_tf_ranks(
    spark: SparkSession,
    num_ranks: int,
    child_fn: ChildFunction,
    df: DataFrame | None = None,
    on_message: Callable[[Message], None] | None = None,
    use_gpu: bool = False,
    gpu_resource: str = "gpu",
) -> Any:
    """Run ``child_fn`` as ``num_ranks`` TensorFlow workers and return rank 0's result.

    Each worker's process has ``TF_CONFIG`` set: ``child_fn`` creates the
    ``tf.distribute.MultiWorkerMirroredStrategy`` itself. With ``df``, it receives the Arrow
    batches of its own partition of ``df.repartition(num_ranks)``; without, none. With
    ``use_gpu`` each worker sees the GPUs Spark assigned to its task (the resource named
    ``gpu_resource``), otherwise none. ``on_message`` sees every message, on the driver, as it arrives.
    """
    check_slots(spark, num_ranks, what="TensorFlow workers")
    # Pickled here, unpickled in the child only: the Spark task passes the bytes on and never
    # imports what the function needs (the training code, TensorFlow).
    job = cloudpickle.dumps(child_fn)
    return run_barrier_stage(
        spark,
        num_ranks,
        lambda relay_address: _tf_barrier_task(
            job, relay_address, gpu_resource if use_gpu else None
        ),
        df,
        on_message,
        peer_errors=TF_PEER_ERRORS,
    )


def _tf_barrier_task(
    child_fn: bytes, relay_address: tuple[str, int, str], gpu_resource: str | None
):
    """The barrier task of one worker; ``gpu_resource``: the Spark resource whose addresses
    its TensorFlow may see (None: no GPU)."""

    def run(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        task_start = time.time()  # the driver splits its start-up at it (wall clock)
        ctx = BarrierTaskContext.get()
        partition = ctx.partitionId()
        workdir = tempfile.mkdtemp(prefix=f"sparkzoo-tf-rank{partition}-", dir=_local_dir())
        try:
            data = os.path.join(workdir, tf_child.PARTITION)
            rows = write_partition(batches, data)
            with RelayClient(relay_address, None) as client:
                all_gather = relay_all_gather(client, ctx)
                info = form_world(ctx, rows, all_gather)
                client.rank = info.rank
                client.send(
                    "hello",
                    task_start=task_start,
                    partition=partition,
                    pid=os.getpid(),
                    host=info.hostname,
                    executor=executor_name(),
                )
                env = {
                    "TF_CONFIG": json.dumps(info.tf_config),
                    "CUDA_VISIBLE_DEVICES": _task_gpus(ctx, gpu_resource) if gpu_resource else "",
                    FROM_SPARK: "1" if gpu_resource else None,
                }
                try:
                    env |= bind_env(info.hostname, info.port, bind_library())
                except RuntimeError as exc:
                    client.send(
                        "output",
                        stream="stderr",
                        line=f"warning: TensorFlow's gRPC server listens on every interface: {exc}",
                    )
                payload = run_child(workdir, child_fn, info, relay_address, env, client, data)
                all_gather("done")  # every worker is done before any task (and its server) goes
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
        if info.rank == 0:
            yield pa.RecordBatch.from_pydict({"rank": [0], "payload": [payload]})

    return run


def write_partition(batches: Iterator[pa.RecordBatch], path: str) -> int:
    """Write the partition's batches to an Arrow IPC file at ``path``; return its row count.

    An empty partition writes no file.
    """
    rows = 0
    writer = None
    try:
        for batch in batches:
            if writer is None:
                writer = pa.ipc.new_file(path, batch.schema)
            writer.write_batch(batch)
            rows += batch.num_rows
    finally:
        if writer is not None:
            writer.close()
    return rows


def _task_gpus(ctx, resource: str) -> str:
    addresses = task_gpu_addresses(ctx, resource)
    if not addresses:
        raise RuntimeError(
            f"use_gpu=True but Spark assigned this task no {resource!r} resource; set "
            f"spark.executor.resource.{resource}.amount and spark.task.resource.{resource}.amount "
            "(with a discovery script) or run with use_gpu=False"
        )
    return ",".join(addresses)


def run_child(
    workdir: str,
    child_fn: ChildFunction | bytes,
    info: WorkerInfo,
    relay_address: tuple[str, int, str],
    env: dict[str, str | None],
    client: RelayClient,
    partition: str | None = None,
) -> bytes | None:
    """Run ``child_fn`` (a function, or its cloudpickled bytes) in a fresh Python process;
    return rank 0's pickled result.

    ``env`` is added to this process's environment (a ``None`` value removes the variable).
    The child's output lines go to the driver through ``client``. Raises
    :class:`WorkerFailedError` (naming the rank, with the child's traceback) when it fails.
    """
    with open(os.path.join(workdir, tf_child.JOB), "wb") as handle:
        fn = child_fn if isinstance(child_fn, bytes) else cloudpickle.dumps(child_fn)
        cloudpickle.dump(
            {"fn": fn, "info": info, "relay": relay_address, "partition": partition}, handle
        )
    merged = {
        "TF_CPP_MIN_LOG_LEVEL": "1",
        **os.environ,
        # Whatever the task can import (Spark's --py-files, the tests' modules), the child can.
        "PYTHONPATH": os.pathsep.join(p for p in sys.path if p),
        "PYTHONUNBUFFERED": "1",
        **env,
    }
    child_env = {key: value for key, value in merged.items() if value is not None}
    child = subprocess.Popen(
        tf_child.child_command(workdir),
        env=child_env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    client.send("child", pid=child.pid)
    stderr_tail: collections.deque[str] = collections.deque(maxlen=_STDERR_TAIL_LINES)
    forwarders = [
        threading.Thread(target=_forward, args=(child.stdout, "stdout", client, None), daemon=True),
        threading.Thread(
            target=_forward, args=(child.stderr, "stderr", client, stderr_tail), daemon=True
        ),
    ]
    for forwarder in forwarders:
        forwarder.start()
    try:
        code = child.wait()
    finally:
        if child.poll() is None:  # the task itself is being stopped: take the child along
            child.kill()
            child.wait()
    for forwarder in forwarders:
        forwarder.join(timeout=10)

    if code == 0:
        if info.rank != 0:
            return None
        with open(os.path.join(workdir, tf_child.RESULT), "rb") as handle:
            return handle.read()
    error_file = os.path.join(workdir, tf_child.ERROR)
    if os.path.exists(error_file):  # the child reported its exception to the driver itself
        with open(error_file) as handle:
            report = json.load(handle)
        raise WorkerFailedError(
            f"rank {info.rank} failed: {report['error']}\n\n"
            f"--- traceback of rank {info.rank} ---\n{report['traceback']}"
        )
    how = f"was killed by {signal.Signals(-code).name}" if code < 0 else f"exited with code {code}"
    reason = f"its TensorFlow process (pid {child.pid}) {how}"
    tail = "\n".join(stderr_tail)
    client.send("error", error=reason, traceback=tail)
    raise WorkerFailedError(f"rank {info.rank} failed: {reason}\n{tail}")


def _forward(stream, name: str, client: RelayClient, tail: collections.deque | None) -> None:
    for raw in stream:
        line = raw.decode(errors="replace").rstrip("\n")
        if tail is not None:
            tail.append(line)
        client.send("output", stream=name, line=line)
    stream.close()
