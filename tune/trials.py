"""The executor side of a function trial: one Spark task runs ``fn(params, report)``.

The task reads the search's input (the cached, one-partition DataFrame) as its partition, so the
data goes from the executors' block managers to the task, never through the driver. It tells
the driver where it runs and sends every ``report(...)`` through the trainer's message relay.
An exception in ``fn`` is caught and returned as the trial's result (state ``FAIL`` with the
traceback): a bug in the user's function is not a lost task, so Spark must not retry it. Only a
task that dies (its Python worker killed, its executor lost) fails the Spark job.
"""

from __future__ import annotations

import inspect
import os
import time
import traceback
from collections.abc import Callable, Iterator
from typing import Any

import cloudpickle
import optuna
import pandas as pd
import pyarrow as pa

from sparkzoo.spark import executor_name
from sparkzoo.trainer.relay import RelayClient

RESULT_SCHEMA = "payload binary"
EXCLUDED_MARKER = "sparkzoo-tune: executor excluded"


class ExcludedExecutorError(RuntimeError):
    """Raised by a trial task that landed on an executor the search has excluded."""


def takes_data(fn: Callable) -> bool:
    """Whether a trial function takes the search's data as a third argument."""
    try:
        parameters = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return False
    positional = [p for p in parameters if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    return len(positional) >= 3 or any(p.kind == p.VAR_POSITIONAL for p in parameters)


class Reporter:
    """The ``report`` a trial function gets: ``report(epoch=..., **metrics)`` sends one epoch's
    metrics to the driver (for early stopping and tracking). ``epoch`` counts from 1 and may be
    left out (then it counts the calls)."""

    def __init__(self, client: RelayClient, trial: int):
        self._client = client
        self._trial = trial
        self.epochs = 0

    def __call__(self, epoch: int | None = None, **metrics: float) -> None:
        self.epochs = int(epoch) if epoch is not None else self.epochs + 1
        values = {name: float(value) for name, value in metrics.items()}
        self._client.send("epoch", trial=self._trial, epoch=self.epochs, metrics=values)


def trial_task(
    fn: Callable,
    params: dict[str, Any],
    trial: int,
    relay_address: tuple[str, int, str],
    excluded: frozenset[str],
    with_data: bool,
) -> Callable[[Iterator[pa.RecordBatch]], Iterator[pa.RecordBatch]]:
    """The ``mapInArrow`` function of one trial attempt; yields one row, the pickled outcome
    ``{state, value, metrics, error, executor, seconds}``."""

    def run(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        executor = executor_name()
        if executor in excluded:
            time.sleep(0.5)  # let the scheduler offer the next attempt elsewhere
            raise ExcludedExecutorError(f"{EXCLUDED_MARKER}: {executor}")
        start = time.perf_counter()
        outcome: dict[str, Any] = {"executor": executor, "metrics": {}, "error": None}
        with RelayClient(relay_address, trial) as client:
            client.send("started", trial=trial, executor=executor, pid=os.getpid())
            report = Reporter(client, trial)
            try:
                data = (_pandas(batches),) if with_data else ()
                result = fn(params, report, *data)
                outcome |= {"state": "COMPLETE", "result": result}
            except optuna.TrialPruned:
                outcome |= {"state": "PRUNED"}
            except Exception:
                outcome |= {"state": "FAIL", "error": traceback.format_exc()}
        outcome["seconds"] = time.perf_counter() - start
        yield pa.RecordBatch.from_pydict({"payload": [cloudpickle.dumps(outcome)]})

    return run


def _pandas(batches: Iterator[pa.RecordBatch]):
    """The task's partition (the whole input of the search) as one pandas DataFrame."""
    batches = list(batches)
    if not batches:
        return pd.DataFrame()
    return pa.Table.from_batches(batches).to_pandas()
