"""The distributed trainer (``sparkzoo.trainer``): Horovod ranks run as Spark barrier tasks.

Two front doors share one engine (:func:`sparkzoo.trainer.launcher.run_ranks`):

- :class:`HorovodRunner` runs a function as N Horovod ranks (the Databricks contract);
- :class:`KerasEstimator` fits a Keras model on a DataFrame and returns a :class:`KerasModel`
  Transformer for distributed inference.
"""

from sparkzoo.trainer.estimator import KerasEstimator, TrainingFailedError
from sparkzoo.trainer.launcher import RankFailedError
from sparkzoo.trainer.model import KerasModel
from sparkzoo.trainer.runner import HorovodRunner

__all__ = [
    "HorovodRunner",
    "KerasEstimator",
    "KerasModel",
    "RankFailedError",
    "TrainingFailedError",
]
