"""KerasEstimator: fit a Keras model on a Spark DataFrame with Horovod, as a Spark ML Estimator."""

from __future__ import annotations

import importlib.util
import logging
import shutil
import sys
import time
import warnings
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ClassVar

from pyspark.ml import Estimator
from pyspark.ml.util import MLReadable, MLWritable
from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql.types import BooleanType, NumericType

from sparkzoo import extras, fs
from sparkzoo import keras2 as keras
from sparkzoo.spark import in_background, slot_count
from sparkzoo.trainer.columns import check_shapes, prepare_columns
from sparkzoo.trainer.launcher import RankFailedError, check_slots, run_ranks
from sparkzoo.trainer.model import KerasModel
from sparkzoo.trainer.params import (
    NamedParamErrors,
    anything,
    at_least,
    best_checkpoint_value,
    best_of,
    column_names,
    gradient_compression,
    model_source,
    one_of,
    optional,
    positive,
    store_path,
    to_bool,
    to_dict,
    to_float,
    to_int,
    to_list,
    to_string,
    typed_param,
    validation_value,
    with_accessors,
)
from sparkzoo.trainer.persistence import EstimatorReader, EstimatorWriter
from sparkzoo.trainer.rank_training import (
    TrainingPlan,
    keras_model_bytes,
    model_compile_settings,
)
from sparkzoo.trainer.relay import Message, print_output
from sparkzoo.trainer.tf_launcher import run_tf_ranks
from sparkzoo.trainer.tf_training import train_rank as tf_train_rank

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

logger = logging.getLogger(__name__)

_VALIDATION_COLUMN = "__sparkzoo_is_validation"


class TrainingFailedError(RuntimeError):
    """Training failed on every attempt; ``cause`` is the last rank failure."""

    def __init__(self, message: str, cause: RankFailedError):
        super().__init__(message)
        self.cause = cause


