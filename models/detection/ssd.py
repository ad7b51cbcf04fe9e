"""SSD-lite: a MobileNet-like single-shot detector (SSD, Liu et al. 2016; SSDLite, Sandler et al.).

A backbone of depthwise-separable convolutions gives feature maps at the ``feature_strides``
(8, 16, 32 by default); every map has a box head and a class head (3x3 depthwise-separable
convolutions, SSDLite-style) predicting, for each default anchor of each cell, 4 box offsets
and ``num_classes + 1`` class logits (index 0 is background). The heads are concatenated
into one output per image, shape ``(num_anchors, 4 + num_classes + 1)``, so the model trains
from fixed-size array columns; :func:`encode_targets` turns ground-truth boxes into exactly
that shape, :class:`SSDLoss` trains it (smooth L1 on positives + softmax cross-entropy with
3:1 hard-negative mining), :func:`decode_predictions` turns outputs into
:class:`~sparkzoo.models.detection.boxes.Detections` (softmax, decode, per-class NMS).

Example::

    from sparkzoo import models
    from sparkzoo.models.detection import ssd

    config = {"input_shape": (128, 128, 3), "num_classes": 10}
    model = models.get("ssd_lite", **config)
    y = ssd.encode_targets(boxes_list, classes_list, config)    # (n, anchors, 15)
    model.compile("adam", loss=ssd.ssd_loss(config))
    model.fit(images, y, epochs=20)
    dets = ssd.decode_predictions(model.predict(images), config)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import tensorflow as tf

from sparkzoo import keras2 as keras
from sparkzoo.models.detection import anchors as anchor_lib
from sparkzoo.models.detection.boxes import (
    DEFAULT_VARIANCES,
    Detections,
    check_ground_truth,
    clip_boxes,
    decode,
    encode,
    iou,
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

# Batch-norm statistics follow training quickly: Keras's 0.99 leaves inference far behind
# training for the first few hundred steps, which is all a short CPU run has.
BN_MOMENTUM = 0.9

TINY = {
    "input_shape": (32, 32, 3),
    "num_classes": 2,
    "width": 0.25,
    "feature_strides": (8, 16),
}


def config_with_defaults(config: dict | None = None) -> dict:
    """The builder's defaults updated with ``config`` (what anchors and targets depend on)."""
    return builder_settings(ssd_lite, "ssd_lite", config)


def anchors_for(config: dict | None = None) -> np.ndarray:
    """The (num_anchors, 4) default boxes of a configuration, in output-row order."""
    cfg = config_with_defaults(config)
    strides = tuple(cfg["feature_strides"])
    shapes = anchor_lib.feature_shapes(cfg["input_shape"], strides)
    scales = anchor_lib.ssd_scales(len(strides), cfg["min_scale"], cfg["max_scale"])
    return anchor_lib.ssd_anchors(shapes, scales, cfg["aspect_ratios"])


def _channels(stride: int, width: float) -> int:
    # MobileNet-like widths: 16 at stride 2 doubling per stage, capped at 256.
    return max(8, round(min(256, 8 * stride) * width))


def _separable(x: Any, filters: int, stride: int, name: str) -> Any:
    layers = keras.layers
    x = layers.DepthwiseConv2D(
        3, strides=stride, padding="same", use_bias=False, name=f"{name}_dw"
    )(x)
    x = layers.BatchNormalization(momentum=BN_MOMENTUM, name=f"{name}_dw_bn")(x)
    x = layers.ReLU(6.0, name=f"{name}_dw_relu")(x)
    x = layers.Conv2D(filters, 1, use_bias=False, name=f"{name}_pw")(x)
    x = layers.BatchNormalization(momentum=BN_MOMENTUM, name=f"{name}_pw_bn")(x)
    return layers.ReLU(6.0, name=f"{name}_pw_relu")(x)


def _head(x: Any, outputs: int, name: str, bias: Any = "zeros") -> Any:
    # SSDLite's head: a 3x3 depthwise then a 1x1 projection, here linear throughout (no
    # batch norm: on the small coarse maps its batch statistics are too noisy to predict with).
    return keras.layers.SeparableConv2D(
        outputs, 3, padding="same", bias_initializer=bias, name=name
    )(x)


