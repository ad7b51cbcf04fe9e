"""MirroredStrategyRunner: run a TensorFlow function on N Spark tasks (spark-tensorflow-distributor's contract)."""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from typing import Any

import cloudpickle
from pyspark.sql import SparkSession

from sparkzoo.spark import init_spark
from sparkzoo.trainer.launcher import RankFailedError
from sparkzoo.trainer.relay import MessageRelay, RelayClient, print_output
from sparkzoo.trainer.tf_launcher import WorkerFailedError, run_child, run_tf_ranks
from sparkzoo.trainer.tf_ring import WorkerInfo

_GPU_TASK_AMOUNT = "spark.task.resource.gpu.amount"


class MirroredStrategyRunner:
    """Run ``fn`` in ``num_slots`` Spark barrier tasks, each a TensorFlow worker.

    The contract of spark-tensorflow-distributor 1.0 (code ports by changing the import):
    ``TF_CONFIG`` is set in every task and ``run(fn, **kwargs)`` returns rank 0's return value.
    By default (``use_custom_strategy=False``) the runner makes the
    ``tf.distribute.MultiWorkerMirroredStrategy`` and calls ``fn`` inside its scope, so plain
    single-process Keras code (build, compile, ``fit``) trains one model across all workers:
    its variables are mirrored and its batches are the global batches. With
    ``use_custom_strategy=True``, ``fn`` makes and enters its own strategy. Each worker runs in
    a fresh process of its task, so any number of runs can follow one another on one
    SparkSession; its gRPC server listens on the task's own address only. What the workers
    print appears on the driver as ``[rank]<stdout>: ...``; an exception in any worker is
    raised on the driver as :class:`~sparkzoo.trainer.RankFailedError`, with that worker's
    traceback.

    - ``num_slots``: the number of workers (``>= 1``, at most the cluster's task slots; with
      ``use_gpu``, GPUs: one task per ``spark.task.resource.<gpu_resource_name>.amount`` GPUs).
    - ``local_mode=True``: ``fn`` runs on the driver alone (in a child process too, without
      ``TF_CONFIG``), for debugging; on CPU ``num_slots`` must then be 1.
    - ``use_gpu=True`` (the default, as in spark-tensorflow-distributor): each worker sees the
      GPUs Spark assigned to its task (Spark resource ``gpu_resource_name``); refused at once,
      with spark-tensorflow-distributor's own message, when Spark schedules no GPUs. Pass
      ``use_gpu=False`` for CPU training.
    - ``spark``: the session to run on (default: the active one, or :func:`init_spark`).

    Example (spark-tensorflow-distributor's README, with ``use_gpu=False`` on a CPU cluster)::

        def train():
            import tensorflow as tf
            model = tf.keras.Sequential([...])          # no strategy: the runner's scope
            model.compile(loss=..., optimizer=tf.keras.optimizers.SGD(0.001))
            model.fit(dataset, epochs=3, steps_per_epoch=5)  # batches of the global batch size
            return model.get_weights()

        weights = MirroredStrategyRunner(num_slots=2, use_gpu=False).run(train)
    """

    def __init__(
        self,
        num_slots: int,
        local_mode: bool = False,
        use_gpu: bool = True,
        gpu_resource_name: str = "gpu",
        use_custom_strategy: bool = False,
        spark: SparkSession | None = None,
    ):
        if not isinstance(num_slots, int) or num_slots < 1:
            raise ValueError(
                f"num_slots must be an integer >= 1, got {num_slots!r} (for a run on the driver "
                "alone, use local_mode=True with num_slots=1)"
            )
        if local_mode and not use_gpu and num_slots > 1:
            raise ValueError(
                f"local_mode on CPU runs one worker on the driver; got num_slots={num_slots} "
                "(use num_slots=1, or local_mode=False to spread the workers over the cluster)"
            )
        if not isinstance(gpu_resource_name, str) or not gpu_resource_name:
            raise ValueError(
                f"gpu_resource_name must be a resource name, got {gpu_resource_name!r}"
            )
        self.num_slots, self.local_mode, self.use_gpu = num_slots, local_mode, use_gpu
        self.gpu_resource_name = gpu_resource_name
        self.use_custom_strategy = bool(use_custom_strategy)
        self._spark = spark
        if use_gpu and not local_mode:
            self.num_tasks()  # as spark-tensorflow-distributor: a cluster without GPUs fails now

    def _session(self) -> SparkSession:
        if self._spark is None:
            self._spark = SparkSession.getActiveSession() or init_spark()
        return self._spark

    def num_tasks(self) -> int:
        """How many Spark tasks (TensorFlow workers) a distributed run uses."""
        if not self.use_gpu:
            return self.num_slots
        key = f"spark.task.resource.{self.gpu_resource_name}.amount"
        conf = self._session().sparkContext.getConf()
        if not conf.contains(key):
            # spark-tensorflow-distributor's own message, and what to do on a CPU cluster
            raise ValueError(
                "Your cluster might not have Spark GPU-aware scheduling enabled, please contact "
                f"your cluster administrator. The conf `{key}` was not found in the Spark "
                "configuration. (For CPU training, pass use_gpu=False.)"
            )
        amount = int(float(conf.get(key)))
        if amount < 1:
            raise ValueError(
                f"The Spark conf `{key}` has a value of {conf.get(key)} but it should not have "
                "a value less than 1."
            )
        return -(-self.num_slots // amount)

    def run(self, fn: Callable[..., Any], **kwargs: Any) -> Any:
        """Call ``fn(**kwargs)`` on every worker (inside the runner's strategy scope unless
        ``use_custom_strategy``); returns rank 0's return value (in local mode, ``fn``'s)."""
        use_custom_strategy = self.use_custom_strategy

        def child_fn(batches, info, client):
            if use_custom_strategy:
                return fn(**kwargs)
            return run_in_strategy_scope(fn, kwargs)

        if self.local_mode:
            return self._run_on_driver(child_fn)
        return run_tf_ranks(
            self._session(),
            self.num_tasks(),
            child_fn,
            on_message=print_output,
            use_gpu=self.use_gpu,
            gpu_resource=self.gpu_resource_name,
        )

    def _run_on_driver(self, child_fn) -> Any:
        env: dict[str, str | None] = {"TF_CONFIG": None, "CUDA_VISIBLE_DEVICES": ""}
        if self.use_gpu:
            env["CUDA_VISIBLE_DEVICES"] = ",".join(self._driver_gpus()[: self.num_slots])
        info = WorkerInfo(0, 1, 0, 1, 0, 1, "127.0.0.1", endpoints=(), rows=(0,), port=0)
        relay = MessageRelay("127.0.0.1", print_output)
        try:
            with (
                tempfile.TemporaryDirectory(prefix="sparkzoo-tf-driver-") as workdir,
                RelayClient(relay.address, 0) as client,
            ):
                try:
                    payload = run_child(workdir, child_fn, info, relay.address, env, client)
                except WorkerFailedError as exc:
                    errors = relay.of_kind("error")
                    if errors:
                        raise RankFailedError(
                            0, errors[0]["error"], errors[0].get("traceback", "")
                        ) from None
                    raise RankFailedError(0, str(exc)) from None
        finally:
            relay.close()
        return cloudpickle.loads(payload)

    def _driver_gpus(self) -> list[str]:
        resources = self._session().sparkContext.resources
        name = self.gpu_resource_name
        addresses = list(resources[name].addresses) if name in resources else []
        if len(addresses) < self.num_slots:
            raise ValueError(
                f"use_gpu=True in local_mode asks for {self.num_slots} GPUs but the driver has "
                f"{len(addresses)} (Spark resource {name!r}, spark.driver.resource.{name}.amount); "
                "run with use_gpu=False"
            )
        return addresses


def run_in_strategy_scope(fn: Callable[..., Any], kwargs: dict[str, Any]) -> Any:
    """``fn(**kwargs)`` inside a new ``MultiWorkerMirroredStrategy``'s scope: the workers of
    ``TF_CONFIG`` (or this process alone, without it) train one model. A ``fn`` that makes
    its own strategy is told to say ``use_custom_strategy=True``."""
    import tensorflow as tf

    strategy = tf.distribute.MultiWorkerMirroredStrategy()
    try:
        with strategy.scope():
            return fn(**kwargs)
    except (RuntimeError, ValueError) as exc:
        if "Mixing different tf.distribute.Strategy objects" in str(exc):
            raise RuntimeError(
                f"{getattr(fn, '__name__', fn)} makes its own tf.distribute strategy inside the "
                "runner's: construct MirroredStrategyRunner(..., use_custom_strategy=True) "
                f"({exc})"
            ) from exc
        raise