class _EstimatorParams(NamedParamErrors):
    """The Params of :class:`KerasEstimator` (Horovod's ``KerasEstimator`` names where the two
    share a meaning)."""

    model = typed_param(
        "model", "a Keras model, or a zero-argument function that builds one", model_source
    )
    optimizer = typed_param(
        "optimizer", "a Keras optimizer or its name (learning rate before scaling)", anything
    )
    loss = typed_param(
        "loss", "a Keras loss (name, function or object), or a list, one per output", anything
    )
    loss_weights = typed_param(
        "loss_weights", "weights of the losses of a multi-output model (list or dict)", anything
    )
    metrics = typed_param("metrics", "Keras metrics", to_list)
    feature_cols = typed_param(
        "feature_cols",
        "feature columns: numbers, fixed-length arrays or ML vectors",
        column_names(),
    )
    label_cols = typed_param(
        "label_cols",
        "label columns ([] for a model that trains without labels)",
        column_names(allow_empty=True),
    )
    sample_weight_col = typed_param(
        "sample_weight_col",
        "a numeric column of per-row loss weights (Spark ML: weightCol)",
        optional(to_string),
    )
    output_cols = typed_param(
        "output_cols", "prediction columns the fitted model adds, one per output", column_names()
    )
    prediction_col = typed_param(
        "prediction_col",
        "a double column of the predicted class (argmax, or score >= 0.5 for one sigmoid "
        "output) added by the fitted model; None: none",
        optional(to_string),
    )
    probability_col = typed_param(
        "probability_col",
        "a Spark ML vector column of class scores added by the fitted model; None: none",
        optional(to_string),
    )
    batch_size = typed_param("batch_size", "batch size per worker", at_least(1))
    val_batch_size = typed_param(
        "val_batch_size",
        "validation batch size per worker (default: batch_size)",
        optional(at_least(1)),
    )
    epochs = typed_param("epochs", "number of epochs", at_least(1))
    train_steps_per_epoch = typed_param(
        "train_steps_per_epoch",
        "steps per epoch on every rank (default: ceil(rows / (batch_size * workers)))",
        optional(at_least(1)),
    )
    validation_steps_per_epoch = typed_param(
        "validation_steps_per_epoch",
        "validation steps per epoch on every rank",
        optional(at_least(1)),
    )
    num_workers = typed_param(
        "num_workers",
        "Horovod ranks (Spark barrier tasks); default: every task slot",
        optional(at_least(1)),
    )
    validation = typed_param(
        "validation",
        "fraction of rows held out for validation, the name of a boolean or 0/1 column whose "
        "true rows are held out, or a DataFrame",
        validation_value,
    )
    callbacks = typed_param("callbacks", "Keras callbacks run on every rank", to_list)
    checkpoint_callback = typed_param(
        "checkpoint_callback",
        "a Keras ModelCheckpoint (or Horovod's BestModelCheckpoint) with save_best_only: the "
        "returned model holds the weights of the best epoch by its monitor",
        best_checkpoint_value,
    )
    shuffle = typed_param("shuffle", "shuffle each rank's rows every epoch", to_bool)
    store = typed_param(
        "store",
        "directory for checkpoints and TensorBoard logs (local path or hdfs://, or an object "
        "with a prefix_path); default: a temporary one",
        store_path,
    )
    run_name = typed_param(
        "run_name", "name of the run: its store folder and MLflow run name", optional(to_string)
    )
    scale_lr = typed_param(
        "scale_lr",
        "multiply the learning rate by the number of workers (linear scaling)",
        to_bool,
    )
    warmup_epochs = typed_param(
        "warmup_epochs",
        "epochs of learning-rate warm-up from the unscaled rate",
        at_least(0.0, to_float),
    )
    backward_passes_per_step = typed_param(
        "backward_passes_per_step",
        "batches each rank runs forward and backward, accumulating their gradients, before "
        "one allreduce and one update: the update of a batch backward_passes_per_step times "
        "as large, with that many times fewer synchronisations (horovod engine)",
        at_least(1),
    )
    gradient_compression = typed_param(
        "gradient_compression",
        "'fp16' (or Horovod's hvd.Compression.fp16): gradients travel the allreduce as 16-bit "
        "floats, half the bytes, at 16-bit precision; None (default): in full precision "
        "(horovod engine)",
        gradient_compression,
    )
    gradient_clipnorm = typed_param(
        "gradient_clipnorm",
        "clip each gradient to this norm (None: off)",
        optional(at_least(0.0, to_float)),
    )
    max_retries = typed_param(
        "max_retries",
        "attempts after a failed one, each resuming from the checkpoint",
        at_least(0),
    )
    nan_policy = typed_param(
        "nan_policy",
        "rows with null/NaN features or labels: 'fail' or 'drop'",
        one_of("fail", "drop"),
    )
    memory_budget_mb = typed_param(
        "memory_budget_mb",
        "a rank's partition beyond this spills to local disk",
        positive(to_float),
    )
    threads_per_worker = typed_param(
        "threads_per_worker",
        "TensorFlow threads per rank (default: cores / ranks per host)",
        optional(at_least(1)),
    )
    tracking_uri = typed_param(
        "tracking_uri",
        "MLflow tracking URI (default: MLflow's own, $MLFLOW_TRACKING_URI or ./mlflow.db)",
        optional(to_string),
    )
    experiment_name = typed_param("experiment_name", "MLflow experiment", to_string)
    log_to_mlflow = typed_param("log_to_mlflow", "track the run in MLflow", to_bool)
    registered_model_name = typed_param(
        "registered_model_name",
        "register the logged model under this name in MLflow's Model Registry",
        optional(to_string),
    )
    tensorboard = typed_param(
        "tensorboard",
        "rank 0 writes TensorBoard event files to <store>/<run_name>/logs",
        to_bool,
    )
    custom_objects = typed_param(
        "custom_objects", "custom Keras objects needed to load the model", to_dict
    )
    seed = typed_param(
        "seed", "random seed: weights, data order, validation split, dropout", to_int
    )
    deterministic = typed_param(
        "deterministic",
        "TensorFlow's deterministic ops on every rank (slower, reproducible)",
        to_bool,
    )
    verbose = typed_param("verbose", "1: a line per epoch on the driver; 0: quiet", at_least(0))
    engine = typed_param(
        "engine",
        "'horovod' (Horovod ranks, Gloo allreduce), 'tf' (TensorFlow's "
        "MultiWorkerMirroredStrategy) or 'auto' (Horovod where it is installed, else tf)",
        one_of("auto", "horovod", "tf"),
    )


