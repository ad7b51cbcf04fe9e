"""Anchors (priors): SSD's default boxes per feature map, YOLO's anchors per grid cell.

Everything is in normalised image coordinates, so the same anchors serve any input size
whose feature maps have the same number of cells. Row order matches the detectors' output
rows: feature map (or scale) by feature map, then cell by cell in row-major order, then
anchor by anchor within a cell.

Example::

    from sparkzoo.models.detection import anchors
    priors = anchors.ssd_anchors([(16, 16), (8, 8)], scales=[0.2, 0.5], aspect_ratios=(1, 2, 0.5))
    priors.shape                                  # (16*16*4 + 8*8*4, 4) corners
    grid = anchors.yolo_priors([(8, 8)], [[(0.2, 0.2), (0.4, 0.3)]])
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from sparkzoo.models.detection.boxes import as_boxes, to_centres, to_corners


def feature_shapes(input_shape: Sequence[int], strides: Sequence[int]) -> list[tuple[int, int]]:
    """Feature-map sizes of stride-``s`` maps from 'same'-padded stride-2 convolutions.

    ``ceil(size / s)`` per axis: that is what repeated stride-2 'same' convolutions give.
    """
    height, width = int(input_shape[0]), int(input_shape[1])
    for s in strides:
        if s < 1 or s & (s - 1):
            raise ValueError(f"feature strides must be powers of two, got {s} in {tuple(strides)}")
    return [(math.ceil(height / s), math.ceil(width / s)) for s in strides]


def ssd_scales(num_maps: int, min_scale: float, max_scale: float) -> list[float]:
    """SSD's anchor scales, evenly spaced from ``min_scale`` (finest map) to ``max_scale``."""
    if not 0 < min_scale <= max_scale <= 1:
        raise ValueError(f"need 0 < min_scale <= max_scale <= 1, got {min_scale}, {max_scale}")
    if num_maps == 1:
        return [float(min_scale)]
    return [float(s) for s in np.linspace(min_scale, max_scale, num_maps)]


def anchors_per_cell(aspect_ratios: Sequence[float], extra_square: bool = True) -> int:
    return len(aspect_ratios) + int(extra_square)


def ssd_anchors(
    shapes: Sequence[tuple[int, int]],
    scales: Sequence[float],
    aspect_ratios: Sequence[float] = (1.0, 2.0, 0.5),
    extra_square: bool = True,
) -> np.ndarray:
    """SSD default boxes (Liu et al. 2016) as (A, 4) corners.

    Map ``k`` of size ``shapes[k]`` gets, at every cell centre, one box of scale ``s_k`` per
    aspect ratio ``r`` (width / height: ``h = s / sqrt(r)``, ``w = s * sqrt(r)``), and, with
    ``extra_square``, a square of scale ``sqrt(s_k * s_{k+1})`` (``s_{K} = 1`` after the last).
    """
    if len(shapes) != len(scales):
        raise ValueError(f"one scale per feature map: {len(shapes)} maps, {len(scales)} scales")
    nxt = [*scales[1:], 1.0]
    per_map = []
    for (fh, fw), s, s_next in zip(shapes, scales, nxt, strict=True):
        sizes = [(s / math.sqrt(r), s * math.sqrt(r)) for r in aspect_ratios]
        if extra_square:
            sizes.append((math.sqrt(s * s_next),) * 2)
        cy = (np.arange(fh, dtype="float32") + 0.5) / fh
        cx = (np.arange(fw, dtype="float32") + 0.5) / fw
        cy, cx = np.meshgrid(cy, cx, indexing="ij")
        sizes_arr = np.asarray(sizes, dtype="float32")  # (A, 2) as (h, w)
        centres = np.concatenate(
            [
                np.broadcast_to(np.stack([cy, cx], -1)[:, :, None, :], (fh, fw, len(sizes), 2)),
                np.broadcast_to(sizes_arr, (fh, fw, len(sizes), 2)),
            ],
            axis=-1,
        )
        per_map.append(to_corners(centres.reshape(-1, 4)))
    return np.concatenate(per_map).astype("float32")


