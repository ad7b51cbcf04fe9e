"""The distributed trainer (``sparkzoo.trainer``): Horovod ranks run as Spark barrier tasks.

Two front doors share one engine (:func:`sparkzoo.trainer.launcher.run_ranks`):

- :class:`HorovodRunner` runs a function as N Horovod ranks (the Databricks contract), with
  :func:`log_to_driver` and :class:`LogCallback` for what the ranks show on the driver;
- :class:`KerasEstimator` fits a Keras model on a DataFrame and returns a :class:`KerasModel`
  Transformer for distributed inference; both are Spark ML stages (typed Params, save/load).
"""

from typing import Any

from sparkzoo.trainer.estimator import KerasEstimator, TrainingFailedError
from sparkzoo.trainer.launcher import RankFailedError
from sparkzoo.trainer.model import KerasModel
from sparkzoo.trainer.relay import log_to_driver
from sparkzoo.trainer.runner import HorovodRunner

__all__ = [
    "HorovodRunner",
    "KerasEstimator",
    "KerasModel",
    "LogCallback",
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
