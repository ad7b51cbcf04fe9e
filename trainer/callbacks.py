"""Keras callbacks for training functions run by :class:`HorovodRunner`."""

from __future__ import annotations

import time

from sparkzoo import keras2 as keras
from sparkzoo.trainer.relay import log_to_driver


class LogCallback(keras.callbacks.Callback):
    """Streams a rank's epoch logs (and, with ``per_batch_log``, batch logs) to the driver
    through :func:`log_to_driver`: what ``HorovodRunner(driver_log_verbosity=
    "log_callback_only")`` shows (Databricks' ``sparkdl.horovod.tensorflow.keras.LogCallback``).

    Example: ``model.fit(..., callbacks=[LogCallback()] if hvd.rank() == 0 else [])``.
    """

    def __init__(self, per_batch_log: bool = False):
        super().__init__()
        self.per_batch_log = per_batch_log
        self._epoch_start = 0.0

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch_start = time.perf_counter()
        log_to_driver(f"epoch {epoch + 1} begins")

    def on_batch_end(self, batch, logs=None):
        if self.per_batch_log:
            log_to_driver(f"batch {batch + 1}: {_format(logs)}")

    def on_epoch_end(self, epoch, logs=None):
        seconds = time.perf_counter() - self._epoch_start
        log_to_driver(f"epoch {epoch + 1} ends ({seconds:.1f} s): {_format(logs)}")


def _format(logs) -> str:
    return "  ".join(f"{k} {float(v):.4f}" for k, v in (logs or {}).items())
