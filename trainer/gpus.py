"""GPU-aware ranks: each rank sees only its own GPU(s). This module is the barrier task's side
and loads no TensorFlow.

On a cluster with GPUs Spark assigns each barrier task GPU addresses
(``spark.executor.resource.gpu.amount``, ``spark.task.resource.gpu.amount`` and a discovery
script; ``TaskContext.resources()["gpu"].addresses``). A rank then:

1. sets ``CUDA_VISIBLE_DEVICES`` to its task's addresses before TensorFlow starts
   (:func:`task_gpu_env`, in the barrier task);
2. once TensorFlow is imported, keeps the GPUs it should use visible and turns memory growth
   on (:func:`sparkzoo.trainer.rank_training.pin_gpus`, in the rank): the GPUs Spark gave it, or, when Spark assigned none (a cluster
   without GPU scheduling), the one GPU of its local rank. Without GPUs nothing changes.
"""

from __future__ import annotations

from typing import Any

FROM_SPARK = "SPARKZOO_GPUS_FROM_SPARK"  # set in a rank whose GPUs Spark assigned


def task_gpu_addresses(ctx: Any, resource: str = "gpu") -> list[str]:
    """The GPU addresses Spark assigned to the task of ``ctx`` (a ``TaskContext``) as its
    resource named ``resource``, or []."""
    resources = ctx.resources() if ctx is not None else {}
    return list(resources[resource].addresses) if resource in resources else []


def task_gpu_env(ctx: Any) -> dict[str, str]:
    """The environment a rank starts TensorFlow with: ``CUDA_VISIBLE_DEVICES`` = the task's
    GPU addresses (nothing when Spark assigned none).

    Example::

        task_gpu_env(BarrierTaskContext.get())   # {"CUDA_VISIBLE_DEVICES": "1", ...}
    """
    addresses = task_gpu_addresses(ctx)
    if not addresses:
        return {}
    return {"CUDA_VISIBLE_DEVICES": ",".join(addresses), FROM_SPARK: "1"}


__all__ = ["FROM_SPARK", "task_gpu_addresses", "task_gpu_env"]
