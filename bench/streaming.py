"""Streaming benchmarks (docs/benchmarks.md): ``python -m sparkzoo.bench streaming``.

The object-detection app's ``stream`` (``apps/object_detection/streaming.py``: Spark
Structured Streaming, ``ssd_lite.scenes`` + the two embedders, on ``local[2]``) on the
composed detection scenes (real MNIST digits on real photographs):

- ``streaming_latency_p50`` / ``streaming_latency_p99``: seconds from an image file landing
  in the input folder (renamed in) to its rows being in ``detections/`` (the micro-batch's
  folder renamed into place), with images landing at a steady ``--rate`` for ``--seconds``
  and a trigger every ``--trigger-seconds``; the median over ``--repeats`` of each run's
  percentile;
- ``streaming_vs_batch``: images/s of the stream working through ``--images`` files already
  landed (``availableNow``, ``--max-files-per-trigger`` a micro-batch) / images/s of the batch
  run's same step (``read_images`` -> ``detect_frame`` -> ``detections/`` -> ``features/``)
  on the same files; interleaved, median of ``--repeats``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import threading
import time

import numpy as np
import pyarrow.parquet as pq

from sparkzoo.apps.object_detection import pipeline, streaming
from sparkzoo.bench.common import emit, note
from sparkzoo.spark import init_spark
from sparkzoo.streaming import BATCH_PREFIX, run_until_stopped

SLOTS = 2


def batch_rate(spark, images: str, out: str, config) -> float:
    """Images/s of the batch run's step on the files in ``images``."""
    start = time.perf_counter()
    frame, count = pipeline.read_images(spark, images)
    pipeline.detect_frame(frame, config).write.parquet(f"{out}/detections")
    detections = spark.read.parquet(f"{out}/detections")
    pipeline.features_of(detections).write.parquet(f"{out}/features")
    return count / (time.perf_counter() - start)


def stream_rate(spark, images: str, out: str, config, per_trigger: int) -> float:
    """Images/s of the stream on the files already in ``images`` (availableNow)."""
    start = time.perf_counter()
    query = streaming.start(
        spark, images, out, f"{out}_checkpoint", config, None, per_trigger, available_now=True
    )
    run_until_stopped([query])
    seconds = time.perf_counter() - start
    paths = pq.read_table(f"{out}/detections", columns=["path"]).column("path").to_pylist()
    return len(set(paths)) / seconds


def _land_steadily(sources: list[str], inbox: str, rate: float, landed: dict) -> None:
    """Move copies of ``sources`` into ``inbox`` at ``rate`` files/s, noting when each landed."""
    staging = f"{inbox}.staging"
    os.makedirs(staging, exist_ok=True)
    start = time.perf_counter()
    for n, source in enumerate(sources):
        name = f"{n:06d}-{os.path.basename(source)}"
        shutil.copy(source, os.path.join(staging, name))
        time.sleep(max(0.0, start + n / rate - time.perf_counter()))
        os.rename(os.path.join(staging, name), os.path.join(inbox, name))
        landed[name] = time.perf_counter()


def latencies(spark, sources: list[str], root: str, config, rate: float, trigger_s: float):
    """Seconds from landing to being in ``detections/`` for each of ``sources``, landed at
    ``rate`` files/s into a running stream."""
    inbox, out = f"{root}/in", f"{root}/out"
    os.makedirs(inbox)
    os.makedirs(f"{out}/detections")
    query = streaming.start(spark, inbox, out, f"{root}/checkpoint", config, trigger_s)
    landed: dict[str, float] = {}
    seen: dict[str, float] = {}
    lander = threading.Thread(target=_land_steadily, args=(sources, inbox, rate, landed))
    lander.start()
    done: set[str] = set()
    try:
        while len(seen) < len(sources) and query.isActive:
            for folder in sorted(os.listdir(f"{out}/detections")):
                if not folder.startswith(BATCH_PREFIX) or folder in done:
                    continue
                done.add(folder)
                now = time.perf_counter()
                paths = pq.read_table(f"{out}/detections/{folder}", columns=["path"])
                for path in set(paths.column("path").to_pylist()):
                    seen.setdefault(path.rsplit("/", 1)[-1], now)
            time.sleep(0.05)
    finally:
        lander.join()
        query.stop()
    return np.array([seen[name] - landed[name] for name in seen])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sparkzoo.bench streaming")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--images", type=int, default=200, help="images of the throughput runs")
    parser.add_argument("--rate", type=float, default=4.0, help="images/s landing (latency)")
    parser.add_argument("--seconds", type=float, default=30.0, help="how long they land")
    parser.add_argument("--trigger-seconds", type=float, default=0.5)
    parser.add_argument("--max-files-per-trigger", type=int, default=64)
    args = parser.parse_args(argv)

    spark = init_spark(
        f"local[{SLOTS}]", app_name="sparkzoo-bench-streaming", **{"spark.ui.enabled": "false"}
    )
    config = pipeline.PipelineConfig()
    root = tempfile.mkdtemp(prefix="sparkzoo-bench-streaming-")
    try:
        scenes = pipeline.materialise_scenes(f"{root}/scenes", n=args.images)
        images = f"{scenes}/images"
        sources = sorted(os.path.join(images, f) for f in os.listdir(images))
        steady = [sources[n % len(sources)] for n in range(int(args.rate * args.seconds))]
        note(f"{len(sources)} scenes; warming up (models load once per Python worker)")
        batch_rate(spark, images, f"{root}/warm", config)
        ratios, p50s, p99s = [], [], []
        for repeat in range(args.repeats):
            run = f"{root}/run{repeat}"
            batch = batch_rate(spark, images, f"{run}/batch", config)
            live = stream_rate(spark, images, f"{run}/stream", config, args.max_files_per_trigger)
            ratios.append(live / batch)
            seconds = latencies(
                spark, steady, f"{run}/latency", config, args.rate, args.trigger_seconds
            )
            p50s.append(float(np.percentile(seconds, 50)))
            p99s.append(float(np.percentile(seconds, 99)))
            note(
                f"repeat {repeat + 1}/{args.repeats}: stream {live:.1f} images/s, batch "
                f"{batch:.1f} images/s; latency p50 {p50s[-1]:.2f} s, p99 {p99s[-1]:.2f} s at "
                f"{args.rate:g} images/s"
            )
        setting = {
            "rate": args.rate,
            "trigger_seconds": args.trigger_seconds,
            "model": config.detector,
        }
        emit("streaming_latency_p50", p50s, "report", unit="s", **setting)
        emit("streaming_latency_p99", p99s, "report", unit="s", **setting)
        emit(
            "streaming_vs_batch",
            ratios,
            ">= 0.8",
            images=len(sources),
            max_files_per_trigger=args.max_files_per_trigger,
        )
    finally:
        spark.stop()
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