# Horovod's KerasEstimator Params that sparkzoo has no use for: what to do instead.
HOROVOD_ONLY_PARAMS = {
    "shuffle_buffer_size": "each rank shuffles its whole partition every epoch; use shuffle=True",
    "partitions_per_process": "each rank trains on exactly one partition of the DataFrame",
    "transformation_fn": "transform the DataFrame with Spark (or a pipeline stage) before fit",
    "train_reader_num_workers": "ranks read their partition's Arrow batches directly (no "
    "Petastorm reader)",
    "val_reader_num_workers": "ranks read their partition's Arrow batches directly (no "
    "Petastorm reader)",
    "reader_pool_type": "ranks read their partition's Arrow batches directly (no Petastorm reader)",
    "label_shapes": "label columns are reshaped to the model's output shapes by themselves",
    "compress_sparse_cols": "sparse vectors are made dense as each rank reads them",
    "mp_start_method": "ranks are Spark barrier tasks; there are no extra processes to start",
    "use_gpu": "each rank uses the GPU TensorFlow finds in its task",
    "run_id_prefix": "use run_name",
}
# Other names for Params: Horovod's and Spark ML's.
PARAM_ALIASES = {
    "num_proc": "num_workers",
    "random_seed": "seed",
    "run_id": "run_name",
    "weightCol": "sample_weight_col",
}


def translate_params(params: dict[str, Any]) -> dict[str, Any]:
    """Map Horovod's and Spark ML's names onto sparkzoo's; refuse Horovod-only knobs with what
    to use instead."""
    translated: dict[str, Any] = {}
    for name, value in params.items():
        if name in PARAM_ALIASES:
            target = PARAM_ALIASES[name]
            if target in params:
                raise TypeError(f"{name} and {target} name the same Param; give one of them")
            translated[target] = value
        elif name == "backend":
            translated["num_workers"] = _num_workers_of_backend(value)
        elif name == "inmemory_cache_all":
            if to_bool(value):  # keep every partition in memory: never spill
                translated.setdefault("memory_budget_mb", float("inf"))
        elif name in HOROVOD_ONLY_PARAMS:
            raise ValueError(
                f"KerasEstimator parameter {name!r} is Horovod's and has no use in sparkzoo: "
                f"{HOROVOD_ONLY_PARAMS[name]}"
            )
        else:
            translated[name] = value
    return translated


def _refuse_horovod_only_values(get) -> None:
    """The Params whose non-default values only the horovod engine has: what to do instead."""
    if get("backward_passes_per_step") > 1:
        raise ValueError(
            f"backward_passes_per_step={get('backward_passes_per_step')} needs the horovod "
            "engine (the classic stack); with engine='tf', use a larger batch_size "
            "(with scale_lr=True) for fewer synchronisations"
        )
    if get("gradient_compression"):
        raise ValueError(
            f"gradient_compression={get('gradient_compression')!r} needs the horovod engine "
            "(the classic stack); TensorFlow's collectives allreduce the gradients as they are"
        )


