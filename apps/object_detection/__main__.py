"""``python -m sparkzoo.apps.object_detection [run|search|duplicates|visualise] ...``

- ``run`` (the default): images -> detect -> crop -> embed -> Parquet (``detections/``,
  ``features/``), previews with the boxes drawn, ``metrics.json`` (mAP@0.5 against the
  COCO ``annotations.json`` of the input when it has one, crop retrieval quality).
- ``search --input RUN --query IMAGE``: the images nearest to the query's top object.
- ``duplicates --input RUN``: near-duplicate crops (codes within a few bits).
- ``visualise --input RUN``: the images with their boxes drawn, as PNGs.
- ``stream --input FOLDER --checkpoint CK``: ``run``'s detection step on images as they land
  in a folder (Structured Streaming), appended to ``detections/`` and ``features/`` exactly
  once.

Example::

    python -m sparkzoo.apps.object_detection --output out/od --sample-rate 0.2
    python -m sparkzoo.apps.object_detection search --input out/od \\
        --query scene.png --output out/od-search
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from sparkzoo import fs, models
from sparkzoo.apps.common import (
    AppParser,
    StagedOutput,
    add_stream_args,
    app_parser,
    follow_stream,
    prepare_stream,
    read_metrics,
    run_app,
    sample,
    start_spark,
    stream_options,
)

if TYPE_CHECKING:
    from sparkzoo.apps.object_detection.pipeline import PipelineConfig

APP = "object_detection"
# pipeline.DETECTORS (a test checks they agree)
DETECTORS = ("ssd_lite.scenes", "yolo.scenes", "haar.face", "mtcnn.face")


def _pipeline():
    """The detection pipeline (Spark, TensorFlow), imported when a command runs, not for
    --help."""
    from sparkzoo.apps.object_detection import pipeline

    return pipeline


def _optional(value: str) -> str | None:
    return None if value.lower() in ("none", "off", "") else value


def _add_pipeline_flags(command: argparse.ArgumentParser) -> None:
    """The flags of the detect -> crop -> embed step (``run`` and ``stream``)."""
    command.add_argument(
        "--detector",
        default="ssd_lite.scenes",
        choices=DETECTORS,
        help="the zoo detector (default ssd_lite.scenes)",
    )
    command.add_argument(
        "--keep",
        default="top",
        choices=("top", "all"),
        help="keep each image's best object or every object over --score-threshold (default top)",
    )
    command.add_argument(
        "--score-threshold",
        type=float,
        default=0.3,
        help="lowest detection score kept (default 0.3)",
    )
    command.add_argument(
        "--code-model",
        type=_optional,
        default="deepbit.mnist",
        help="zoo model giving each crop its binary code, or none (default deepbit.mnist)",
    )
    command.add_argument(
        "--vector-model",
        type=_optional,
        default="lenet5.mnist",
        help="zoo model giving each crop its vector, or none (default lenet5.mnist)",
    )
    command.add_argument(
        "--threads", type=int, default=1, help="TensorFlow threads per Spark task (default 1)"
    )
    command.add_argument(
        "--backend",
        choices=("tensorflow", "openvino", "openvino-int8"),
        default="tensorflow",
        help="the engine that runs the detector and the embedders: TensorFlow, the models "
        "compiled by OpenVINO for the CPU, or those quantised to 8-bit integers, each "
        "calibrated on 300 rows of its training data (default tensorflow)",
    )


def _config(args: argparse.Namespace) -> PipelineConfig:
    return _pipeline().PipelineConfig(
        detector=args.detector,
        keep=args.keep,
        score_threshold=args.score_threshold,
        code_model=args.code_model,
        vector_model=args.vector_model,
        threads=args.threads,
        backend=args.backend,
    )


def build_parser() -> AppParser:
    parser = app_parser(
        APP,
        "Object detection on Spark: detect objects in images, crop and embed each one, keep "
        "the results as Parquet, then search them, find near-duplicates or draw them.",
        default="run",
    )
    run = parser.add_command(
        "run",
        "detect, crop and embed the objects of every image",
        "folder or hdfs:// URI of images (default: the COMPOSED held-out detection scenes for "
        "the digit detectors, the real scikit-image photos for the face detectors)",
        description="Detect the objects of every image on Spark, crop each kept object and "
        "embed it (binary code and vector). Writes detections/ and features/ (Parquet), "
        "previews with the boxes drawn and metrics.json (mAP@0.5 when the input has a COCO "
        "annotations.json, and how well the crops retrieve each other) under --output.",
    )
    _add_pipeline_flags(run)
    run.add_argument(
        "--scenes",
        type=int,
        default=200,
        help="how many held-out scenes the default input has (default 200)",
    )
    run.add_argument(
        "--previews", type=int, default=8, help="images drawn into previews/ (default 8)"
    )
    run.add_argument(
        "--on-error",
        default="fail",
        choices=("fail", "skip"),
        help="an unreadable image fails the run, or is left out and counted (default fail)",
    )
    run.add_argument(
        "--partitions",
        type=int,
        default=None,
        help="Spark partitions of the images (default: Spark's choice)",
    )

    run_help = "the output folder of a run (or its features/ folder)"
    search = parser.add_command(
        "search",
        "find the images whose objects are nearest to a query image's object",
        run_help,
        description="Detect the top object of a query image and find the kept objects of a "
        "run nearest to it. Writes results.json, results.png and metrics.json under --output.",
    )
    search.add_argument(
        "--query", required=True, metavar="IMAGE", help="query image file (local or hdfs://)"
    )
    search.add_argument(
        "--metric",
        default="hamming",
        choices=("hamming", "cosine"),
        help="compare binary codes (hamming) or vectors (cosine) (default hamming)",
    )
    search.add_argument("-k", "--top-k", type=int, default=5, help="results to return (default 5)")

    dup = parser.add_command(
        "duplicates",
        "find near-duplicate objects among a run's crops",
        run_help,
        description="Pair the kept objects of a run whose binary codes (and vectors) are "
        "nearly equal. Writes pairs/ (Parquet), duplicates.json and metrics.json under "
        "--output.",
    )
    dup.add_argument(
        "--max-distance",
        type=int,
        default=1,
        help="most differing bits of two codes in a pair (default 1)",
    )
    dup.add_argument(
        "--max-cosine",
        type=lambda v: None if v.lower() == "none" else float(v),
        default=0.005,
        help="and vectors within this cosine distance (default 0.005; 'none': codes only)",
    )

    vis = parser.add_command(
        "visualise",
        "draw the boxes of a run on its images",
        "the output folder of a run",
        description="Draw the detected boxes of a run on its images. Writes images/ (PNG), "
        "contact_sheet.png and metrics.json under --output.",
    )
    vis.add_argument("--images", type=int, default=8, help="images to draw (default 8)")
    vis.add_argument(
        "--all-boxes", action="store_true", help="draw every detection, not only the kept ones"
    )

    live = parser.add_command(
        "stream",
        "detect, crop and embed images as they land in a folder (Spark Structured Streaming)",
        "the folder (local or hdfs://) that image files land in",
        description="Run the detect -> crop -> embed step of `run` on the images that land in "
        "--input, in micro-batches, and append the rows to detections/ and features/ (Parquet, "
        "one batch=<id> folder per micro-batch) under --output. Exactly once: stop it (SIGTERM "
        "or Ctrl-C) and start it again with the same --checkpoint, and every image is written "
        "once. An unreadable image becomes an error row of detections/.",
    )
    _add_pipeline_flags(live)
    add_stream_args(live)
    return parser


def main(argv: list[str] | None = None) -> int:
    commands = {
        "run": run,
        "search": search,
        "duplicates": duplicates,
        "visualise": visualise,
        "stream": stream,
    }
    return run_app(build_parser(), commands, argv)


def _say(text: str) -> None:
    print(f"[{APP}] {text}", flush=True)


# ---- run ----------------------------------------------------------------------------------------


def run(args: argparse.Namespace) -> int:
    p = _pipeline()
    config = _config(args)
    if args.previews < 0 or args.scenes < 1:
        raise ValueError("--previews must be >= 0 and --scenes >= 1")
    source = args.input or p.default_input(args.detector, args.scenes)
    spark = start_spark(args, APP)
    with StagedOutput(args.output, args.overwrite) as out:
        images, count = p.read_images(spark, source, args.sample_rate, args.seed, args.partitions)
        _say(f"{count} images from {source}; detecting with {config.detector}")
        start = time.perf_counter()
        p.detect_frame(images, config).write.parquet(out.path("detections"))
        seconds = time.perf_counter() - start
        detections = spark.read.parquet(out.path("detections"))
        errors = p.image_errors(detections)
        if errors and args.on_error == "fail":
            raise ValueError(
                f"{len(errors)} image(s) could not be read (--on-error skip leaves them out): "
                + "; ".join(errors[:5])
            )
        p.features_of(detections).write.parquet(out.path("features"))
        features = spark.read.parquet(out.path("features"))
        _say(f"detect -> crop -> embed: {count / seconds:.1f} images/s; evaluating")
        table = detections.select(
            "image_id", "path", "box", "score", "class_id", "class", "kept", "error"
        ).toPandas()
        metrics: dict[str, Any] = {
            "images": count,
            "unreadable_images": int(table["error"].notna().sum()),
            "detections": int(table["error"].isna().sum()),
            "kept_objects": int(table["kept"].sum()),
            "images_with_kept_object": int(table[table["kept"]]["image_id"].nunique()),
            "pipeline_seconds": round(seconds, 2),
            "images_per_s": round(count / seconds, 2),
            "config": p.config_dict(config),
            "input": source,
        }
        metrics.update(_quality(spark, source, config, table, features))
        _write_previews(out, table, args.previews)
        record = out.write_metrics(APP, args, metrics)
    _say(_summary(record["metrics"], args.output))
    return 0


def _quality(spark, source: str, config: PipelineConfig, table, features) -> dict[str, Any]:
    """mAP@0.5 against the input's COCO annotations (when it has them), next to the
    detector card's figure, and the retrieval quality of the kept crops."""
    p = _pipeline()
    truth = p.ground_truth(source)
    if truth is None:
        return {"map50": None, "note": "no annotations.json in --input: no mAP"}
    measured = p.detection_map(table, truth)
    result: dict[str, Any] = {
        "map50": round(measured["map50"], 4),
        "map50_kept_only": round(p.detection_map(table, truth, kept_only=True)["map50"], 4),
        "evaluated_images": measured["images"],
        "ground_truth_objects": measured["objects"],
        "map50_protocol": f"VOC mAP@0.5 of every box scoring >= {config.min_score} "
        "(the detector card's protocol, score threshold 0.05); map50_kept_only counts only the "
        f"kept boxes (--keep {config.keep}, --score-threshold {config.score_threshold})",
    }
    if config.detector not in p.FACE_DETECTORS:
        card = models.card(config.detector)
        result["card_map50"] = card.metrics.get("map50")
        result["card_map50_score_0.3"] = card.metrics.get("map50_score_0.3")
        result["card_test_scenes"] = card.metrics.get("test_scenes")
    kept = features.select("image_id", "box", "code", "vector", "patch").limit(5000).toPandas()
    if len(kept) >= 2:
        labels = p.true_classes(kept, truth)
        result["retrieval"] = {
            k: round(v, 4) if isinstance(v, float) else v
            for k, v in p.retrieval_quality(kept, labels).items()
        }
        result["retrieval"]["relevance"] = (
            "same ground-truth digit (the kept box overlaps a true box with IoU >= 0.5); "
            "leave-one-out over the kept crops"
        )
        accuracy = p.lenet_accuracy(kept, labels)
        if accuracy is not None:
            result["crop_lenet_accuracy"] = round(accuracy, 4)
    return result


