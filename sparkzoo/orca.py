"""BigDL Orca's face on sparkzoo, for programs leaving Orca / Analytics Zoo (both frozen).

Moving an Orca TF2 program means changing its imports and nothing else::

    from sparkzoo.orca import init_orca_context, stop_orca_context, OrcaContext  # was bigdl.orca
    from sparkzoo.orca import Estimator                      # was bigdl.orca.learn.tf2

    sc = init_orca_context(cluster_mode="local", cores=2, memory="2g")
    est = Estimator.from_keras(model_creator=model_creator, config=config, workers_per_node=2)
    stats = est.fit(train_df, epochs=2, batch_size=256, feature_cols=["user", "item"],
                    label_cols=["label"])             # one dict per epoch
    est.evaluate(test_df, feature_cols=[...], label_cols=[...])   # {"loss": ..., ...}
    est.predict(test_df, feature_cols=[...])          # the DataFrame plus "prediction"
    est.save("ncf.h5"); stop_orca_context()

Each call is a thin layer over :class:`~sparkzoo.trainer.KerasEstimator` and
:class:`~sparkzoo.trainer.KerasModel`: Spark barrier tasks train on their own partitions (the
``backend`` argument is accepted and makes no difference: there is no Ray). ``batch_size`` is
the global batch, as in Orca; each of the ``workers_per_node * num_nodes`` workers takes its
share. What differs from Orca is listed in docs/horovod-migration.md.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Callable
from typing import Any

import pandas as pd
from pyspark import SparkContext
from pyspark.sql import DataFrame, SparkSession

from sparkzoo import keras2 as keras
from sparkzoo.spark import init_spark
from sparkzoo.trainer.columns import prepare_columns
from sparkzoo.trainer.estimator import KerasEstimator
from sparkzoo.trainer.evaluation import evaluate as evaluate_on_spark
from sparkzoo.trainer.model import KerasModel
from sparkzoo.trainer.rank_training import keras_model_bytes

logger = logging.getLogger(__name__)

# Orca's cluster modes that sparkzoo starts or joins itself.
CLUSTER_MODES = ("local", "standalone", "spark-submit", "bigdl-submit")


class OrcaContext:
    """Orca's global context: the SparkSession the estimators run on."""

    _spark: SparkSession | None = None
    _started_here = False
    _num_nodes = 1
    # Orca's switches, kept for programs that set them (they change nothing here).
    log_output = False
    pandas_read_backend = "spark"
    serialize_data_creator = False

    @staticmethod
    def get_spark_session() -> SparkSession:
        if OrcaContext._spark is None:
            raise RuntimeError("no Orca context: call init_orca_context() first")
        return OrcaContext._spark

    @staticmethod
    def get_spark_context() -> SparkContext:
        return OrcaContext.get_spark_session().sparkContext


def init_orca_context(
    cluster_mode: str | None = None,
    runtime: str = "spark",
    cores: int = 2,
    memory: str = "2g",
    num_nodes: int = 1,
    init_ray_on_spark: bool = False,
    **kwargs: Any,
) -> SparkContext:
    """Start or join Spark as Orca does, and return its SparkContext.

    - ``"local"`` (the default): ``local[cores]`` with ``memory`` for the driver;
    - ``"standalone"``: the ``master=spark://...`` given, ``num_nodes`` executors of ``cores``
      cores and ``memory`` each;
    - ``"spark-submit"`` / ``"bigdl-submit"``: the session ``spark-submit`` configured.

    Other keyword arguments (``conf={...}``, ``master=``) go to Spark. YARN and Kubernetes
    modes are refused with what to do: run the program with ``spark-submit --master yarn``
    (or ``k8s://...``) and ``cluster_mode="spark-submit"``.
    """
    if runtime != "spark":
        raise ValueError(f"runtime={runtime!r}: sparkzoo runs on Spark only; use 'spark'")
    mode = cluster_mode or ("spark-submit" if "SPARK_ENV_LOADED" in os.environ else "local")
    if mode not in CLUSTER_MODES:
        raise ValueError(
            f"cluster_mode={mode!r} is not started by sparkzoo: submit the program with "
            "spark-submit --master yarn (or k8s://...) and use cluster_mode='spark-submit' "
            f"(modes: {', '.join(CLUSTER_MODES)})"
        )
    if not isinstance(cores, int) or cores < 1 or not isinstance(num_nodes, int) or num_nodes < 1:
        raise ValueError(f"cores and num_nodes must be integers >= 1, got {cores}, {num_nodes}")
    if init_ray_on_spark:
        logger.info("init_ray_on_spark=True: sparkzoo needs no Ray; the estimators run on Spark")
    conf = dict(kwargs.pop("conf", None) or {})
    master = kwargs.pop("master", None)
    existing = SparkSession.getActiveSession()
    if mode in ("spark-submit", "bigdl-submit"):
        spark = existing or SparkSession.builder.getOrCreate()
    elif mode == "local":
        settings = {"spark.driver.memory": memory, **conf}
        spark = existing or init_spark(
            master or f"local[{cores}]", app_name="sparkzoo-orca", **settings
        )
    else:
        if not master:
            raise ValueError("cluster_mode='standalone' needs master='spark://host:port'")
        settings = {
            "spark.executor.cores": str(cores),
            "spark.executor.memory": memory,
            "spark.cores.max": str(cores * num_nodes),
            **conf,
        }
        spark = existing or init_spark(master, app_name="sparkzoo-orca", **settings)
    OrcaContext._spark, OrcaContext._num_nodes = spark, num_nodes
    OrcaContext._started_here = existing is None and mode not in ("spark-submit", "bigdl-submit")
    return spark.sparkContext


