"""Hyperparameter search on the executors: :func:`search`.

The driver asks Optuna for trials and tells it results (Optuna's samplers and pruners do the
sampling and the early-stopping logic); every trial runs on the executors as its own Spark job,
``parallelism`` at a time, each from a driver thread with its own job group:

* a :class:`~sparkzoo.trainer.KerasEstimator` target is fitted with the trial's values (one
  process, or a ``workers_per_trial``-rank ring), on the input cached once;
* a function target ``fn(params, report)`` (or ``fn(params, report, data)``) runs in one task
  that reads the cached input as its partition (:mod:`sparkzoo.tune.trials`).

Per-epoch metrics reach the driver while a trial runs (the trainer's relay); when the pruner
says stop, the trial's job group is cancelled, so it ends at once and is recorded as pruned. An
exception in a trial is recorded with its traceback and the search goes on; a trial whose task
dies is run again, up to ``max_failures`` times, and an executor that loses trials twice is
excluded from the rest of the search. Every trial is an MLflow child run of the search's run.
"""

from __future__ import annotations

import functools
import itertools
import math
import os
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any

import cloudpickle
import optuna
import pandas as pd
from optuna.trial import TrialState
from pyspark.sql import DataFrame, SparkSession

from sparkzoo import keras2 as keras
from sparkzoo.spark import slot_count
from sparkzoo.trainer.estimator import KerasEstimator
from sparkzoo.trainer.launcher import driver_host
from sparkzoo.trainer.model import KerasModel
from sparkzoo.trainer.relay import Message, MessageRelay
from sparkzoo.tune.plot import search_figure
from sparkzoo.tune.space import MODEL_PARAMS, grid, grid_size, nest, parse_space
from sparkzoo.tune.tracking import SearchTracker, flat_params, flatten
from sparkzoo.tune.trials import EXCLUDED_MARKER, RESULT_SCHEMA, takes_data, trial_task

ALGORITHMS = ("tpe", "random", "grid")
EARLY_STOPPING = (None, "median", "asha")
LEARNING_RATE = "learning_rate"
# Failures of a task that died, not of the trial's own code: worth another attempt.
_LOST_MARKERS = (
    "Python worker exited unexpectedly",
    "crashed",
    "ExecutorLostFailure",
    "Executor lost",
    "worker lost",
    "Connection reset by peer",
    "EOFError",
    "Horovod has been shut down",
    "exited with code",
    "SIGKILL",
    "killed",
)
EXCLUDE_AFTER = 2  # lost trials on one executor before the search stops using it
_MAX_REFUSALS = 60  # attempts that landed on excluded executors before a trial gives up


@dataclass
class SearchResult:
    """What :func:`search` found. ``trials`` has one row per trial: ``number``, ``params`` (a
    dict in the space's shape), ``value``, ``state`` (``COMPLETE``, ``PRUNED`` or ``FAIL``),
    ``seconds``, ``executor``, ``attempts``, ``epochs`` and ``error`` (the traceback of a failed
    trial)."""

    best_params: dict[str, Any] | None
    best_value: float | None
    best_model: KerasModel | None
    trials: pd.DataFrame
    metric: str
    mode: str
    study: optuna.Study
    run_id: str | None = None
    model_uri: str | None = None
    plot_path: str | None = None
    excluded_executors: list[str] = field(default_factory=list)

    def figure(self):
        """The search as a matplotlib figure: the metric of each trial over time (pruned and
        failed trials marked, the best so far as a line) and every trial's per-epoch curve."""
        return search_figure(self.trials, self.metric, self.mode)


@dataclass
class _Trial:
    """One trial while it runs (shared by its driver thread and the relay threads)."""

    trial: optuna.trial.Trial
    params: dict[str, Any]
    group: str
    run_id: str | None = None
    executor: str | None = None
    attempts: int = 0
    pruned: bool = False
    curve: list[tuple[int, float]] = field(default_factory=list)
    reported: set[int] = field(default_factory=set)
    started: float = 0.0