def _write_previews(out: StagedOutput, table, count: int) -> None:
    p = _pipeline()
    ids = sorted(table[table["kept"]]["image_id"].unique())[:count]
    drawn = []
    for key in ids:
        rows = table[table["image_id"] == key]
        picture = p.draw_rows(p.load_image(rows["path"].iloc[0]), rows)
        out.write_bytes(f"previews/{key}.png", p.png_bytes(picture))
        drawn.append(picture)
    if drawn:
        out.write_bytes("previews.png", p.png_bytes(p.contact_sheet(drawn)))


def _summary(metrics: dict, output: str) -> str:
    parts = [
        f"{metrics['images']} images, {metrics['kept_objects']} kept objects, "
        f"{metrics['images_per_s']} images/s"
    ]
    if metrics.get("map50") is not None:
        parts.append(f"mAP@0.5 {metrics['map50']} (card: {metrics.get('card_map50')})")
    retrieval = metrics.get("retrieval") or {}
    if "code_hamming_map" in retrieval:
        parts.append(
            f"crop retrieval mAP: code {retrieval['code_hamming_map']}, vector "
            f"{retrieval.get('vector_cosine_map')}, pca-sign {retrieval.get('pca_sign_hamming_map')}"
            f", chance {retrieval.get('chance_map')}"
        )
    return "; ".join(parts) + f". Output: {output}"


