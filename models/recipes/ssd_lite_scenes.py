"""SSD-lite (96x96) detecting the ten digits in COMPOSED scenes: real MNIST digits on real photos.

Data: ``sparkzoo.datasets.synthetic.detection_split(2000, 200, seed=0, image_size=96)``, real
MNIST digits pasted at random positions and sizes onto random crops of the real
scikit-image photographs (synthetic placement; see ``_scenes``). Trained on the 2,000 train
scenes through ``KerasEstimator``; mAP@0.5 (VOC) measured on the 200 held-out scenes, whose
digits come from MNIST digits never used in training.
"""

from __future__ import annotations

import importlib

from sparkzoo.models.recipes import _scenes

TAG = "ssd_lite.scenes"
FAMILY = "ssd_lite"
MODULE = "sparkzoo.models.detection.ssd"
# Digits are 20-45 % of the scene high and mostly taller than wide (a "1" is very thin):
# anchor scales 0.2-0.5 and width/height ratios 1, 1/2 and 1/4 cover them.
CONFIG = {
    "input_shape": (_scenes.IMAGE_SIZE, _scenes.IMAGE_SIZE, 3),
    "num_classes": 10,
    "width": 1.0,
    "feature_strides": (8, 16, 32),
    "min_scale": 0.2,
    "max_scale": 0.5,
    "aspect_ratios": (1.0, 0.5, 0.25),
}
EPOCHS = 15
BATCH_SIZE = 16
LEARNING_RATE = 1e-3
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
        loss=_module().ssd_loss(CONFIG),
        epochs=EPOCHS,
        batch_size=BATCH_SIZE,
        learning_rate=LEARNING_RATE,
        summary="SSD-lite detector of the ten digits (96x96 RGB), trained on composed scenes "
        "of real MNIST digits pasted on real photographs",
        notes="SSD anchors: scales 0.2-0.5 over the stride 8/16/32 maps, width/height ratios "
        "1, 1/2, 1/4 plus SSD's extra square (756 anchors); multibox loss with 3:1 "
        "hard-negative mining.",
    )
