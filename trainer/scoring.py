"""Running a Keras model over rows of numpy arrays: the one code path under
:meth:`KerasModel.transform` (Arrow batches on the executors) and the MLflow pyfunc model
(pandas DataFrames in ``predict``, ``spark_udf`` and ``mlflow models serve``).
"""

from __future__ import annotations

import numpy as np


def run_model(model, xs: list[np.ndarray], batch_size: int, n_outputs: int) -> list[np.ndarray]:
    """The model's outputs for the rows of ``xs`` (one array per input), ``batch_size`` rows per
    call; one array per output, ``(rows, ...)``."""
    rows = len(xs[0])
    if rows == 0:
        return [np.zeros((0, 1), np.float32) for _ in range(n_outputs)]
    chunks: list[list] = [[] for _ in range(n_outputs)]
    for start in range(0, rows, batch_size):
        part = [x[start : start + batch_size] for x in xs]
        out = model(part[0] if len(part) == 1 else part, training=False)
        out = out if isinstance(out, (list, tuple)) else [out]
        for i, o in enumerate(out):
            chunks[i].append(np.asarray(o))
    return [np.concatenate(c) for c in chunks]


def classify(scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Spark ML's classifier columns from a classifier's scores ``(rows, classes)``:
    the predicted class as a double (argmax; ``p >= 0.5`` for a single sigmoid value) and the
    class probabilities (``[1 - p, p]`` for a single sigmoid value)."""
    scores = np.asarray(scores, np.float64).reshape(len(scores), -1)
    if scores.shape[1] == 1:
        p = scores[:, 0]
        return (p >= 0.5).astype(np.float64), np.stack([1.0 - p, p], axis=1)
    return np.argmax(scores, axis=1).astype(np.float64), scores
