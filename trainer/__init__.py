"""The distributed trainer (``sparkzoo.trainer``): ranks run as Spark barrier tasks.

Two engines: Horovod (:func:`sparkzoo.trainer.launcher.run_ranks`, the classic stack) and
TensorFlow's MultiWorkerMirroredStrategy (:func:`sparkzoo.trainer.tf_launcher.run_tf_ranks`,
each rank a fresh child process of its task; the current stack). The front doors:

- :class:`HorovodRunner` runs a function as N Horovod ranks (the Databricks contract), with
  :func:`log_to_driver` and :class:`LogCallback` for what the ranks show on the driver;
- :class:`MirroredStrategyRunner` runs a function as N TensorFlow workers with ``TF_CONFIG``
  set (spark-tensorflow-distributor's contract);
- :class:`KerasEstimator` fits a Keras model on a DataFrame on either engine (``engine=``) and
  returns a :class:`KerasModel` Transformer for distributed inference; both are Spark ML
  stages (typed Params, save/load).
"""

from typing import Any

from sparkzoo.trainer.estimator import KerasEstimator, TrainingFailedError
from sparkzoo.trainer.launcher import RankFailedError
from sparkzoo.trainer.mirrored_runner import MirroredStrategyRunner
from sparkzoo.trainer.model import KerasModel
from sparkzoo.trainer.relay import log_to_driver
from sparkzoo.trainer.runner import HorovodRunner

__all__ = [
    "HorovodRunner",
    "KerasEstimator",
    "KerasModel",
    "LogCallback",
    "MirroredStrategyRunner",
    "RankFailedError",
    "TrainingFailedError",
    "log_to_driver",
]


def __getattr__(name: str) -> Any:
    # A Keras callback class: TensorFlow loads only when it is asked for.
    if name == "LogCallback":
        from sparkzoo.trainer.callbacks import LogCallback

        return LogCallback
    raise AttributeError(f"module 'sparkzoo.trainer' has no attribute {name!r}")