def _num_workers_of_backend(backend) -> int | None:
    """Horovod's ``SparkBackend(num_proc=N)`` says how many processes to run, nothing more."""
    if backend is None:
        return None
    count = getattr(backend, "num_processes", None)
    if callable(count):
        return count()
    raise ValueError(
        f"backend={type(backend).__name__} is Horovod's process launcher; sparkzoo runs each "
        "rank as a Spark barrier task itself: pass num_workers (or num_proc) instead"
    )


@with_accessors
class KerasEstimator(Estimator, _EstimatorParams, MLReadable, MLWritable):
    """Train a Keras model on a DataFrame with Horovod, each rank on its own partition.

    ``fit(df)`` repartitions ``df`` into ``num_workers`` partitions and runs them as a Spark
    barrier stage: every task is a Horovod rank that reads its partition's Arrow batches
    (spilling to local disk past ``memory_budget_mb``), trains with ``hvd.DistributedOptimizer``
    and the same number of steps per epoch as every other rank. Rank 0 checkpoints each epoch
    to ``store``; a failed attempt is retried from the last checkpoint up to ``max_retries``
    times. Parameters, per-epoch metrics (averaged over ranks) and the final model (an MLflow
    pyfunc model with a signature) go to MLflow. Returns a :class:`KerasModel`.

    Every Param has ``setX``/``getX`` accessors (``setBatchSize``, ``getFeatureCols``, ...);
    Horovod's ``num_proc``, ``random_seed``, ``run_id`` and Spark ML's ``weightCol`` are
    accepted as other names. The estimator saves and loads as a Spark ML stage
    (``write().save(path)``, ``KerasEstimator.load(path)``), inside a ``Pipeline`` too.

    Example::

        est = KerasEstimator(model=build_lenet, optimizer=keras.optimizers.Adam(1e-3),
                             loss="sparse_categorical_crossentropy", metrics=["accuracy"],
                             feature_cols=["pixels"], label_cols=["label"],
                             batch_size=64, epochs=5, num_workers=2, validation=0.1,
                             output_cols=["scores"], prediction_col="prediction")
        fitted = est.fit(train_df)
        scored = fitted.transform(test_df)       # adds "scores" and "prediction"
    """

    _DEFAULTS: ClassVar[dict[str, Any]] = dict(
        optimizer="adam",
        loss=None,
        loss_weights=None,
        metrics=[],
        sample_weight_col=None,
        output_cols=["prediction"],
        prediction_col=None,
        probability_col=None,
        batch_size=32,
        val_batch_size=None,
        epochs=1,
        train_steps_per_epoch=None,
        validation_steps_per_epoch=None,
        num_workers=None,
        validation=None,
        callbacks=[],
        checkpoint_callback=None,
        shuffle=True,
        store=None,
        run_name=None,
        scale_lr=True,
        warmup_epochs=0.0,
        backward_passes_per_step=1,
        gradient_compression=None,
        gradient_clipnorm=None,
        max_retries=1,
        nan_policy="fail",
        memory_budget_mb=1024.0,
        threads_per_worker=None,
        tracking_uri=None,
        experiment_name="sparkzoo",
        log_to_mlflow=True,
        registered_model_name=None,
        tensorboard=True,
        custom_objects={},
        seed=0,
        deterministic=False,
        verbose=1,
        engine="auto",
    )

    def __init__(self, **params: Any):
        super().__init__()
        self._setDefault(**self._DEFAULTS)
        self.setParams(**params)
        # Called on the driver with every message the ranks send (``hello``, ``epoch`` with its
        # metrics, output lines, errors) as it arrives; not a Param (not saved). sparkzoo.tune
        # uses it to stop a trial early.
        self.message_listener: Callable[[Message], None] | None = None

    def setParams(self, **params: Any) -> KerasEstimator:
        """Set several Params at once (the constructor's keywords, aliases included)."""
        params = translate_params(params)
        unknown = sorted(set(params) - {p.name for p in self.params})
        if unknown:
            raise TypeError(
                f"unknown KerasEstimator parameters {unknown}; its parameters are "
                f"{sorted(p.name for p in self.params)}"
            )
        self._set(**params)
        return self

    def get(self, name: str) -> Any:
        """The value of parameter ``name`` (set or default)."""
        return self.getOrDefault(name)

    # Horovod's and Spark ML's accessor names for the same Params.
    def setNumProc(self, value: int) -> KerasEstimator:
        return self._set(num_workers=value)

    def getNumProc(self) -> int | None:
        return self.getOrDefault("num_workers")

    def setRandomSeed(self, value: int) -> KerasEstimator:
        return self._set(seed=value)

    def getRandomSeed(self) -> int:
        return self.getOrDefault("seed")

    def setRunId(self, value: str) -> KerasEstimator:
        return self._set(run_name=value)

    def getRunId(self) -> str | None:
        return self.getOrDefault("run_name")

    def setWeightCol(self, value: str) -> KerasEstimator:
        return self._set(sample_weight_col=value)

    def getWeightCol(self) -> str | None:
        return self.getOrDefault("sample_weight_col")

    # ---- persistence (Spark ML) -------------------------------------------------------------
    def write(self) -> EstimatorWriter:
        return EstimatorWriter(self)

    @classmethod
    def read(cls) -> EstimatorReader:
        return EstimatorReader(cls)

    # ---- fit -------------------------------------------------------------------------------
    def _fit(self, dataset: DataFrame) -> KerasModel:
        fit_start = time.perf_counter()
        spark = dataset.sparkSession
        get = self.get
        for required in ("model", "feature_cols", "label_cols"):
            if not self.isDefined(required) or get(required) is None:
                raise ValueError(f"KerasEstimator needs {required}=...")
        if resolve_engine(get("engine")) == "tf":
            _refuse_horovod_only_values(get)
        num_workers = get("num_workers") or slot_count(spark)
        check_slots(spark, num_workers)

        source = get("model")
        checked_slots = time.perf_counter()
        df, indicator = self._with_validation(dataset)
        # The columns are checked (a Spark job) while the model is built here.
        checking = in_background(
            prepare_columns,
            df,
            list(get("feature_cols")),
            list(get("label_cols")),
            get("nan_policy"),
            indicator,
            weight_col=get("sample_weight_col"),
        )
        model = source if isinstance(source, keras.Model) else source()
        built = time.perf_counter()
        compiled = self._compile_settings(model)
        if get("label_cols") and compiled["loss"] is None:
            raise ValueError(
                "KerasEstimator needs loss=... or a compiled model (or label_cols=[] for a "
                "model that computes its own loss)"
            )
        input_shapes = [tuple(t.shape[1:]) for t in model.inputs]
        output_shapes = [tuple(t.shape[1:]) for t in model.outputs]
        data = checking()
        check_shapes(data.features, input_shapes, "feature")
        if data.labels:
            check_shapes(data.labels, output_shapes, "label")
        columns_checked = time.perf_counter()
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
        # A temporary store goes whether the fit succeeds or fails (a failure must not leave
        # sparkzoo-store-* folders behind in the system temp folder).
        try:
            run_dir = fs.join(store, run_name)
            fs.check_writable(run_dir)

            plan = TrainingPlan(
                model_source=source
                if not isinstance(source, keras.Model)
                else keras_model_bytes(source),
                optimizer=_optimizer_config(compiled["optimizer"]),
                loss=compiled["loss"],
                loss_weights=compiled["loss_weights"],
                metrics=list(compiled["metrics"] or []),
                features=data.features,
                labels=data.labels,
                weight=data.weight,
                input_shapes=input_shapes,
                output_shapes=output_shapes,
                batch_size=get("batch_size"),
                val_batch_size=get("val_batch_size") or get("batch_size"),
                epochs=get("epochs"),
                train_steps=get("train_steps_per_epoch"),
                val_steps=get("validation_steps_per_epoch"),
                train_rows=train_rows,
                val_rows=data.indicator_rows,
                run_dir=run_dir,
                indicator=indicator,
                shuffle=get("shuffle"),
                seed=get("seed"),
                deterministic=get("deterministic"),
                scale_lr=get("scale_lr"),
                warmup_epochs=get("warmup_epochs"),
                backward_passes_per_step=get("backward_passes_per_step"),
                gradient_compression=get("gradient_compression"),
                gradient_clipnorm=get("gradient_clipnorm"),
                callbacks=list(get("callbacks")),
                best=best_of(get("checkpoint_callback")),
                memory_budget_bytes=get("memory_budget_mb") * 2**20,
                threads_per_worker=get("threads_per_worker"),
                custom_objects=get("custom_objects"),
                tensorboard=self._tensorboard(),
            )
            tracker = self._start_tracking(run_name, num_workers, data.rows, train_rows)
            try:
                result, timings = self._train_with_retries(
                    spark, num_workers, plan, data.df, tracker
                )
                fitted = KerasModel(
                    result["model_bytes"],
                    data.features,
                    input_shapes,
                    output_shapes,
                    get("output_cols"),
                    run_id=tracker.run_id if tracker else None,
                    history=result["history"],
                    custom_objects=get("custom_objects"),
                    prediction_col=get("prediction_col"),
                    probability_col=get("probability_col"),
                    label_cols=[s.name for s in data.labels],
                )
                started = timings.get("started")
                fitted.summary = {
                    "fit_s": time.perf_counter() - fit_start,
                    "startup_s": started - fit_start
                    if started
                    else None,  # fit() to the first step
                    "startup_phases": _startup_phases(
                        fit_start, checked_slots, built, columns_checked, timings
                    ),
                    "epoch_samples_per_s": timings["samples_per_s"],
                    "num_workers": num_workers,
                    "train_rows": train_rows,
                    "dropped_rows": data.dropped_rows,
                    "tensorboard_logs": fs.join(run_dir, "logs") if plan.tensorboard else None,
                }
                if tracker:
                    example = data.df.select(*get("feature_cols")).limit(2).toPandas()
                    fitted.model_uri = tracker.log_model(
                        fitted, example, get("registered_model_name")
                    )
                    if plan.tensorboard:
                        tracker.log_tensorboard(fs.join(run_dir, "logs"))
                    tracker.end("FINISHED")
            except BaseException:
                if tracker:
                    tracker.end("FAILED")
                raise
            return fitted
        finally:
            if temporary_store:
                shutil.rmtree(fs.local_path(store), ignore_errors=True)

    def _with_validation(self, dataset: DataFrame) -> tuple[DataFrame, str | None]:
        validation = self.get("validation")
        if validation is None:
            return dataset, None
        if isinstance(validation, DataFrame):
            weight = [self.get("sample_weight_col")] if self.get("sample_weight_col") else []
            columns = [*self.get("feature_cols"), *self.get("label_cols"), *weight]
            missing = [c for c in columns if c not in validation.columns]
            if missing:
                raise ValueError(f"the validation DataFrame lacks columns {missing}")
            train = dataset.select(*columns).withColumn(_VALIDATION_COLUMN, F.lit(False))
            val = validation.select(*columns).withColumn(_VALIDATION_COLUMN, F.lit(True))
            return train.unionByName(val), _VALIDATION_COLUMN
        if isinstance(validation, str):  # a column marking the validation rows
            return dataset.withColumn(
                _VALIDATION_COLUMN, _validation_flag(dataset, validation)
            ), _VALIDATION_COLUMN
        return dataset.withColumn(
            _VALIDATION_COLUMN, F.rand(self.get("seed")) < float(validation)
        ), _VALIDATION_COLUMN

    def _tensorboard(self) -> bool:
        """Whether rank 0 writes TensorBoard event files: the Param, where TensorBoard is
        installed. By default without it (a lean install on TensorFlow >= 2.16) the run writes
        none; asked for by name, the missing extra is named."""
        if not self.get("tensorboard") or not extras.missing("tensorboard"):
            return bool(self.get("tensorboard"))
        if self.isSet("tensorboard"):
            extras.require("tensorboard", "KerasEstimator(tensorboard=True)")
        logger.info("TensorBoard is not installed: no event files (sparkzoo[tensorboard])")
        return False

    def _compile_settings(self, model: Any) -> dict[str, Any]:
        """The loss, optimizer, metrics and loss weights every rank compiles with: each Param
        that was set, else the compiled model's own (its optimizer with its hyperparameters),
        else the Param's default. A Param set over a compiled model's own value wins, with a
        warning naming what it replaced."""
        names = ("loss", "optimizer", "metrics", "loss_weights")
        own = model_compile_settings(model)
        settings, replaced = {}, []
        for name in names:
            if self.isSet(name):
                settings[name] = self.getOrDefault(name)
                if own.get(name) not in (None, [], {}):
                    replaced.append(name)
            elif name in own:
                settings[name] = own[name]
            else:
                settings[name] = self.getOrDefault(name)
        if replaced:
            warnings.warn(
                f"KerasEstimator's {', '.join(replaced)} replace what the compiled model "
                f"{model.name!r} was compiled with ({_describe(own, replaced)}); leave "
                f"{'them' if len(replaced) > 1 else 'it'} unset to train with the model's own",
                UserWarning,
                stacklevel=4,
            )
        return settings

    def _start_tracking(self, run_name: str, num_workers: int, rows: int, train_rows: int):
        if not self.get("log_to_mlflow"):
            return None
        if extras.missing("mlflow"):
            if self.isSet("log_to_mlflow"):  # asked for by name: say what is missing
                extras.require("mlflow", "KerasEstimator(log_to_mlflow=True)")
            # The default without MLflow installed (a lean `pip install sparkzoo`): no run.
            logger.info("MLflow is not installed: the run is not tracked (sparkzoo[mlflow])")
            return None
        from sparkzoo.trainer.tracking import RunTracker  # MLflow loads only when it tracks

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

    def _train_with_retries(
        self, spark: SparkSession, num_workers: int, plan: TrainingPlan, df: DataFrame, tracker
    ) -> tuple[dict, dict]:
        verbose = self.get("verbose")
        retries = self.get("max_retries")
        timings: dict[str, Any] = {"samples_per_s": []}

        def on_message(message: Message) -> None:
            print_output(message)
            if message["kind"] in ("hello", "partition", "started"):
                timings.setdefault(message["kind"], time.perf_counter())
            if message["kind"] == "hello":  # the first task's start, on the driver's clock
                since = time.time() - message.get("task_start", time.time())
                timings.setdefault("task_start", time.perf_counter() - max(0.0, since))
            if message["kind"] == "epoch":
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
            if self.message_listener is not None:
                self.message_listener(message)

        run, train = engine_functions(self.get("engine"))

        def rank_fn(batches, ring, client):
            return train(plan, batches, ring, client)

        timings["submitted"] = time.perf_counter()
        for attempt in range(retries + 1):
            try:
                return run(spark, num_workers, rank_fn, df=df, on_message=on_message), timings
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


