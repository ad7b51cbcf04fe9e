"""What the SSD and YOLO modules share: settings with defaults, output checks, the decoding tail.

Example::

    cfg = builder_settings(ssd_lite, "ssd_lite", {"num_classes": 3})
    y = output_batch(model_outputs, rows=1344, num_classes=3, family="ssd_lite")
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from sparkzoo.models.detection.boxes import Detections, batched_nms


def builder_settings(builder: Callable, family: str, config: dict | None) -> dict:
    """The builder's keyword defaults updated with ``config``; unknown keys are an error."""
    defaults = {
        p.name: p.default
        for p in inspect.signature(builder).parameters.values()
        if p.default is not inspect.Parameter.empty
    }
    unknown = set(config or {}) - set(defaults)
    if unknown:
        raise ValueError(f"unknown {family} settings {sorted(unknown)}; known: {sorted(defaults)}")
    return {**defaults, **(config or {})}


def output_batch(y_pred: Any, rows: int, num_classes: int, family: str) -> np.ndarray:
    """Model outputs as a float32 (batch, rows, 5 + num_classes) array (one image may lack
    the batch axis), or a ValueError naming the expected and the actual shape."""
    y = np.asarray(y_pred, dtype="float32")
    if y.ndim == 2:
        y = y[None]
    expected = (rows, 5 + num_classes)
    if y.shape[1:] != expected:
        raise ValueError(
            f"{family} outputs for this config have shape (batch, {rows}, {expected[1]}), "
            f"got {y.shape}: is the config the model was built with?"
        )
    return y


def softmax(logits: np.ndarray) -> np.ndarray:
    z = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return z / z.sum(axis=-1, keepdims=True)


def candidates(
    scores: np.ndarray, score_threshold: float, per_class: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(rows, class ids, scores) of the (rows, classes) ``scores`` at or above the threshold,
    at most ``per_class`` best of each class (NMS is quadratic in what it is given)."""
    rows, classes = np.nonzero(scores >= score_threshold)
    values = scores[rows, classes]
    keep = [
        np.flatnonzero(classes == c)[np.argsort(-values[classes == c], kind="stable")[:per_class]]
        for c in np.unique(classes)
    ]
    keep_all = np.concatenate(keep) if keep else np.zeros(0, dtype="int64")
    return rows[keep_all], classes[keep_all], values[keep_all]


def suppress(
    boxes: np.ndarray,
    scores: np.ndarray,
    classes: np.ndarray,
    iou_threshold: float,
    max_detections: int,
    labels: Sequence[str] | None,
) -> Detections:
    """Per-class NMS, the best ``max_detections`` kept, class names attached."""
    chosen = batched_nms(boxes, scores, classes, iou_threshold, max_detections)
    names = [labels[int(c)] for c in classes[chosen]] if labels is not None else None
    return Detections(boxes[chosen], scores[chosen], classes[chosen], labels=names)