def search(
    target: KerasEstimator | Callable,
    space: dict[str, Any],
    *,
    df: DataFrame | None = None,
    metric: str,
    mode: str = "max",
    num_trials: int | None = 20,
    parallelism: int | None = None,
    algorithm: str = "tpe",
    early_stopping: str | None = None,
    max_failures: int = 2,
    seed: int = 0,
    experiment_name: str | None = None,
    workers_per_trial: int = 1,
    tracking_uri: str | None = None,
    log_to_mlflow: bool = True,
    plot_path: str | None = None,
    verbose: bool = True,
) -> SearchResult:
    """Search ``space`` for the values of ``target`` that give the best ``metric``.

    ``target`` is a :class:`~sparkzoo.trainer.KerasEstimator` (``space`` keys are its Param
    names, ``learning_rate`` for the optimizer's, ``model_params`` a nested dict of the model
    builder's keyword arguments; ``metric`` a key of the fitted model's history such as
    ``val_accuracy``; ``df`` required) or a function ``fn(params, report) -> float | dict``
    (``report(epoch=..., **metrics)`` sends intermediate metrics; a third parameter receives
    ``df``, cached and read on the executor, as a pandas DataFrame).

    ``mode`` is ``"max"`` or ``"min"``; ``algorithm`` ``"tpe"``, ``"random"`` or ``"grid"`` (a grid
    runs each combination once: ``num_trials`` None runs the whole grid); ``early_stopping``
    None, ``"median"`` (Optuna's ``MedianPruner``) or ``"asha"`` (``SuccessiveHalvingPruner``);
    ``parallelism`` trials at once (default: the cluster's task slots ÷ ``workers_per_trial``);
    ``max_failures`` further attempts of a trial whose task died. The trials go to MLflow
    (``tracking_uri``, ``experiment_name``) as child runs of one run for the search; the plot is
    saved as ``plot_path`` (default: a temporary PNG, also logged to the search's run).
    """
    runner = _Search(
        target,
        space,
        df=df,
        metric=metric,
        mode=mode,
        num_trials=num_trials,
        parallelism=parallelism,
        algorithm=algorithm,
        early_stopping=early_stopping,
        max_failures=max_failures,
        seed=seed,
        workers_per_trial=workers_per_trial,
        verbose=verbose,
    )
    return runner.run(experiment_name, tracking_uri, log_to_mlflow, plot_path)