def stop_orca_context() -> None:
    """Stop the Spark that :func:`init_orca_context` started (a joined one is left running)."""
    spark, OrcaContext._spark = OrcaContext._spark, None
    if spark is not None and OrcaContext._started_here:
        spark.stop()
    OrcaContext._started_here = False


class Estimator:
    """Orca's ``bigdl.orca.learn.tf2.Estimator``: its ``from_keras`` factory."""

    @staticmethod
    def from_keras(
        model_creator: Callable[[dict], Any] | None = None,
        config: dict | None = None,
        verbose: bool = False,
        workers_per_node: int = 1,
        compile_args_creator: Callable[[dict], dict] | None = None,
        backend: str = "spark",
        cpu_binding: bool = False,
        log_to_driver: bool = True,
        model_dir: str | None = None,
        **kwargs: Any,
    ) -> KerasOrcaEstimator:
        """An estimator of the Keras model that ``model_creator(config)`` returns, compiled
        (or compiled with ``compile_args_creator(config)``), trained by ``workers_per_node``
        workers on each of the context's nodes. ``backend`` ("spark", "ray", "tf2") changes
        nothing: every backend runs as Spark barrier tasks."""
        if model_creator is None:
            raise ValueError("Estimator.from_keras needs model_creator=, a function of config")
        if not isinstance(workers_per_node, int) or workers_per_node < 1:
            raise ValueError(f"workers_per_node must be an integer >= 1, got {workers_per_node!r}")
        return KerasOrcaEstimator(
            model_creator, config or {}, workers_per_node, compile_args_creator, verbose
        )


