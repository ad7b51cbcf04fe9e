"""What each TensorFlow worker runs to train on its own partition (the tf engine's ``train_rank``).

The engine-neutral parts (reading the partition, the model and optimizer from the plan, the
rank-0 epoch report and checkpoint, the result) are :mod:`.rank_training`'s; this module holds
what ``MultiWorkerMirroredStrategy`` does differently from Horovod:

- the model is built and compiled inside ``strategy.scope()`` (variables start from worker
  0's values; gradients and metrics are all-reduced by the strategy);
- each worker feeds its own partition through ``distribute_datasets_from_function`` (per-worker
  batches of ``batch_size``, no auto-sharding, no re-batching) and every dataset repeats: the
  workers agree on the steps per epoch from the plan, whatever their partitions' sizes;
- state on rank 0 only (a checkpoint to resume from) reaches the others by an all-reduce.

It runs in the fresh child process of a barrier task (:func:`.tf_launcher.run_tf_ranks`), with
``TF_CONFIG`` set.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from sparkzoo import keras2 as keras
from sparkzoo.trainer.checkpoint import CheckpointStore
from sparkzoo.trainer.feed import steps_for
from sparkzoo.trainer.rank_training import (
    TrainingPlan,
    _dataset,
    _make_optimizer,
    _result,
    build_model,
    compile_arguments,
    fit_and_report,
    start_rank,
)


def train_rank(plan: TrainingPlan, batches, ring, client) -> dict | None:
    """Train on this worker's partition; rank 0 returns the trained model and history."""
    tf.get_logger().setLevel("ERROR")
    train_buf, val_buf = start_rank(plan, ring, batches, client)
    strategy = tf.distribute.MultiWorkerMirroredStrategy()
    try:
        empty = float(train_buf.rows == 0 or (plan.indicator is not None and val_buf.rows == 0))
        if _all_reduce_sum(strategy, np.array([empty]))[0] > 0:
            raise ValueError(
                "a rank received no training or no validation rows; use fewer workers "
                "or more data (every rank needs rows of both)"
            )
        return _fit(plan, strategy, ring, client, train_buf, val_buf)
    finally:
        train_buf.close()
        val_buf.close()


def _all_reduce_sum(strategy, values: np.ndarray) -> np.ndarray:
    """``values`` summed over the workers (float64)."""
    tensor = tf.constant(values, tf.float64)
    return strategy.reduce(tf.distribute.ReduceOp.SUM, tensor, axis=None).numpy()


def _from_rank0(strategy, rank: int, arrays: list[np.ndarray]) -> list[np.ndarray]:
    """Rank 0's ``arrays`` on every worker (the others pass arrays of the same shapes)."""
    if not arrays:
        return []
    flat = np.concatenate([np.asarray(a, np.float64).ravel() for a in arrays])
    summed = _all_reduce_sum(strategy, flat if rank == 0 else np.zeros_like(flat))
    out, start = [], 0
    for array in arrays:
        size = int(np.prod(np.shape(array)))
        chunk = summed[start : start + size].reshape(np.shape(array))
        out.append(chunk.astype(np.asarray(array).dtype))
        start += size
    return out


def _distributed(strategy, plan: TrainingPlan, arrays: list[np.ndarray], batch_size, shuffle, rank):
    """This worker's rows as its replica's batches: no auto-sharding, no re-batching."""

    def per_worker(_context):
        dataset = _dataset(plan, arrays, batch_size, shuffle, rank)
        options = tf.data.Options()
        options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.OFF
        return dataset.with_options(options)

    return strategy.distribute_datasets_from_function(per_worker)


def _fit(plan, strategy, ring, client, train_buf, val_buf) -> dict | None:
    train = _distributed(
        strategy, plan, train_buf.arrays(), plan.batch_size, plan.shuffle, ring.rank
    )
    steps = plan.train_steps or steps_for(plan.train_rows, plan.batch_size, ring.size)
    validation = {}
    if plan.indicator:
        val_batch = plan.val_batch_size or plan.batch_size
        validation = {
            "validation_data": _distributed(strategy, plan, val_buf.arrays(), val_batch, False, 0),
            "validation_steps": plan.val_steps or steps_for(plan.val_rows, val_batch, ring.size),
        }

    with strategy.scope():
        model = build_model(plan.model_source, plan.custom_objects)
        optimizer = _make_optimizer(plan, ring.size)
        model.compile(optimizer=optimizer, **compile_arguments(plan))
        model.optimizer.build(model.trainable_variables)

    checkpoints = CheckpointStore(plan.run_dir)
    history: dict[str, list] = {}
    saved = checkpoints.load() if ring.rank == 0 else None
    (start_epoch,) = _from_rank0(strategy, ring.rank, [np.array(saved.epoch if saved else 0)])
    start_epoch = int(start_epoch)
    if start_epoch:
        weights = _from_rank0(
            strategy,
            ring.rank,
            saved.model_weights
            if saved
            else [np.zeros(w.shape, w.dtype.as_numpy_dtype) for w in model.weights],
        )
        slots = _from_rank0(
            strategy,
            ring.rank,
            saved.optimizer_weights
            if saved
            else [np.zeros(v.shape, v.dtype.as_numpy_dtype) for v in model.optimizer.variables],
        )
        model.set_weights(weights)
        for variable, value in zip(model.optimizer.variables, slots, strict=True):
            variable.assign(value)
        history = saved.history if saved else {}
    if start_epoch >= plan.epochs:
        client.send("resumed", epoch=start_epoch, finished=True)
        weights = model.get_weights()  # on every rank: a collective read under the strategy
        return _result(model, history, start_epoch, weights) if ring.rank == 0 else None
    if start_epoch:
        client.send("resumed", epoch=start_epoch, finished=False)

    callbacks = []
    if plan.warmup_epochs > 0:
        callbacks.append(
            _warmup_callback(
                float(keras.backend.get_value(model.optimizer.learning_rate)),
                ring.size,
                plan.warmup_epochs,
                steps,
            )
        )
    return fit_and_report(
        plan, ring, client, model, train, steps, start_epoch, callbacks, validation,
        checkpoints, history,
    )  # fmt: skip


def _warmup_callback(target_lr: float, size: int, warmup_epochs: float, steps_per_epoch: int):
    """Horovod's learning-rate warm-up: from ``target_lr / size`` to ``target_lr``, linearly
    over ``warmup_epochs`` epochs (Goyal et al.), the same on every worker."""

    class Warmup(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self._epoch = 0

        def on_epoch_begin(self, epoch, logs=None):
            self._epoch = epoch

        def on_train_batch_begin(self, batch, logs=None):
            progress = (self._epoch + batch / steps_per_epoch) / warmup_epochs
            if progress <= 1.0:
                lr = target_lr / size * (1 - progress) + target_lr * progress
                self.model.optimizer.learning_rate.assign(lr)

    return Warmup()
