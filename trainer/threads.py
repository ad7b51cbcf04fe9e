"""The one thread policy of every process that runs TensorFlow for sparkzoo: a training rank,
a Python worker running a model in a Spark task, a bench loop.

Spark runs one Python worker per task slot, and the trainer one rank per slot, so each
process keeps to its share of the cores: ``threads`` intra-op threads (default: the cores
divided by the processes on the machine) and as many inter-op threads, except where a Python
generator feeds a ``tf.data`` pipeline (a training rank): there at least two, or the
generator and the step that consumes it wait on each other.
"""

from __future__ import annotations

import os

import tensorflow as tf


def configure_threads(
    threads: int | None = None, processes: int = 1, generator_fed: bool = False
) -> int:
    """Size TensorFlow's thread pools for this process (before its runtime starts; later
    calls keep the pools it has) and return the intra-op thread count asked for.

    Example::

        configure_threads(1)                                       # a Spark worker's model
        configure_threads(None, local_size, generator_fed=True)    # a training rank
    """
    threads = threads or max(1, (os.cpu_count() or 1) // max(1, processes))
    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(
            max(threads, 2) if generator_fed else threads
        )
    except RuntimeError:
        pass  # TensorFlow already started in this reused Python worker: keep its pools
    return threads


__all__ = ["configure_threads"]
