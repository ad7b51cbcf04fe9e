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


class ObjectivesModel(tf.keras.Model):
    """A functional model whose ``fit`` minimises ``objectives(inputs, training)["loss"]`` and
    logs every term named in ``TERMS`` (``loss`` among them), averaged over each epoch.

    A subclass sets ``TERMS``, calls :meth:`track_terms` at the end of its ``__init__`` and
    implements :meth:`objectives`.
    """

    TERMS: tuple[str, ...] = ("loss",)

    def track_terms(self) -> None:
        self._trackers = {key: tf.keras.metrics.Mean(name=key) for key in self.TERMS}

    @property
    def metrics(self) -> list:
        # Listed here so Keras resets them at the start of every epoch.
        return [*self._trackers.values(), *super().metrics]

    def objectives(self, inputs: tf.Tensor, training: bool) -> dict[str, tf.Tensor]:
        """Every term of ``TERMS`` on a batch, ``loss`` the one minimised."""
        raise NotImplementedError

    def _record(self, terms: dict[str, tf.Tensor]) -> dict[str, tf.Tensor]:
        for key, tracker in self._trackers.items():
            tracker.update_state(terms[key])
        return {key: tracker.result() for key, tracker in self._trackers.items()}

    def train_step(self, data: Any) -> dict[str, tf.Tensor]:
        inputs, _, _ = tf.keras.utils.unpack_x_y_sample_weight(data)
        with tf.GradientTape() as tape:
            terms = self.objectives(inputs, training=True)
        # minimize() with the tape, not apply_gradients() of gradients taken here: wrapped
        # optimizers such as Horovod's all-reduce inside it.
        self.optimizer.minimize(terms["loss"], self.trainable_variables, tape=tape)
        return self._record(terms)

    def test_step(self, data: Any) -> dict[str, tf.Tensor]:
        inputs, _, _ = tf.keras.utils.unpack_x_y_sample_weight(data)
        return self._record(self.objectives(inputs, training=False))
