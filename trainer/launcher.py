"""The one engine under HorovodRunner and KerasEstimator: a function run as N Horovod ranks.

``run_ranks`` turns a DataFrame (or nothing) into exactly N partitions, runs them as a Spark
barrier stage in which every task is a Horovod rank (:mod:`.horovod_ring`), relays the ranks'
output and messages to the driver (:mod:`.relay`), and returns rank 0's result. A failure in
any rank is raised on the driver as :class:`RankFailedError`, with that rank's traceback.
"""

from __future__ import annotations

import contextlib
import os
import re
import time
import traceback
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import cloudpickle
import pyarrow as pa
from pyspark import BarrierTaskContext

from sparkzoo.arrow import collect_batches
from sparkzoo.spark import executor_name, slot_count
from sparkzoo.trainer.horovod_ring import RankInfo, horovod_ring, require_horovod
from sparkzoo.trainer.relay import (
    Message,
    MessageRelay,
    RelayClient,
    current_client,
    forwarded_output,
    relay_all_gather,
)

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

# rank_fn(batches, ring, client) -> picklable result (only rank 0's reaches the driver)
RankFunction = Callable[[Iterator[pa.RecordBatch], RankInfo, RelayClient], Any]

_RESULT_SCHEMA = "rank long, payload binary"


class RankFailedError(RuntimeError):
    """A Horovod rank failed; ``rank`` and the rank's ``remote_traceback`` say where and why."""

    def __init__(self, rank: int | None, reason: str, remote_traceback: str = ""):
        self.rank, self.reason, self.remote_traceback = rank, reason, remote_traceback
        where = f"rank {rank}" if rank is not None else "a rank"
        text = f"{where} failed: {reason}"
        if remote_traceback:
            text += f"\n\n--- traceback of {where} ---\n{remote_traceback.rstrip()}"
        super().__init__(text)


def check_slots(
    spark: SparkSession, num_ranks: int, wait_s: float = 20.0, what: str = "Horovod ranks"
) -> None:
    """Refuse at once when the cluster cannot run ``num_ranks`` barrier tasks together.

    On a cluster, executors register a few seconds after the SparkContext starts: wait up to
    ``wait_s`` for enough task slots before refusing (a local master has all of its at once).
    ``what`` names the tasks in the error (``"Horovod ranks"``, ``"TensorFlow workers"``).
    """
    if num_ranks < 1:
        raise ValueError(f"the number of ranks must be >= 1, got {num_ranks}")
    slots = slot_count(spark)
    local = spark.sparkContext.master.startswith("local")
    deadline = time.monotonic() + wait_s
    while slots < num_ranks and not local and time.monotonic() < deadline:
        time.sleep(0.5)
        slots = slot_count(spark)
    if num_ranks > slots:
        raise ValueError(
            f"asked for {num_ranks} {what} but the Spark cluster "
            f"({spark.sparkContext.master}) has {slots} task slots; lower the number of "
            "workers or add executors/cores"
        )


def driver_host(spark: SparkSession) -> str:
    """The address executors reach the driver at."""
    return spark.sparkContext.getConf().get("spark.driver.host", "127.0.0.1")


