"""MLflow for a search: one parent run, a child run per trial.

The parent holds the search's settings, the best value and parameters, the trials table, the
plot and the best trial's model (a pyfunc model with a signature, for an estimator target).
Each child (tag ``mlflow.parentRunId``) holds its trial's parameters, the per-epoch metrics as
they arrive, the state, the seconds, the executor and, for a failed trial, the traceback.
Children are written through ``MlflowClient`` with explicit run ids, so trials running in
parallel threads never touch MLflow's thread-bound "active run".
"""

from __future__ import annotations

import time
from typing import Any

import mlflow
from mlflow.entities import Metric, Param, RunTag
from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID

from sparkzoo.trainer.tracking import RunTracker

# MLflow's run statuses for Optuna's trial states.
_STATUS = {"COMPLETE": "FINISHED", "PRUNED": "KILLED", "FAIL": "FAILED"}


def flatten(params: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"model_params": {"units": 8}}`` → ``{"model_params.units": 8}``."""
    flat: dict[str, Any] = {}
    for name, value in params.items():
        if isinstance(value, dict):
            flat |= flatten(value, f"{prefix}{name}.")
        else:
            flat[f"{prefix}{name}"] = value
    return flat


def flat_params(params: dict[str, Any]) -> dict[str, str]:
    """The parameters as MLflow logs them: flat names, text values."""
    return {name: str(value)[:500] for name, value in flatten(params).items()}


class SearchTracker:
    """The parent run of a search (started at once) and its trials' child runs."""

    def __init__(
        self, tracking_uri: str | None, experiment: str, run_name: str, settings: dict[str, Any]
    ):
        self._parent = RunTracker(tracking_uri, experiment, run_name, settings)
        self.run_id = self._parent.run_id
        self._client = mlflow.MlflowClient(self._parent.tracking_uri)
        self._experiment_id = self._parent.run.info.experiment_id

    def start_trial(self, number: int, params: dict[str, Any]) -> str:
        run = self._client.create_run(
            self._experiment_id,
            run_name=f"trial-{number}",
            tags={MLFLOW_PARENT_RUN_ID: self.run_id, "sparkzoo.trial": str(number)},
        )
        self._client.log_batch(
            run.info.run_id, params=[Param(k, v) for k, v in flat_params(params).items()]
        )
        return run.info.run_id

    def log_epoch(self, run_id: str, epoch: int, metrics: dict[str, float]) -> None:
        now = int(time.time() * 1000)
        self._client.log_batch(
            run_id, metrics=[Metric(k, float(v), now, epoch) for k, v in metrics.items()]
        )

    def end_trial(
        self,
        run_id: str,
        state: str,
        value: float | None,
        seconds: float,
        executor: str | None,
        metric: str,
        error: str | None = None,
    ) -> None:
        tags = [RunTag("state", state), RunTag("executor", executor or "")]
        if error:
            tags.append(RunTag("error", error[-5000:]))
        metrics = [Metric("seconds", seconds, int(time.time() * 1000), 0)]
        if value is not None:
            metrics.append(Metric(f"final_{metric}", value, int(time.time() * 1000), 0))
        self._client.log_batch(run_id, metrics=metrics, tags=tags)
        self._client.set_terminated(run_id, _STATUS[state])

    def finish(
        self,
        best: dict[str, Any] | None,
        trials_csv: str,
        plot_png: str | None,
        best_model=None,
        input_example=None,
    ) -> str | None:
        """Log the outcome on the parent and end it; the best model's URI (or None)."""
        model_uri = None
        if best is not None:
            mlflow.log_metric("best_value", best["value"])
            mlflow.log_params({f"best.{k}": v for k, v in flat_params(best["params"]).items()})
            mlflow.set_tag("best_trial", str(best["number"]))
        mlflow.log_artifact(trials_csv)
        if plot_png:
            mlflow.log_artifact(plot_png)
        if best_model is not None:
            model_uri = self._parent.log_model(best_model, input_example)
        self._parent.end("FINISHED")
        return model_uri

    def fail(self) -> None:
        self._parent.end("FAILED")
