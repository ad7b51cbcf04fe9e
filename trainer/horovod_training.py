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
    """Train on this rank's partition; rank 0 returns the trained model and history."""
    tf.get_logger().setLevel("ERROR")
    # Layer and variable names must match across ranks (Horovod pairs tensors by name), but a
    # reused Python worker has counted up Keras' name counters in earlier tasks.
    keras.backend.clear_session()
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


def fuse_gradients(optimizer, compression=hvd.Compression.none):
    """``optimizer`` (a ``hvd.DistributedOptimizer``) averaging all its dense gradients in one
    allreduce per step, of one flat tensor per dtype.

    Horovod's own allreduce takes each gradient as the backward pass produces it, and fuses
    what is ready in each cycle (1 ms): a step of LeNet-5 became 4-5 Gloo allreduces of 1-5
    tensors, each about 2 ms on a 2-core machine, which cost more than the step's compute
    (docs/trainer.md, "Speed"). ``num_groups=1`` did not make them one. Sparse gradients
    (``tf.IndexedSlices``, from embeddings) keep Horovod's own path. Horovod 0.28.1 is its last
    release, so the attribute this sets stays where it is. A one-rank ring has nothing to
    average: its optimizer is left as it is. ``compression`` is the optimizer's own (Horovod's
    ``hvd.Compression``).
    """
    if hvd_tf.size() == 1:
        return optimizer
    unfused = optimizer._allreduce_grads

    def allreduce_grads(grads, variables):
        grads = list(grads)
        dense = [
            i for i, g in enumerate(grads) if g is not None and not isinstance(g, tf.IndexedSlices)
        ]
        sparse = [i for i, g in enumerate(grads) if isinstance(g, tf.IndexedSlices)]
        if sparse:
            reduced = unfused([grads[i] for i in sparse], [variables[i] for i in sparse])
            for i, g in zip(sparse, reduced, strict=True):
                grads[i] = g
        by_dtype: dict[tf.DType, list[int]] = {}
        for i in dense:
            by_dtype.setdefault(grads[i].dtype, []).append(i)
        for dtype, members in by_dtype.items():
            parts = [grads[i] for i in members]
            flat = tf.concat([tf.reshape(g, [-1]) for g in parts], axis=0)
            flat = hvd_tf.allreduce(
                flat,
                op=hvd_tf.Average,
                name=f"sparkzoo.grads.{dtype.name}",
                compression=compression,
            )
            pieces = tf.split(flat, [tf.size(g) for g in parts])
            for i, g, piece in zip(members, parts, pieces, strict=True):
                grads[i] = tf.reshape(piece, tf.shape(g))
        return grads

    optimizer._allreduce_grads = allreduce_grads
    helper = optimizer._agg_helper  # backward_passes_per_step > 1: it kept the unfused one
    if helper is not None:  # Horovod's eager and graph helpers name it differently
        eager = hasattr(helper, "allreduce_grads")
        setattr(helper, "allreduce_grads" if eager else "_allreduce_grads", allreduce_grads)
    return optimizer


def distributed_optimizer(
    optimizer, backward_passes_per_step: int = 1, gradient_compression: str | None = None
):
    """``optimizer`` as a ``hvd.DistributedOptimizer`` with fused gradients.

    With ``backward_passes_per_step`` k > 1, each rank adds up the gradients of k batches and
    the ranks average them in one allreduce, then the optimizer takes one step with their
    mean: the update of one batch k times as large, with k times fewer synchronisations (as
    Horovod's ``TorchEstimator`` does). Sparse gradients are made dense, as adding them up
    needs. With ``gradient_compression="fp16"`` the gradients travel the allreduce as 16-bit
    floats (Horovod's ``Compression.fp16``): half the bytes, 16-bit precision.
    """
    compression = {None: hvd.Compression.none, "fp16": hvd.Compression.fp16}[gradient_compression]
    return fuse_gradients(
        hvd.DistributedOptimizer(
            optimizer,
            compression=compression,
            backward_passes_per_step=backward_passes_per_step,
            average_aggregated_gradients=True,
            sparse_as_dense=backward_passes_per_step > 1,
        ),
        compression,
    )


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
        optimizer=distributed_optimizer(
            optimizer, plan.backward_passes_per_step, plan.gradient_compression
        ),
        **compile_arguments(plan),
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
        weights = model.get_weights()  # on every rank: a collective read under the strategy
        return _result(model, history, start_epoch, weights) if ring.rank == 0 else None
    if start_epoch:
        client.send("resumed", epoch=start_epoch, finished=False)

    callbacks = [
        hvd.callbacks.BroadcastGlobalVariablesCallback(0),
        hvd.callbacks.MetricAverageCallback(),
    ]
    if plan.warmup_epochs > 0:
        callbacks.append(
            hvd.callbacks.LearningRateWarmupCallback(
                initial_lr=float(keras.backend.get_value(model.optimizer.learning_rate)),
                warmup_epochs=plan.warmup_epochs,
                steps_per_epoch=steps,
                verbose=0,
            )
        )
    return fit_and_report(
        plan, ring, client, model, train_ds, steps, start_epoch, callbacks, validation,
        checkpoints, history,
    )  # fmt: skip
