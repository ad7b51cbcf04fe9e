"""KerasEstimator: fit a Keras model on a Spark DataFrame with Horovod, as a Spark ML Estimator."""

from __future__ import annotations

import shutil
import sys
import time
from typing import Any, ClassVar

from pyspark.ml import Estimator
from pyspark.ml.param import Param, Params

from sparkzoo import fs
from sparkzoo.spark import slot_count
from sparkzoo.trainer.columns import check_shapes, prepare_columns
from sparkzoo.trainer.launcher import RankFailedError, check_slots, run_ranks
from sparkzoo.trainer.model import KerasModel
from sparkzoo.trainer.rank_training import TrainingPlan, keras_model_bytes, train_rank
from sparkzoo.trainer.relay import Message, print_output

_VALIDATION_COLUMN = "__sparkzoo_is_validation"


class TrainingFailedError(RuntimeError):
    """Training failed on every attempt; ``cause`` is the last rank failure."""

    def __init__(self, message: str, cause: RankFailedError):
        super().__init__(message)
        self.cause = cause


def _param(name: str, doc: str) -> Param:
    return Param(Params._dummy(), name, doc)


class KerasEstimator(Estimator):
    """Train a Keras model on a DataFrame with Horovod, each rank on its own partition.

    ``fit(df)`` repartitions ``df`` into ``num_workers`` partitions and runs them as a Spark
    barrier stage: every task is a Horovod rank that reads its partition's Arrow batches
    (spilling to local disk past ``memory_budget_mb``), trains with ``hvd.DistributedOptimizer``
    and the same number of steps per epoch as every other rank. Rank 0 checkpoints each epoch
    to ``store``; a failed attempt is retried from the last checkpoint up to ``max_retries``
    times. Parameters, per-epoch metrics (averaged over ranks) and the final model go to MLflow.
    Returns a :class:`KerasModel`.

    Example::

        est = KerasEstimator(model=build_lenet, optimizer=tf.keras.optimizers.Adam(1e-3),
                             loss="sparse_categorical_crossentropy", metrics=["accuracy"],
                             feature_cols=["pixels"], label_cols=["label"],
                             batch_size=64, epochs=5, num_workers=2, validation=0.1)
        fitted = est.fit(train_df)
        scored = fitted.transform(test_df)       # adds "prediction"
    """

    model = _param("model", "a Keras model, or a zero-argument function that builds one")
    optimizer = _param("optimizer", "a Keras optimizer or its name (learning rate before scaling)")
    loss = _param("loss", "a Keras loss (name, function or object), or a list, one per output")
    metrics = _param("metrics", "Keras metrics")
    feature_cols = _param(
        "feature_cols", "feature columns: numbers, fixed-length arrays or ML vectors"
    )
    label_cols = _param("label_cols", "label columns")
    output_cols = _param("output_cols", "prediction columns the fitted model adds, one per output")
    batch_size = _param("batch_size", "batch size per worker")
    epochs = _param("epochs", "number of epochs")
    num_workers = _param(
        "num_workers", "Horovod ranks (Spark barrier tasks); default: every task slot"
    )
    validation = _param("validation", "fraction of rows held out for validation, or a DataFrame")
    callbacks = _param("callbacks", "Keras callbacks run on every rank")
    shuffle = _param("shuffle", "shuffle each rank's rows every epoch")
    store = _param("store", "directory for checkpoints (local path); default: a temporary one")
    run_name = _param("run_name", "name of the run: its store folder and MLflow run name")
    scale_lr = _param(
        "scale_lr", "multiply the learning rate by the number of workers (linear scaling)"
    )
    warmup_epochs = _param(
        "warmup_epochs", "epochs of learning-rate warm-up from the unscaled rate"
    )
    gradient_clipnorm = _param("gradient_clipnorm", "clip each gradient to this norm (None: off)")
    max_retries = _param(
        "max_retries", "attempts after a failed one, each resuming from the checkpoint"
    )
    nan_policy = _param("nan_policy", "rows with null/NaN features or labels: 'fail' or 'drop'")
    memory_budget_mb = _param(
        "memory_budget_mb", "a rank's partition beyond this spills to local disk"
    )
    threads_per_worker = _param(
        "threads_per_worker", "TensorFlow threads per rank (default: cores / ranks per host)"
    )
    tracking_uri = _param(
        "tracking_uri", "MLflow tracking URI (default: $MLFLOW_TRACKING_URI or ./mlruns)"
    )
    experiment_name = _param("experiment_name", "MLflow experiment")
    log_to_mlflow = _param("log_to_mlflow", "track the run in MLflow")
    custom_objects = _param("custom_objects", "custom Keras objects needed to load the model")
    seed = _param("seed", "random seed (validation split, shuffling)")
    verbose = _param("verbose", "1: a line per epoch on the driver; 0: quiet")

    _DEFAULTS: ClassVar[dict[str, Any]] = dict(
        optimizer="adam",
        metrics=[],
        output_cols=["prediction"],
        batch_size=32,
        epochs=1,
        num_workers=None,
        validation=None,
        callbacks=[],
        shuffle=True,
        store=None,
        run_name=None,
        scale_lr=True,
        warmup_epochs=0.0,
        gradient_clipnorm=None,
        max_retries=1,
        nan_policy="fail",
        memory_budget_mb=1024,
        threads_per_worker=None,
        tracking_uri=None,
        experiment_name="sparkzoo",
        log_to_mlflow=True,
        custom_objects={},
        seed=0,
        verbose=1,
    )

    def __init__(self, **params: Any):
        super().__init__()
        self._setDefault(**self._DEFAULTS)
        self.setParams(**params)

    def setParams(self, **params: Any) -> KerasEstimator:
        unknown = sorted(set(params) - {p.name for p in self.params})
        if unknown:
            raise TypeError(f"unknown KerasEstimator parameters {unknown}")
        self._set(**params)
        return self

    def get(self, name: str) -> Any:
        """The value of parameter ``name`` (set or default)."""
        return self.getOrDefault(name)

    # ---- fit -------------------------------------------------------------------------------
    def _fit(self, dataset) -> KerasModel:
        fit_start = time.perf_counter()
        spark = dataset.sparkSession
        get = self.get
        for required in ("model", "loss", "feature_cols", "label_cols"):
            if not self.isDefined(required) or get(required) is None:
                raise ValueError(f"KerasEstimator needs {required}=...")
        num_workers = get("num_workers") or slot_count(spark)
        check_slots(spark, num_workers)

        import tensorflow as tf

        source = get("model")
        model = source if isinstance(source, tf.keras.Model) else source()
        input_shapes = [tuple(t.shape[1:]) for t in model.inputs]
        output_shapes = [tuple(t.shape[1:]) for t in model.outputs]

        df, indicator = self._with_validation(dataset)
        data = prepare_columns(
            df, list(get("feature_cols")), list(get("label_cols")), get("nan_policy"), indicator
        )
        check_shapes(data.features, input_shapes, "feature")
        check_shapes(data.labels, output_shapes, "label")
        train_rows = data.rows - data.indicator_rows
        if train_rows < num_workers:
            raise ValueError(f"{train_rows} training rows cannot feed {num_workers} workers")
        if indicator and data.indicator_rows < num_workers:
            raise ValueError(
                f"{data.indicator_rows} validation rows cannot feed {num_workers} "
                "workers; use a larger validation set or fewer workers"
            )
        if data.dropped_rows:
            print(f"dropped {data.dropped_rows} rows with null or NaN values (nan_policy='drop')")

        run_name = get("run_name") or f"{model.name}-{time.strftime('%Y%m%d-%H%M%S')}"
        store, temporary_store = get("store"), get("store") is None
        if temporary_store:
            store = fs.local_temp_dir("sparkzoo-store-")
        run_dir = fs.join(store, run_name)
        fs.check_writable(run_dir)

        plan = TrainingPlan(
            model_source=source
            if not isinstance(source, tf.keras.Model)
            else keras_model_bytes(source),
            optimizer=_optimizer_config(get("optimizer")),
            loss=get("loss"),
            metrics=list(get("metrics")),
            features=data.features,
            labels=data.labels,
            input_shapes=input_shapes,
            output_shapes=output_shapes,
            batch_size=get("batch_size"),
            epochs=get("epochs"),
            train_rows=train_rows,
            val_rows=data.indicator_rows,
            run_dir=run_dir,
            indicator=indicator,
            shuffle=get("shuffle"),
            seed=get("seed"),
            scale_lr=get("scale_lr"),
            warmup_epochs=get("warmup_epochs"),
            gradient_clipnorm=get("gradient_clipnorm"),
            callbacks=list(get("callbacks")),
            memory_budget_bytes=int(get("memory_budget_mb") * 2**20),
            threads_per_worker=get("threads_per_worker"),
            custom_objects=get("custom_objects"),
        )
        tracker = self._start_tracking(run_name, num_workers, data.rows, train_rows)
        try:
            result, timings = self._train_with_retries(spark, num_workers, plan, data.df, tracker)
            fitted = KerasModel(
                result["model_bytes"],
                data.features,
                input_shapes,
                output_shapes,
                get("output_cols"),
                run_id=tracker.run_id if tracker else None,
                history=result["history"],
                custom_objects=get("custom_objects"),
            )
            started = timings.get("started")
            fitted.summary = {
                "fit_s": time.perf_counter() - fit_start,
                "startup_s": started - fit_start if started else None,  # fit() to the first step
                "epoch_samples_per_s": timings["samples_per_s"],
                "num_workers": num_workers,
                "train_rows": train_rows,
                "dropped_rows": data.dropped_rows,
            }
            if tracker:
                tracker.log_model(result["model_bytes"])
                tracker.end("FINISHED")
        except BaseException:
            if tracker:
                tracker.end("FAILED")
            raise
        if temporary_store:
            shutil.rmtree(fs.local_path(store), ignore_errors=True)
        return fitted

    def _with_validation(self, dataset):
        from pyspark.sql import DataFrame
        from pyspark.sql import functions as F

        validation = self.get("validation")
        if validation is None:
            return dataset, None
        if isinstance(validation, DataFrame):
            columns = [*self.get("feature_cols"), *self.get("label_cols")]
            missing = [c for c in columns if c not in validation.columns]
            if missing:
                raise ValueError(f"the validation DataFrame lacks columns {missing}")
            train = dataset.select(*columns).withColumn(_VALIDATION_COLUMN, F.lit(False))
            val = validation.select(*columns).withColumn(_VALIDATION_COLUMN, F.lit(True))
            return train.unionByName(val), _VALIDATION_COLUMN
        fraction = float(validation)
        if not 0.0 < fraction < 1.0:
            raise ValueError(
                f"validation must be a fraction in (0, 1) or a DataFrame, got {validation!r}"
            )
        return dataset.withColumn(
            _VALIDATION_COLUMN, F.rand(self.get("seed")) < fraction
        ), _VALIDATION_COLUMN

    def _start_tracking(self, run_name: str, num_workers: int, rows: int, train_rows: int):
        if not self.get("log_to_mlflow"):
            return None
        from sparkzoo.trainer.tracking import RunTracker

        logged = {
            p.name: self.getOrDefault(p)
            for p in self.params
            if self.isDefined(p)
            and p.name not in ("model", "callbacks", "custom_objects", "validation")
        }
        logged |= {
            "num_workers": num_workers,
            "rows": rows,
            "train_rows": train_rows,
            "model": getattr(
                self.get("model"), "name", getattr(self.get("model"), "__name__", "model")
            ),
        }
        return RunTracker(self.get("tracking_uri"), self.get("experiment_name"), run_name, logged)

    def _train_with_retries(self, spark, num_workers: int, plan: TrainingPlan, df, tracker) -> dict:
        verbose = self.get("verbose")
        retries = self.get("max_retries")
        timings: dict[str, Any] = {"samples_per_s": []}

        def on_message(message: Message) -> None:
            print_output(message)
            if message["kind"] == "started":
                timings.setdefault("started", time.perf_counter())
            elif message["kind"] == "epoch":
                timings["samples_per_s"].append(message["samples_per_s"])
                if tracker:
                    tracker.log_epoch(
                        message["epoch"],
                        message["metrics"] | {"samples_per_s": message["samples_per_s"]},
                    )
                if verbose:
                    print(format_epoch(message), flush=True)
            elif message["kind"] == "resumed" and verbose:
                print(
                    f"resuming run from its checkpoint after epoch {message['epoch']}", flush=True
                )
            elif message["kind"] == "partition" and verbose > 1:
                print(
                    f"rank {message['rank']}: {message['train_rows']} training rows, "
                    f"{message['val_rows']} validation rows"
                    f"{' (spilled to local disk)' if message['spilled'] else ''}",
                    flush=True,
                )

        def rank_fn(batches, ring, client):
            return train_rank(plan, batches, ring, client)

        for attempt in range(retries + 1):
            try:
                return run_ranks(spark, num_workers, rank_fn, df=df, on_message=on_message), timings
            except RankFailedError as failure:
                if attempt == retries:
                    raise TrainingFailedError(
                        f"training failed after {attempt + 1} attempt(s); last: {failure}", failure
                    ) from None
                print(
                    f"attempt {attempt + 1} failed ({failure.reason}, rank {failure.rank}); "
                    f"retrying from the last checkpoint",
                    file=sys.stderr,
                    flush=True,
                )
        raise AssertionError("unreachable")


def format_epoch(message: Message) -> str:
    metrics = "  ".join(f"{k} {v:.4f}" for k, v in message["metrics"].items())
    return (
        f"epoch {message['epoch']}/{message['epochs']}  {metrics}  "
        f"{message['samples_per_s']:,.0f} samples/s  ({message['seconds']:.1f} s)"
    )


def _optimizer_config(optimizer: Any) -> Any:
    """A picklable form of the optimizer: its name, or Keras' serialized config."""
    if isinstance(optimizer, (str, dict)):
        return optimizer
    import tensorflow as tf

    return tf.keras.optimizers.serialize(optimizer)
