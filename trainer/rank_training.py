"""What every rank runs to train on its own partition, on either engine: the plan, the rank's
start (threads, seeds, its partition read), the model and optimizer from the plan, the
``tf.data`` feed, rank 0's epoch reports, checkpoints and TensorBoard, and the result.

What an engine does its own way is :mod:`.horovod_training` (Horovod ranks, the Spark barrier
tasks themselves) and :mod:`.tf_training` (``MultiWorkerMirroredStrategy`` workers, each a
child process of its task). The driver uses :func:`keras_model_bytes` and
:func:`load_keras_model` to move models as the bytes of a ``.keras`` file.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import tensorflow as tf

from sparkzoo import fs
from sparkzoo import keras2 as keras
from sparkzoo.trainer.arrays import ColumnSpec, batch_to_arrays, fit_to_shapes
from sparkzoo.trainer.checkpoint import CheckpointStore
from sparkzoo.trainer.feed import PartitionBuffer, batch_indices
from sparkzoo.trainer.gpus import FROM_SPARK
from sparkzoo.trainer.threads import configure_threads


@dataclass
class TrainingPlan:
    """Everything a rank needs, decided and checked on the driver (pickled to the ranks)."""

    model_source: Any  # bytes of a .keras file, or a zero-argument builder
    optimizer: Any  # a serialized Keras optimizer (dict) or a name
    loss: Any  # None: the model computes its own loss (no label columns)
    metrics: list
    features: list[ColumnSpec]
    labels: list[ColumnSpec]
    input_shapes: list[tuple]
    output_shapes: list[tuple]
    batch_size: int
    epochs: int
    train_rows: int
    val_rows: int
    run_dir: str
    weight: ColumnSpec | None = None  # per-row loss weights
    loss_weights: Any = None
    val_batch_size: int | None = None
    train_steps: int | None = None  # steps per epoch; None: from the rows
    val_steps: int | None = None
    indicator: str | None = None
    shuffle: bool = True
    seed: int = 0
    deterministic: bool = False
    tensorboard: bool = False
    scale_lr: bool = True
    warmup_epochs: float = 0.0
    backward_passes_per_step: int = 1  # batches whose gradients one allreduce averages
    gradient_compression: str | None = None  # "fp16": gradients allreduced as 16-bit floats
    gradient_clipnorm: float | None = None
    callbacks: list = field(default_factory=list)
    # (monitor, "min"/"max"): the fitted model keeps the best epoch's weights by it
    best: tuple[str, str] | None = None
    memory_budget_bytes: int = 1 << 30
    threads_per_worker: int | None = None
    custom_objects: dict = field(default_factory=dict)


def load_keras_model(model_bytes: bytes, custom_objects: dict | None = None):
    """A Keras model from the bytes of a ``.keras`` file (uncompiled)."""
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "model.keras")
        with open(path, "wb") as handle:
            handle.write(model_bytes)
        return keras.models.load_model(path, custom_objects=custom_objects, compile=False)


def keras_model_bytes(model, weights: list | None = None) -> bytes:
    """The bytes of ``model`` saved as a ``.keras`` file, without optimizer state where possible.

    Functional and Sequential models are cloned uncompiled first (the optimizer's slots would
    triple the file); a subclassed model, which cannot be cloned, is saved as it is.
    ``weights``: the values to save (default: the model's own, read now). Under
    MultiWorkerMirroredStrategy reading some variables (BatchNormalization's moving statistics,
    synchronised on read) is a collective every worker must join, so a rank that saves alone
    passes the weights all ranks read together (:class:`_Snapshot`).
    """
    try:
        plain = keras.models.clone_model(model)
        plain.set_weights(model.get_weights() if weights is None else weights)
    except (ValueError, TypeError, NotImplementedError):
        plain = model
        if weights is not None:
            plain.set_weights(weights)
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "model.keras")
        plain.save(path)
        with open(path, "rb") as handle:
            return handle.read()


def build_model(source: Any, custom_objects: dict | None = None):
    return load_keras_model(source, custom_objects) if isinstance(source, bytes) else source()


def pin_gpus(local_rank: int) -> list[str]:
    """Make TensorFlow in this process use this rank's GPU(s), with memory growth on; return
    their names ([] on a machine without GPUs). Spark's assignment wins (then every GPU left
    visible by ``CUDA_VISIBLE_DEVICES`` is this rank's); otherwise the GPU of ``local_rank``.

    Example::

        pin_gpus(ring.local_rank)      # ['/physical_device:GPU:0']
    """
    gpus = tf.config.list_physical_devices("GPU")
    if not gpus:
        return []
    mine = gpus if os.environ.get(FROM_SPARK) else [gpus[local_rank % len(gpus)]]
    try:
        tf.config.set_visible_devices(mine, "GPU")
        for gpu in mine:
            tf.config.experimental.set_memory_growth(gpu, True)
    except RuntimeError:
        pass  # TensorFlow's runtime already started in this reused worker: keep its devices
    return [gpu.name for gpu in mine]


def start_rank(
    plan: TrainingPlan, ring, batches, client
) -> tuple[PartitionBuffer, PartitionBuffer]:
    """What every rank does first, on either engine: thread pools, seeds (Python's, NumPy's and
    TensorFlow's generators: dropout and each rank's data order follow from the seed; the
    initial weights are rank 0's, which the engine broadcasts), deterministic ops if asked,
    then its partition read and reported to the driver. Returns (train, validation) rows."""
    configure_threads(plan.threads_per_worker, ring.local_size)
    pin_gpus(ring.local_rank)
    keras.utils.set_random_seed(plan.seed + ring.rank)
    if plan.deterministic:
        tf.config.experimental.enable_op_determinism()
    train_buf, val_buf = _read_partition(plan, batches)
    client.send(
        "partition",
        train_rows=train_buf.rows,
        val_rows=val_buf.rows,
        spilled=train_buf.spilled or val_buf.spilled,
    )
    return train_buf, val_buf


def _read_partition(plan: TrainingPlan, batches) -> tuple[PartitionBuffer, PartitionBuffer]:
    """The partition's rows as arrays: inputs, then targets, then the sample weights (if any)."""
    train = PartitionBuffer(plan.memory_budget_bytes)
    val = PartitionBuffer(plan.memory_budget_bytes)
    feature_names = [s.name for s in plan.features]
    label_names = [s.name for s in plan.labels]
    for batch in batches:
        if batch.num_rows == 0:
            continue
        xs = fit_to_shapes(
            batch_to_arrays(batch, plan.features), plan.input_shapes, "feature", feature_names
        )
        ys = (
            fit_to_shapes(
                batch_to_arrays(batch, plan.labels), plan.output_shapes, "label", label_names
            )
            if plan.labels
            else []
        )
        weights = batch_to_arrays(batch, [plan.weight]) if plan.weight else []
        columns = [*xs, *ys, *weights]
        if plan.indicator is None:
            train.append(columns)
            continue
        is_val = batch.column(plan.indicator).to_numpy(zero_copy_only=False).astype(bool)
        train.append([c[~is_val] for c in columns])
        val.append([c[is_val] for c in columns])
    return train, val


def keras_objects(value: Any, module: Any) -> Any:
    """``value`` with each serialized Keras object in it (a dict with a ``class_name``, as a
    compiled model's ``get_compile_config()`` gives a metric or loss object) made an object of
    ``module`` again (``keras.metrics``, ``keras.losses``): ``compile`` would take a dict for
    one entry per model output."""
    if isinstance(value, dict) and "class_name" in value:
        return module.get(value)
    if isinstance(value, list):
        return [keras_objects(v, module) for v in value]
    if isinstance(value, dict):
        return {k: keras_objects(v, module) for k, v in value.items()}
    return value


def model_compile_settings(model: Any) -> dict[str, Any]:
    """What ``model.compile`` was given (serialized, so it travels to the ranks), or {} for a
    model that was never compiled."""
    if not getattr(model, "_is_compiled", False) or model.optimizer is None:
        return {}
    try:
        config = model.get_compile_config() or {}
    except Exception:  # an argument Keras cannot serialize: take the objects themselves
        config = {}
    user_metrics = getattr(getattr(model, "compiled_metrics", None), "_user_metrics", None)
    return {
        "loss": config.get("loss", model.loss),
        "optimizer": model.optimizer,
        "metrics": config.get("metrics", user_metrics) or [],
        "loss_weights": config.get("loss_weights"),
        "weighted_metrics": config.get("weighted_metrics"),
    }


def compile_arguments(plan: TrainingPlan) -> dict[str, Any]:
    """What every rank passes to ``model.compile`` besides the optimizer."""
    return {
        "loss": keras_objects(plan.loss, keras.losses),
        "loss_weights": plan.loss_weights,
        "metrics": keras_objects(list(plan.metrics), keras.metrics),
    }


def _make_optimizer(plan: TrainingPlan, size: int):
    optimizer = (
        keras.optimizers.get(plan.optimizer)
        if isinstance(plan.optimizer, str)
        else keras.optimizers.deserialize(plan.optimizer)
    )
    if plan.gradient_clipnorm:
        config = optimizer.get_config() | {"clipnorm": plan.gradient_clipnorm}
        optimizer = optimizer.__class__.from_config(config)
    base_lr = float(keras.backend.get_value(optimizer.learning_rate))
    if plan.scale_lr:  # the linear scaling rule: the global batch grew size-fold
        optimizer.learning_rate = base_lr * size
    return optimizer


def fit_and_report(
    plan: TrainingPlan,
    ring,
    client,
    model,
    train,
    steps: int,
    start_epoch: int,
    callbacks: list,
    validation: dict,
    checkpoints: CheckpointStore,
    history: dict,
) -> dict | None:
    """The end of a rank's training that no engine changes: the user's callbacks, rank 0's
    TensorBoard and epoch reports (with checkpoints), ``model.fit``; rank 0 returns the trained
    model and history."""
    # Every rank reads the weights at each epoch's end, together (see keras_model_bytes);
    # rank 0's checkpoint, the best epoch and the result use these copies.
    snapshot = _Snapshot()
    callbacks = [*callbacks, *plan.callbacks, snapshot]
    best = _BestWeights(*plan.best, snapshot) if plan.best else None
    if best:
        callbacks.append(best)
    if ring.rank == 0 and plan.tensorboard:
        callbacks.append(_tensorboard_callback(plan.run_dir))
    if ring.rank == 0:
        callbacks.append(
            _epoch_end_callback(
                client,
                checkpoints,
                history,
                steps * plan.batch_size * ring.size,
                plan.epochs,
                snapshot,
            )
        )
    model.fit(
        train,
        steps_per_epoch=steps,
        epochs=plan.epochs,
        initial_epoch=start_epoch,
        callbacks=callbacks,
        verbose=0,
        **validation,
    )
    weights = best.weights if best and best.weights is not None else snapshot.weights
    return _result(model, history, plan.epochs, weights) if ring.rank == 0 else None


class _Snapshot(keras.callbacks.Callback):
    """Every rank: the model's weights and optimizer variables as of the last epoch's end,
    read by all ranks at the same point of their collective sequence."""

    def __init__(self):
        super().__init__()
        self.weights: list | None = None
        self.slots: list | None = None

    def on_epoch_end(self, epoch, logs=None):
        self.weights = self.model.get_weights()
        self.slots = [v.numpy() for v in self.model.optimizer.variables]


class _BestWeights(keras.callbacks.Callback):
    """Every rank: the weights of the best epoch so far by ``monitor`` (``mode`` "min" or
    "max"), as a ``ModelCheckpoint(save_best_only=True)`` would keep them; taken from the
    epoch's :class:`_Snapshot` (the ranks' logs agree, so they choose alike)."""

    def __init__(self, monitor: str, mode: str, snapshot: _Snapshot):
        super().__init__()
        self.monitor, self.mode, self.snapshot = monitor, mode, snapshot
        self.best: float | None = None
        self.weights: list | None = None

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        if self.monitor not in logs:
            raise ValueError(
                f"checkpoint_callback monitors {self.monitor!r}, which the epoch's metrics do "
                f"not hold ({sorted(logs)}); val_ metrics need validation="
            )
        value = float(logs[self.monitor])
        better = self.best is None or (
            value < self.best if self.mode == "min" else value > self.best
        )
        if better:
            self.best, self.weights = value, self.snapshot.weights


def _dataset(plan: TrainingPlan, arrays: list[np.ndarray], batch_size: int, shuffle: bool, rank):
    """The rank's rows as batches of ``(inputs, targets[, weights])``, or inputs alone."""
    n_x, n_y = len(plan.input_shapes), len(plan.labels) and len(plan.output_shapes)
    weights = arrays[n_x + n_y] if plan.weight else None
    return make_dataset(
        arrays[:n_x], arrays[n_x : n_x + n_y], batch_size, shuffle, plan.seed + rank, weights
    )


def make_dataset(
    xs: list[np.ndarray],
    ys: list[np.ndarray],
    batch_size: int,
    shuffle: bool,
    seed: int,
    weights: np.ndarray | None = None,
):
    """An endless ``tf.data.Dataset`` of ``(inputs, targets[, sample_weights])`` batches over the
    partition; just ``inputs`` when there are no targets (a model that computes its own loss).

    In-memory arrays are gathered inside TensorFlow's graph; memory-mapped (spilled) arrays are
    read batch by batch with numpy, which touches only the rows of that batch.
    """
    groups = [xs, ys] + ([[weights]] if weights is not None else [])
    groups = [group for group in groups if group]
    rows = len(xs[0])

    def pack(values: list) -> Any:
        """One batch's arrays as Keras wants them: ``x`` or ``(x, y)`` or ``(x, y, w)``, each
        part a tensor or a tuple of tensors (several inputs or outputs)."""
        parts, start = [], 0
        for group in groups:
            taken = values[start : start + len(group)]
            parts.append(taken[0] if len(taken) == 1 else tuple(taken))
            start += len(group)
        return parts[0] if len(parts) == 1 else tuple(parts)

    arrays = [a for group in groups for a in group]
    if not any(isinstance(a, np.memmap) for a in arrays):
        tensors = [tf.constant(a) for a in arrays]
        indices = tf.data.Dataset.from_generator(
            lambda: batch_indices(rows, batch_size, shuffle, seed),
            output_signature=tf.TensorSpec([batch_size], tf.int64),
        )
        return indices.map(
            lambda idx: pack([tf.gather(t, idx) for t in tensors]),
            num_parallel_calls=tf.data.AUTOTUNE,
        ).prefetch(tf.data.AUTOTUNE)

    def batches():
        for idx in batch_indices(rows, batch_size, shuffle, seed):
            yield pack([a[idx] for a in arrays])

    signature = pack(
        [tf.TensorSpec((batch_size, *a.shape[1:]), tf.as_dtype(a.dtype)) for a in arrays]
    )
    return tf.data.Dataset.from_generator(batches, output_signature=signature).prefetch(2)


def _tensorboard_callback(run_dir: str):
    """Rank 0's TensorBoard callback: scalars per epoch and the graph, in ``<run_dir>/logs``.

    TensorFlow writes local paths only here (no libhdfs), so for an ``hdfs://`` store the
    events are written to a local folder and copied to the store when training ends.
    """
    target = fs.join(run_dir, "logs")
    if not fs.is_hdfs(target):
        return keras.callbacks.TensorBoard(
            fs.local_path(target), write_graph=True, update_freq="epoch", profile_batch=0
        )

    class CopiedTensorBoard(keras.callbacks.TensorBoard):
        def on_train_end(self, logs=None):
            super().on_train_end(logs)  # closes (and so flushes) the event files
            fs.put(self.log_dir, target, overwrite=True)
            shutil.rmtree(self.log_dir, ignore_errors=True)

    local = tempfile.mkdtemp(prefix="sparkzoo-tensorboard-")
    return CopiedTensorBoard(local, write_graph=True, update_freq="epoch", profile_batch=0)


def _result(model, history: dict, epochs: int, weights: list) -> dict:
    """Rank 0's result: the model with ``weights`` (read by every rank together)."""
    return {"model_bytes": keras_model_bytes(model, weights), "history": history, "epochs": epochs}


class _EpochEnd(keras.callbacks.Callback):
    """Rank 0: report the epoch to the driver, then checkpoint it to the store."""

    def __init__(self, client, checkpoints, history, samples_per_epoch, epochs, snapshot):
        super().__init__()
        self.client, self.checkpoints, self.history = client, checkpoints, history
        self.samples, self.epochs, self.snapshot = samples_per_epoch, epochs, snapshot
        self._start = 0.0
        self._started = False

    def on_train_batch_begin(self, batch, logs=None):
        if not self._started:
            self._started = True
            self.client.send("started")

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        seconds = time.perf_counter() - self._start
        metrics = {k: float(v) for k, v in (logs or {}).items()}
        for key, value in metrics.items():
            self.history.setdefault(key, []).append(value)
        self.checkpoints.save(epoch + 1, self.snapshot.weights, self.snapshot.slots, self.history)
        self.client.send(
            "epoch",
            epoch=epoch + 1,
            epochs=self.epochs,
            metrics=metrics,
            seconds=seconds,
            samples_per_s=self.samples / max(seconds, 1e-9),
        )


def _epoch_end_callback(*args):
    """The rank-0 epoch callback."""
    return _EpochEnd(*args)
