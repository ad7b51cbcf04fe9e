"""YOLO-style grid detector (YOLOv2/v3 ideas: anchors per cell, objectness, multi-scale heads).

A small Darknet-like backbone (3x3 conv + batch norm + leaky ReLU, stride-2 convolutions to
downsample) gives feature maps at ``feature_strides``; the coarsest map gets a head, and each
finer map is joined top-down with the upsampled coarser one (YOLOv3's FPN-like path) before
its own head. For each anchor of each cell a head predicts ``(ty, tx, th, tw)``, an
objectness logit and ``num_classes`` class logits; all heads are concatenated into one
output per image of shape ``(num_rows, 5 + num_classes)``.

Box coding: centre ``cy = (row + 2 sigmoid(ty) - 0.5) / grid_h`` (same for x; YOLOv5's
range, which lets a cell next to the centre's predict it too), size
``h = anchor_h * exp(th)`` (YOLOv2); anchors are normalised (height, width). Each ground
truth is assigned to the anchor (over all scales) whose shape fits it best and to other
anchors that fit well, in the cell holding its centre and in the two neighbouring cells
nearest to the centre (see :func:`encode_targets`). :class:`YOLOLoss`: objectness binary
cross-entropy (negatives whose predicted box already overlaps a ground truth by more than
``ignore_threshold`` are ignored), class softmax cross-entropy and a box loss on positives.

Example::

    from sparkzoo import models
    from sparkzoo.models.detection import yolo

    config = {"input_shape": (128, 128, 3), "num_classes": 10}
    model = models.get("yolo", **config)
    y = yolo.encode_targets(boxes_list, classes_list, config)
    model.compile("adam", loss=yolo.yolo_loss(config))
    dets = yolo.decode_predictions(model.predict(images), config)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import tensorflow as tf

from sparkzoo import keras2 as keras
from sparkzoo.models.detection import anchors as anchor_lib
from sparkzoo.models.detection.boxes import (
    Detections,
    check_ground_truth,
    clip_boxes,
    iou_tf,
)
from sparkzoo.models.detection.common import (
    builder_settings,
    candidates,
    output_batch,
    softmax,
    suppress,
)
from sparkzoo.models.detection.squares import square_scenes
from sparkzoo.models.registry import register

# Default anchors (normalised height, width), three per scale, finest scale first; fitted
# by hand to objects of 8 % to 60 % of the image side. Use anchors.kmeans_anchors on your
# own boxes for a better fit.
DEFAULT_ANCHORS = {
    1: (((0.15, 0.15), (0.3, 0.25), (0.5, 0.45)),),
    2: (((0.09, 0.09), (0.16, 0.12), (0.2, 0.2)), ((0.32, 0.26), (0.4, 0.4), (0.6, 0.5))),
    3: (
        ((0.06, 0.06), (0.1, 0.08), (0.13, 0.13)),
        ((0.2, 0.16), (0.26, 0.26), (0.36, 0.3)),
        ((0.45, 0.45), (0.6, 0.5), (0.8, 0.75)),
    ),
}

# Batch-norm statistics follow training quickly (see ssd.BN_MOMENTUM).
BN_MOMENTUM = 0.9

TINY = {
    "input_shape": (32, 32, 3),
    "num_classes": 2,
    "width": 0.25,
    "feature_strides": (8, 16),
}

# Objectness starts at ~1 % (logit bias), so thousands of empty cells do not swamp the
# first steps (the prior of RetinaNet / YOLOv5).
_OBJECTNESS_PRIOR = 0.01


def config_with_defaults(config: dict | None = None) -> dict:
    """The builder's defaults updated with ``config``, with the anchors resolved."""
    cfg = builder_settings(yolo, "yolo", config)
    cfg["anchors"] = resolve_anchors(cfg["feature_strides"], cfg["anchors"])
    return cfg


