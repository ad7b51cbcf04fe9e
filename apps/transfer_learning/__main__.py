"""``python -m sparkzoo.apps.transfer_learning``: a trained network fine-tuned on another data set.

Fine-tunes the source (default ``lenet5.mnist``, trained on MNIST) on the real UCI optical
digits (or any ``<class>/<image>`` folder tree, local or ``hdfs://``) with K labelled images
per class, next to the same network trained from scratch and a logistic regression on the
pixels, each through the distributed trainer, all scored on one fixed held-out part. Output
folder (local or ``hdfs://``)::

    learning_curve.png   held-out accuracy against labelled images per class, per method
    model/               the fine-tuned model at the largest K (sparkzoo KerasModel.load)
    metrics.json         the accuracies, the arguments, time and load average

Example::

    python -m sparkzoo.apps.transfer_learning --output out/transfer
    python -m sparkzoo.apps.transfer_learning --input hdfs://127.0.0.1:9000/flowers \\
        --source resnet18 --weights hdfs://127.0.0.1:9000/resnet18.weights.h5 \\
        --input-shape 64 64 3 --labels-per-class 10 all --output out/flowers
"""

from __future__ import annotations

import argparse
import sys
import time

from sparkzoo.apps.common import AppParser, StagedOutput, app_parser, run_app, start_spark

APP = "transfer_learning"
METHODS = ("fine_tune", "scratch", "logistic")  # pipeline.METHODS (a test checks they agree)


def _pipeline():
    """The transfer-learning pipeline (Spark, TensorFlow), imported when a command runs, not
    for --help."""
    from sparkzoo.apps.transfer_learning import pipeline

    return pipeline


def build_parser() -> AppParser:
    parser = app_parser(
        APP,
        "Transfer learning: a network trained on one data set fine-tuned on another with few "
        "labels, against the same network from scratch and a logistic regression.",
        default="run",
    )
    run = parser.add_command(
        "run",
        "fine-tune the source on K labelled images per class and draw the learning curve",
        "images in class folders (<class>/<image>), local or hdfs:// (default: the real UCI "
        "optical digits of scikit-learn, 1,797 scans)",
        description="For each K of --labels-per-class, train the fine-tuned source, the same "
        "network from scratch and a logistic regression on the same K labelled images per "
        "class with the distributed trainer, and score all of them on one held-out part. "
        "Writes learning_curve.png, model/ and metrics.json under --output.",
    )
    run.add_argument(
        "--source",
        default="lenet5.mnist",
        help="the trained network: a pretrained zoo tag (its card gives the input and the "
        "preprocessing), or a family with --weights (default lenet5.mnist)",
    )
    run.add_argument(
        "--weights", default=None, metavar="PATH_OR_URI", help="a family's trained weights"
    )
    run.add_argument("--sha256", default=None, help="the weights file's sha256, checked")
    run.add_argument(
        "--input-shape",
        type=int,
        nargs=3,
        default=None,
        metavar=("H", "W", "C"),
        help="a family source's input size",
    )
    run.add_argument(
        "--labels-per-class",
        nargs="+",
        default=["5", "10", "50", "all"],
        metavar="K",
        help="labelled images per class to train on, each K a point of the curve; 'all' is "
        "every image outside the held-out part (default 5 10 50 all)",
    )
    run.add_argument(
        "--freeze-to",
        default=None,
        metavar="LAYER",
        help="freeze the source's layers up to this one (default: its whole backbone, up to "
        "the layer the new head goes on)",
    )
    run.add_argument(
        "--methods",
        nargs="+",
        choices=METHODS,
        default=list(METHODS),
        help="what to train (default: all three)",
    )
    run.add_argument(
        "--no-baseline",
        action="store_true",
        help="skip scikit-learn's LogisticRegression on the same pixels (it brings the labelled "
        "and held-out images to the driver)",
    )
    run.add_argument(
        "--workers", type=int, default=2, help="training processes (Horovod ranks, default 2)"
    )
    run.add_argument("--epochs", type=int, default=30, help="passes per fit (default 30)")
    run.add_argument(
        "--batch-size", type=int, default=16, help="rows per batch per worker (default 16)"
    )
    run.add_argument(
        "--test-fraction",
        type=float,
        default=0.3,
        help="share of the images held out for scoring (default 0.3)",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    return run_app(build_parser(), {"run": run}, argv)


def _step(message: str) -> None:
    print(f"[transfer_learning] {message}", flush=True)


def run(args: argparse.Namespace) -> int:
    pipeline = _pipeline()
    started = time.perf_counter()
    if not 0 < args.test_fraction < 1:
        raise ValueError(f"--test-fraction {args.test_fraction} must be between 0 and 1")
    per_class = pipeline.parse_per_class(args.labels_per_class)
    source = pipeline.load_source(args.source, args.weights, args.sha256, args.input_shape)
    freeze_to = pipeline.check_freeze_to(source, args.freeze_to)
    with StagedOutput(args.output, args.overwrite) as out:
        spark = start_spark(args, APP)
        if args.input:
            data, classes = pipeline.folder_images(spark, args.input, source)
        else:
            data, classes = pipeline.digit_images(spark, source), [str(d) for d in range(10)]
        if args.sample_rate < 1:
            data = data.sample(fraction=args.sample_rate, seed=args.seed)
        held_out, pool = pipeline.split(
            pipeline.preprocess(data, source), args.test_fraction, args.seed
        )
        _step(
            f"{args.input or 'UCI optical digits'}: {len(classes)} classes, "
            f"{pool.count()} images to draw labels from, {held_out.count()} held out; source "
            f"{source.name}, frozen up to {freeze_to}"
        )
        curve = pipeline.learning_curve(
            source, pool, held_out, per_class, len(classes), freeze_to, args.methods,
            workers=args.workers, epochs=args.epochs, batch_size=args.batch_size,
            seed=args.seed, baseline=not args.no_baseline, progress=_step,
        )  # fmt: skip
        out.save_figure(
            "learning_curve.png",
            pipeline.learning_curve_figure(curve, f"{source.name} → {args.input or 'UCI digits'}"),
        )
        if "fine_tune" in curve.models:
            curve.models["fine_tune"].save(out.path("model"))
        labels = ["all" if k is None else k for k in per_class]
        metrics = {
            "source": source.name,
            "data": args.input or "UCI optical digits (scikit-learn load_digits)",
            "classes": classes,
            "freeze_to": freeze_to,
            "labels_per_class": labels,
            "train_rows": curve.train_rows,
            "held_out_rows": curve.held_out_rows,
            "accuracy": {
                m: dict(zip(map(str, labels), a, strict=True)) for m, a in curve.accuracy.items()
            },
            "fit_seconds": curve.fit_seconds,
            "total_s": round(time.perf_counter() - started, 1),
        }
        out.write_metrics(APP, args, metrics)
    for method, accuracy in metrics["accuracy"].items():
        _step(f"{method}: " + ", ".join(f"K={k} {a:.3f}" for k, a in accuracy.items()))
    _step(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
