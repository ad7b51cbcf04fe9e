"""The base of zoo models that train on their own objectives (DeepBit, the VAE).

Such a model is built like a functional model and compiled without a loss; its ``fit`` takes
inputs only (targets, if given, are ignored) and minimises what its :meth:`objectives` returns
for a batch. One ``train_step`` serves every engine of the distributed trainer: it calls the
optimizer's ``minimize`` with the tape, where Horovod's ``DistributedOptimizer`` all-reduces
the gradients, and where, under ``MultiWorkerMirroredStrategy``, ``apply_gradients`` does.
"""

from __future__ import annotations

from typing import Any

import tensorflow as tf

from sparkzoo import keras2 as keras


class _Trackers:
    """The per-term ``Mean`` metrics, in a plain object that Keras' attribute tracking does not
    look into: as attributes of the model their variables would be model weights (counted,
    saved with the weights, and read when rank 0 checkpoints; under
    ``MultiWorkerMirroredStrategy`` a metric variable is read by a collective, which rank 0
    would then run alone)."""

    def __init__(self, names: tuple[str, ...]):
        self.by_name = {key: keras.metrics.Mean(name=key) for key in names}


class ObjectivesModel(keras.Model):
    """A functional model whose ``fit`` minimises ``objectives(inputs, training)["loss"]`` and
    logs every term named in ``TERMS`` (``loss`` among them), averaged over each epoch.

    A subclass sets ``TERMS``, calls :meth:`track_terms` at the end of its ``__init__`` and
    implements :meth:`objectives`.
    """

    TERMS: tuple[str, ...] = ("loss",)

    def track_terms(self) -> None:
        self._terms = _Trackers(self.TERMS)

    @property
    def metrics(self) -> list:
        # Listed here so Keras resets them at the start of every epoch.
        return [*self._terms.by_name.values(), *super().metrics]

    def objectives(self, inputs: tf.Tensor, training: bool) -> dict[str, tf.Tensor]:
        """Every term of ``TERMS`` on a batch, ``loss`` the one minimised (the model's
        regularisation losses are added to it by the steps)."""
        raise NotImplementedError

    def _loss_terms(self, inputs: tf.Tensor, training: bool) -> dict[str, tf.Tensor]:
        terms = self.objectives(inputs, training=training)
        if self.losses:
            terms["loss"] = terms["loss"] + tf.add_n(self.losses)
        return terms

    def _record(self, terms: dict[str, tf.Tensor]) -> dict[str, tf.Tensor]:
        for key, tracker in self._terms.by_name.items():
            tracker.update_state(terms[key])
        return {key: tracker.result() for key, tracker in self._terms.by_name.items()}

    def train_step(self, data: Any) -> dict[str, tf.Tensor]:
        inputs, _, _ = keras.utils.unpack_x_y_sample_weight(data)
        with tf.GradientTape() as tape:
            terms = self._loss_terms(inputs, training=True)
            # A strategy sums the replicas' gradients: scaled so that the sum is their mean,
            # as Keras scales a compiled loss (Horovod averages itself; one replica here).
            replicas = tf.distribute.get_replica_context().num_replicas_in_sync
            scaled = terms["loss"] / tf.cast(replicas, terms["loss"].dtype)
        # minimize() with the tape, not apply_gradients() of gradients taken here: wrapped
        # optimizers such as Horovod's all-reduce inside it.
        self.optimizer.minimize(scaled, self.trainable_variables, tape=tape)
        return self._record(terms)

    def test_step(self, data: Any) -> dict[str, tf.Tensor]:
        inputs, _, _ = keras.utils.unpack_x_y_sample_weight(data)
        return self._record(self._loss_terms(inputs, training=False))
