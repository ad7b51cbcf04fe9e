"""``python -m sparkzoo.apps.text_classification``: reviews to a text CNN or RNN on Spark.

``run`` (the default) reads the real Rotten Tomatoes corpus (or any CSV/Parquet with a text
and a label column, local or ``hdfs://``), turns it into word ids with TextSet on Spark (the
vocabulary counted on the training part only), trains ``text_cnn`` or ``text_rnn`` on
``--workers`` Horovod ranks, and scores the held-out part next to scikit-learn's TF-IDF +
logistic regression and the majority class. Output folder (local or ``hdfs://``)::

    confusion_matrix.png  held-out confusion matrices: the model and TF-IDF + logistic regression
    model/                keras/ (sparkzoo KerasModel.load) + preprocessing.json (vocabulary)
    metrics.json          accuracy and macro F1 of each, the most confidently wrong reviews

``score`` applies a saved model/ to new texts (CSV, Parquet or a text file, one per line) and
writes ``scores/`` (Parquet: the input's columns, ``probabilities``, ``probability``,
``prediction``) and ``metrics.json``.

Example::

    python -m sparkzoo.apps.text_classification --output out/reviews
    python -m sparkzoo.apps.text_classification score --model out/reviews/model \\
        --input new_reviews.txt --output out/scored
"""

from __future__ import annotations

import argparse
import sys
import time

from sparkzoo import fs
from sparkzoo.apps.common import (
    AppParser,
    StagedOutput,
    app_parser,
    positive_int,
    run_app,
    start_spark,
)

APP = "text_classification"
MODELS = ("text_cnn", "text_rnn")  # pipeline.MODELS (a test checks they agree)


def _pipeline():
    """The text-classification pipeline (Spark, TensorFlow), imported when a command runs,
    not for --help."""
    from sparkzoo.apps.text_classification import pipeline

    return pipeline


