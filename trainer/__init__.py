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

Importing this package is cheap: each name below loads its module on first use (the
estimator and the model bring TensorFlow, the runners pyspark), and the processes that run
ranks import only the modules they need.
"""

from __future__ import annotations

from sparkzoo import stack
from sparkzoo.lazy import lazy_exports

# TensorFlow, PySpark, Horovod, NumPy and pyarrow come from the user's cluster: refuse, with the
# fix, a mix of versions that cannot work (sparkzoo/stack.py), before any of them is imported.
stack.check("sparkzoo.trainer")

_EXPORTS: dict[str, str] = {
    "HorovodRunner": "runner",
    "KerasEstimator": "estimator",
    "KerasModel": "model",
    "LogCallback": "callbacks",
    "MirroredStrategyRunner": "mirrored_runner",
    "RankFailedError": "launcher",
    "TrainingFailedError": "estimator",
    "log_to_driver": "relay",
}


# Names that run Spark jobs or are Spark ML stages need PySpark: the cluster's own, or the
# [spark] extra's.
_NEEDS = dict.fromkeys(
    ("HorovodRunner", "KerasEstimator", "KerasModel", "MirroredStrategyRunner", "RankFailedError",
     "TrainingFailedError"),
    "spark",
)  # fmt: skip

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, _NEEDS)

__all__ = sorted(_EXPORTS)