# ---- search, duplicates, visualise --------------------------------------------------------------


def _run_folder(args: argparse.Namespace) -> tuple[str, dict | None]:
    """(features folder, the run's metrics or None) for --input: a run's output or its
    features/ folder."""
    if not args.input:
        raise ValueError("--input (the output folder of a run) is required")
    if not fs.exists(args.input):
        raise FileNotFoundError(f"--input {args.input} does not exist")
    if fs.exists(fs.join(args.input, "features")):
        try:
            run_metrics = read_metrics(args.input)
        except (OSError, ValueError):
            run_metrics = None
        return fs.join(args.input, "features"), run_metrics
    return args.input, None


def _config_of(run_metrics: dict | None) -> PipelineConfig:
    p = _pipeline()
    if run_metrics and "config" in run_metrics.get("metrics", {}):
        return p.PipelineConfig(**run_metrics["metrics"]["config"])
    return p.PipelineConfig()


def search(args: argparse.Namespace) -> int:
    p = _pipeline()
    folder, run_metrics = _run_folder(args)
    config = _config_of(run_metrics)
    query_image = p.load_image(args.query)
    found = [r for r in p.process_images([query_image], config)[0] if r["kept"]]
    if not found:
        raise ValueError(
            f"{config.detector} finds no object scoring >= {config.score_threshold} in the "
            f"query {args.query}"
        )
    query = max(found, key=lambda r: r["score"])
    spark = start_spark(args, APP)
    with StagedOutput(args.output, args.overwrite) as out:
        features = sample(spark.read.parquet(folder), args.sample_rate, args.seed)
        top = p.search(features, query, args.metric, args.top_k)
        if len(top) == 0:
            raise ValueError(f"no features to search under {folder}")
        results = top.assign(box=top["box"].map(lambda b: [float(v) for v in b]))
        out.write_json("results.json", {"query": _query_record(args, query), "results": results})
        sheet = [_draw_one(query_image, query)]
        sheet += [_draw_one(p.load_image(r["path"]), r) for r in top.to_dict("records")]
        out.write_bytes("results.png", p.png_bytes(p.contact_sheet(sheet, columns=len(sheet))))
        out.write_metrics(
            APP,
            args,
            {
                "query_class": query["class"],
                "query_score": query["score"],
                "results": len(top),
                "result_classes": list(top["class"]),
                "distances": [float(d) for d in top["distance"]],
            },
        )
    print(f"query {args.query}: object {query['class']} ({query['score']:.2f})")
    print(top[["rank", "image_id", "class", "score", "distance"]].to_string(index=False))
    _say(f"results in {args.output}")
    return 0