def _startup_phases(
    fit_start: float, checked_slots: float, built: float, columns_checked: float, timings: dict
) -> dict[str, float | None]:
    """Where ``startup_s`` went, in seconds: the slot check, the model built on the driver,
    what was left of the column check (a Spark job, run while the model is built), the plan and the run's record, the data repartitioned
    and the first barrier task started (``tasks_s``), that rank's ring formed (``ring_s``:
    Horovod or TensorFlow started, the rendezvous), its partition read, and the model built
    and compiled in the ranks until their first step."""
    marks = [
        ("slots_s", fit_start, checked_slots),
        ("driver_model_s", checked_slots, built),
        ("columns_s", built, columns_checked),
        ("plan_s", columns_checked, timings.get("submitted")),
        ("tasks_s", timings.get("submitted"), timings.get("task_start")),
        ("ring_s", timings.get("task_start"), timings.get("hello")),
        ("partition_s", timings.get("hello"), timings.get("partition")),
        ("first_step_s", timings.get("partition"), timings.get("started")),
    ]
    return {
        name: round(end - begin, 4) if begin is not None and end is not None else None
        for name, begin, end in marks
    }


def horovod_available() -> bool:
    """Horovod is installed here and built with TensorFlow (the classic stack)."""
    return importlib.util.find_spec("horovod") is not None


