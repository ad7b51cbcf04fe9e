"""Synthetic toy scenes (coloured squares on noise) for detector shape tests and example batches.

These are NOT a data set: they exist so that the registry's example batches and the unit
tests can check that a detector's targets, loss and decoding fit together, in milliseconds.
Trained detectors use the composed scenes of ``sparkzoo.datasets.synthetic`` (real MNIST
digits on real photographs).

Example::

    images, boxes, classes = square_scenes(4, (32, 32, 3), num_classes=2, rng=np.random.default_rng(0))
    images.shape, boxes[0], classes[0]      # (4, 32, 32, 3), [[y1, x1, y2, x2]], [1]
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

# One colour per class (RGB in [0, 1]), so a detector can tell classes apart.
_PALETTE = np.array(
    [
        [1.0, 0.2, 0.2],
        [0.2, 1.0, 0.2],
        [0.2, 0.4, 1.0],
        [1.0, 1.0, 0.2],
        [1.0, 0.2, 1.0],
        [0.2, 1.0, 1.0],
        [1.0, 0.6, 0.1],
        [0.6, 0.3, 1.0],
        [1.0, 1.0, 1.0],
        [0.5, 0.8, 0.3],
    ],
    dtype="float32",
)


def square_scenes(
    n: int,
    input_shape: Sequence[int],
    num_classes: int,
    rng: np.random.Generator,
    objects: int = 1,
    size_range: tuple[float, float] = (0.3, 0.6),
) -> tuple[np.ndarray, list[np.ndarray], list[np.ndarray]]:
    """``n`` images of dim noise with ``objects`` filled squares each; class = colour.

    Returns float32 images in [0, 1] of ``input_shape``, and per image its (k, 4) normalised
    boxes and (k,) class ids. Squares may overlap when ``objects > 1``.
    """
    height, width = int(input_shape[0]), int(input_shape[1])
    channels = int(input_shape[2]) if len(input_shape) > 2 else 1
    images = (rng.random((n, height, width, channels)) * 0.2).astype("float32")
    boxes_list, classes_list = [], []
    for i in range(n):
        boxes, classes = [], []
        for _ in range(objects):
            side = rng.uniform(*size_range)
            h, w = max(2, round(side * height)), max(2, round(side * width))
            y, x = int(rng.integers(0, height - h + 1)), int(rng.integers(0, width - w + 1))
            cls = int(rng.integers(0, num_classes))
            colour = _PALETTE[cls % len(_PALETTE)]
            images[i, y : y + h, x : x + w] = colour[:channels] if channels > 1 else colour.mean()
            boxes.append([y / height, x / width, (y + h) / height, (x + w) / width])
            classes.append(cls)
        boxes_list.append(np.asarray(boxes, dtype="float32").reshape(-1, 4))
        classes_list.append(np.asarray(classes, dtype="int32"))
    return images, boxes_list, classes_list