def _query_record(args: argparse.Namespace, query: dict) -> dict:
    return {
        "image": args.query,
        "metric": args.metric,
        **{k: query[k] for k in ("box", "score", "class")},
    }


def _draw_one(image: np.ndarray, row: dict) -> np.ndarray:
    p = _pipeline()
    frame = pd.DataFrame(
        [{"box": list(row["box"]), "score": row["score"], "class_id": 0, "class": row["class"]}]
    )
    return p.draw_rows(image, frame, kept_only=False)


def duplicates(args: argparse.Namespace) -> int:
    p = _pipeline()
    folder, _ = _run_folder(args)
    spark = start_spark(args, APP)
    with StagedOutput(args.output, args.overwrite) as out:
        features = sample(spark.read.parquet(folder), args.sample_rate, args.seed)
        pairs = p.duplicate_pairs(features, args.max_distance, args.max_cosine)
        pairs.write.parquet(out.path("pairs"))
        table = spark.read.parquet(out.path("pairs")).toPandas()
        objects = features.count()
        report = {
            "objects": objects,
            "pairs": len(table),
            "pairs_same_class": int((table["a_class"] == table["b_class"]).sum()),
            # Per-class NMS can leave two boxes of different classes on one object: such
            # pairs are the same crop twice, not two copies of an image.
            "pairs_same_image": int((table["a_image"] == table["b_image"]).sum()),
            "images_in_pairs": len(set(table["a_image"]) | set(table["b_image"])),
            "max_distance": args.max_distance,
            "max_cosine": args.max_cosine,
            "hamming_histogram": {
                str(d): int(n) for d, n in table["hamming"].value_counts().sort_index().items()
            },
            "examples": table.head(20).to_dict("records"),
        }
        out.write_json("duplicates.json", report)
        out.write_metrics(APP, args, {k: v for k, v in report.items() if k != "examples"})
    _say(
        f"{report['pairs']} near-duplicate pairs among {objects} objects "
        f"({report['pairs_same_class']} of the same class). Output: {args.output}"
    )
    return 0


