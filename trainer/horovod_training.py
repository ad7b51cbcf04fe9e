"""What each Horovod rank runs to train on its own partition (the horovod engine's ``train_rank``).

The engine-neutral parts (reading the partition, the model and optimizer from the plan, the
rank-0 epoch report and checkpoint, the result) are :mod:`.rank_training`'s; this module holds
what Horovod does: the partition sizes and the epoch to resume from agreed by collectives,
``hvd.DistributedOptimizer``, rank 0's weights broadcast and the metrics averaged, the
learning-rate warm-up.

It runs in the Spark barrier task that is the rank (:func:`.launcher.run_ranks`). Horovod is
on the classic stack only: the estimator imports this module when it trains on that engine
(:func:`sparkzoo.trainer.estimator.engine_functions`).
"""

from __future__ import annotations

import horovod.tensorflow as hvd_tf
import horovod.tensorflow.keras as hvd
import tensorflow as tf

from sparkzoo.trainer.checkpoint import CheckpointStore
from sparkzoo.trainer.feed import steps_for
from sparkzoo.trainer.rank_training import (
    TrainingPlan,
    _dataset,
    _make_optimizer,
    _result,
    build_model,
    fit_and_report,
    start_rank,
)


def train_rank(plan: TrainingPlan, batches, ring, client) -> dict | None:
    """Train on this rank's partition; rank 0 returns the trained model and history."""
    tf.get_logger().setLevel("ERROR")
    # Layer and variable names must match across ranks (Horovod pairs tensors by name), but a
    # reused Python worker has counted up Keras' name counters in earlier tasks.
    tf.keras.backend.clear_session()
    train_buf, val_buf = start_rank(plan, ring, batches, client)
    try:
        counts = tf.constant([train_buf.rows, val_buf.rows if plan.indicator else 1], tf.int64)
        fewest = hvd_tf.allreduce(counts, op=hvd_tf.Min, name="sparkzoo.partition_rows").numpy()
        if fewest.min() == 0:
            raise ValueError(
                "a rank received no training or no validation rows; use fewer workers "
                "or more data (every rank needs rows of both)"
            )
        return _fit(plan, ring, client, train_buf, val_buf)
    finally:
        train_buf.close()
        val_buf.close()


def _fit(plan, ring, client, train_buf, val_buf) -> dict | None:
    train_ds = _dataset(plan, train_buf.arrays(), plan.batch_size, plan.shuffle, ring.rank)
    steps = plan.train_steps or steps_for(plan.train_rows, plan.batch_size, ring.size)
    validation = {}
    if plan.indicator:
        val_batch = plan.val_batch_size or plan.batch_size
        validation = {
            "validation_data": _dataset(plan, val_buf.arrays(), val_batch, False, 0),
            "validation_steps": plan.val_steps or steps_for(plan.val_rows, val_batch, ring.size),
        }

    model = build_model(plan.model_source, plan.custom_objects)
    optimizer = _make_optimizer(plan, ring.size)
    model.compile(
        optimizer=hvd.DistributedOptimizer(optimizer),
        loss=plan.loss,
        loss_weights=plan.loss_weights,
        metrics=list(plan.metrics),
    )

    checkpoints = CheckpointStore(plan.run_dir)
    history: dict[str, list] = {}
    start_epoch = 0
    # Build the optimizer's slots now, on every rank alike: Horovod pairs the ranks' variables
    # by name, and slots built lazily in the first step get other names than these.
    model.optimizer.build(model.trainable_variables)
    if ring.rank == 0:
        saved = checkpoints.load()
        if saved is not None:
            model.set_weights(saved.model_weights)
            for variable, value in zip(
                model.optimizer.variables, saved.optimizer_weights, strict=True
            ):
                variable.assign(value)
            start_epoch, history = saved.epoch, saved.history
    start_epoch = hvd_tf.broadcast_object(start_epoch, root_rank=0, name="sparkzoo.start_epoch")
    if start_epoch >= plan.epochs:
        client.send("resumed", epoch=start_epoch, finished=True)
        return _result(model, history, start_epoch) if ring.rank == 0 else None
    if start_epoch:
        client.send("resumed", epoch=start_epoch, finished=False)

    callbacks = [
        hvd.callbacks.BroadcastGlobalVariablesCallback(0),
        hvd.callbacks.MetricAverageCallback(),
    ]
    if plan.warmup_epochs > 0:
        callbacks.append(
            hvd.callbacks.LearningRateWarmupCallback(
                initial_lr=float(tf.keras.backend.get_value(model.optimizer.learning_rate)),
                warmup_epochs=plan.warmup_epochs,
                steps_per_epoch=steps,
                verbose=0,
            )
        )
    return fit_and_report(
        plan, ring, client, model, train_ds, steps, start_epoch, callbacks, validation,
        checkpoints, history,
    )  # fmt: skip
