"""MLflow tracking for a training run, from the driver.

Default store: ``./mlruns`` — an SQLite database ``./mlruns/mlflow.db`` with artifacts under
``./mlruns/artifacts`` (MLflow 3 retired its plain-file store). ``$MLFLOW_TRACKING_URI`` or the
estimator's ``tracking_uri`` point elsewhere (a server, another database).
"""

from __future__ import annotations

import os
import tempfile
import time
from typing import Any

DEFAULT_EXPERIMENT = "sparkzoo"


def default_tracking_uri() -> str:
    if os.environ.get("MLFLOW_TRACKING_URI"):
        return os.environ["MLFLOW_TRACKING_URI"]
    root = os.path.abspath("mlruns")
    os.makedirs(root, exist_ok=True)
    return f"sqlite:///{root}/mlflow.db"


def _artifact_root(tracking_uri: str) -> str | None:
    """Artifacts beside a local SQLite store; None lets a server decide."""
    if tracking_uri.startswith("sqlite:///"):
        db = tracking_uri[len("sqlite:///") :]
        return "file:" + os.path.join(os.path.dirname(os.path.abspath(db)), "artifacts")
    return None


class RunTracker:
    """One MLflow run: parameters, per-epoch metrics and the final Keras model."""

    def __init__(
        self, tracking_uri: str | None, experiment: str, run_name: str, params: dict[str, Any]
    ):
        import mlflow

        self._mlflow = mlflow
        self.tracking_uri = tracking_uri or default_tracking_uri()
        exported = os.environ.get("MLFLOW_TRACKING_URI")
        mlflow.set_tracking_uri(self.tracking_uri)
        # MLflow also exports the URI as $MLFLOW_TRACKING_URI, which every process started
        # later inherits (and default_tracking_uri() would then prefer): a notebook or a test
        # that trains once would send all its later runs, and its children's, to that store.
        if exported is None:
            os.environ.pop("MLFLOW_TRACKING_URI", None)
        else:
            os.environ["MLFLOW_TRACKING_URI"] = exported
        if mlflow.get_experiment_by_name(experiment) is None:
            mlflow.create_experiment(
                experiment, artifact_location=_artifact_root(self.tracking_uri)
            )
        mlflow.set_experiment(experiment)
        self.run = mlflow.start_run(run_name=run_name)
        self.run_id = self.run.info.run_id
        self._client = mlflow.MlflowClient(self.tracking_uri)
        mlflow.log_params({k: str(v)[:500] for k, v in params.items()})

    def log_epoch(self, epoch: int, metrics: dict[str, float]) -> None:
        """Log one epoch's metrics (safe from any thread: the run is named explicitly)."""
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        self._client.log_batch(
            self.run_id,
            metrics=[Metric(key, float(value), now, epoch) for key, value in metrics.items()],
        )

    def log_model(self, model_bytes: bytes) -> str:
        """Log the model (a ``.keras`` file's bytes) as an MLflow TensorFlow model."""
        import tensorflow as tf

        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "model.keras")
            with open(path, "wb") as handle:
                handle.write(model_bytes)
            model = tf.keras.models.load_model(path, compile=False)
            # Requirements named here: MLflow's own inference of them takes seconds.
            info = self._mlflow.tensorflow.log_model(
                model, name="model", pip_requirements=[f"tensorflow=={tf.__version__}"]
            )
        return info.model_uri

    def end(self, status: str = "FINISHED") -> None:
        self._mlflow.end_run(status=status)