def visualise(args: argparse.Namespace) -> int:
    p = _pipeline()
    if not args.input or not fs.exists(fs.join(args.input, "detections")):
        raise FileNotFoundError(f"--input {args.input} is not the output of a run (no detections/)")
    if args.images < 1:
        raise ValueError("--images must be >= 1")
    spark = start_spark(args, APP)
    with StagedOutput(args.output, args.overwrite) as out:
        table = (
            spark.read.parquet(fs.join(args.input, "detections"))
            .where("error IS NULL")
            .select("image_id", "path", "box", "score", "class_id", "class", "kept")
            .toPandas()
        )
        ids = sorted(table["image_id"].unique())[: args.images]
        drawn = []
        for key in ids:
            rows = table[table["image_id"] == key]
            picture = p.draw_rows(p.load_image(rows["path"].iloc[0]), rows, not args.all_boxes)
            out.write_bytes(f"images/{key}.png", p.png_bytes(picture))
            drawn.append(picture)
        if drawn:
            out.write_bytes("contact_sheet.png", p.png_bytes(p.contact_sheet(drawn)))
        out.write_metrics(APP, args, {"images": len(drawn)})
    _say(f"{len(drawn)} images drawn into {args.output}/images")
    return 0


# ---- stream -------------------------------------------------------------------------------------


def stream(args: argparse.Namespace) -> int:
    from sparkzoo.apps.object_detection import streaming

    config = _config(args)
    prepare_stream(args)
    spark = start_spark(args, APP)
    _say(f"streaming images from {args.input} into {args.output} (checkpoint {args.checkpoint})")
    query = streaming.start(
        spark, args.input, args.output, args.checkpoint, config, **stream_options(args), say=_say
    )
    follow_stream(query, args, "images", _say)
    return 0


if __name__ == "__main__":
    sys.exit(main())