def _ssd_example(config: dict, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    images, boxes, classes = square_scenes(n, config["input_shape"], config["num_classes"], rng)
    return images, encode_targets(boxes, classes, config)


def ssd_loss(config: dict | None = None, **kwargs: Any) -> SSDLoss:
    """The loss of a configuration (the registry calls this with the model's config);
    ``kwargs`` go to :class:`SSDLoss` (``neg_pos_ratio``, ``box_weight``)."""
    cfg = config_with_defaults(config)
    return SSDLoss(num_classes=cfg["num_classes"], **kwargs)


@register(
    "ssd_lite",
    task="object-detection",
    tiny=TINY,
    example=_ssd_example,
    loss=ssd_loss,
)
def ssd_lite(
    input_shape: tuple[int, int, int] = (128, 128, 3),
    num_classes: int = 10,
    width: float = 1.0,
    feature_strides: tuple[int, ...] = (8, 16, 32),
    min_scale: float = 0.15,
    max_scale: float = 0.6,
    aspect_ratios: tuple[float, ...] = (1.0, 2.0, 0.5),
    name: str = "ssd_lite",
) -> keras.Model:
    """SSD-lite detector: depthwise-separable backbone, SSDLite heads on several feature maps.

    Output ``(batch, num_anchors, 4 + num_classes + 1)``: per default anchor 4 box offsets
    (SSD encoding, variances 0.1/0.2) then class logits with background at index 0. Anchors
    of map k have scale ``s_k`` (evenly spaced from ``min_scale`` to ``max_scale``) for each
    aspect ratio, plus one square of scale ``sqrt(s_k s_k+1)``. Expects images scaled to
    [0, 1]. 128x128 with the defaults: 1,344 anchors, 0.11 M parameters (0.6 MB of weights).

    Example::

        model = ssd_lite((128, 128, 3), num_classes=10)
        model.output_shape                     # (None, 1344, 15)
    """
    strides = tuple(int(s) for s in feature_strides)
    if list(strides) != sorted(set(strides)) or strides[0] < 4:
        raise ValueError(f"feature_strides must increase and start at >= 4, got {strides}")
    shapes = anchor_lib.feature_shapes(input_shape, strides)
    per_cell = anchor_lib.anchors_per_cell(aspect_ratios)
    layers = keras.layers

    inputs = keras.Input(tuple(input_shape), name="image")
    x = layers.Conv2D(
        _channels(2, width), 3, strides=2, padding="same", use_bias=False, name="stem_conv"
    )(inputs)
    x = layers.BatchNormalization(momentum=BN_MOMENTUM, name="stem_bn")(x)
    x = layers.ReLU(6.0, name="stem_relu")(x)
    features = {}
    stride = 2
    while stride < strides[-1]:
        stride *= 2
        x = _separable(x, _channels(stride, width), 2, name=f"s{stride}_down")
        if stride <= 16:  # a second block where maps are large enough to need context
            x = _separable(x, _channels(stride, width), 1, name=f"s{stride}_block")
        features[stride] = x

    # Class-logit bias: background starts at ~0.99 probability, so the first steps are not
    # spent unlearning a uniform guess over thousands of anchors (RetinaNet's prior).
    cls_bias = np.zeros((per_cell, num_classes + 1), dtype="float32")
    cls_bias[:, 0] = np.log(0.99 * num_classes / 0.01)
    box_parts, cls_parts = [], []
    for s, (fh, fw) in zip(strides, shapes, strict=True):
        feat = features[s]
        if tuple(feat.shape[1:3]) != (fh, fw):  # the anchors assume these sizes
            raise AssertionError(f"feature map at stride {s} is {feat.shape[1:3]}, not {(fh, fw)}")
        box = _head(feat, per_cell * 4, name=f"box_head_s{s}")
        cls = _head(
            feat,
            per_cell * (num_classes + 1),
            name=f"class_head_s{s}",
            bias=keras.initializers.Constant(cls_bias.ravel().tolist()),
        )
        box_parts.append(layers.Reshape((fh * fw * per_cell, 4), name=f"box_s{s}")(box))
        cls_parts.append(
            layers.Reshape((fh * fw * per_cell, num_classes + 1), name=f"class_s{s}")(cls)
        )
    boxes = layers.Concatenate(axis=1, name="box_offsets")(box_parts)
    logits = layers.Concatenate(axis=1, name="class_logits")(cls_parts)
    outputs = layers.Concatenate(axis=-1, name="detections")([boxes, logits])
    return keras.Model(inputs, outputs, name=name)


def assign_targets(
    gt_boxes: np.ndarray,
    gt_classes: np.ndarray,
    anchors: np.ndarray,
    num_classes: int,
    iou_threshold: float = 0.5,
    variances: Sequence[float] = DEFAULT_VARIANCES,
) -> np.ndarray:
    """One image's (num_anchors, 4 + num_classes + 1) target: SSD matching.

    An anchor is positive for the ground truth it overlaps most when that IoU is
    >= ``iou_threshold``; every ground truth also takes its best anchor, whatever the IoU, so
    no object goes unmatched. Positives get encoded offsets and a one-hot class ``c + 1``;
    all others are background (one-hot at index 0, zero offsets).
    """
    target = np.zeros((len(anchors), 4 + num_classes + 1), dtype="float32")
    target[:, 4] = 1.0
    if not len(gt_boxes):
        return target
    overlaps = iou(anchors, gt_boxes)  # (A, G)
    best_gt = overlaps.argmax(axis=1)
    best_iou = overlaps.max(axis=1)
    forced = overlaps.argmax(axis=0)  # each ground truth's best anchor
    best_gt[forced] = np.arange(len(gt_boxes))
    best_iou[forced] = 2.0
    pos = np.flatnonzero(best_iou >= iou_threshold)
    target[pos, :4] = encode(gt_boxes[best_gt[pos]], anchors[pos], variances)
    target[pos, 4] = 0.0
    target[pos, 5 + gt_classes[best_gt[pos]]] = 1.0
    return target


def encode_targets(
    boxes_list: Sequence[Any],
    classes_list: Sequence[Any],
    config: dict | None = None,
    iou_threshold: float = 0.5,
) -> np.ndarray:
    """Training targets for a batch: ``(n, num_anchors, 4 + num_classes + 1)`` float32.

    ``boxes_list[i]`` holds image i's (k, 4) normalised (y1, x1, y2, x2) boxes (k may be 0),
    ``classes_list[i]`` its k class ids in [0, num_classes). Flatten a row to store it in
    a DataFrame array column; the trainer reshapes it to the model's output shape.

    Example::

        y = encode_targets([[[0.1, 0.1, 0.5, 0.4]]], [[3]], {"num_classes": 10})
    """
    cfg = config_with_defaults(config)
    anchors = anchors_for(cfg)
    checked = check_ground_truth(boxes_list, classes_list, cfg["num_classes"])
    return (
        np.stack(
            [assign_targets(b, c, anchors, cfg["num_classes"], iou_threshold) for b, c in checked]
        )
        if checked
        else np.zeros((0, len(anchors), 5 + cfg["num_classes"]), dtype="float32")
    )


@keras.saving.register_keras_serializable(package="sparkzoo")
class SSDLoss(keras.losses.Loss):
    """SSD's multibox loss over ``(y_true, y_pred)`` of shape (batch, anchors, 4 + C + 1).

    Per image: smooth L1 (Huber, delta 1) of the box offsets of positive anchors, plus
    softmax cross-entropy of the positives and of the hardest negatives, at most
    ``neg_pos_ratio`` negatives per positive (at least ``neg_pos_ratio`` for an image
    without objects), all divided by the number of positives.
    """

    def __init__(
        self,
        num_classes: int,
        neg_pos_ratio: float = 3.0,
        box_weight: float = 1.0,
        name: str = "ssd_loss",
        **kwargs: Any,
    ) -> None:
        super().__init__(name=name, **kwargs)
        self.num_classes = int(num_classes)
        self.neg_pos_ratio = float(neg_pos_ratio)
        self.box_weight = float(box_weight)

    def call(self, y_true: Any, y_pred: Any) -> Any:
        y_true = tf.cast(y_true, y_pred.dtype)
        box_true, cls_true = y_true[..., :4], y_true[..., 4:]
        box_pred, cls_pred = y_pred[..., :4], y_pred[..., 4:]
        positive = 1.0 - cls_true[..., 0]
        n_pos = tf.reduce_sum(positive, axis=-1)

        diff = tf.abs(box_true - box_pred)
        smooth_l1 = tf.where(diff < 1.0, 0.5 * diff * diff, diff - 0.5)
        box_loss = tf.reduce_sum(tf.reduce_sum(smooth_l1, axis=-1) * positive, axis=-1)

        ce = tf.nn.softmax_cross_entropy_with_logits(labels=cls_true, logits=cls_pred)
        # Hard-negative mining: rank negatives by their loss, keep the top k per image.
        neg_ce = tf.stop_gradient(tf.where(positive > 0, -1.0, ce))
        rank = tf.argsort(tf.argsort(neg_ce, axis=-1, direction="DESCENDING"), axis=-1)
        n_neg = tf.reduce_sum(1.0 - positive, axis=-1)
        k = tf.minimum(self.neg_pos_ratio * tf.maximum(n_pos, 1.0), n_neg)
        hard = tf.cast(tf.cast(rank, k.dtype) < k[:, None], y_pred.dtype) * (1.0 - positive)
        cls_loss = tf.reduce_sum(ce * (positive + hard), axis=-1)
        return (cls_loss + self.box_weight * box_loss) / tf.maximum(n_pos, 1.0)

    def get_config(self) -> dict:
        return {
            **super().get_config(),
            "num_classes": self.num_classes,
            "neg_pos_ratio": self.neg_pos_ratio,
            "box_weight": self.box_weight,
        }


def decode_predictions(
    y_pred: Any,
    config: dict | None = None,
    score_threshold: float = 0.3,
    iou_threshold: float = 0.45,
    max_detections: int = 100,
    labels: Sequence[str] | None = None,
    candidates_per_class: int = 200,
) -> list[Detections]:
    """Model outputs (batch, anchors, 4 + C + 1) -> one :class:`Detections` per image.

    Class probabilities by softmax; for each object class the anchors scoring at least
    ``score_threshold`` (at most ``candidates_per_class`` of them) are decoded, clipped to
    the image and suppressed per class at ``iou_threshold``; the best ``max_detections``
    remain. Class ids are 0-based object classes (background removed).
    """
    cfg = config_with_defaults(config)
    anchors = anchors_for(cfg)
    y = output_batch(y_pred, len(anchors), cfg["num_classes"], "ssd_lite")
    out = []
    for row in y:
        probs = softmax(row[:, 4:])[:, 1:]  # background dropped: ids are object classes
        idx, cls, scores = candidates(probs, score_threshold, candidates_per_class)
        boxes = clip_boxes(decode(row[idx, :4], anchors[idx]))
        out.append(suppress(boxes, scores, cls, iou_threshold, max_detections, labels))
    return out