def _barrier_task(
    rank_fn: RankFunction, relay_address: tuple[str, int, str], forward_output: bool = True
):
    def run(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        task_start = time.time()  # the driver splits its start-up at it (wall clock)
        ctx = BarrierTaskContext.get()
        partition = ctx.partitionId()
        with (
            RelayClient(relay_address, None) as client,
            horovod_ring(relay_all_gather(client, ctx)) as ring,
        ):
            client.rank = ring.rank
            client.send(
                "hello",
                task_start=task_start,
                partition=partition,
                pid=os.getpid(),
                host=ring.hostname,
                executor=executor_name(),
            )
            output = forwarded_output(client) if forward_output else contextlib.nullcontext()
            try:
                with output, current_client(client):
                    result = rank_fn(batches, ring, client)
            except BaseException as exc:
                client.send(
                    "error",
                    error=f"{type(exc).__name__}: {exc}",
                    traceback=traceback.format_exc(),
                )
                raise
        if ring.rank == 0:
            yield pa.RecordBatch.from_pydict({"rank": [0], "payload": [cloudpickle.dumps(result)]})

    return run


_PARTITION_IN_ERROR = re.compile(r"ResultTask\(\d+, (\d+)\)")
# Errors a rank raises because a peer went away, not because of its own fault.
_PEER_ERRORS = (
    "HorovodInternalError",
    "Horovod has been shut down",
    "Connection closed by peer",
    "Connection reset by peer",
    "Gloo",
    "gloo",
)


def reported_failure(
    relay: MessageRelay, wait_s: float = 3.0, peer_errors: tuple[str, ...] = _PEER_ERRORS
) -> RankFailedError | None:
    """The failure a rank reported itself, not counting ranks that failed because a peer went
    away (errors containing one of ``peer_errors``); None when no rank reported one within
    ``wait_s``."""
    deadline = time.monotonic() + wait_s
    while not relay.of_kind("error") and time.monotonic() < deadline:
        time.sleep(0.1)  # a failing rank's report may trail the news of its failure
    errors = relay.of_kind("error")
    own = [e for e in errors if not any(marker in e["error"] for marker in peer_errors)]
    if own:
        return RankFailedError(own[0]["rank"], own[0]["error"], own[0].get("traceback", ""))
    return None


def _failure_from(
    exc: Exception,
    relay: MessageRelay,
    wait_s: float = 3.0,
    peer_errors: tuple[str, ...] = _PEER_ERRORS,
) -> RankFailedError:
    """Name the rank that failed: its own report if it sent one, else Spark's error text.

    A rank whose peer died fails too (an error containing one of ``peer_errors``); such
    reports count only when Spark's error does not say which task went first.
    """
    reported = reported_failure(relay, wait_s, peer_errors)
    if reported is not None:
        return reported
    errors = relay.of_kind("error")
    text = str(exc)
    partition_to_rank = {m["partition"]: m["rank"] for m in relay.of_kind("hello")}
    failed = [
        partition_to_rank[int(p)]
        for p in _PARTITION_IN_ERROR.findall(text)
        if int(p) in partition_to_rank
    ]
    crashed = "exited unexpectedly" in text or "crashed" in text
    if failed:
        reason = "its Python worker died (killed, or crashed)" if crashed else "its task failed"
        return RankFailedError(failed[0], f"{reason}: {_first_error_line(text)}")
    if errors:
        return RankFailedError(
            errors[0]["rank"], errors[0]["error"], errors[0].get("traceback", "")
        )
    return RankFailedError(None, _first_error_line(text))


def _first_error_line(text: str) -> str:
    """The Python exception in Spark's error text (e.g. ``ModuleNotFoundError: ...``), else its
    first error line."""
    lines = [line.strip() for line in text.splitlines()]
    python = [
        line
        for line in lines
        if _PYTHON_EXCEPTION.match(line)
        and not line.startswith(("org.", "java.", "scala.", "py4j."))
    ]
    if python:
        return python[0][:500]
    for line in lines:
        if "Exception" in line or "Error" in line:
            return line.lstrip(": ")[:500]
    return text.strip()[:500]


_PYTHON_EXCEPTION = re.compile(r"^[A-Za-z_][\w.]*(Error|Exception|Exit|Interrupt): ")


def run_ranks(
    spark: SparkSession,
    num_ranks: int,
    rank_fn: RankFunction,
    df: DataFrame | None = None,
    on_message: Callable[[Message], None] | None = None,
    forward_output: bool = True,
) -> Any:
    """Run ``rank_fn`` as ``num_ranks`` Horovod ranks and return rank 0's result.

    With ``df``, each rank receives the Arrow batches of its own partition of
    ``df.repartition(num_ranks)``; without, an empty iterator. ``on_message`` sees every
    message the ranks send (output lines, epochs, ...), on the driver, as they arrive; with
    ``forward_output=False`` the ranks' stdout/stderr stay in the executors' logs. Raises
    :class:`~sparkzoo.trainer.horovod_ring.HorovodMissingError` on the driver, before any
    task starts, where Horovod is not installed.
    """
    require_horovod()
    check_slots(spark, num_ranks)
    return run_barrier_stage(
        spark,
        num_ranks,
        lambda relay_address: _barrier_task(rank_fn, relay_address, forward_output),
        df,
        on_message,
    )


# ---- shared by the engines (this Horovod one and trainer/tf_launcher.py) -------------------------
BarrierTask = Callable[[Iterator[pa.RecordBatch]], Iterator[pa.RecordBatch]]


def run_barrier_stage(
    spark: SparkSession,
    num_ranks: int,
    make_task: Callable[[tuple[str, int, str]], BarrierTask],
    df: DataFrame | None = None,
    on_message: Callable[[Message], None] | None = None,
    peer_errors: tuple[str, ...] = _PEER_ERRORS,
) -> Any:
    """Run ``make_task(relay_address)`` as a barrier stage of ``num_ranks`` tasks.

    The task function receives the Arrow batches of its partition of ``df.repartition(...)``
    (none without ``df``) and yields rank 0's cloudpickled result as one row of
    ``rank long, payload binary``; its messages reach ``on_message`` through a
    :class:`MessageRelay` on the driver. A failed stage is raised as :class:`RankFailedError`
    naming the rank (see :func:`_failure_from`). The caller checks the slots first.
    """
    relay = MessageRelay(driver_host(spark), on_message)
    try:
        if df is None:
            source = spark.range(0, num_ranks, 1, numPartitions=num_ranks).filter("id < 0")
        else:
            source = df.repartition(num_ranks)
        stage = source.mapInArrow(make_task(relay.address), _RESULT_SCHEMA, barrier=True)
        try:
            payloads = _collect_payloads(stage)
        except Exception as exc:  # Py4JJavaError, or Spark's own exception types
            raise _failure_from(exc, relay, peer_errors=peer_errors) from None
    finally:
        relay.close()
    if len(payloads) != 1:
        raise RankFailedError(0, f"rank 0 returned {len(payloads)} results instead of 1")
    return cloudpickle.loads(payloads[0])


def _collect_payloads(stage: DataFrame) -> list[bytes]:
    """The ``payload`` column of the result stage, collected as Arrow (a resnet18's weights
    are 45 MB: :func:`sparkzoo.arrow.collect_batches` says why not ``collect()``)."""
    return [p for batch in collect_batches(stage) for p in batch.column("payload").to_pylist()]
