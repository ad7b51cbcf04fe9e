"""Draw detections on an image and write it as a PNG (OpenCV), for the apps' visualisers.

Example::

    from sparkzoo.models.detection.draw import draw_detections, write_png

    faces = detector.detect(photo)[0]
    write_png("faces.png", draw_detections(photo, faces))
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from sparkzoo.models.detection.boxes import Detections
from sparkzoo.models.detection.detector import as_image_list

# Distinct RGB colours, one per class id (cycled).
PALETTE = (
    (230, 25, 75),
    (60, 180, 75),
    (255, 225, 25),
    (0, 130, 200),
    (245, 130, 48),
    (145, 30, 180),
    (70, 240, 240),
    (240, 50, 230),
    (210, 245, 60),
    (250, 190, 212),
)


def draw_detections(
    image: np.ndarray,
    detections: Detections,
    labels: Sequence[str] | None = None,
    thickness: int | None = None,
) -> np.ndarray:
    """A copy of ``image`` (uint8 RGB) with each box drawn and captioned "label score".

    The caption names ``labels[class_id]`` when ``labels`` is given, else the detections'
    own labels, else the class id. Lines scale with the image size.
    """
    images = as_image_list(image)
    if len(images) != 1:
        raise ValueError(f"draw_detections draws on one image, got {len(images)}")
    canvas = images[0].copy()
    height, width = canvas.shape[:2]
    thickness = thickness or max(1, round(min(height, width) / 200))
    font_scale = max(0.35, min(height, width) / 800)
    pixels = detections.to_pixels(height, width)
    for k, ((y1, x1, y2, x2), score, cls) in enumerate(
        zip(pixels, detections.scores, detections.class_ids, strict=True)
    ):
        colour = PALETTE[int(cls) % len(PALETTE)]
        cv2.rectangle(canvas, (int(x1), int(y1)), (int(x2), int(y2)), colour, thickness)
        if labels is not None:
            name = labels[int(cls)]
        elif detections.labels is not None:
            name = detections.labels[k]
        else:
            name = str(int(cls))
        caption = f"{name} {score:.2f}"
        (tw, th), base = cv2.getTextSize(caption, cv2.FONT_HERSHEY_SIMPLEX, font_scale, 1)
        top = max(0, int(y1) - th - base - 2)
        cv2.rectangle(canvas, (int(x1), top), (int(x1) + tw + 2, top + th + base + 2), colour, -1)
        cv2.putText(
            canvas,
            caption,
            (int(x1) + 1, top + th + 1),
            cv2.FONT_HERSHEY_SIMPLEX,
            font_scale,
            (0, 0, 0),
            1,
            cv2.LINE_AA,
        )
    return canvas


def write_png(path: str | Path, image: np.ndarray) -> Path:
    """Write an RGB (or grey) uint8 image as a PNG atomically (temporary file, then rename)."""
    path = Path(path)
    array = np.asarray(image)
    if array.dtype != np.uint8:
        raise ValueError(f"write_png needs a uint8 image, got {array.dtype}")
    bgr = cv2.cvtColor(array, cv2.COLOR_RGB2BGR) if array.ndim == 3 else array
    ok, encoded = cv2.imencode(".png", bgr)
    if not ok:
        raise ValueError(f"OpenCV could not encode an image of shape {array.shape} as PNG")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(encoded.tobytes())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def draw_rows(image: np.ndarray, rows, kept_only: bool = True) -> np.ndarray:
    """``image`` with the boxes of its rows of a detections table (pandas: ``box``, ``score``,
    ``class_id``, ``class`` [, ``kept``]) drawn and captioned; only the kept ones by default.

    Example::

        draw_rows(load_image(path), detections[detections.image_id == "test-00001"])
    """
    if kept_only and "kept" in rows:
        rows = rows[rows["kept"]]
    if not len(rows):
        return draw_detections(image, Detections.empty())
    found = Detections(
        np.stack(rows["box"].to_numpy()),
        rows["score"].to_numpy(),
        rows["class_id"].to_numpy(),
        labels=list(rows["class"]),
    )
    return draw_detections(image, found)