def resolve_anchors(
    feature_strides: Sequence[int], anchors: Sequence[Any] | None
) -> tuple[tuple[tuple[float, float], ...], ...]:
    """Anchors per scale as nested tuples; the defaults when ``anchors`` is None."""
    n = len(feature_strides)
    if anchors is None:
        if n not in DEFAULT_ANCHORS:
            raise ValueError(f"no default anchors for {n} scales; pass anchors=[[(h, w), ...]]")
        return DEFAULT_ANCHORS[n]
    resolved = tuple(tuple(tuple(float(v) for v in a) for a in scale) for scale in anchors)
    if len(resolved) != n or any(len(a) != 2 for scale in resolved for a in scale):
        raise ValueError(
            f"anchors must be one list of (height, width) pairs per feature stride "
            f"({n} strides), got {anchors}"
        )
    if len({len(scale) for scale in resolved}) != 1 or not resolved[0]:
        raise ValueError(f"every scale needs the same number (>= 1) of anchors, got {anchors}")
    return resolved


def priors_for(config: dict | None = None) -> dict[str, np.ndarray]:
    """Per output row: cell (row, col), grid size and anchor size (see anchors.yolo_priors)."""
    cfg = config_with_defaults(config)
    shapes = anchor_lib.feature_shapes(cfg["input_shape"], cfg["feature_strides"])
    return anchor_lib.yolo_priors(shapes, cfg["anchors"])


def _conv(x: Any, filters: int, size: int, stride: int, name: str) -> Any:
    layers = keras.layers
    x = layers.Conv2D(
        filters, size, strides=stride, padding="same", use_bias=False, name=f"{name}_conv"
    )(x)
    x = layers.BatchNormalization(momentum=BN_MOMENTUM, name=f"{name}_bn")(x)
    return layers.LeakyReLU(0.1, name=f"{name}_leaky")(x)


def _channels(stride: int, width: float) -> int:
    return max(8, round(min(512, 8 * stride) * width))