class _Search:
    def __init__(
        self,
        target,
        space,
        *,
        df,
        metric,
        mode,
        num_trials,
        parallelism,
        algorithm,
        early_stopping,
        max_failures,
        seed,
        workers_per_trial,
        verbose,
    ):
        if mode not in ("max", "min"):
            raise ValueError(f"mode must be 'max' or 'min', got {mode!r}")
        if algorithm not in ALGORITHMS:
            raise ValueError(f"algorithm must be one of {ALGORITHMS}, got {algorithm!r}")
        if early_stopping not in EARLY_STOPPING:
            raise ValueError(
                f"early_stopping must be one of {EARLY_STOPPING}, got {early_stopping!r}"
            )
        if not isinstance(metric, str) or not metric:
            raise ValueError(f"metric must name a metric, got {metric!r}")
        if num_trials is not None and num_trials < 1:
            raise ValueError(f"num_trials must be at least 1, got {num_trials}")
        if max_failures < 0:
            raise ValueError(f"max_failures must be 0 or more, got {max_failures}")
        if workers_per_trial < 1:
            raise ValueError(f"workers_per_trial must be at least 1, got {workers_per_trial}")
        self.estimator = isinstance(target, KerasEstimator)
        if not self.estimator and not callable(target):
            raise TypeError(
                f"target must be a KerasEstimator or a function fn(params, report), got "
                f"{type(target).__name__}"
            )
        if self.estimator and df is None:
            raise ValueError("a KerasEstimator target needs df=... (the training DataFrame)")
        if not self.estimator and df is not None and not takes_data(target):
            raise ValueError(
                "df=... is given but the trial function takes only (params, report): give it a "
                "third parameter, which receives the data as a pandas DataFrame"
            )
        if not self.estimator and workers_per_trial > 1:
            raise ValueError("workers_per_trial > 1 needs a KerasEstimator target")
        self.space = parse_space(space)
        if self.estimator:
            _check_estimator_space(target, self.space)
        self.target, self.df, self.metric, self.mode = target, df, metric, mode
        self.max_failures, self.seed = max_failures, seed
        self.workers_per_trial, self.verbose = workers_per_trial, verbose
        self.spark = df.sparkSession if df is not None else SparkSession.getActiveSession()
        if self.spark is None:
            raise RuntimeError("no SparkSession: start one first (sparkzoo.init_spark())")
        slots = slot_count(self.spark)
        self.parallelism = parallelism or max(1, slots // workers_per_trial)
        if self.parallelism < 1:
            raise ValueError(f"parallelism must be at least 1, got {parallelism}")
        self.sampler = self._sampler(algorithm)
        self.num_trials = num_trials
        self.grid = grid(self.space) if algorithm == "grid" else None
        if self.grid is not None:
            size = grid_size(self.grid)
            self.num_trials = size if num_trials is None else min(num_trials, size)
        elif num_trials is None:
            raise ValueError("num_trials=None (the whole grid) needs algorithm='grid'")
        self.pruner = {
            None: optuna.pruners.NopPruner(),
            "median": optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=1),
            "asha": optuna.pruners.SuccessiveHalvingPruner(),
        }[early_stopping]
        self.name = f"search-{time.strftime('%Y%m%d-%H%M%S')}"
        self.lock = threading.Lock()
        self.running: dict[int, _Trial] = {}
        self.rows: list[dict[str, Any]] = []
        self.lost = Counter()
        self.excluded: set[str] = set()
        self.best: dict[str, Any] | None = None
        self.best_model: KerasModel | None = None

    def _sampler(self, algorithm: str) -> optuna.samplers.BaseSampler:
        # A grid is enqueued (each combination once, see run()) and asked through a random
        # sampler: Optuna's GridSampler stops the study itself, which only optimize() allows.
        if algorithm in ("random", "grid"):
            return optuna.samplers.RandomSampler(seed=self.seed)
        return optuna.samplers.TPESampler(seed=self.seed)

    # ---- the driver loop ------------------------------------------------------------------
    def run(self, experiment_name, tracking_uri, log_to_mlflow, plot_path) -> SearchResult:
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        study = optuna.create_study(
            direction="maximize" if self.mode == "max" else "minimize",
            sampler=self.sampler,
            pruner=self.pruner,
            study_name=self.name,
        )
        if self.grid is not None:
            names = list(self.grid)
            for values in itertools.product(*self.grid.values()):
                study.enqueue_trial(dict(zip(names, values, strict=True)))
        if self.estimator:
            tracking_uri = tracking_uri or self.target.get("tracking_uri")
            experiment_name = experiment_name or self.target.get("experiment_name")
        self.tracker = (
            SearchTracker(tracking_uri, experiment_name or "sparkzoo", self.name, self._settings())
            if log_to_mlflow
            else None
        )
        self.data = self._cache_input()
        self.relay = MessageRelay(driver_host(self.spark), self._on_relay_message)
        self.started = time.perf_counter()
        self._say(
            f"[tune] {self.name}: {self.num_trials} trials, {self.parallelism} at a time, "
            f"{self.mode} {self.metric}"
        )
        try:
            self._run_trials(study)
            result = self._result(study, plot_path)
        except BaseException:
            for trial in list(self.running.values()):
                self.spark.sparkContext.cancelJobGroup(trial.group)
            if self.tracker:
                self.tracker.fail()
            raise
        finally:
            self.relay.close()
            if self.data is not None:
                self.data.unpersist()
        return result

    def _run_trials(self, study: optuna.Study) -> None:
        with ThreadPoolExecutor(self.parallelism, thread_name_prefix="sparkzoo-trial") as pool:
            pending, asked = set(), 0
            while asked < self.num_trials or pending:
                while asked < self.num_trials and len(pending) < self.parallelism:
                    with self.lock:
                        trial = study.ask(self.space)
                    pending.add(pool.submit(self._trial, study, trial))
                    asked += 1
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
                for future in done:
                    future.result()  # a bug of the search itself, not a trial's: raise it

    def _cache_input(self) -> DataFrame | None:
        """The input, cached once for every trial: as it is for an estimator (each fit
        repartitions it), as one partition for a function (its one task reads it all)."""
        if self.df is None:
            return None
        data = self.df if self.estimator else self.df.coalesce(1)
        data = data.persist()
        rows = data.count()
        if rows == 0:
            data.unpersist()
            raise ValueError("the search's DataFrame is empty")
        return data

    # ---- one trial, in its driver thread ----------------------------------------------------
    def _trial(self, study: optuna.Study, trial: optuna.trial.Trial) -> None:
        sc = self.spark.sparkContext
        run = _Trial(trial, nest(trial.params), f"{self.name}-trial-{trial.number}")
        sc.setJobGroup(run.group, f"sparkzoo.tune trial {trial.number}", interruptOnCancel=True)
        run.started = time.perf_counter()
        with self.lock:
            self.running[trial.number] = run
        if self.tracker:
            run.run_id = self.tracker.start_trial(trial.number, run.params)
        state, value, error, refusals, model = "FAIL", None, None, 0, None
        while True:
            run.attempts += 1
            try:
                state, value, error, model = (
                    self._fit_estimator(run) if self.estimator else self._call_function(run)
                )
                break
            except Exception as exc:  # the Spark job failed: pruned, refused or lost
                text = f"{type(exc).__name__}: {exc}"
                if run.pruned:
                    state, error = "PRUNED", None
                    break
                if EXCLUDED_MARKER in text and refusals < _MAX_REFUSALS:
                    refusals += 1
                    run.attempts -= 1
                    continue
                lost = any(marker in text for marker in _LOST_MARKERS)
                error = _short(text)
                if lost:
                    self._lost_on(run.executor)
                if not lost or run.attempts > self.max_failures:
                    state = "FAIL"
                    break
                self._say(
                    f"[tune] trial {trial.number}: its task died ({_last_line(text)}); "
                    f"attempt {run.attempts + 1} of {self.max_failures + 1}"
                )
        if run.pruned:
            state = "PRUNED"
        if state == "COMPLETE" and (value is None or not math.isfinite(value)):
            state, error = "FAIL", f"the trial's {self.metric} is {value}"
        self._finish(study, run, state, value, error, model)

    def _fit_estimator(self, run: _Trial):
        estimator = _trial_estimator(
            self.target, run.params, self.workers_per_trial, f"{run.group}-{run.attempts}"
        )
        estimator.message_listener = functools.partial(self._on_trial_message, run)
        try:
            fitted = estimator.fit(self.data)
        except (TypeError, ValueError) as exc:  # the trial's values do not fit the model
            return "FAIL", None, _short(f"{type(exc).__name__}: {exc}"), None
        history = fitted.getHistory()
        if self.metric not in history:
            return (
                "FAIL",
                None,
                (f"the fitted model's history has no {self.metric!r}; it has {sorted(history)}"),
                None,
            )
        return "COMPLETE", float(history[self.metric][-1]), None, fitted

    def _call_function(self, run: _Trial):
        source = self.data if self.data is not None else self.spark.range(0, 1, 1, 1)
        task = trial_task(
            self.target,
            run.params,
            run.trial.number,
            self.relay.address,
            frozenset(self.excluded),
            self.data is not None,
        )
        rows = source.mapInArrow(task, RESULT_SCHEMA).collect()
        outcome = cloudpickle.loads(rows[0]["payload"])
        run.executor = outcome["executor"]
        if outcome["state"] != "COMPLETE":
            return outcome["state"], None, outcome["error"], None
        result = outcome["result"]
        if isinstance(result, dict):
            if self.metric not in result:
                return (
                    "FAIL",
                    None,
                    (f"the trial function returned {sorted(result)}, without {self.metric!r}"),
                    None,
                )
            result = result[self.metric]
        try:
            return "COMPLETE", float(result), None, None
        except (TypeError, ValueError):
            return "FAIL", None, f"the trial function returned {result!r}, not a number", None

    # ---- messages from running trials (relay threads) --------------------------------------
    def _on_relay_message(self, message: Message) -> None:
        run = self.running.get(message.get("trial"))
        if run is not None:
            self._on_trial_message(run, message)

    def _on_trial_message(self, run: _Trial, message: Message) -> None:
        if message["kind"] in ("hello", "started") and message.get("executor"):
            run.executor = message["executor"]
        elif message["kind"] == "epoch":
            self._on_epoch(run, int(message["epoch"]), message["metrics"])

    def _on_epoch(self, run: _Trial, epoch: int, metrics: dict[str, float]) -> None:
        if self.tracker and run.run_id:
            self.tracker.log_epoch(run.run_id, epoch, metrics)
        if self.metric not in metrics or run.pruned:
            return
        value = float(metrics[self.metric])
        run.curve.append((epoch, value))
        if not math.isfinite(value):
            return
        with self.lock:
            if epoch not in run.reported:  # a retried attempt reports its epochs again
                run.reported.add(epoch)
                run.trial.report(value, epoch)
            prune = run.trial.should_prune()
        if prune:
            run.pruned = True
            self._say(f"[tune] trial {run.trial.number}: pruned after epoch {epoch}")
            self.spark.sparkContext.cancelJobGroup(run.group)

    # ---- bookkeeping ------------------------------------------------------------------------
    def _lost_on(self, executor: str | None) -> None:
        if executor is None:
            return
        with self.lock:
            self.lost[executor] += 1
            known = set(_executor_ids(self.spark))
            if (
                self.lost[executor] >= EXCLUDE_AFTER
                and executor not in self.excluded
                and executor.rsplit("/", 1)[-1] in known
                and len(known - {e.rsplit("/", 1)[-1] for e in self.excluded}) > 1
            ):
                self.excluded.add(executor)
                self._say(
                    f"[tune] excluding executor {executor}: it lost {self.lost[executor]} trials"
                )

    def _finish(self, study, run: _Trial, state, value, error, model) -> None:
        seconds = time.perf_counter() - run.started
        with self.lock:
            states = {
                "COMPLETE": TrialState.COMPLETE,
                "PRUNED": TrialState.PRUNED,
                "FAIL": TrialState.FAIL,
            }
            study.tell(run.trial, value if state == "COMPLETE" else None, state=states[state])
            self.running.pop(run.trial.number, None)
            better = state == "COMPLETE" and (
                self.best is None
                or (
                    value > self.best["value"] if self.mode == "max" else value < self.best["value"]
                )
            )
            if better:
                self.best = {"number": run.trial.number, "value": value, "params": run.params}
                self.best_model = model
            self.rows.append(
                {
                    "number": run.trial.number,
                    "params": run.params,
                    "value": value if state == "COMPLETE" else None,
                    "state": state,
                    "seconds": seconds,
                    "finished_s": time.perf_counter() - self.started,
                    "executor": run.executor,
                    "attempts": run.attempts,
                    "epochs": [v for _, v in sorted(run.curve)],
                    "error": error,
                    "run_id": run.run_id,
                }
            )
            done = len(self.rows)
        if self.tracker and run.run_id:
            self.tracker.end_trial(
                run.run_id, state, value, seconds, run.executor, self.metric, error
            )
        if state == "COMPLETE":
            shown = f"{self.metric} {value:.4f}"
        elif state == "PRUNED":
            shown = (
                f"{self.metric} {run.curve[-1][1]:.4f} at epoch {run.curve[-1][0]}"
                if run.curve
                else ""
            )
        else:
            shown = _last_line(error or "")
        best = (
            f"  (best: {self.best['value']:.4f}, trial {self.best['number']})" if self.best else ""
        )
        self._say(
            f"[tune] trial {run.trial.number} ({done}/{self.num_trials}) {state}: {shown} "
            f"in {seconds:.1f} s {_shown(run.params)}{best}"
        )

    def _result(self, study: optuna.Study, plot_path: str | None) -> SearchResult:
        trials = pd.DataFrame(self.rows).sort_values("number").reset_index(drop=True)
        folder = tempfile.mkdtemp(prefix="sparkzoo-tune-")
        plot_path = plot_path or os.path.join(folder, "search.png")
        search_figure(trials, self.metric, self.mode).savefig(
            plot_path, dpi=100, bbox_inches="tight"
        )
        model_uri = None
        if self.tracker:
            csv = os.path.join(folder, "trials.csv")
            trials.assign(params=trials["params"].map(flat_params)).to_csv(csv, index=False)
            example = (
                self.data.select(*self.target.get("feature_cols")).limit(2).toPandas()
                if self.best_model is not None
                else None
            )
            model_uri = self.tracker.finish(self.best, csv, plot_path, self.best_model, example)
        counts = trials["state"].value_counts().to_dict()
        self._say(
            f"[tune] done in {time.perf_counter() - self.started:.1f} s: {counts}; "
            + (
                f"best {self.metric} {self.best['value']:.4f} with {self.best['params']}"
                if self.best
                else "no trial completed"
            )
        )
        return SearchResult(
            best_params=self.best["params"] if self.best else None,
            best_value=self.best["value"] if self.best else None,
            best_model=self.best_model,
            trials=trials,
            metric=self.metric,
            mode=self.mode,
            study=study,
            run_id=self.tracker.run_id if self.tracker else None,
            model_uri=model_uri,
            plot_path=plot_path,
            excluded_executors=sorted(self.excluded),
        )

    def _settings(self) -> dict[str, Any]:
        return {
            "metric": self.metric,
            "mode": self.mode,
            "num_trials": self.num_trials,
            "parallelism": self.parallelism,
            "sampler": type(self.sampler).__name__,
            "pruner": type(self.pruner).__name__,
            "max_failures": self.max_failures,
            "seed": self.seed,
            "workers_per_trial": self.workers_per_trial,
            "target": getattr(self.target, "__name__", type(self.target).__name__),
            "space": str(self.space),
        }

    def _say(self, text: str) -> None:
        if self.verbose:
            print(text, file=sys.stderr, flush=True)