class KerasOrcaEstimator:
    """What :meth:`Estimator.from_keras` returns: fit / evaluate / predict / save / load."""

    def __init__(self, model_creator, config, workers_per_node, compile_args_creator, verbose):
        self.config = config
        self.workers_per_node = workers_per_node
        self.verbose = verbose
        self.model = model_creator(config)
        if compile_args_creator is not None:
            self.model.compile(**compile_args_creator(config))
        if not getattr(self.model, "_is_compiled", False):
            raise ValueError(
                "model_creator(config) returned a model that is not compiled: compile it there, "
                "or pass compile_args_creator=lambda config: dict(optimizer=..., loss=...)"
            )

    @property
    def num_workers(self) -> int:
        return self.workers_per_node * OrcaContext._num_nodes

    def fit(
        self,
        data: DataFrame | pd.DataFrame,
        epochs: int = 1,
        batch_size: int = 32,
        verbose: int = 1,
        callbacks: list | None = None,
        validation_data: DataFrame | pd.DataFrame | None = None,
        class_weight: dict | None = None,
        initial_epoch: int = 0,
        steps_per_epoch: int | None = None,
        validation_steps: int | None = None,
        validation_freq: int = 1,
        data_config: dict | None = None,
        feature_cols: list[str] | str | None = None,
        label_cols: list[str] | str | None = None,
    ) -> list[dict[str, float]]:
        """Train for ``epochs`` more epochs (a later ``fit`` goes on from these weights) on a
        Spark (or pandas) DataFrame; ``batch_size`` is the global batch. Returns one dict of
        the epoch's metrics per epoch, as Keras' history."""
        _refuse(class_weight=(class_weight, None), initial_epoch=(initial_epoch, 0),
                validation_freq=(validation_freq, 1))  # fmt: skip
        df = _spark_frame(data, "data")
        features, labels = (
            _columns(feature_cols, "feature_cols"),
            _columns(label_cols, "label_cols"),
        )
        estimator = KerasEstimator(
            model=self.model,
            feature_cols=features,
            label_cols=labels,
            batch_size=max(1, math.ceil(batch_size / self.num_workers)),
            epochs=epochs,
            num_workers=self.num_workers,
            callbacks=list(callbacks or []),
            train_steps_per_epoch=steps_per_epoch,
            validation_steps_per_epoch=validation_steps,
            verbose=verbose,
        )
        if validation_data is not None:
            estimator.setParams(validation=_spark_frame(validation_data, "validation_data"))
        fitted = estimator.fit(df)
        self.model.set_weights(fitted.keras_model().get_weights())
        history = fitted.history
        return [{k: float(v[i]) for k, v in history.items()} for i in range(epochs)]

    def evaluate(
        self,
        data: DataFrame | pd.DataFrame,
        batch_size: int = 32,
        num_steps: int | None = None,
        verbose: int = 1,
        sample_weight: Any = None,
        callbacks: list | None = None,
        data_config: dict | None = None,
        feature_cols: list[str] | str | None = None,
        label_cols: list[str] | str | None = None,
    ) -> dict[str, float]:
        """The model's loss and compiled metrics over every row, computed on the executors
        (``num_steps`` is accepted; every row counts)."""
        _refuse(sample_weight=(sample_weight, None))
        return evaluate_on_spark(
            self.model,
            _spark_frame(data, "data"),
            _columns(feature_cols, "feature_cols"),
            _columns(label_cols, "label_cols"),
            batch_size=max(batch_size, 1),
        )

    def predict(
        self,
        data: DataFrame | pd.DataFrame,
        batch_size: int = 32,
        verbose: int = 1,
        steps: int | None = None,
        callbacks: list | None = None,
        data_config: dict | None = None,
        feature_cols: list[str] | str | None = None,
        min_partition_num: int | None = None,
        output_cols: list[str] | None = None,
    ) -> DataFrame:
        """``data`` with the model's outputs added, in ``prediction`` (or ``output_cols``)."""
        df = _spark_frame(data, "data")
        # One pass over the feature columns: their kinds and widths (a bad column is named).
        features = prepare_columns(df, _columns(feature_cols, "feature_cols"), []).features
        scorer = KerasModel(
            keras_model_bytes(self.model),
            features,
            [tuple(t.shape[1:]) for t in self.model.inputs],
            [tuple(t.shape[1:]) for t in self.model.outputs],
            output_cols=list(output_cols or ["prediction"]),
            batch_size=max(batch_size, 1),
        )
        return scorer.transform(df)

    def get_model(self) -> Any:
        """The Keras model with the trained weights."""
        return self.model

    def save(self, filepath: str, overwrite: bool = True, include_optimizer: bool = True,
             **kwargs: Any) -> None:  # fmt: skip
        """The Keras model to ``filepath`` (``.h5``, ``.keras`` or a SavedModel folder)."""
        self.model.save(filepath, overwrite=overwrite, include_optimizer=include_optimizer,
                        **kwargs)  # fmt: skip

    def load(self, filepath: str, custom_objects: dict | None = None, compile: bool = True):
        """Load a Keras model saved by :meth:`save` (or by Keras) as this estimator's model."""
        self.model = keras.models.load_model(filepath, custom_objects=custom_objects,
                                             compile=compile)  # fmt: skip
        return self

    def save_weights(self, filepath: str, overwrite: bool = True, **kwargs: Any) -> None:
        self.model.save_weights(filepath, overwrite=overwrite, **kwargs)

    def load_weights(self, filepath: str, **kwargs: Any) -> None:
        self.model.load_weights(filepath, **kwargs)

    def shutdown(self) -> None:
        """Nothing to release: no worker outlives a call."""


def _columns(value: list[str] | str | None, name: str) -> list[str]:
    if value is None:
        raise ValueError(f"{name}= is needed: sparkzoo reads Spark DataFrames by column")
    return [value] if isinstance(value, str) else list(value)


def _spark_frame(data: Any, name: str) -> DataFrame:
    if isinstance(data, DataFrame):
        return data
    if isinstance(data, pd.DataFrame):
        return OrcaContext.get_spark_session().createDataFrame(data)
    raise TypeError(
        f"{name} must be a Spark or pandas DataFrame, got {type(data).__name__} (XShards and "
        "data creator functions are Orca's own: turn them into a DataFrame)"
    )


def _refuse(**given: tuple[Any, Any]) -> None:
    """Orca arguments that sparkzoo does not support, when set to anything but the default."""
    for name, (value, default) in given.items():
        if value is not None and value != default:
            raise ValueError(
                f"{name}={value!r} is not supported by sparkzoo's Orca estimator "
                "(docs/horovod-migration.md lists what differs from Orca)"
            )


__all__ = ["Estimator", "OrcaContext", "init_orca_context", "stop_orca_context"]
