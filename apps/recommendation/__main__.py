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

import time

from sparkzoo.apps.common import StagedOutput, app_parser, run_cli, start_spark
from sparkzoo.apps.recommendation import pipeline


def parse_args(argv: list[str] | None = None):
    parser = app_parser(
        "recommendation",
        __doc__.splitlines()[0].split(": ", 1)[1],
        "a MovieLens ratings file: u.data, ratings.csv or ratings.dat, local or hdfs:// "
        "(default: the packaged MovieLens-100K)",
    )
    parser.add_argument("--model", choices=pipeline.MODELS, default="ncf")
    parser.add_argument("--workers", type=int, default=2, help="Horovod ranks (default 2)")
    parser.add_argument("--epochs", type=int, default=1, help="passes over the rounds (default 1)")
    parser.add_argument(
        "--rounds", type=int, default=6, help="rounds of fresh negatives per pass (default 6)"
    )
    parser.add_argument("--top-k", type=int, default=pipeline.TOP_K, help="movies per user")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.perf_counter()
    with StagedOutput(args.output, args.overwrite) as out:
        # the data is checked before Spark starts: a bad file fails in seconds
        data = pipeline.sample_users(
            pipeline.load_movielens(args.input), args.sample_rate, args.seed
        )
        ids = pipeline.index_ids(data)
        split = pipeline.make_split(ids, seed=args.seed)
        spark = start_spark(args, "recommendation")
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
        out.write_metrics("recommendation", args, metrics)
    table = " | ".join(
        f"{name} HR@10 {s['hr@10']:.3f} NDCG@10 {s['ndcg@10']:.3f}" for name, s in scores.items()
    )
    print(f"[recommendation] {table}")
    print(f"[recommendation] wrote {args.output}")
    return 0


if __name__ == "__main__":
    run_cli(main)
