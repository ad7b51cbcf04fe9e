"""HorovodRunner: run a training function as N Horovod ranks on Spark (the Databricks contract)."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from typing import Any

from sparkzoo.trainer.launcher import run_ranks
from sparkzoo.trainer.relay import print_output


class HorovodRunner:
    """Run ``fn`` in ``np`` Spark barrier tasks, each an initialised Horovod rank.

    - ``np > 0``: ``np`` ranks on the cluster (``local[*]`` by default); ``np`` must not exceed
      the cluster's task slots (checked at once, never a hang).
    - ``np < 0``: ``fn`` runs on the driver alone as a single Horovod rank, for debugging.

    ``run(fn, **kwargs)`` ships ``fn`` and ``kwargs`` to the ranks (cloudpickle) and returns
    rank 0's return value. What the ranks print appears on the driver as ``[rank]<stdout>: ...``.
    An exception in any rank is raised on the driver as
    :class:`~sparkzoo.trainer.RankFailedError`, with that rank's traceback.

    Example::

        def train(lr):
            import horovod.tensorflow.keras as hvd
            ...  # build, compile with hvd.DistributedOptimizer, fit
            return model.get_weights()

        weights = HorovodRunner(np=2).run(train, lr=0.1)
    """

    def __init__(self, np: int, spark=None):
        if np == 0:
            raise ValueError("np must be > 0 (ranks on the cluster) or < 0 (driver only), not 0")
        self.np = np
        self._spark = spark

    def run(self, fn: Callable[..., Any], **kwargs: Any) -> Any:
        if self.np < 0:
            return _run_on_driver(fn, kwargs)
        spark = self._spark
        if spark is None:
            from sparkzoo.spark import init_spark

            spark = init_spark()

        def rank_fn(batches, ring, client):
            for _ in batches:
                pass
            return fn(**kwargs)

        return run_ranks(spark, self.np, rank_fn, on_message=print_output)


_HOROVOD_WORLD = (
    "HOROVOD_RANK",
    "HOROVOD_SIZE",
    "HOROVOD_LOCAL_RANK",
    "HOROVOD_LOCAL_SIZE",
    "HOROVOD_CROSS_RANK",
    "HOROVOD_CROSS_SIZE",
    "HOROVOD_GLOO_RENDEZVOUS_ADDR",
    "HOROVOD_GLOO_RENDEZVOUS_PORT",
)


def _run_on_driver(fn: Callable[..., Any], kwargs: dict[str, Any]) -> Any:
    import horovod.tensorflow as hvd

    saved = {
        key: os.environ.pop(key)
        for key in (*_HOROVOD_WORLD, "HOROVOD_CONTROLLER")
        if key in os.environ
    }
    os.environ["HOROVOD_CONTROLLER"] = "gloo"
    try:
        hvd.init()  # no rendezvous address: Gloo runs a world of one
        try:
            return fn(**kwargs)
        finally:
            with contextlib.suppress(Exception):
                hvd.shutdown()
    finally:
        os.environ.pop("HOROVOD_CONTROLLER", None)
        os.environ.update(saved)