def _yolo_example(config: dict, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    images, boxes, classes = square_scenes(n, config["input_shape"], config["num_classes"], rng)
    return images, encode_targets(boxes, classes, config)


def yolo_loss(config: dict | None = None, **kwargs: Any) -> YOLOLoss:
    """The loss of a configuration (the registry calls this with the model's config)."""
    cfg = config_with_defaults(config)
    return YOLOLoss(
        input_shape=list(cfg["input_shape"]),
        feature_strides=list(cfg["feature_strides"]),
        anchors=[[list(a) for a in scale] for scale in cfg["anchors"]],
        num_classes=cfg["num_classes"],
        **kwargs,
    )


@register("yolo", task="object-detection", tiny=TINY, example=_yolo_example, loss=yolo_loss)
def yolo(
    input_shape: tuple[int, int, int] = (128, 128, 3),
    num_classes: int = 10,
    width: float = 1.0,
    feature_strides: tuple[int, ...] = (8, 16),
    anchors: Any = None,
    name: str = "yolo",
) -> keras.Model:
    """YOLO-style detector: Darknet-like backbone, top-down multi-scale heads, anchors per cell.

    Output ``(batch, rows, 5 + num_classes)``, one row per anchor per cell per scale (finest
    scale first): ``ty, tx, th, tw``, objectness logit, class logits. ``anchors`` is one list
    of normalised (height, width) per stride (None: three defaults per scale). Expects images
    scaled to [0, 1]. 128x128 with the defaults: 960 rows, 0.32 M parameters (1.4 MB).

    Example::

        model = yolo((128, 128, 3), num_classes=10)
        model.output_shape                    # (None, 960, 15)
    """
    strides = tuple(int(s) for s in feature_strides)
    if list(strides) != sorted(set(strides)) or strides[0] < 2:
        raise ValueError(f"feature_strides must increase and start at >= 2, got {strides}")
    anchor_sets = resolve_anchors(strides, anchors)
    per_cell = len(anchor_sets[0])
    shapes = anchor_lib.feature_shapes(input_shape, strides)
    layers = keras.layers

    inputs = keras.Input(tuple(input_shape), name="image")
    x = _conv(inputs, _channels(2, width), 3, 2, "stem")
    features = {2: x}
    stride = 2
    while stride < strides[-1]:
        stride *= 2
        c = _channels(stride, width)
        x = _conv(x, c, 3, 2, f"s{stride}_down")
        if stride >= 8:  # a bottleneck pair where the maps carry the detections
            x = _conv(x, c // 2, 1, 1, f"s{stride}_reduce")
            x = _conv(x, c, 3, 1, f"s{stride}_expand")
        features[stride] = x

    obj_bias = float(np.log(_OBJECTNESS_PRIOR / (1 - _OBJECTNESS_PRIOR)))
    outputs_by_stride = {}
    top = None
    for s, (fh, fw) in reversed(list(zip(strides, shapes, strict=True))):
        feat = features[s]
        if tuple(feat.shape[1:3]) != (fh, fw):
            raise AssertionError(f"feature map at stride {s} is {feat.shape[1:3]}, not {(fh, fw)}")
        c = _channels(s, width)
        if top is not None:
            lateral = _conv(top, c // 2, 1, 1, f"s{s}_lateral")
            # Resizing to the exact size (not UpSampling2D) also fits odd-sized maps.
            lateral = layers.Resizing(fh, fw, interpolation="nearest", name=f"s{s}_up")(lateral)
            feat = layers.Concatenate(name=f"s{s}_merge")([lateral, feat])
        # Bottleneck then 3x3 (Darknet's 1x1/3x3 pair): cheap on the large fine maps.
        top = _conv(_conv(feat, c // 2, 1, 1, f"s{s}_head_reduce"), c, 3, 1, f"s{s}_head")
        rows = fh * fw * per_cell
        box = layers.Conv2D(per_cell * 4, 1, name=f"s{s}_box")(top)
        obj = layers.Conv2D(
            per_cell,
            1,
            bias_initializer=keras.initializers.Constant(obj_bias),
            name=f"s{s}_objectness",
        )(top)
        cls = layers.Conv2D(per_cell * num_classes, 1, name=f"s{s}_class")(top)
        outputs_by_stride[s] = layers.Concatenate(axis=-1, name=f"s{s}_rows")(
            [
                layers.Reshape((rows, 4), name=f"s{s}_box_rows")(box),
                layers.Reshape((rows, 1), name=f"s{s}_objectness_rows")(obj),
                layers.Reshape((rows, num_classes), name=f"s{s}_class_rows")(cls),
            ]
        )
    parts = [outputs_by_stride[s] for s in strides]
    outputs = parts[0] if len(parts) == 1 else layers.Concatenate(axis=1, name="detections")(parts)
    return keras.Model(inputs, outputs, name=name)


def encode_targets(
    boxes_list: Sequence[Any],
    classes_list: Sequence[Any],
    config: dict | None = None,
    extra_anchor_threshold: float | None = 0.5,
    neighbour_cells: bool = True,
) -> np.ndarray:
    """Training targets for a batch: ``(n, rows, 5 + num_classes)`` float32.

    Each ground truth goes to the anchor (over every scale) whose shape overlaps it most
    when centred together, in the cell holding its centre (YOLOv3), and also to every other
    anchor whose shape IoU exceeds ``extra_anchor_threshold`` (YOLOv4's extra positives,
    which speed up training from scratch; None: the best anchor only). With
    ``neighbour_cells`` the same anchors of the vertically and the horizontally adjacent
    cell nearest to the centre are positive too (YOLOv5): more positives per object, seen
    from shifted cells. A positive row gets ``(cy * grid_h - row, cx * grid_w - col,
    log(h / anchor_h), log(w / anchor_w))`` (offsets in (-0.5, 1.5)), objectness 1 and a
    one-hot class; all other rows are zero (no object). When two objects claim a row, a
    centre-cell best-anchor claim beats the others, then the larger object wins.

    Example::

        y = encode_targets([[[0.1, 0.1, 0.5, 0.4]]], [[3]], {"num_classes": 10})
    """
    cfg = config_with_defaults(config)
    priors = priors_for(cfg)
    num_classes = cfg["num_classes"]
    checked = check_ground_truth(boxes_list, classes_list, num_classes)
    anchor_sizes = np.asarray([a for scale in cfg["anchors"] for a in scale], dtype="float32")
    per_cell = len(cfg["anchors"][0])
    shapes = anchor_lib.feature_shapes(cfg["input_shape"], cfg["feature_strides"])
    offsets = np.cumsum([0] + [gh * gw * per_cell for gh, gw in shapes])
    target = np.zeros((len(checked), len(priors["row"]), 5 + num_classes), dtype="float32")
    for i, (boxes, classes) in enumerate(checked):
        h = boxes[:, 2] - boxes[:, 0]
        w = boxes[:, 3] - boxes[:, 1]
        cy, cx = boxes[:, 0] + h / 2, boxes[:, 1] + w / 2
        fits = anchor_lib.shape_iou(np.stack([h, w], 1), anchor_sizes)  # (objects, anchors)
        # Claims (rank, area, object, anchor, cell shift) are written in sorted order, so
        # the best anchor in the centre cell (rank 2) overwrites any other claim on its row.
        claims = []
        for g in range(len(boxes)):
            best = int(fits[g].argmax())
            extra = (
                []
                if extra_anchor_threshold is None
                else [int(k) for k in np.flatnonzero(fits[g] > extra_anchor_threshold) if k != best]
            )
            for k in [best, *extra]:
                rank = 2 if k == best else 1
                claims.append((rank, h[g] * w[g], g, k, (0, 0)))
                if neighbour_cells:
                    scale = k // per_cell
                    gh, gw = shapes[scale]
                    fy, fx = cy[g] * gh % 1.0, cx[g] * gw % 1.0
                    claims.append((0, h[g] * w[g], g, k, (-1 if fy < 0.5 else 1, 0)))
                    claims.append((0, h[g] * w[g], g, k, (0, -1 if fx < 0.5 else 1)))
        for _, _, g, k, (dy, dx) in sorted(claims):
            scale, a = divmod(k, per_cell)
            gh, gw = shapes[scale]
            row = min(int(cy[g] * gh), gh - 1) + dy
            col = min(int(cx[g] * gw), gw - 1) + dx
            if not (0 <= row < gh and 0 <= col < gw):
                continue  # the neighbour would be outside the grid
            r = offsets[scale] + (row * gw + col) * per_cell + a
            target[i, r, :5] = [
                cy[g] * gh - row,
                cx[g] * gw - col,
                np.log(h[g] / priors["anchor_h"][r]),
                np.log(w[g] / priors["anchor_w"][r]),
                1.0,
            ]
            target[i, r, 5:] = 0.0
            target[i, r, 5 + classes[g]] = 1.0
    return target


def _decode_boxes_tf(t: Any, priors: dict[str, Any]) -> Any:
    """(…, rows, 4) raw ``ty, tx, th, tw`` -> (…, rows, 4) corner boxes (TensorFlow)."""
    cy = (priors["row"] + 2.0 * tf.sigmoid(t[..., 0]) - 0.5) / priors["grid_h"]
    cx = (priors["col"] + 2.0 * tf.sigmoid(t[..., 1]) - 0.5) / priors["grid_w"]
    h = priors["anchor_h"] * tf.exp(tf.clip_by_value(t[..., 2], -10.0, 10.0))
    w = priors["anchor_w"] * tf.exp(tf.clip_by_value(t[..., 3], -10.0, 10.0))
    return tf.stack([cy - h / 2, cx - w / 2, cy + h / 2, cx + w / 2], axis=-1)


@keras.saving.register_keras_serializable(package="sparkzoo")
class YOLOLoss(keras.losses.Loss):
    """YOLO loss over ``(y_true, y_pred)`` of shape (batch, rows, 5 + num_classes).

    Per image, divided by the number of positive rows: objectness binary cross-entropy on every
    row, except negatives whose decoded box already overlaps one of the image's objects by
    more than ``ignore_threshold`` (YOLOv3: they are not wrong, just not the assigned
    anchor); class softmax cross-entropy on positives; box loss on positives, the squared
    error of ``2 sigmoid(t_yx) - 0.5`` against the cell offset plus the squared error of
    ``t_hw`` against the log size ratio, weighted by ``2 - h w`` (small boxes count more)
    and by ``box_weight`` (1: YOLOv1's 5 held classification back; at 128 px on composed
    digit scenes, held-out mAP@0.5 after 5 epochs was 0.28 with 1 and 0.13 with 5).
    ``max_objects`` bounds the positive rows per image the ignore test compares with (an
    object has up to 9).
    """

    def __init__(
        self,
        input_shape: Sequence[int],
        feature_strides: Sequence[int],
        anchors: Sequence[Any],
        num_classes: int,
        ignore_threshold: float = 0.5,
        box_weight: float = 1.0,
        max_objects: int = 100,
        name: str = "yolo_loss",
        **kwargs: Any,
    ) -> None:
        super().__init__(name=name, **kwargs)
        self.input_shape = [int(v) for v in input_shape]
        self.feature_strides = [int(s) for s in feature_strides]
        self.anchors = [[[float(v) for v in a] for a in scale] for scale in anchors]
        self.num_classes = int(num_classes)
        self.ignore_threshold = float(ignore_threshold)
        self.box_weight = float(box_weight)
        self.max_objects = int(max_objects)
        shapes = anchor_lib.feature_shapes(self.input_shape, self.feature_strides)
        self._priors = {
            k: tf.constant(v, tf.float32)
            for k, v in anchor_lib.yolo_priors(shapes, self.anchors).items()
            if k != "scale"
        }

    def call(self, y_true: Any, y_pred: Any) -> Any:
        y_true = tf.cast(y_true, y_pred.dtype)
        positive = y_true[..., 4]
        n_pos = tf.reduce_sum(positive, axis=-1)

        # Box: cell offsets through a (stretched) sigmoid, log sizes directly.
        true_h = self._priors["anchor_h"] * tf.exp(y_true[..., 2])
        true_w = self._priors["anchor_w"] * tf.exp(y_true[..., 3])
        box_scale = 2.0 - true_h * true_w
        yx_pred = 2.0 * tf.sigmoid(y_pred[..., :2]) - 0.5
        yx_err = tf.reduce_sum(tf.square(yx_pred - y_true[..., :2]), -1)
        hw_err = tf.reduce_sum(tf.square(y_pred[..., 2:4] - y_true[..., 2:4]), -1)
        box_loss = tf.reduce_sum(positive * box_scale * (yx_err + hw_err), axis=-1)

        cls_ce = tf.nn.softmax_cross_entropy_with_logits(
            labels=y_true[..., 5:], logits=y_pred[..., 5:]
        )
        cls_loss = tf.reduce_sum(positive * cls_ce, axis=-1)

        # Ignore mask: IoU of every predicted box with the image's objects (the positive
        # rows of y_true, at most max_objects of them).
        pred_boxes = _decode_boxes_tf(tf.stop_gradient(y_pred[..., :4]), self._priors)
        true_centre_y = (self._priors["row"] + y_true[..., 0]) / self._priors["grid_h"]
        true_centre_x = (self._priors["col"] + y_true[..., 1]) / self._priors["grid_w"]
        true_boxes = tf.stack(
            [
                true_centre_y - true_h / 2,
                true_centre_x - true_w / 2,
                true_centre_y + true_h / 2,
                true_centre_x + true_w / 2,
            ],
            -1,
        )
        k = min(self.max_objects, int(positive.shape[-1]))
        obj_rank, obj_index = tf.math.top_k(positive, k=k)
        objects = tf.gather(true_boxes, obj_index, batch_dims=1)  # (batch, k, 4)
        overlaps = iou_tf(pred_boxes[:, :, None, :], objects[:, None, :, :]) * obj_rank[:, None, :]
        ignore = tf.cast(tf.reduce_max(overlaps, axis=-1) > self.ignore_threshold, y_pred.dtype)

        obj_bce = tf.nn.sigmoid_cross_entropy_with_logits(labels=positive, logits=y_pred[..., 4])
        obj_weight = positive + (1.0 - positive) * (1.0 - ignore)
        obj_loss = tf.reduce_sum(obj_bce * obj_weight, axis=-1)

        total = self.box_weight * box_loss + cls_loss + obj_loss
        return total / tf.maximum(n_pos, 1.0)

    def get_config(self) -> dict:
        return {
            **super().get_config(),
            "input_shape": self.input_shape,
            "feature_strides": self.feature_strides,
            "anchors": self.anchors,
            "num_classes": self.num_classes,
            "ignore_threshold": self.ignore_threshold,
            "box_weight": self.box_weight,
            "max_objects": self.max_objects,
        }


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(x, -50, 50)))


def decode_boxes(raw: np.ndarray, priors: dict[str, np.ndarray]) -> np.ndarray:
    """(rows, 4) raw ``ty, tx, th, tw`` -> (rows, 4) corner boxes (numpy)."""
    cy = (priors["row"] + 2.0 * _sigmoid(raw[:, 0]) - 0.5) / priors["grid_h"]
    cx = (priors["col"] + 2.0 * _sigmoid(raw[:, 1]) - 0.5) / priors["grid_w"]
    h = priors["anchor_h"] * np.exp(np.clip(raw[:, 2], -10, 10))
    w = priors["anchor_w"] * np.exp(np.clip(raw[:, 3], -10, 10))
    return np.stack([cy - h / 2, cx - w / 2, cy + h / 2, cx + w / 2], axis=-1).astype("float32")


def decode_targets(target: np.ndarray, config: dict | None = None) -> tuple[np.ndarray, np.ndarray]:
    """One image's encoded target -> (k, 4) boxes and (k,) class ids of its k positive rows.

    The inverse of :func:`encode_targets` (for checks and for drawing targets); an object
    assigned to several rows comes back once per row.
    """
    priors = priors_for(config)
    rows = np.flatnonzero(target[:, 4] > 0.5)
    p = {k: v[rows] for k, v in priors.items()}
    cy = (p["row"] + target[rows, 0]) / p["grid_h"]
    cx = (p["col"] + target[rows, 1]) / p["grid_w"]
    h = p["anchor_h"] * np.exp(target[rows, 2])
    w = p["anchor_w"] * np.exp(target[rows, 3])
    boxes = np.stack([cy - h / 2, cx - w / 2, cy + h / 2, cx + w / 2], axis=-1)
    return boxes.astype("float32"), target[rows, 5:].argmax(axis=-1).astype("int32")


def decode_predictions(
    y_pred: Any,
    config: dict | None = None,
    score_threshold: float = 0.3,
    iou_threshold: float = 0.45,
    max_detections: int = 100,
    labels: Sequence[str] | None = None,
    candidates_per_class: int = 200,
) -> list[Detections]:
    """Model outputs (batch, rows, 5 + C) -> one :class:`Detections` per image.

    Score of class c = sigmoid(objectness) x softmax(class logits)[c]; rows scoring at least
    ``score_threshold`` (at most ``candidates_per_class`` per class) are decoded, clipped to
    the image and suppressed per class at ``iou_threshold``; the best ``max_detections``
    remain.
    """
    cfg = config_with_defaults(config)
    priors = priors_for(cfg)
    y = output_batch(y_pred, len(priors["row"]), cfg["num_classes"], "yolo")
    out = []
    for row in y:
        class_scores = _sigmoid(row[:, 4:5]) * softmax(row[:, 5:])
        idx, cls, scores = candidates(class_scores, score_threshold, candidates_per_class)
        boxes = clip_boxes(decode_boxes(row[idx, :4], {k: v[idx] for k, v in priors.items()}))
        out.append(suppress(boxes, scores, cls, iou_threshold, max_detections, labels))
    return out
