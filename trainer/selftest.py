"""A check of the whole stack: Spark barrier tasks form a Horovod ring and allreduce."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import pyarrow as pa

from sparkzoo.trainer.horovod_ring import horovod_ring, require_horovod
from sparkzoo.trainer.launcher import check_slots

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

_SCHEMA = "rank long, size long, local_rank long, hostname string, allreduced array<double>"


@dataclass(frozen=True)
class AllreduceResult:
    """What every rank saw: its place in the ring and the allreduced tensor."""

    num_ranks: int
    expected: list[float]
    ranks: list[dict]

    @property
    def ok(self) -> bool:
        return (
            len(self.ranks) == self.num_ranks
            and sorted(r["rank"] for r in self.ranks) == list(range(self.num_ranks))
            and all(
                r["size"] == self.num_ranks and r["allreduced"] == self.expected for r in self.ranks
            )
        )


def _allreduce_partition(batches):
    for _ in batches:  # the input rows only give the stage its partitions
        pass
    with horovod_ring() as ring:
        import horovod.tensorflow as hvd
        import tensorflow as tf

        # rank r contributes [r+1, 2(r+1), 3(r+1)]; the sum over n ranks is k * n(n+1)/2
        mine = tf.constant([float(ring.rank + 1) * k for k in (1, 2, 3)], dtype=tf.float64)
        total = hvd.allreduce(mine, op=hvd.Sum, name="sparkzoo_selftest")
        row = {
            "rank": [hvd.rank()],
            "size": [hvd.size()],
            "local_rank": [hvd.local_rank()],
            "hostname": [ring.hostname],
            "allreduced": [total.numpy().tolist()],
        }
    yield pa.RecordBatch.from_pydict(row)


def allreduce_check(spark: SparkSession, num_ranks: int = 2) -> AllreduceResult:
    """Run ``num_ranks`` barrier tasks that init Horovod (Gloo) and allreduce a small tensor.

    Raises ``ValueError`` at once when the cluster has fewer task slots than ``num_ranks``
    (a barrier stage would otherwise wait for slots that never come), and
    ``HorovodMissingError`` naming ``make setup`` where Horovod is not installed.
    """
    require_horovod()
    check_slots(spark, num_ranks)
    n = num_ranks
    expected = [k * n * (n + 1) / 2 for k in (1, 2, 3)]
    rows = (
        spark.range(0, n, 1, numPartitions=n)
        .mapInArrow(_allreduce_partition, _SCHEMA, barrier=True)
        .collect()
    )
    return AllreduceResult(n, expected, [r.asDict() for r in rows])
