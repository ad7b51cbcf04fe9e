"""The one thread policy of every process that runs TensorFlow for sparkzoo: a training rank,
a Python worker running a model in a Spark task, a bench loop.

Spark runs one Python worker per task slot, and the trainer one rank per slot, so each
process keeps to its share of the cores: ``threads`` intra-op threads (default: the cores
divided by the processes on the machine) and as many inter-op threads. TensorFlow runs
independent ops of a step at once, one per inter-op thread, each with the intra-op pool: two
inter-op threads beside one intra-op thread let a "one-thread" rank compute on two cores.
With two such ranks on two cores, four threads competed for two cores, and one rank alone
took one and a half cores, so two ranks looked slower than they were (docs/trainer.md,
"Speed"). ``tf.data`` runs the input pipeline on its own threads, whatever these are.
"""

from __future__ import annotations

import os

import tensorflow as tf


def configure_threads(threads: int | None = None, processes: int = 1) -> int:
    """Size TensorFlow's thread pools for this process (before its runtime starts; later
    calls keep the pools it has) and return the thread count asked for.

    Example::

        configure_threads(1)                    # a Spark worker's model
        configure_threads(None, local_size)     # a training rank: its share of the cores
    """
    threads = threads or max(1, (os.cpu_count() or 1) // max(1, processes))
    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)
    except RuntimeError:
        pass  # TensorFlow already started in this reused Python worker: keep its pools
    return threads


__all__ = ["configure_threads"]
