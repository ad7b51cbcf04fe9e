"""MirroredStrategyRunner: run a TensorFlow function on N Spark tasks (spark-tensorflow-distributor's contract)."""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import cloudpickle

from sparkzoo.spark import init_spark
from sparkzoo.trainer.launcher import RankFailedError
from sparkzoo.trainer.relay import MessageRelay, RelayClient, print_output
from sparkzoo.trainer.tf_launcher import WorkerFailedError, run_child, run_tf_ranks
from sparkzoo.trainer.tf_ring import WorkerInfo

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

_GPU_TASK_AMOUNT = "spark.task.resource.gpu.amount"


class MirroredStrategyRunner:
    """Run ``fn`` in ``num_slots`` Spark barrier tasks, each a TensorFlow worker.

    The contract of spark-tensorflow-distributor (code ports by changing the import):
    ``TF_CONFIG`` is set in every task, ``fn`` creates its
    ``tf.distribute.MultiWorkerMirroredStrategy`` itself, and ``run(fn, **kwargs)`` returns
    rank 0's return value. Each worker runs in a fresh process of its task, so any number of
    runs can follow one another on one SparkSession; its gRPC server listens on the task's
    own address only. What the workers print appears on the driver as ``[rank]<stdout>: ...``;
    an exception in any worker is raised on the driver as
    :class:`~sparkzoo.trainer.RankFailedError`, with that worker's traceback.

    - ``num_slots``: the number of workers (``>= 1``, at most the cluster's task slots; with
      ``use_gpu``, GPUs: one task per ``spark.task.resource.gpu.amount`` GPUs).
    - ``local_mode=True``: ``fn`` runs on the driver alone (in a child process too, without
      ``TF_CONFIG``), for debugging; on CPU ``num_slots`` must then be 1.
    - ``use_gpu=True``: each worker sees the GPUs Spark assigned to its task (Spark resource
      ``gpu``); refused at once when Spark schedules no GPUs.

    Example::

        def train(epochs):
            import tensorflow as tf
            strategy = tf.distribute.MultiWorkerMirroredStrategy()
            with strategy.scope():
                model = ...  # build and compile
            model.fit(dataset.repeat(), steps_per_epoch=100, epochs=epochs)
            return model.get_weights()

        weights = MirroredStrategyRunner(num_slots=2).run(train, epochs=3)
    """

    def __init__(
        self,
        num_slots: int,
        local_mode: bool = False,
        use_gpu: bool = False,
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
        self.num_slots, self.local_mode, self.use_gpu = num_slots, local_mode, use_gpu
        self._spark = spark

    def _session(self) -> SparkSession:
        if self._spark is None:
            self._spark = init_spark()
        return self._spark

    def num_tasks(self) -> int:
        """How many Spark tasks (TensorFlow workers) a distributed run uses."""
        if not self.use_gpu:
            return self.num_slots
        conf = self._session().sparkContext.getConf()
        amount = conf.get(_GPU_TASK_AMOUNT, None)
        if amount is None or float(amount) < 1:
            raise ValueError(
                f"use_gpu=True but Spark schedules no GPUs ({_GPU_TASK_AMOUNT} is "
                f"{amount or 'not set'}); enable GPU-aware scheduling (spark.executor.resource."
                "gpu.amount, spark.task.resource.gpu.amount >= 1 and a discovery script) or "
                "run with use_gpu=False"
            )
        return -(-self.num_slots // int(float(amount)))

    def run(self, fn: Callable[..., Any], **kwargs: Any) -> Any:
        def child_fn(batches, info, client):
            return fn(**kwargs)

        if self.local_mode:
            return self._run_on_driver(child_fn)
        return run_tf_ranks(
            self._session(),
            self.num_tasks(),
            child_fn,
            on_message=print_output,
            use_gpu=self.use_gpu,
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
        addresses = list(resources["gpu"].addresses) if "gpu" in resources else []
        if len(addresses) < self.num_slots:
            raise ValueError(
                f"use_gpu=True in local_mode asks for {self.num_slots} GPUs but the driver has "
                f"{len(addresses)} (Spark resource 'gpu', spark.driver.resource.gpu.amount); "
                "run with use_gpu=False"
            )
        return addresses