def build_parser() -> AppParser:
    parser = app_parser(
        APP,
        "Text classification: reviews to word ids with TextSet on Spark, a text CNN or RNN on "
        "Horovod, measured next to TF-IDF + logistic regression; score new texts.",
        default="run",
    )
    run = parser.add_command(
        "run",
        "train a text classifier and measure it next to TF-IDF + logistic regression",
        "a CSV (with a header) or Parquet table with a text and a label column, local or "
        "hdfs:// (default: the real Rotten Tomatoes corpus, 12,808 review snippets)",
        description="Split the reviews once (--test-fraction held out), count the vocabulary "
        "on the training part, train --model with the distributed trainer and score the "
        "held-out part with it, with scikit-learn's TF-IDF + logistic regression and with the "
        "majority class. Writes confusion_matrix.png, model/ and metrics.json under --output.",
    )
    run.add_argument("--text-col", default="text", help="the text column (default text)")
    run.add_argument("--label-col", default="label", help="the label column (default label)")
    run.add_argument(
        "--model", default="text_cnn", choices=MODELS, help="the zoo family (default text_cnn)"
    )
    run.add_argument("--workers", type=positive_int, default=2, help="Horovod ranks (default 2)")
    run.add_argument("--epochs", type=positive_int, default=3, help="passes (default 3)")
    run.add_argument(
        "--batch-size", type=positive_int, default=32, help="rows per batch per worker (default 32)"
    )
    run.add_argument(
        "--learning-rate", type=float, default=5e-4, help="Adam's, before scaling (default 5e-4)"
    )
    run.add_argument(
        "--seq-len", type=positive_int, default=50, help="word ids kept per text (default 50)"
    )
    run.add_argument(
        "--min-count",
        type=positive_int,
        default=2,
        help="a word enters the vocabulary when it occurs this often in the training texts "
        "(default 2)",
    )
    run.add_argument(
        "--max-words", type=positive_int, default=None, help="vocabulary size cap (default none)"
    )
    run.add_argument(
        "--embedding-dim", type=positive_int, default=96, help="word vector size (default 96)"
    )
    run.add_argument(
        "--filters", type=positive_int, default=100, help="text_cnn maps per width (default 100)"
    )
    run.add_argument("--units", type=positive_int, default=64, help="text_rnn units (default 64)")
    run.add_argument(
        "--test-fraction",
        type=float,
        default=0.2,
        help="share of the texts held out for scoring (default 0.2)",
    )
    run.add_argument(
        "--wrong",
        type=positive_int,
        default=5,
        help="most confidently wrong texts to list (default 5)",
    )
    run.add_argument(
        "--no-baseline",
        action="store_true",
        help="skip scikit-learn's TF-IDF + logistic regression and the majority class",
    )

    score = parser.add_command(
        "score",
        "score new texts with a saved model",
        "the texts: a CSV (with a header) or Parquet table, or a text file (.txt, one text "
        "per line), local or hdfs://",
        description="Score new texts with the model/ folder of a run (its vocabulary and "
        "preprocessing travel with it). Writes scores/ (Parquet: the input's columns, "
        "probabilities, probability, prediction) and metrics.json under --output; when the "
        "input has --label-col, metrics.json also holds the accuracy.",
    )
    score.add_argument("--model", required=True, help="the model/ folder a run wrote")
    score.add_argument("--text-col", default="text", help="the text column (default text)")
    score.add_argument(
        "--label-col",
        default="label",
        help="a label column to measure accuracy against, when the input has it (default label)",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    return run_app(build_parser(), {"run": run, "score": score}, argv)


def _step(message: str) -> None:
    print(f"[text_classification] {message}", flush=True)


def run(args: argparse.Namespace) -> int:
    pipeline = _pipeline()
    started = time.perf_counter()
    if not 0 < args.test_fraction < 1:
        raise ValueError(f"--test-fraction {args.test_fraction} must be between 0 and 1")
    pipeline.check_seq_len(args.model, args.seq_len)
    if args.input and not fs.is_hdfs(args.input):
        pipeline.check_local_input(args.input, args.text_col, args.label_col)
    with StagedOutput(args.output, args.overwrite) as out:
        spark = start_spark(args, APP)
        reviews, classes, source = pipeline.load_reviews(
            spark, args.input, args.text_col, args.label_col, args.sample_rate, args.seed
        )
        train, held_out = pipeline.split(reviews, args.test_fraction, args.seed)
        spec = pipeline.fit_preprocessing(
            train, classes, args.seq_len, args.min_count, args.max_words
        )
        config = pipeline.model_config(
            args.model, spec, args.embedding_dim, args.filters, args.units
        )
        _step(f"{source}: classes {classes}; vocabulary {len(spec['vocabulary']):,} words from "
              f"the training part; {args.model} on {args.workers} workers")  # fmt: skip
        fit_started = time.perf_counter()
        fitted = pipeline.train_model(
            pipeline.to_sequences(train, spec), args.model, config, workers=args.workers,
            epochs=args.epochs, batch_size=args.batch_size, learning_rate=args.learning_rate,
            seed=args.seed,
        )  # fmt: skip
        fit_seconds = time.perf_counter() - fit_started
        evaluation = pipeline.evaluate(
            fitted, spec, train, held_out, args.wrong, baselines=not args.no_baseline
        )
        out.save_figure("confusion_matrix.png", pipeline.confusion_figure(evaluation, args.model))
        pipeline.save_model(fitted, spec, args.model, config, out.path("model"))
        metrics = {
            "data": source,
            "model": args.model,
            "config": config,
            "vocabulary_words": len(spec["vocabulary"]),
            **pipeline.describe(evaluation),
            "fit_s": round(fit_seconds, 1),
            "total_s": round(time.perf_counter() - started, 1),
        }
        out.write_metrics(APP, args, metrics)
    for method, s in metrics["results"].items():
        _step(f"{method}: held-out accuracy {s['accuracy']:.3f}, macro F1 {s['f1']:.3f}")
    _step(f"wrote {args.output}")
    return 0


def score(args: argparse.Namespace) -> int:
    pipeline = _pipeline()
    if args.input is None:
        raise ValueError("score needs --input: the texts to score")
    fitted, spec = pipeline.load_model(args.model)
    if not fs.is_hdfs(args.input):
        pipeline.check_local_texts(args.input, args.text_col)
    with StagedOutput(args.output, args.overwrite) as out:
        spark = start_spark(args, APP)
        table = pipeline.read_table(spark, args.input)
        pipeline.check_columns(table.columns, args.input, {"--text-col": args.text_col})
        if args.sample_rate < 1:
            table = table.sample(fraction=args.sample_rate, seed=args.seed)
        scored = pipeline.score(fitted, spec, table, args.text_col).cache()
        scored.write.parquet(out.path("scores"))
        metrics = pipeline.score_summary(scored, spec, args.label_col)
        metrics["model"] = args.model
        out.write_metrics(f"{APP}-score", args, metrics)
        scored.unpersist()
    _step(f"scored {metrics['rows']} texts {metrics['predicted']}; output in {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