def resolve_engine(engine: str) -> str:
    """``auto`` -> ``horovod`` where Horovod is installed, else ``tf``; ``horovod`` without
    Horovod is refused with what to do instead."""
    if engine == "auto":
        return "horovod" if horovod_available() else "tf"
    if engine == "horovod" and not horovod_available():
        raise ValueError(
            "engine='horovod' needs Horovod, which is not installed in this environment (it "
            "builds only against TensorFlow <= 2.15, the classic stack: `make setup`); use "
            "engine='tf' (TensorFlow's MultiWorkerMirroredStrategy) here"
        )
    return engine


def engine_functions(engine: str):
    """The engine's launcher and rank training function: ``(run, train_rank)``."""
    if resolve_engine(engine) == "tf":
        return run_tf_ranks, tf_train_rank
    # Horovod is on the classic stack only: its training code loads where that engine runs.
    from sparkzoo.trainer.horovod_training import train_rank

    return run_ranks, train_rank


def format_epoch(message: Message) -> str:
    metrics = "  ".join(f"{k} {v:.4f}" for k, v in message["metrics"].items())
    return (
        f"epoch {message['epoch']}/{message['epochs']}  {metrics}  "
        f"{message['samples_per_s']:,.0f} samples/s  ({message['seconds']:.1f} s)"
    )


