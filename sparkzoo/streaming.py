"""Spark Structured Streaming for the apps' ``stream`` commands and the streaming benchmark:
exactly-once micro-batch output, progress on the console, a clean stop on SIGTERM or Ctrl-C.

- :func:`commit_batch`: what a ``foreachBatch`` function writes, exactly once per micro-batch.
  Spark replays a micro-batch that had not committed when the query stopped (same batch id,
  same input files, from the checkpoint's offset log); the table is written to a hidden
  staging folder and renamed to ``<folder>/batch=<id>`` only when complete, and a batch id
  already there is not written again. Readers of ``<folder>`` (``spark.read.parquet``) skip
  the ``_``-prefixed staging folders and see a ``batch`` column.
- :class:`Progress`: one console line per micro-batch (rows, rows/s, how long the batch took),
  from the queries' ``recentProgress``.
- :func:`watch`: both, with this run's totals;
- :func:`run_until_stopped`: wait on queries until they end (``availableNow``) or the process
  gets SIGTERM / SIGINT, then ``query.stop()`` them; a query that failed raises.
- :func:`trigger`: the ``DataStreamWriter.trigger`` arguments for ``--trigger-seconds`` /
  ``--available-now``.

Example::

    def write(batch, batch_id):
        commit_batch(out, batch_id, lambda path: batch.write.parquet(path))

    query = (frame.writeStream.foreachBatch(write).option("checkpointLocation", checkpoint)
             .trigger(**trigger(5.0)).start())
    run_until_stopped([query], Progress("images"))
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from sparkzoo import fs

if TYPE_CHECKING:
    from pyspark.sql.streaming import StreamingQuery

BATCH_PREFIX = "batch="


def trigger(seconds: float | None = None, available_now: bool = False) -> dict:
    """Keyword arguments of ``DataStreamWriter.trigger``: every ``seconds`` (None: as soon as
    the previous micro-batch is done), or everything there now, then stop."""
    if available_now:
        return {"availableNow": True}
    if seconds is None:
        return {"processingTime": "0 seconds"}
    if not seconds > 0:
        raise ValueError(f"--trigger-seconds must be > 0, not {seconds}")
    return {"processingTime": f"{seconds:g} seconds"}


def batch_folder(folder: str, batch_id: int) -> str:
    """Where micro-batch ``batch_id``'s table lands under ``folder``."""
    return fs.join(folder, f"{BATCH_PREFIX}{batch_id}")


def commit_batch(folder: str, batch_id: int, write: Callable[[str], None]) -> tuple[str, bool]:
    """Write micro-batch ``batch_id``'s table under ``folder`` exactly once:
    ``write(staging_path)`` (e.g. ``lambda p: df.write.parquet(p)``) into a hidden staging
    folder, renamed to ``<folder>/batch=<id>`` when complete. Returns ``(that folder, whether
    it was written now)``; a replayed batch whose folder is already there is not written again.
    """
    target = batch_folder(folder, batch_id)
    stage = fs.join(folder, f"_{BATCH_PREFIX}{batch_id}.staging")
    fs.delete(stage)  # what an attempt that was stopped mid-write left
    if fs.exists(target):
        return target, False
    write(stage)
    fs._rename(stage, target)
    return target, True


class Progress:
    """One console line per micro-batch of a streaming query that read rows (rows in, rows/s,
    how long the batch took, from ``query.recentProgress``), and the totals of this run.

    Example::

        progress = Progress("images", say=print)
        run_until_stopped([query], progress)
        progress.rows          # images processed by this run
    """

    def __init__(self, unit: str = "rows", say: Callable[[str], None] = print):
        self.unit = unit
        self.say = say
        self.seen: set[tuple[str, int]] = set()
        self.batches = 0
        self.rows = 0

    def __call__(self, query: StreamingQuery) -> None:
        """Report the micro-batches of ``query`` not reported yet."""
        for progress in query.recentProgress:
            # An idle query reports the batch id it waits to run, with no rows: only a
            # progress with rows is that micro-batch's.
            key = (progress["runId"], progress["batchId"])
            rows = progress.get("numInputRows", 0)
            if rows == 0 or key in self.seen:
                continue
            self.seen.add(key)
            self.batches += 1
            self.rows += rows
            seconds = progress.get("durationMs", {}).get("triggerExecution", 0) / 1000
            self.say(
                f"batch {progress['batchId']}: {rows} {self.unit} in {seconds:.2f} s "
                f"({progress.get('processedRowsPerSecond', 0.0):.1f} {self.unit}/s; arriving at "
                f"{progress.get('inputRowsPerSecond', 0.0):.1f}/s); {self.rows} {self.unit} so far"
            )


def run_until_stopped(
    queries: Sequence[StreamingQuery],
    progress: Callable[[StreamingQuery], None] | None = None,
    poll_seconds: float = 0.5,
) -> bool:
    """Wait until every query has ended by itself (an ``availableNow`` trigger) or the
    process gets SIGTERM or SIGINT (Ctrl-C), calling ``progress(query)`` (a :class:`Progress`)
    every ``poll_seconds``; then stop them all (``query.stop()``: a micro-batch cut short is
    replayed from the checkpoint next time). Returns whether a signal stopped them. A query
    that failed raises its ``StreamingQueryException``.

    The signal handlers are installed only in the main thread (Python allows no other)."""
    stopping = threading.Event()
    previous = {}
    if threading.current_thread() is threading.main_thread():
        for number in (signal.SIGTERM, signal.SIGINT):
            previous[number] = signal.signal(number, lambda *_: stopping.set())
    try:
        while not stopping.is_set() and any(q.isActive for q in queries):
            for query in queries:
                if query.isActive:
                    query.awaitTermination(poll_seconds / len(queries))
                if progress is not None:
                    progress(query)
    finally:
        for query in queries:
            query.stop()
        for number, handler in previous.items():
            signal.signal(number, handler)
    for query in queries:
        if progress is not None:
            progress(query)
        failure = query.exception()
        if failure is not None:
            raise failure
    return stopping.is_set()


def watch(queries: Sequence[StreamingQuery], unit: str = "rows", say=print) -> dict:
    """:func:`run_until_stopped` with a :class:`Progress` line per micro-batch; returns this
    run's ``{"batches", "rows", "signalled"}``."""
    progress = Progress(unit, say)
    signalled = run_until_stopped(queries, progress)
    return {"batches": progress.batches, "rows": progress.rows, "signalled": signalled}


__all__ = [
    "BATCH_PREFIX",
    "Progress",
    "batch_folder",
    "commit_batch",
    "run_until_stopped",
    "trigger",
    "watch",
]
