"""``python -m sparkzoo.apps.recommendation``: NCF on MovieLens, against ALS and popularity.

Trains ``ncf`` (NeuMF; ``--model wide_deep`` for Wide & Deep) on implicit feedback with the
distributed trainer, measures HR@10 / NDCG@10 with the leave-last-out protocol (99 sampled
negatives) next to Spark MLlib ALS and item popularity in the same run, and writes every user's
top-k unseen movies as Parquet. Output folder (local or ``hdfs://``)::

    recommendations/   Parquet: user_id, rank, item_id, title, score
    model/             the trained Keras model (sparkzoo KerasModel.load)
    hit_ratio.png      HR@k, k = 1..20, of the model, ALS and popularity
    metrics.json       the figures, the arguments, time and load average

Example::

    python -m sparkzoo.apps.recommendation --output out/recs
    python -m sparkzoo.apps.recommendation --input ml-latest-small/ratings.csv \\
        --output hdfs://127.0.0.1:9000/recs --sample-rate 0.2 --epochs 1
"""

from __future__ import annotations

import argparse
import sys
import time

from sparkzoo.apps.common import AppParser, StagedOutput, app_parser, run_app, start_spark

APP = "recommendation"
MODELS = ("ncf", "wide_deep")  # pipeline.MODELS (a test checks they agree)
TOP_K = 10  # pipeline.TOP_K


def _pipeline():
    """The recommendation pipeline (Spark, TensorFlow), imported when a command runs, not for
    --help."""
    from sparkzoo.apps.recommendation import pipeline

    return pipeline


def build_parser() -> AppParser:
    parser = app_parser(
        APP,
        "Movie recommendation on MovieLens: NCF or Wide & Deep trained on Spark, measured "
        "against ALS and item popularity, and every user's top-k unseen movies.",
        default="run",
    )
    run = parser.add_command(
        "run",
        "train the recommender, measure HR@10 / NDCG@10 and recommend movies to every user",
        "a MovieLens ratings file: u.data, ratings.csv or ratings.dat, local or hdfs:// "
        "(default: the packaged MovieLens-100K)",
        description="Train NCF (or Wide & Deep) on implicit feedback with the distributed "
        "trainer, rank each user's last movie among 99 sampled others next to Spark MLlib ALS "
        "and item popularity (HR@10, NDCG@10), and write every user's top-k unseen movies. "
        "Writes recommendations/ (Parquet), model/, hit_ratio.png and metrics.json under "
        "--output.",
    )
    run.add_argument(
        "--model",
        choices=MODELS,
        default="ncf",
        help="ncf (NeuMF, from user and movie ids) or wide_deep (also the users' and movies' "
        "side features) (default ncf)",
    )
    run.add_argument(
        "--workers", type=int, default=2, help="training processes (Horovod ranks, default 2)"
    )
    run.add_argument("--epochs", type=int, default=1, help="passes over the rounds (default 1)")
    run.add_argument(
        "--rounds",
        type=int,
        default=6,
        help="rounds of freshly sampled negative movies per pass (default 6)",
    )
    run.add_argument(
        "--top-k", type=int, default=TOP_K, help=f"movies recommended per user (default {TOP_K})"
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    return run_app(build_parser(), {"run": run}, argv)


def run(args: argparse.Namespace) -> int:
    pipeline = _pipeline()
    started = time.perf_counter()
    with StagedOutput(args.output, args.overwrite) as out:
        # the data is checked before Spark starts: a bad file fails in seconds
        data = pipeline.sample_users(
            pipeline.load_movielens(args.input), args.sample_rate, args.seed
        )
        ids = pipeline.index_ids(data)
        split = pipeline.make_split(ids, seed=args.seed)
        spark = start_spark(args, APP)
        print(
            f"[recommendation] {len(data.ratings):,} ratings, {ids.num_users:,} users, "
            f"{ids.num_items:,} movies from {data.source}; {len(split.test):,} held out",
            flush=True,
        )
        print(f"[recommendation] training {args.model} on {args.workers} workers", flush=True)
        recommender = pipeline.train(
            spark,
            split,
            ids,
            model=args.model,
            workers=args.workers,
            epochs=args.epochs,
            rounds=args.rounds,
            seed=args.seed,
        )
        print("[recommendation] ranking held-out movies: model, ALS, popularity", flush=True)
        scores, curves = pipeline.evaluate(spark, recommender, split, ids, args.seed)
        figure = pipeline.plot_hit_ratio(
            curves, f"{args.model} vs baselines, {len(split.test):,} users, 100 candidates"
        )
        out.save_figure("hit_ratio.png", figure)
        print(f"[recommendation] top-{args.top_k} movies for {ids.num_users:,} users", flush=True)
        recommendations = pipeline.recommend(spark, recommender, ids, k=args.top_k)
        recommendations.write.parquet(out.path("recommendations"))
        recommender.fitted.save(out.path("model"))
        metrics = {
            "model": args.model,
            **scores[args.model],
            "als": scores["als"],
            "popularity": scores["popularity"],
            "hr_curve": curves,
            "ratings": len(data.ratings),
            "users": ids.num_users,
            "items": ids.num_items,
            "test_users": len(split.test),
            "candidates": int(split.candidates.shape[1]),
            "source": data.source,
            "fit_s": round(recommender.fitted.summary.get("fit_s", 0.0), 1),
            "total_s": round(time.perf_counter() - started, 1),
        }
        out.write_metrics(APP, args, metrics)
    table = " | ".join(
        f"{name} HR@10 {s['hr@10']:.3f} NDCG@10 {s['ndcg@10']:.3f}" for name, s in scores.items()
    )
    print(f"[recommendation] {table}")
    print(f"[recommendation] wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