def _validation_flag(dataset: DataFrame, column: str):
    """The boolean column of ``validation=column``: a boolean column as it is, a numeric one's
    rows equal to 1 (its values must be 0 or 1); nulls train."""
    if column not in dataset.columns:
        raise ValueError(
            f"validation={column!r} names no column of the DataFrame (its columns: "
            f"{dataset.columns}); give a fraction, a boolean or 0/1 column, or a DataFrame"
        )
    kind = dataset.schema[column].dataType
    if isinstance(kind, BooleanType):
        return F.coalesce(F.col(column), F.lit(False))
    if isinstance(kind, NumericType):
        bad = dataset.where(~F.col(column).isin(0, 1)).select(column).limit(1).collect()
        if bad:
            raise ValueError(
                f"validation column {column!r} holds {bad[0][0]!r}; it must be boolean or 0/1"
            )
        return F.coalesce(F.col(column) == 1, F.lit(False))
    raise ValueError(
        f"validation column {column!r} is {kind.simpleString()}; it must be boolean or 0/1"
    )


def _describe(settings: dict[str, Any], names: list[str]) -> str:
    """``loss='mse', optimizer=Adam(learning_rate=0.01)``: short, for a warning."""
    parts = []
    for name in names:
        value = settings[name]
        if name == "optimizer" and not isinstance(value, str):
            rate = float(keras.backend.get_value(value.learning_rate))
            parts.append(f"optimizer={type(value).__name__}(learning_rate={rate:g})")
        else:
            parts.append(f"{name}={value!r}"[:80])
    return ", ".join(parts)


def _optimizer_config(optimizer: Any) -> Any:
    """A picklable form of the optimizer: its name, or Keras' serialized config."""
    if isinstance(optimizer, (str, dict)):
        return optimizer
    return keras.optimizers.serialize(optimizer)
