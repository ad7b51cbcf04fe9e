"""Detect -> crop -> embed benchmark (docs/benchmarks.md): ``python -m sparkzoo.bench pipeline``.

Figure ``pipeline``: images/s of the object-detection app's Spark step (``read_images`` +
``detect_frame`` of :mod:`sparkzoo.apps.object_detection.pipeline`, run to the end with
Spark's ``noop`` sink, ``local[2]``: two Python workers, one TensorFlow thread each) / images/s
of a bare loop over the same PNG files with the same models, the same code
(:func:`~sparkzoo.apps.object_detection.pipeline.process_images` on batches of 32) and the same
threads: a pool of 2 Python processes (as Spark's 2 workers; two threads calling one
TensorFlow model at once can crash it), each with the models loaded once and TensorFlow at 1
intra-op thread, reading, decoding and processing its share of the batches. Models load
before timing on both sides (a warm-up run). Repeats alternate A/B; the median ratio is
reported, with ``cpu_ratio`` (CPU seconds of the bare loop / of Spark's driver, JVM and workers
for the same images) and the load average.

Data: the COMPOSED held-out detection scenes (real MNIST digits pasted on real scikit-image
photographs, 96 x 96), written as PNG files; detector ``ssd_lite.scenes``, every object
scoring >= 0.3 kept, embedded by ``deepbit.mnist`` (code) and ``lenet5.mnist`` (vector).
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import tempfile
import time
from typing import TYPE_CHECKING

from sparkzoo.apps.object_detection import pipeline as p
from sparkzoo.bench.common import emit, note
from sparkzoo.bench.images import cpu_seconds
from sparkzoo.datasets.images import decode_image
from sparkzoo.spark import init_spark
from sparkzoo.trainer.threads import configure_threads

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

SLOTS = 2
BATCH = 32


_BARE: dict = {}  # the bare loop's models, per pool process


def _bare_worker(config) -> None:
    """A bare-loop process, as a Spark Python worker is: 1 TensorFlow thread, models once."""
    configure_threads(1)
    _BARE["config"], _BARE["models"] = config, p.load_models(config)


def _bare_batch(batch: list[str]) -> int:
    images = []
    for path in batch:
        with open(path, "rb") as handle:
            images.append(decode_image(handle.read()))
    found = p.process_images(images, _BARE["config"], _BARE["models"])
    return sum(r["kept"] for rows in found for r in rows)


def bare_rate(paths: list[str], pool) -> tuple[float, float, int]:
    """Images/s of the bare loop over ``paths`` on ``pool`` (``SLOTS`` processes, each with
    the models loaded once: TensorFlow models are not called from two threads at once), its
    CPU seconds, kept objects."""
    batches = [paths[i : i + BATCH] for i in range(0, len(paths), BATCH)]
    cpu, start = cpu_seconds(), time.perf_counter()
    kept = sum(pool.map(_bare_batch, batches, chunksize=1))
    elapsed, cpu = time.perf_counter() - start, cpu_seconds() - cpu
    return len(paths) / elapsed, cpu, kept


def spark_rate(images: DataFrame, config, count: int) -> tuple[float, float]:
    """Images/s of one Spark run of detect -> crop -> embed to a ``noop`` sink, and the CPU
    seconds of the driver, the JVM and the Python workers."""
    cpu, start = cpu_seconds(), time.perf_counter()
    p.detect_frame(images, config).write.format("noop").mode("overwrite").save()
    elapsed, cpu = time.perf_counter() - start, cpu_seconds() - cpu
    return count / elapsed, cpu


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sparkzoo.bench pipeline")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--images", type=int, default=600, help="scenes per run")
    parser.add_argument("--detector", default="ssd_lite.scenes")
    args = parser.parse_args(argv)

    config = p.PipelineConfig(detector=args.detector, keep="all", score_threshold=0.3, threads=1)
    spark = init_spark(
        f"local[{SLOTS}]", app_name="sparkzoo-bench-pipeline", **{"spark.ui.enabled": "false"}
    )
    with tempfile.TemporaryDirectory(prefix="sparkzoo-bench-pipeline-") as folder:
        p.materialise_scenes(folder, n=args.images)
        image_dir = os.path.join(folder, "images")
        paths = sorted(os.path.join(image_dir, f) for f in os.listdir(image_dir))
        note(f"{len(paths)} PNG scenes; warming up (models load in each worker and here)")
        # Listing and partitioning happen once, as for a user who reads a folder and then
        # runs the pipeline; each timed run decodes, detects, crops and embeds every image.
        images, count = p.read_images(spark, folder, partitions=SLOTS)
        pool = multiprocessing.get_context("spawn").Pool(
            SLOTS, initializer=_bare_worker, initargs=(config,)
        )
        spark_rate(images, config, count)
        bare_rate(paths, pool)
        ratios, spark_runs, bare_runs, cpu_ratios = [], [], [], []
        kept = 0
        for repeat in range(args.repeats):
            ours, ours_cpu = spark_rate(images, config, count)
            bare, bare_cpu, kept = bare_rate(paths, pool)
            note(
                f"repeat {repeat + 1}/{args.repeats}: spark {ours:.1f}/s ({ours_cpu:.1f} CPU s), "
                f"bare TF {bare:.1f}/s ({bare_cpu:.1f} CPU s)"
            )
            spark_runs.append(round(ours, 2))
            bare_runs.append(round(bare, 2))
            ratios.append(ours / bare)
            cpu_ratios.append(round(bare_cpu / ours_cpu, 3))
        pool.close()
    emit(
        "pipeline",
        ratios,
        ">= 0.70",
        spark_images_per_s=spark_runs,
        bare_tf_images_per_s=bare_runs,
        cpu_ratio=cpu_ratios,
        images=count,
        kept_objects=kept,
        detector=args.detector,
        embedders=[config.code_model, config.vector_model],
        slots=SLOTS,
    )
    spark.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
