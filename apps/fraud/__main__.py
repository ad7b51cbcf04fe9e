"""Fraud detection on transactions: train and evaluate, or score new transactions in batch.

``python -m sparkzoo.apps.fraud --output DIR [flags]`` (training; the default data is the
SYNTHETIC PaySim-like generator, ``--input creditcard.csv`` reads the Kaggle file) writes
``scored_test/`` (Parquet), ``model/`` (Keras model + ``preprocess.json`` with the scaler and
the threshold), ``pr_curve.png`` and ``metrics.json``.
``python -m sparkzoo.apps.fraud score --model DIR/model --input NEW --output DIR2`` writes
``scores/`` (Parquet with ``score`` and ``flag``) and ``metrics.json``.
"""

from __future__ import annotations

import argparse
import sys
import time

from sparkzoo.apps.common import AppParser, StagedOutput, app_parser, run_app, start_spark

APP = "fraud"


def _pipeline():
    """The fraud pipeline (Spark, TensorFlow), imported when a command runs, not for --help."""
    from sparkzoo.apps.fraud import pipeline

    return pipeline


def build_parser() -> AppParser:
    parser = app_parser(
        APP,
        "Fraud detection on payment transactions: train a model on Spark and Horovod and "
        "measure it against scikit-learn, then score new transactions in batch.",
        default="train",
    )
    train = parser.add_command(
        "train",
        "train the fraud model and evaluate it on the latest transactions",
        "transactions to train on: a Kaggle credit-card CSV (Time, V1..V28, Amount, Class) or "
        "a transactions CSV/Parquet (timestamp, customer_id, merchant_id, merchant_category, "
        "type, amount, is_fraud); default: the SYNTHETIC PaySim-like generator",
        description="Train a tabular MLP on past-window features of the transactions with "
        "Horovod workers, next to scikit-learn baselines, and evaluate all of them on the "
        "latest transactions. Writes scored_test/ (Parquet), model/, pr_curve.png and "
        "metrics.json under --output.",
    )
    train.add_argument(
        "--customers", type=int, default=1000, help="generator: accounts (default 1000)"
    )
    train.add_argument(
        "--days", type=int, default=30, help="generator: days of activity (default 30)"
    )
    train.add_argument(
        "--fraud-rate",
        type=float,
        default=0.01,
        help="generator: share of fraudulent transactions (default 0.01)",
    )
    train.add_argument(
        "--workers", type=int, default=2, help="training processes (Horovod ranks, default 2)"
    )
    train.add_argument(
        "--epochs", type=int, default=8, help="passes over the training part (default 8)"
    )
    train.add_argument(
        "--batch-size", type=int, default=256, help="rows per batch per worker (default 256)"
    )
    train.add_argument(
        "--learning-rate", type=float, default=1e-3, help="Adam learning rate (default 0.001)"
    )
    train.add_argument(
        "--hidden",
        type=int,
        nargs="+",
        default=[64, 32],
        help="sizes of the MLP's hidden layers (default 64 32)",
    )
    train.add_argument(
        "--positive-share",
        type=float,
        default=0.2,
        help="weight fraud rows of the training part up to this share of the loss (default 0.2)",
    )
    train.add_argument(
        "--split",
        type=float,
        nargs=3,
        default=[0.6, 0.2, 0.2],
        metavar=("TRAIN", "VAL", "TEST"),
        help="shares of the transactions, oldest first, for training, choosing the threshold "
        "and testing (default 0.6 0.2 0.2)",
    )
    train.add_argument(
        "--tracking-uri", default=None, help="MLflow tracking URI to log the run to (default: none)"
    )
    train.add_argument(
        "--tune",
        type=int,
        default=0,
        metavar="N",
        help="first search N trials of learning rate, batch size and dropout for the best "
        "validation PR-AUC (sparkzoo.tune, trials side by side on the executors), then train "
        "with the best (default 0: no search)",
    )

    score = parser.add_command(
        "score",
        "score new transactions in batch with a trained model",
        "the transactions to score (CSV or Parquet, in the layout the model was trained on)",
        description="Score new transactions with the model/ folder of a training run. Writes "
        "scores/ (Parquet with score and flag) and metrics.json under --output.",
    )
    score.add_argument("--model", required=True, help="the model/ folder of a training run")
    score.add_argument(
        "--history",
        default=None,
        help="earlier transactions of the same accounts, so the past-window features see them",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    return run_app(build_parser(), {"train": train, "score": score}, argv)


def _step(message: str) -> None:
    print(f"[fraud] {message}", flush=True)


def train(args: argparse.Namespace) -> int:
    fp = _pipeline()
    if abs(sum(args.split) - 1.0) > 1e-6:
        raise ValueError(f"--split {args.split} must sum to 1")
    spark = start_spark(args, APP)
    start = time.perf_counter()
    with StagedOutput(args.output, args.overwrite) as out:
        source = args.input or "the synthetic generator"
        _step(f"reading {source}")
        raw = fp.load_transactions(
            spark, args.input, args.customers, args.days, args.fraud_rate, args.seed
        )
        raw = fp.sample_accounts(raw, args.sample_rate, args.seed)
        data = fp.prepare(raw, source)
        feats = fp.add_features(data).cache()
        train_part, val, test = fp.time_split(feats, args.split)
        counts = {
            name: part.groupBy(fp.LABEL).count().collect()
            for name, part in (("train", train_part), ("validation", val), ("test", test))
        }
        sizes = {n: {int(r[0]): int(r[1]) for r in rows} for n, rows in counts.items()}
        _step(
            f"{data.layout} layout; past-window features done; time-ordered split "
            + ", ".join(f"{n} {sum(c.values())} ({c.get(1, 0)} fraud)" for n, c in sizes.items())
        )
        prep = fp.fit_preprocessor(train_part, data.layout)
        weighted, factor = fp.with_class_weights(train_part, args.positive_share)
        settings = dict(
            epochs=args.epochs,
            batch_size=args.batch_size,
            learning_rate=args.learning_rate,
            hidden=args.hidden,
            seed=args.seed,
            tracking_uri=args.tracking_uri,
        )
        train_rows, val_rows = fp.assemble(weighted, prep), fp.assemble(val, prep)
        tuning = _tune(args, fp, train_rows, val_rows, len(prep.input_names), settings, out)
        _step(
            f"training tabular_mlp on {args.workers} Horovod workers, {args.epochs} epochs, "
            f"fraud rows weighted x{factor} (focal loss)"
        )
        fit_start = time.perf_counter()
        fitted = fp.train_mlp(train_rows, len(prep.input_names), workers=args.workers, **settings)
        fit_seconds = time.perf_counter() - fit_start

        _step("scoring validation and test parts; fitting scikit-learn baselines")
        result = fp.evaluate(fitted, prep, train_part, val, test, args.seed)
        models, scored_test = result.models, result.scored_test
        mlp_test = models["tabular_mlp"]["test"]

        scored_test.select(*fp.output_columns(data.layout, True)).write.parquet(
            out.path("scored_test")
        )
        fp.save_model(fitted, prep, out.path("model"))
        out.save_figure(
            "pr_curve.png",
            fp.pr_curve_figure(result.curves, (mlp_test.get("recall"), mlp_test.get("precision"))),
        )
        key = f"precision_at_recall_{fp.TARGET_RECALL}"
        metrics = {
            "data": "synthetic PaySim-like generator" if args.input is None else args.input,
            "layout": data.layout,
            "rows": {n: sum(c.values()) for n, c in sizes.items()},
            "fraud": {n: c.get(1, 0) for n, c in sizes.items()},
            "features": prep.input_names,
            "fraud_weight": factor,
            "threshold": prep.threshold,
            "fit_seconds": round(fit_seconds, 2),
            "tuning": tuning,
            "baseline_fit_seconds": round(result.baseline_seconds, 2),
            "history": fitted.history,
            "models": models,
            "auprc": {n: m["test"]["auprc"] for n, m in models.items()},
            key: {n: m["test"][key] for n, m in models.items()},
        }
        record = out.write_metrics("fraud", args, metrics)
        feats.unpersist()
        scored_test.unpersist()
    _print_summary(record, args.output, time.perf_counter() - start)
    return 0


def _tune(args, fp, train, val, input_dim: int, settings: dict, out: StagedOutput):
    """With ``--tune N``: search N settings on the validation part, put the best into
    ``settings`` and save ``tune.png``; the search's record for metrics.json (None without)."""
    if not args.tune:
        return None
    _step(f"searching {args.tune} settings on the validation part (PR-AUC)")
    found = fp.tune_mlp(train, val, input_dim, args.tune, workers=1, **settings)
    if found.best_params is None:
        raise RuntimeError("--tune: no trial completed; see the errors above")
    best = found.best_params
    settings |= {k: best[k] for k in ("learning_rate", "batch_size")}
    settings["dropout"] = best["model_params"]["dropout"]
    out.save_figure("tune.png", found.figure())
    columns = ["number", "params", "value", "state", "seconds"]
    return {
        "best_params": best,
        "best_val_auprc": found.best_value,
        "trials": found.trials[columns].to_dict("records"),
    }


def _print_summary(record: dict, output: str, seconds: float) -> None:
    fp = _pipeline()
    metrics = record["metrics"]
    print(
        f"\nfraud detection, test part ({metrics['rows']['test']} latest transactions, "
        f"{metrics['fraud']['test']} fraud):"
    )
    print(fp.metrics_table(metrics["models"]))
    t = metrics["models"]["tabular_mlp"]["test"]
    print(
        f"MLP at the validation threshold {metrics['threshold']:.4f}: precision "
        f"{fp.format_figure(t.get('precision'))}, recall {fp.format_figure(t.get('recall'))}, "
        f"{t.get('flagged')} flagged"
    )
    print(
        f"done in {seconds:.0f} s; output in {output} (metrics.json, scored_test/, model/, "
        "pr_curve.png)"
    )


def score(args: argparse.Namespace) -> int:
    fp = _pipeline()
    if args.input is None:
        raise ValueError("score needs --input: the transactions to score")
    spark = start_spark(args, APP)
    fitted, prep = fp.load_model(args.model)
    with StagedOutput(args.output, args.overwrite) as out:
        _step(f"scoring {args.input} with {args.model} (threshold {prep.threshold:.4f})")
        raw = fp.sample_accounts(fp.load_transactions(spark, args.input), args.sample_rate)
        new = fp.prepare(raw, args.input, require_label=False)
        history = None
        if args.history:
            history = fp.prepare(
                fp.load_transactions(spark, args.history), args.history, require_label=False
            )
        scored = fp.score_new(fitted, prep, new, history).cache()
        scored.select(*fp.output_columns(new.layout, new.labelled)).write.parquet(
            out.path("scores")
        )
        columns = [fp.SCORE, fp.LABEL] if new.labelled else [fp.SCORE]
        values = fp.to_numpy(scored, columns)
        metrics: dict = {
            "rows": len(values[0]),
            "flagged": int((values[0] >= prep.threshold).sum()),
            "threshold": prep.threshold,
        }
        if new.labelled:
            metrics["evaluation"] = fp.score_metrics(values[1], values[0], prep.threshold)
        out.write_metrics("fraud-score", args, metrics)
        scored.unpersist()
    print(
        f"scored {metrics['rows']} transactions, flagged {metrics['flagged']}; "
        f"output in {args.output} (scores/, metrics.json)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
