"""Anomaly detection on a time series with an LSTM trained on Spark by Horovod.

``python -m sparkzoo.apps.anomaly_detection --output DIR`` reads the packaged Taylor
electricity-demand series (real) with 16 SYNTHETIC labelled anomalies injected, trains
``lstm_forecaster`` on the first half with 2 Horovod workers, flags the points whose forecast
error passes the training part's 99th percentile, and scores the held-out half against a
rolling z-score and scikit-learn's IsolationForest thresholded the same way. ``--input``
takes a NAB-format CSV instead (``--labels`` its NAB labels JSON).

Writes under ``--output``: ``points/`` (Parquet: index, timestamp, value, part, error,
is_anomaly, the baselines' scores and flags, label), ``model/`` (the trained LSTM, its scaler
and threshold), ``detections.png``, ``metrics.json``.

``python -m sparkzoo.apps.anomaly_detection stream --run DIR --input FOLDER --output OUT
--checkpoint CK`` scores the points of CSV files landing in FOLDER with the LSTM of the run in
DIR (Spark Structured Streaming) and appends the flagged ones to ``OUT/anomalies/``.
"""

from __future__ import annotations

import argparse
import sys
import time

from sparkzoo import fs
from sparkzoo.apps.common import (
    AppParser,
    StagedOutput,
    add_stream_args,
    app_parser,
    follow_stream,
    prepare_stream,
    run_app,
    start_spark,
    stream_options,
)

APP = "anomaly_detection"
MODELS = ("lstm_forecaster", "lstm_autoencoder")  # pipeline.MODELS (a test checks they agree)


def _pipeline():
    """The anomaly pipeline (Spark, TensorFlow), imported when a command runs, not for --help."""
    from sparkzoo.apps.anomaly_detection import pipeline

    return pipeline


def _units(text: str) -> tuple[int, ...]:
    try:
        units = tuple(int(u) for u in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"--units {text!r}: expected sizes like 32,16") from None
    if not units or min(units) < 1:
        raise argparse.ArgumentTypeError(f"--units {text!r}: sizes must be positive")
    return units


def build_parser() -> AppParser:
    parser = app_parser(
        APP,
        "Anomaly detection on a time series: an LSTM trained on Spark with Horovod flags the "
        "points it forecasts badly, measured against a rolling z-score and IsolationForest.",
        default="run",
    )
    run = parser.add_command(
        "run",
        "train the LSTM on the first part of the series and flag anomalies in the rest",
        "a NAB-format CSV (timestamp,value); default: the packaged series named by --series "
        "with injected (synthetic, labelled) anomalies",
        description="Train an LSTM on the first part of a time series with Horovod workers, "
        "flag the points whose error passes the training part's quantile, and score the "
        "held-out part against a rolling z-score and IsolationForest thresholded the same way. "
        "Writes points/ (Parquet), model/ (the trained LSTM, for `stream`), detections.png and "
        "metrics.json under --output.",
    )
    run.add_argument("--series", default="taylor",
                     help="packaged real series to use when --input is not given (default "
                     "taylor; see sparkzoo.datasets.list_time_series())")  # fmt: skip
    run.add_argument("--labels", default=None,
                     help="NAB labels JSON for --input (combined_windows.json or "
                     "combined_labels.json)")  # fmt: skip
    run.add_argument("--labels-key", default=None,
                     help="the entry in --labels, e.g. realKnownCause/nyc_taxi.csv")  # fmt: skip
    run.add_argument("--anomalies", type=int, default=16,
                     help="anomalies to inject into a packaged series (default 16)")  # fmt: skip
    run.add_argument("--magnitude", type=float, default=1.0,
                     help="size of the injected anomalies, in typical steps of the series "
                     "(default 1.0)")  # fmt: skip
    run.add_argument("--model", choices=MODELS, default="lstm_forecaster",
                     help="lstm_forecaster scores each point by how badly it is predicted "
                     "from the window before it, lstm_autoencoder by how badly the windows "
                     "holding it are reconstructed (default lstm_forecaster)")  # fmt: skip
    run.add_argument("--window", type=int, default=48, help="points per window (default 48)")
    run.add_argument("--units", type=_units, default=(32, 16),
                     help="sizes of the LSTM layers (default 32,16)")  # fmt: skip
    run.add_argument("--train-fraction", type=float, default=0.5,
                     help="share of the series, from its start, used for training and the "
                     "threshold (default 0.5)")  # fmt: skip
    run.add_argument("--quantile", type=float, default=0.99,
                     help="threshold: this quantile of each detector's scores on the training "
                     "part (default 0.99)")  # fmt: skip
    run.add_argument("--inject-into", choices=("test", "all"), default="test",
                     help="packaged series: inject anomalies into the held-out part only "
                     "(default; the training history stays normal) or all of it")  # fmt: skip
    run.add_argument("--workers", type=int, default=2,
                     help="training processes (Horovod ranks, default 2)")  # fmt: skip
    run.add_argument("--epochs", type=int, default=10,
                     help="passes over the training windows (default 10)")  # fmt: skip
    run.add_argument("--batch-size", type=int, default=32,
                     help="windows per batch per worker (default 32)")  # fmt: skip
    run.add_argument("--tracking-uri", default=None,
                     help="MLflow tracking URI to log the run to (default: none)")  # fmt: skip

    live = parser.add_command(
        "stream",
        "score new points of CSV files landing in a folder with a run's trained LSTM "
        "(Spark Structured Streaming)",
        "the folder (local or hdfs://) that CSV files (timestamp,value, a header line) land in",
        description="Score the points of CSV files landing in --input with the lstm_forecaster "
        "a run trained (--run: its output folder, which holds model/), against that run's "
        "threshold, and append the flagged points to anomalies/ (Parquet) under --output. "
        "Each point is scored with the window of points before it, across files; files must "
        "land in time order. Exactly once: stop it (SIGTERM or Ctrl-C) and start it again "
        "with the same --checkpoint, and every point is scored once.",
    )
    live.add_argument("--run", required=True, metavar="RUN",
                      help="the output folder of a run (its model/ holds the trained LSTM, "
                      "its scaler and threshold)")  # fmt: skip
    live.add_argument("--all-points", action="store_true",
                      help="write every scored point to points/, flagged or not, instead of "
                      "the flagged ones to anomalies/")  # fmt: skip
    add_stream_args(live)
    return parser


