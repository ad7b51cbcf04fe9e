"""Hyperparameter search on the executors (``sparkzoo.tune``).

:func:`search` runs trials as Spark jobs, several at once, with Optuna's samplers (TPE, random,
grid) and pruners (median, successive halving) deciding on the driver; trials are fitted
:class:`~sparkzoo.trainer.KerasEstimator` copies or a function ``fn(params, report)``, every
trial an MLflow child run of the search's run. See docs/tune.md.

Importing this package is cheap: :func:`search` loads TensorFlow, pyspark and Optuna on first
use.
"""

from __future__ import annotations

from sparkzoo.lazy import lazy_exports

_EXPORTS: dict[str, str] = {
    "SearchResult": "driver",
    "search": "driver",
    "with_learning_rate": "driver",
}

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, dict.fromkeys(_EXPORTS, "tune"))

__all__ = sorted(_EXPORTS)