def yolo_priors(
    shapes: Sequence[tuple[int, int]], anchors: Sequence[Sequence[Sequence[float]]]
) -> dict[str, np.ndarray]:
    """Per output row of a YOLO head: its cell and anchor, as arrays of length N.

    ``anchors[k]`` is the list of (height, width) anchors (normalised) of scale ``k``, whose
    grid is ``shapes[k]``. Returns ``row``, ``col`` (the cell), ``grid_h``, ``grid_w`` (its
    grid), ``anchor_h``, ``anchor_w``, and ``scale`` (index of the scale).
    """
    if len(shapes) != len(anchors):
        raise ValueError(f"one anchor list per scale: {len(shapes)} scales, {len(anchors)} lists")
    parts: dict[str, list] = {
        k: [] for k in ("row", "col", "grid_h", "grid_w", "anchor_h", "anchor_w", "scale")
    }
    for k, ((gh, gw), scale_anchors) in enumerate(zip(shapes, anchors, strict=True)):
        sizes = np.asarray(scale_anchors, dtype="float32").reshape(-1, 2)
        n_a = len(sizes)
        rows, cols, idx = np.meshgrid(np.arange(gh), np.arange(gw), np.arange(n_a), indexing="ij")
        parts["row"].append(rows.ravel())
        parts["col"].append(cols.ravel())
        parts["grid_h"].append(np.full(rows.size, gh))
        parts["grid_w"].append(np.full(rows.size, gw))
        parts["anchor_h"].append(sizes[idx.ravel(), 0])
        parts["anchor_w"].append(sizes[idx.ravel(), 1])
        parts["scale"].append(np.full(rows.size, k))
    return {
        k: np.concatenate(v).astype("float32" if k != "scale" else "int32")
        for k, v in parts.items()
    }


def shape_iou(sizes_a: np.ndarray, sizes_b: np.ndarray) -> np.ndarray:
    """IoU of (h, w) sizes as if the boxes shared a centre: (N, 2) x (M, 2) -> (N, M)."""
    a = np.asarray(sizes_a, dtype="float32").reshape(-1, 2)
    b = np.asarray(sizes_b, dtype="float32").reshape(-1, 2)
    inter = np.minimum(a[:, None, 0], b[None, :, 0]) * np.minimum(a[:, None, 1], b[None, :, 1])
    union = (a[:, 0] * a[:, 1])[:, None] + (b[:, 0] * b[:, 1])[None, :] - inter
    return inter / np.maximum(union, 1e-12)


def kmeans_anchors(
    boxes: np.ndarray, k: int, iterations: int = 100, seed: int = 0
) -> list[tuple[float, float]]:
    """YOLOv2's anchor fitting: k-means of box (h, w) sizes with distance 1 - IoU.

    Returns ``k`` (height, width) anchors sorted by area, e.g. to split over YOLO scales.

    Example::

        anchors = kmeans_anchors(np.concatenate(train_boxes), k=6)
        config["anchors"] = [anchors[:3], anchors[3:]]       # fine scale first
    """
    sizes = to_centres(as_boxes(boxes, "boxes"))[:, 2:]
    sizes = sizes[(sizes > 0).all(axis=1)]
    if len(sizes) < k:
        raise ValueError(f"kmeans_anchors needs at least k={k} boxes with a size, got {len(sizes)}")
    rng = np.random.default_rng(seed)
    centres = sizes[rng.choice(len(sizes), k, replace=False)]
    for _ in range(iterations):
        nearest = shape_iou(sizes, centres).argmax(axis=1)
        updated = np.array(
            [
                np.median(sizes[nearest == j], axis=0) if (nearest == j).any() else centres[j]
                for j in range(k)
            ]
        )
        if np.allclose(updated, centres):
            break
        centres = updated
    order = np.argsort(centres[:, 0] * centres[:, 1])
    return [(round(float(h), 4), round(float(w), 4)) for h, w in centres[order]]