# ---- an estimator trial ----------------------------------------------------------------------
def _check_estimator_space(estimator: KerasEstimator, space: dict) -> None:
    names = {p.name for p in estimator.params}
    for key in space:
        top = key.split(".", 1)[0]
        if top not in names and top not in (LEARNING_RATE, MODEL_PARAMS):
            raise ValueError(
                f"space key {key!r} is not a KerasEstimator Param, {LEARNING_RATE!r} or "
                f"{MODEL_PARAMS!r}; its Params are {sorted(names)}"
            )
    if any(k.startswith(MODEL_PARAMS + ".") for k in space) and isinstance(
        estimator.get("model"), keras.Model
    ):
        raise ValueError(
            f"space[{MODEL_PARAMS!r}] needs model= to be a builder function that takes keyword "
            "arguments, not a built Keras model"
        )


def _trial_estimator(
    estimator: KerasEstimator, params: dict[str, Any], workers: int, run_name: str
) -> KerasEstimator:
    """A copy of ``estimator`` with the trial's values: one attempt, no MLflow run of its own
    (the search logs the trial), quiet (the search reports)."""
    trial = estimator.copy()
    values = dict(params)
    builder_args = values.pop(MODEL_PARAMS, None)
    learning_rate = values.pop(LEARNING_RATE, None)
    if builder_args:
        trial.setParams(model=functools.partial(estimator.get("model"), **builder_args))
    if learning_rate is not None:
        trial.setParams(optimizer=with_learning_rate(estimator.get("optimizer"), learning_rate))
    trial.setParams(**values)
    trial.setParams(
        num_workers=workers, max_retries=0, log_to_mlflow=False, verbose=0, run_name=run_name
    )
    return trial


def with_learning_rate(optimizer: Any, learning_rate: float):
    """The estimator's optimizer (a name, a serialized config or an instance) with another
    learning rate, as a new optimizer."""
    base = keras.optimizers.get(optimizer)
    config = base.get_config() | {"learning_rate": float(learning_rate)}
    return type(base).from_config(config)


def _executor_ids(spark: SparkSession) -> list[str]:
    """The ids of the executors registered now (none in local mode: the driver runs the tasks)."""
    ids = spark.sparkContext._jsc.sc().getExecutorIds().mkString(",")  # a Scala Seq
    return [i for i in str(ids).split(",") if i]


def _shown(params: dict[str, Any]) -> str:
    """A trial's parameters for the progress line: floats to 4 significant digits."""
    return ", ".join(
        f"{name}={value:.4g}" if isinstance(value, float) else f"{name}={value}"
        for name, value in flatten(params).items()
    )


def _last_line(text: str) -> str:
    """The last non-empty line (of a traceback: the exception)."""
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1][:200] if lines else ""


def _short(text: str, limit: int = 4000) -> str:
    return text if len(text) <= limit else text[:limit] + " ..."
