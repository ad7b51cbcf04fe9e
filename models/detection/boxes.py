"""The box toolkit every detector shares: IoU, SSD-style encode/decode, NMS and VOC mAP@0.5.

Boxes are normalised ``(y1, x1, y2, x2)`` float32 rows (fractions of the image height and
width, as ``tf.image`` uses them), so a box means the same thing at any resolution. One
:class:`Detections` per image is the output format of every detector in the zoo.

Example::

    import numpy as np
    from sparkzoo.models.detection import boxes as bx

    a = np.array([[0.0, 0.0, 0.5, 0.5]], "float32")
    b = np.array([[0.0, 0.25, 0.5, 0.75]], "float32")
    bx.iou(a, b)                                   # [[0.3333]]
    keep = bx.nms(np.vstack([a, b]), np.array([0.9, 0.8]), iou_threshold=0.3)  # [0]
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

# SSD's variances: offsets are divided by them so that centre and log-size targets have
# roughly unit scale (Liu et al. 2016, the Caffe implementation's prior_variance).
DEFAULT_VARIANCES = (0.1, 0.1, 0.2, 0.2)


@dataclass
class Detections:
    """What a detector found in one image.

    ``boxes`` (N, 4) normalised ``(y1, x1, y2, x2)``; ``scores`` (N,); ``class_ids`` (N,)
    integers (0 is the first object class; no background id); ``labels`` the class names
    when the detector knows them; ``keypoints`` (N, K, 2) normalised ``(y, x)`` when the
    detector gives landmarks (MTCNN: eyes, nose, mouth corners).

    Example::

        det = detector.detect(image)[0]
        det.to_pixels(*image.shape[:2])        # integer (y1, x1, y2, x2) pixel boxes
    """

    boxes: np.ndarray
    scores: np.ndarray
    class_ids: np.ndarray
    labels: list[str] | None = None
    keypoints: np.ndarray | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        self.boxes = np.asarray(self.boxes, dtype="float32").reshape(-1, 4)
        self.scores = np.asarray(self.scores, dtype="float32").reshape(-1)
        self.class_ids = np.asarray(self.class_ids, dtype="int32").reshape(-1)
        n = len(self.boxes)
        if len(self.scores) != n or len(self.class_ids) != n:
            raise ValueError(
                f"Detections needs as many scores and class_ids as boxes: boxes {n}, "
                f"scores {len(self.scores)}, class_ids {len(self.class_ids)}"
            )
        if self.labels is not None and len(self.labels) != n:
            raise ValueError(f"Detections has {n} boxes but {len(self.labels)} labels")

    def __len__(self) -> int:
        return len(self.boxes)

    def to_pixels(self, height: int, width: int) -> np.ndarray:
        """Boxes as integer pixel ``(y1, x1, y2, x2)`` for an image of ``height`` x ``width``."""
        scale = np.array([height, width, height, width], dtype="float32")
        return np.round(self.boxes * scale).astype("int32")

    def to_dict(self) -> dict:
        """Plain lists (JSON-ready)."""
        out = {
            "boxes": self.boxes.tolist(),
            "scores": self.scores.tolist(),
            "class_ids": self.class_ids.tolist(),
        }
        if self.labels is not None:
            out["labels"] = list(self.labels)
        if self.keypoints is not None:
            out["keypoints"] = np.asarray(self.keypoints).tolist()
        return out

    @classmethod
    def empty(cls) -> Detections:
        return cls(np.zeros((0, 4)), np.zeros(0), np.zeros(0))


def as_boxes(boxes: Any, what: str = "boxes") -> np.ndarray:
    """``boxes`` as a float32 (N, 4) array, or a ValueError naming ``what`` and its shape."""
    arr = np.asarray(boxes, dtype="float32")
    if arr.size == 0:
        return arr.reshape(0, 4)
    if arr.ndim != 2 or arr.shape[1] != 4:
        raise ValueError(f"{what} must have shape (N, 4) as (y1, x1, y2, x2), got {arr.shape}")
    return arr


def area(boxes: np.ndarray) -> np.ndarray:
    """Areas of (N, 4) boxes; boxes with y2 < y1 or x2 < x1 have area 0."""
    boxes = as_boxes(boxes)
    return np.clip(boxes[:, 2] - boxes[:, 0], 0, None) * np.clip(boxes[:, 3] - boxes[:, 1], 0, None)


def iou(a: Any, b: Any) -> np.ndarray:
    """Pairwise intersection over union: (N, 4) x (M, 4) boxes -> (N, M) matrix.

    Example::

        iou([[0, 0, 1, 1]], [[0, 0, 0.5, 1], [2, 2, 3, 3]])   # [[0.5, 0.0]]
    """
    a, b = as_boxes(a, "first boxes"), as_boxes(b, "second boxes")
    top = np.maximum(a[:, None, 0], b[None, :, 0])
    left = np.maximum(a[:, None, 1], b[None, :, 1])
    bottom = np.minimum(a[:, None, 2], b[None, :, 2])
    right = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(bottom - top, 0, None) * np.clip(right - left, 0, None)
    union = area(a)[:, None] + area(b)[None, :] - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0).astype("float32")


def iou_tf(a: Any, b: Any) -> Any:
    """IoU in TensorFlow, broadcasting: ``a`` (..., N, 1, 4) with ``b`` (..., 1, M, 4) -> (..., N, M).

    Used inside losses (YOLO's ignore mask), where the boxes are tensors.
    """
    # The one TensorFlow function of a numpy module, which Spark tasks and OpenCV detectors
    # import without TensorFlow.
    import tensorflow as tf

    top = tf.maximum(a[..., 0], b[..., 0])
    left = tf.maximum(a[..., 1], b[..., 1])
    bottom = tf.minimum(a[..., 2], b[..., 2])
    right = tf.minimum(a[..., 3], b[..., 3])
    inter = tf.nn.relu(bottom - top) * tf.nn.relu(right - left)
    area_a = tf.nn.relu(a[..., 2] - a[..., 0]) * tf.nn.relu(a[..., 3] - a[..., 1])
    area_b = tf.nn.relu(b[..., 2] - b[..., 0]) * tf.nn.relu(b[..., 3] - b[..., 1])
    return tf.math.divide_no_nan(inter, area_a + area_b - inter)


def to_centres(boxes: np.ndarray) -> np.ndarray:
    """(y1, x1, y2, x2) -> (cy, cx, h, w)."""
    boxes = np.asarray(boxes, dtype="float32")
    h = boxes[..., 2] - boxes[..., 0]
    w = boxes[..., 3] - boxes[..., 1]
    return np.stack([boxes[..., 0] + h / 2, boxes[..., 1] + w / 2, h, w], axis=-1)


def to_corners(centres: np.ndarray) -> np.ndarray:
    """(cy, cx, h, w) -> (y1, x1, y2, x2)."""
    c = np.asarray(centres, dtype="float32")
    half_h, half_w = c[..., 2] / 2, c[..., 3] / 2
    return np.stack(
        [c[..., 0] - half_h, c[..., 1] - half_w, c[..., 0] + half_h, c[..., 1] + half_w], axis=-1
    )


def encode(boxes: Any, anchors: Any, variances: Sequence[float] = DEFAULT_VARIANCES) -> np.ndarray:
    """SSD offsets of ``boxes`` relative to ``anchors`` (same shape (N, 4), corners both).

    ``((cy - acy) / ah, (cx - acx) / aw, log(h / ah), log(w / aw))`` divided by ``variances``.
    :func:`decode` is its inverse.

    Example::

        t = encode(gt, anchors)            # regression targets
        np.allclose(decode(t, anchors), gt)
    """
    b = to_centres(as_boxes(boxes))
    a = to_centres(as_boxes(anchors, "anchors"))
    if b.shape != a.shape:
        raise ValueError(f"encode needs one anchor per box: boxes {b.shape}, anchors {a.shape}")
    v = np.asarray(variances, dtype="float32")
    eps = np.float32(1e-8)  # degenerate (zero-size) boxes must not give -inf
    out = np.stack(
        [
            (b[:, 0] - a[:, 0]) / a[:, 2],
            (b[:, 1] - a[:, 1]) / a[:, 3],
            np.log(np.maximum(b[:, 2], eps) / a[:, 2]),
            np.log(np.maximum(b[:, 3], eps) / a[:, 3]),
        ],
        axis=-1,
    )
    return (out / v).astype("float32")


def decode(
    offsets: Any, anchors: Any, variances: Sequence[float] = DEFAULT_VARIANCES
) -> np.ndarray:
    """Boxes (corners) from SSD ``offsets`` relative to ``anchors``: the inverse of :func:`encode`."""
    t = np.asarray(offsets, dtype="float32") * np.asarray(variances, dtype="float32")
    a = to_centres(as_boxes(anchors, "anchors"))
    if t.shape != a.shape:
        raise ValueError(
            f"decode needs one anchor per offset: offsets {t.shape}, anchors {a.shape}"
        )
    # Clip log-sizes so an untrained head cannot overflow exp().
    t_hw = np.clip(t[:, 2:], -10.0, 10.0)
    centres = np.stack(
        [
            a[:, 0] + t[:, 0] * a[:, 2],
            a[:, 1] + t[:, 1] * a[:, 3],
            a[:, 2] * np.exp(t_hw[:, 0]),
            a[:, 3] * np.exp(t_hw[:, 1]),
        ],
        axis=-1,
    )
    return to_corners(centres)


def nms(
    boxes: Any,
    scores: Any,
    iou_threshold: float = 0.45,
    max_out: int | None = None,
) -> np.ndarray:
    """Greedy non-maximum suppression for ONE class: indices kept, best score first.

    A box is dropped when it overlaps an already kept, higher-scoring box with IoU above
    ``iou_threshold``. Run it per class (see :func:`batched_nms`).

    Example::

        keep = nms(boxes, scores, 0.45, max_out=100)
        boxes, scores = boxes[keep], scores[keep]
    """
    boxes = as_boxes(boxes)
    scores = np.asarray(scores, dtype="float32").reshape(-1)
    if len(scores) != len(boxes):
        raise ValueError(f"nms needs one score per box: {len(boxes)} boxes, {len(scores)} scores")
    order = np.argsort(-scores, kind="stable")
    keep: list[int] = []
    limit = len(order) if max_out is None else max_out
    while len(order) and len(keep) < limit:
        best, rest = order[0], order[1:]
        keep.append(int(best))
        if not len(rest):
            break
        overlap = iou(boxes[best : best + 1], boxes[rest])[0]
        order = rest[overlap <= iou_threshold]
    return np.asarray(keep, dtype="int64")


def batched_nms(
    boxes: Any,
    scores: Any,
    class_ids: Any,
    iou_threshold: float = 0.45,
    max_out: int | None = 100,
) -> np.ndarray:
    """NMS run separately per class; indices kept over all classes, best score first."""
    boxes = as_boxes(boxes)
    scores = np.asarray(scores, dtype="float32").reshape(-1)
    class_ids = np.asarray(class_ids).reshape(-1)
    kept = [
        np.flatnonzero(class_ids == c)[
            nms(boxes[class_ids == c], scores[class_ids == c], iou_threshold, max_out)
        ]
        for c in np.unique(class_ids)
    ]
    if not kept:
        return np.zeros(0, dtype="int64")
    indices = np.concatenate(kept)
    indices = indices[np.argsort(-scores[indices], kind="stable")]
    return indices if max_out is None else indices[:max_out]


# ---- VOC-style mean average precision ----------------------------------------------------


def voc_ap(recall: Any, precision: Any) -> float:
    """Area under the precision/recall curve with all-points interpolation (VOC2010 onwards).

    Precision is made monotonically decreasing from the right, then summed over the recall
    steps. ``recall`` and ``precision`` are the cumulative values at each ranked detection.

    Example::

        voc_ap([0.5, 0.5, 1.0], [1.0, 0.5, 0.667])    # 0.5 * 1.0 + 0.5 * 0.667 = 0.833
    """
    r = np.concatenate([[0.0], np.asarray(recall, dtype="float64"), [1.0]])
    p = np.concatenate([[0.0], np.asarray(precision, dtype="float64"), [0.0]])
    p = np.maximum.accumulate(p[::-1])[::-1]
    steps = np.flatnonzero(r[1:] != r[:-1])
    return float(np.sum((r[steps + 1] - r[steps]) * p[steps + 1]))


def _parts(item: Any, keys: tuple[str, ...], what: str, index: int) -> tuple:
    if isinstance(item, dict):
        missing = [k for k in keys if k not in item]
        if missing:
            raise ValueError(f"{what}[{index}] has no {missing} (keys: {sorted(item)})")
        return tuple(item[k] for k in keys)
    if all(hasattr(item, k) for k in keys):
        return tuple(getattr(item, k) for k in keys)
    if isinstance(item, (tuple, list)) and len(item) == len(keys):
        return tuple(item)
    raise ValueError(f"{what}[{index}] must be a Detections, a dict or a tuple of {keys}")


def average_precisions(
    detections: Sequence[Any],
    ground_truths: Sequence[Any],
    iou_threshold: float = 0.5,
    num_classes: int | None = None,
) -> dict[int, float]:
    """VOC average precision per class: ``{class_id: AP}``; NaN for a class with no ground truth.

    ``detections[i]`` is image i's :class:`Detections` (or a dict/tuple of boxes, scores,
    class_ids); ``ground_truths[i]`` its true boxes and class ids (a dict/tuple of boxes,
    class_ids). Detections of a class are ranked by score over all images; each one is a
    true positive when its best-overlapping ground truth of that class in its image has
    IoU >= ``iou_threshold`` and was not matched yet (each ground truth matches once, so
    duplicates are false positives).
    """
    if len(detections) != len(ground_truths):
        raise ValueError(
            f"mAP needs one entry per image on both sides: {len(detections)} detections, "
            f"{len(ground_truths)} ground truths"
        )
    dets = [
        _parts(d, ("boxes", "scores", "class_ids"), "detections", i)
        for i, d in enumerate(detections)
    ]
    gts = [
        _parts(g, ("boxes", "class_ids"), "ground_truths", i) for i, g in enumerate(ground_truths)
    ]
    dets = [
        (
            as_boxes(b, f"detections[{i}].boxes"),
            np.asarray(s, "float64").reshape(-1),
            np.asarray(c).reshape(-1).astype("int64"),
        )
        for i, (b, s, c) in enumerate(dets)
    ]
    gts = [
        (as_boxes(b, f"ground_truths[{i}].boxes"), np.asarray(c).reshape(-1).astype("int64"))
        for i, (b, c) in enumerate(gts)
    ]
    for i, (b, s, c) in enumerate(dets):
        if not len(b) == len(s) == len(c):
            raise ValueError(f"detections[{i}]: {len(b)} boxes, {len(s)} scores, {len(c)} classes")
    for i, (b, c) in enumerate(gts):
        if len(b) != len(c):
            raise ValueError(f"ground_truths[{i}]: {len(b)} boxes but {len(c)} class ids")

    seen = {int(c) for _, cls in gts for c in cls} | {int(c) for _, _, cls in dets for c in cls}
    classes = range(num_classes) if num_classes is not None else sorted(seen)
    result: dict[int, float] = {}
    for cls in classes:
        result[int(cls)] = _class_ap(dets, gts, int(cls), iou_threshold)
    return result


def _class_ap(dets: list, gts: list, cls: int, iou_threshold: float) -> float:
    true_boxes = [b[c == cls] for b, c in gts]
    n_true = sum(len(b) for b in true_boxes)
    if n_true == 0:
        return float("nan")
    found = [(s[c == cls], i, b[c == cls]) for i, (b, s, c) in enumerate(dets)]
    scores = np.concatenate([s for s, _, _ in found]) if found else np.zeros(0)
    images = np.concatenate([np.full(len(s), i) for s, i, _ in found]) if found else np.zeros(0)
    boxes = np.concatenate([b for _, _, b in found]) if found else np.zeros((0, 4))
    order = np.argsort(-scores, kind="stable")
    matched = [np.zeros(len(b), dtype=bool) for b in true_boxes]
    hits = np.zeros(len(order))
    for rank, k in enumerate(order):
        img = int(images[k])
        if not len(true_boxes[img]):
            continue
        overlaps = iou(boxes[k : k + 1], true_boxes[img])[0]
        best = int(np.argmax(overlaps))
        if overlaps[best] >= iou_threshold and not matched[img][best]:
            matched[img][best] = True
            hits[rank] = 1
    tp = np.cumsum(hits)
    fp = np.cumsum(1 - hits)
    recall = tp / n_true
    precision = tp / np.maximum(tp + fp, np.finfo("float64").eps)
    return voc_ap(recall, precision)


def mean_average_precision(
    detections: Sequence[Any],
    ground_truths: Sequence[Any],
    iou_threshold: float = 0.5,
    num_classes: int | None = None,
) -> float:
    """VOC-style mAP@``iou_threshold``: the mean of :func:`average_precisions` over classes
    that have ground truth (a class with ground truth but no detection counts as AP 0; a
    class with no ground truth anywhere is left out, as VOC's evaluation does).

    Example::

        gt = [{"boxes": [[0.1, 0.1, 0.5, 0.5]], "class_ids": [0]}]
        det = [Detections([[0.1, 0.1, 0.5, 0.5]], [0.9], [0])]
        mean_average_precision(det, gt)     # 1.0
    """
    aps = [
        v
        for v in average_precisions(detections, ground_truths, iou_threshold, num_classes).values()
        if not np.isnan(v)
    ]
    if not aps:
        raise ValueError("mean_average_precision: the ground truths hold no boxes at all")
    return float(np.mean(aps))


def clip_boxes(boxes: Any) -> np.ndarray:
    """Boxes clipped to the image, [0, 1] in every coordinate."""
    return np.clip(as_boxes(boxes), 0.0, 1.0)


def check_ground_truth(
    boxes_list: Sequence[Any], classes_list: Sequence[Any], num_classes: int
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per image (boxes (k, 4), class ids (k,)) checked: matching lengths, ids in range,
    boxes inside [0, 1] with y2 > y1 and x2 > x1. Errors name the image and the problem.
    """
    if len(boxes_list) != len(classes_list):
        raise ValueError(
            f"need class ids for every image: {len(boxes_list)} box lists, "
            f"{len(classes_list)} class lists"
        )
    out = []
    for i, (boxes, classes) in enumerate(zip(boxes_list, classes_list, strict=True)):
        b = as_boxes(boxes, f"boxes of image {i}")
        c = np.asarray(classes).reshape(-1)
        if len(c) != len(b):
            raise ValueError(f"image {i}: {len(b)} boxes but {len(c)} class ids")
        if len(c) and (c.min() < 0 or c.max() >= num_classes or not np.all(c == np.round(c))):
            raise ValueError(
                f"image {i}: class ids must be integers in [0, {num_classes}), got {c.tolist()}"
            )
        if len(b) and (b.min() < -1e-6 or b.max() > 1 + 1e-6):
            raise ValueError(
                f"image {i}: boxes must be normalised to [0, 1] (y1, x1, y2, x2), got "
                f"values in [{b.min():.3g}, {b.max():.3g}] - divide pixels by height/width"
            )
        if len(b) and ((b[:, 2] <= b[:, 0]) | (b[:, 3] <= b[:, 1])).any():
            raise ValueError(f"image {i}: boxes need y2 > y1 and x2 > x1 (y1, x1, y2, x2 order)")
        out.append((b, c.astype("int64")))
    return out
