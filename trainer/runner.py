"""HorovodRunner: run a training function as N Horovod ranks on Spark (the Databricks contract)."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from sparkzoo.spark import init_spark, slot_count
from sparkzoo.trainer.launcher import run_ranks
from sparkzoo.trainer.local_ring import run_local_ranks
from sparkzoo.trainer.relay import print_output

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

DRIVER_LOG_VERBOSITIES = ("log_callback_only", "all")


class HorovodRunner:
    """Run ``fn`` as ``np`` Horovod ranks: Databricks' ``sparkdl.HorovodRunner`` contract.

    - ``np > 0``: ``np`` Spark barrier tasks on the cluster (``local[*]`` by default), each an
      initialised Horovod rank; ``np`` must not exceed the cluster's task slots (checked at
      once, never a hang).
    - ``np < 0``: ``-np`` ranks as child processes of the driver (a local Gloo ring), with all
      their output on the driver: for debugging before going to the cluster.
    - ``np == 0`` (deprecated by Databricks): one rank per task slot of the cluster.

    ``driver_log_verbosity`` says what the ranks of a cluster job show on the driver:
    ``"log_callback_only"`` (Databricks' default) only what they send with
    :func:`sparkzoo.trainer.log_to_driver` or :class:`sparkzoo.trainer.LogCallback` (their
    stdout/stderr stay in the executors' logs); ``"all"`` every line they print too, prefixed
    ``[rank]<stdout>:`` as ``horovodrun`` does.

    ``run(fn, **kwargs)`` ships ``fn`` and ``kwargs`` to the ranks (cloudpickle) and returns
    rank 0's return value. An exception in any rank is raised on the driver as
    :class:`~sparkzoo.trainer.RankFailedError`, with that rank's traceback.

    Example::

        def train(lr):
            import horovod.tensorflow.keras as hvd
            hvd.init()
            ...  # build, compile with hvd.DistributedOptimizer, fit
            return model.get_weights()

        weights = HorovodRunner(np=2, driver_log_verbosity="all").run(train, lr=0.1)
    """

    def __init__(
        self,
        *,
        np: int,
        driver_log_verbosity: str = "log_callback_only",
        spark: SparkSession | None = None,
    ):
        if isinstance(np, bool) or not isinstance(np, int):
            raise TypeError(f"np must be an integer, got {np!r}")
        if driver_log_verbosity not in DRIVER_LOG_VERBOSITIES:
            raise ValueError(
                f"driver_log_verbosity must be one of {list(DRIVER_LOG_VERBOSITIES)}, "
                f"got {driver_log_verbosity!r}"
            )
        if np == 0:
            warnings.warn(
                "HorovodRunner(np=0) is deprecated (as in Databricks): it uses every task slot "
                "of the cluster; give the number of ranks",
                DeprecationWarning,
                stacklevel=2,
            )
        self.num_processor = np  # Databricks' attribute name
        self.np = np
        self.driver_log_verbosity = driver_log_verbosity
        self._spark = spark

    def run(self, main: Callable[..., Any], **kwargs: Any) -> Any:
        """Run ``main(**kwargs)`` on every rank; return rank 0's value."""
        if self.np < 0:
            return run_local_ranks(-self.np, main, kwargs, on_message=print_output)
        spark = self._spark
        if spark is None:
            spark = init_spark()
        num_ranks = slot_count(spark) if self.np == 0 else self.np

        def rank_fn(batches, ring, client):
            for _ in batches:
                pass
            return main(**kwargs)

        return run_ranks(
            spark,
            num_ranks,
            rank_fn,
            on_message=print_output,
            forward_output=self.driver_log_verbosity == "all",
        )