def main(argv: list[str] | None = None) -> int:
    return run_app(build_parser(), {"run": run, "stream": stream}, argv)


def run(args: argparse.Namespace) -> int:
    pipeline = _pipeline()
    if args.input is None and args.labels is not None:
        raise ValueError("--labels needs --input (a NAB CSV)")
    if args.input is not None:
        frame = pipeline.load_nab(args.input, args.labels, args.labels_key, args.sample_rate)
        name, labels_kind = args.input, "NAB labels" if args.labels else "none"
    else:
        frame = pipeline.load_packaged(
            args.series,
            args.anomalies,
            args.seed,
            args.magnitude,
            args.sample_rate,
            clean_fraction=args.train_fraction if args.inject_into == "test" else 0.0,
        )
        name, labels_kind = args.series, "injected (synthetic)"

    spark = start_spark(args, APP)
    print(
        f"{name}: {len(frame):,} points, labels: {labels_kind}"
        + (
            f", {int(frame['label'].sum())} anomalous points"
            if frame["label"].notna().all()
            else ""
        )
    )
    with StagedOutput(args.output, args.overwrite) as out:
        windows = pipeline.spark_windows(spark, frame, args.window, args.model, args.train_fraction)
        train_rows = windows.parts["train"]["rows"]
        print(f"windows of {args.window} on Spark; training part: {train_rows:,} points")
        print(f"training {args.model} on {args.workers} Horovod workers, {args.epochs} epochs")
        fitted = pipeline.train_detector(
            windows, args.model, args.units, args.epochs, args.workers, args.batch_size,
            seed=args.seed, tracking_uri=args.tracking_uri,
        )  # fmt: skip
        print("scoring every window on Spark")
        started = time.perf_counter()
        errors = pipeline.point_errors(fitted, windows, args.model)
        score_s = time.perf_counter() - started
        result = pipeline.detect(
            frame, errors, train_rows, args.window, args.quantile, windows.scaler, args.seed
        )
        windows.unpersist()
        pipeline.save_detector(
            out.path("model"), fitted, args.model, args.window, windows.scaler,
            result.thresholds["lstm"],
        )  # fmt: skip
        spark.createDataFrame(result.points, pipeline.POINTS_SCHEMA).write.parquet(
            out.path("points")
        )
        title = f"{name}, {labels_kind} anomalies, {args.model}"
        out.save_figure("detections.png", pipeline.plot_detections(frame, result, title))
        figures = {
            "series": name,
            "labels": labels_kind,
            "points": len(frame),
            "model": args.model,
            "train_points": train_rows,
            "threshold_policy": f"quantile {args.quantile} of each detector's scores on "
            "the training part (labels unused)",
            "thresholds": result.thresholds,
            **result.evaluated,
            "flagged_held_out": int(
                result.points.loc[result.points["part"] == "test", "is_anomaly"].sum()
            ),
            "fit_s": round(fitted.summary["fit_s"], 1),
            "score_s": round(score_s, 1),
            "final_loss": _final_loss(fitted),
            **{f"{name}_{k}": v for name, m in result.metrics.items() for k, v in m.items()},
        }
        record = out.write_metrics(APP, args, figures)
    _summary(record, result, args.output)
    return 0


def stream(args: argparse.Namespace) -> int:
    from sparkzoo.apps.anomaly_detection import streaming

    prepare_stream(args)
    saved = _pipeline().load_detector(fs.join(args.run, "model"))
    spark = start_spark(args, APP)
    where = "anomalies/" if not args.all_points else "points/"
    print(
        f"scoring the points landing in {args.input} with the {saved.model} of {args.run} "
        f"(window {saved.window}, threshold {saved.threshold:.4g}) into {args.output}/{where}"
    )
    query = streaming.start(
        spark, args.input, args.output, args.checkpoint, saved, **stream_options(args),
        all_points=args.all_points,
    )  # fmt: skip
    follow_stream(query, args, "points")
    return 0


def _final_loss(fitted) -> float | None:
    history = getattr(fitted, "history", None) or {}
    losses = history.get("loss") if isinstance(history, dict) else None
    return round(float(losses[-1]), 5) if losses else None


def _summary(record: dict, result, output: str) -> None:
    m = record["metrics"]
    print(
        f"\nheld-out points: {m['held_out_points']:,}; flagged by the LSTM: {m['flagged_held_out']}"
    )
    if result.metrics:
        print(f"{'detector':<18}{'precision':>10}{'recall':>8}{'F1':>7}{'events':>8}{'AUPRC':>7}")
        for name, s in result.metrics.items():
            print(
                f"{name:<18}{s['precision']:>10.3f}{s['recall']:>8.3f}{s['f1']:>7.3f}"
                f"{s['events_found']:>5}/{m['held_out_events']:<2}{s['auprc'] or float('nan'):>7.3f}"
            )
    print(f"results in {output} ({record['seconds']:.0f} s, load {record['loadavg']})")


if __name__ == "__main__":
    sys.exit(main())
