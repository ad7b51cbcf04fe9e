"""MLflow tracking for a training run, from the driver.

Default store: MLflow's own default, so that ``mlflow ui`` started in the same folder shows
the runs: ``$MLFLOW_TRACKING_URI`` if set, else whatever ``mlflow.get_tracking_uri()`` says
(MLflow 3: the SQLite file ``./mlflow.db``, artifacts under ``./mlruns``). A SQLite database
named explicitly (``tracking_uri="sqlite:///runs/mlflow.db"``) keeps its artifacts beside it.
"""

from __future__ import annotations

import os
import tempfile
import time
from typing import Any

import mlflow
from mlflow.entities import Metric
from mlflow.tracking._tracking_service import utils as tracking_utils

from sparkzoo import fs
from sparkzoo.trainer.pyfunc import log_pyfunc_model

DEFAULT_EXPERIMENT = "sparkzoo"


def default_tracking_uri() -> str:
    """The store MLflow itself would use here (``mlflow.get_tracking_uri()``)."""
    return mlflow.get_tracking_uri()


def _artifact_root(tracking_uri: str) -> str | None:
    """Artifacts beside a SQLite database (named explicitly); None lets a server decide."""
    if tracking_uri.startswith("sqlite:///"):
        db = tracking_uri[len("sqlite:///") :]
        return "file:" + os.path.join(os.path.dirname(os.path.abspath(db)), "artifacts")
    return None


class RunTracker:
    """One MLflow run: parameters, per-epoch metrics and the final Keras model."""

    def __init__(
        self, tracking_uri: str | None, experiment: str, run_name: str, params: dict[str, Any]
    ):
        self._mlflow = mlflow
        self.tracking_uri = tracking_uri or default_tracking_uri()
        # MLflow keeps the URI in a process-wide setting and exports it as
        # $MLFLOW_TRACKING_URI, which every process started later inherits: a notebook or a
        # test that trains once would send all its later runs, and its children's, to this
        # store. Both are put back as they were when the run ends.
        self._exported = os.environ.get("MLFLOW_TRACKING_URI")
        self._previous_uri = getattr(tracking_utils, "_tracking_uri", None)
        mlflow.set_tracking_uri(self.tracking_uri)
        try:
            if mlflow.get_experiment_by_name(experiment) is None:
                mlflow.create_experiment(
                    experiment,
                    artifact_location=_artifact_root(self.tracking_uri) if tracking_uri else None,
                )
            mlflow.set_experiment(experiment)
            self.run = mlflow.start_run(run_name=run_name)
        except BaseException:
            self._restore()
            raise
        self.run_id = self.run.info.run_id
        self._client = mlflow.MlflowClient(self.tracking_uri)
        mlflow.log_params({k: str(v)[:500] for k, v in params.items()})

    def _restore(self) -> None:
        self._mlflow.set_tracking_uri(self._previous_uri)
        if self._exported is None:
            os.environ.pop("MLFLOW_TRACKING_URI", None)
        else:
            os.environ["MLFLOW_TRACKING_URI"] = self._exported

    def log_epoch(self, epoch: int, metrics: dict[str, float]) -> None:
        """Log one epoch's metrics (safe from any thread: the run is named explicitly)."""
        now = int(time.time() * 1000)
        self._client.log_batch(
            self.run_id,
            metrics=[Metric(key, float(value), now, epoch) for key, value in metrics.items()],
        )

    def log_model(self, fitted, input_example=None, registered_model_name: str | None = None):
        """Log a fitted :class:`KerasModel` as an MLflow pyfunc model with a signature; its URI."""
        return log_pyfunc_model(fitted, input_example, registered_model_name)

    def log_tensorboard(self, logs: str) -> None:
        """Copy the run's TensorBoard event files (local or ``hdfs://``) into its artifacts,
        under ``tensorboard/``."""
        if not fs.exists(logs):
            return
        with tempfile.TemporaryDirectory(prefix="sparkzoo-tensorboard-") as temp:
            local = os.path.join(temp, "tensorboard")
            fs.get(logs, local)
            self._mlflow.log_artifacts(local, "tensorboard")

    def end(self, status: str = "FINISHED") -> None:
        try:
            self._mlflow.end_run(status=status)
        finally:
            self._restore()
