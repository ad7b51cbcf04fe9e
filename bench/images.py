"""Image pipeline benchmark (docs/benchmarks.md): ``python -m sparkzoo.bench images``.

Figure ``image_decode``: images/s decoded and resized through Spark (an ``ImageSet`` read once
with ``Resize``, then run to the end with Spark's ``noop`` sink, ``local[2]``) / images/s of a bare OpenCV
loop over the same files (read, ``cv2.imdecode``, RGB, ``cv2.resize``) on a pool of as many
threads as Spark has task slots (2). OpenCV's own threading is off on both sides. Repeats
alternate A/B; the median ratio is reported. ``cpu_ratio`` adds, per repeat, the CPU seconds
of the bare loop / those of Spark (driver, JVM and Python workers) for the same files: less
sensitive than wall time to what else runs on a shared machine.

Data: JPEG files written to a temporary folder from the real photographs of ``skimage.data``
(astronaut, coffee, chelsea, rocket, ...), each a random crop (60-100 % of each side), so that
the files differ; about 40-400 kB each.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from multiprocessing.pool import ThreadPool

import cv2
import numpy as np
import psutil  # comes with ipykernel, a sparkzoo dependency
import skimage.data

from sparkzoo.bench.common import emit, note
from sparkzoo.datasets.images import ImageSet
from sparkzoo.datasets.transforms import Resize
from sparkzoo.spark import init_spark

PHOTOS = ("astronaut", "coffee", "chelsea", "rocket", "immunohistochemistry", "hubble_deep_field")
SLOTS = 2


def write_photos(folder: str, count: int, seed: int = 0) -> list[str]:
    """``count`` JPEG files cut from skimage's colour photographs (deterministic)."""
    rng = np.random.default_rng(seed)
    photos = [getattr(skimage.data, name)() for name in PHOTOS]
    paths = []
    for i in range(count):
        photo = photos[i % len(photos)]
        height, width = photo.shape[:2]
        crop_h = int(height * rng.uniform(0.6, 1.0))
        crop_w = int(width * rng.uniform(0.6, 1.0))
        top = int(rng.integers(0, height - crop_h + 1))
        left = int(rng.integers(0, width - crop_w + 1))
        crop = photo[top : top + crop_h, left : left + crop_w, ::-1]  # RGB -> OpenCV's BGR
        path = os.path.join(folder, PHOTOS[i % len(PHOTOS)], f"{i:05d}.jpg")
        os.makedirs(os.path.dirname(path), exist_ok=True)
        cv2.imwrite(path, crop, [cv2.IMWRITE_JPEG_QUALITY, 90])
        paths.append(path)
    return paths


def _bare_one(path: str, size: int) -> tuple[int, ...]:
    with open(path, "rb") as handle:
        data = handle.read()
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    image = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
    return cv2.resize(image, (size, size), interpolation=cv2.INTER_LINEAR).shape


def cpu_seconds() -> float:
    """CPU seconds used so far by this process and its children (Spark's JVM, whose children
    are the Python workers), living ones included."""
    total = 0.0
    me = psutil.Process()
    for process in [me, *me.children(recursive=True)]:
        try:
            times = process.cpu_times()
        except psutil.Error:
            continue  # ended meanwhile
        total += times.user + times.system
    return total


def bare_rate(paths: list[str], size: int, pool: ThreadPool) -> tuple[float, float]:
    """Images/s of the plain OpenCV loop on ``pool``, and its CPU seconds."""
    cpu, start = cpu_seconds(), time.perf_counter()
    shapes = pool.map(lambda p: _bare_one(p, size), paths, chunksize=8)
    elapsed, cpu = time.perf_counter() - start, cpu_seconds() - cpu
    assert len(shapes) == len(paths) and shapes[0] == (size, size, 3)
    return len(paths) / elapsed, cpu


def spark_rate(images, count: int) -> tuple[float, float]:
    """Images/s of one run of ``images`` (an ``ImageSet``) to the end, rows discarded, and the
    CPU seconds of the driver, the JVM and the Python workers."""
    cpu, start = cpu_seconds(), time.perf_counter()
    images.df.write.format("noop").mode("overwrite").save()
    elapsed, cpu = time.perf_counter() - start, cpu_seconds() - cpu
    return count / elapsed, cpu


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sparkzoo.bench images")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--images", type=int, default=2400, help="JPEG files to decode per run")
    parser.add_argument("--size", type=int, default=224, help="resize to size x size")
    args = parser.parse_args(argv)

    spark = init_spark(
        f"local[{SLOTS}]", app_name="sparkzoo-bench-images", **{"spark.ui.enabled": "false"}
    )
    cv2.setNumThreads(1)  # as in the Spark workers: parallelism comes from the 2 slots
    with tempfile.TemporaryDirectory(prefix="sparkzoo-bench-images-") as folder:
        paths = write_photos(folder, args.images)
        megabytes = sum(os.path.getsize(p) for p in paths) / 1e6
        note(f"{len(paths)} JPEG files, {megabytes:.1f} MB; warming up")
        pool = ThreadPool(SLOTS)
        # Listing the files and planning the partitions happen once, as for a user who reads a
        # folder and then runs the pipeline; every timed run decodes and resizes every file.
        images = ImageSet.read(spark, folder, on_error="raise").transform(
            Resize((args.size, args.size))
        )
        spark_rate(images, len(paths))  # Python workers start, OpenCV loads
        bare_rate(paths, args.size, pool)
        ratios, spark_runs, bare_runs, cpu_ratios = [], [], [], []
        for repeat in range(args.repeats):
            ours, ours_cpu = spark_rate(images, len(paths))
            bare, bare_cpu = bare_rate(paths, args.size, pool)
            note(
                f"repeat {repeat + 1}/{args.repeats}: spark {ours:.0f}/s ({ours_cpu:.1f} CPU s), "
                f"opencv {bare:.0f}/s ({bare_cpu:.1f} CPU s)"
            )
            spark_runs.append(round(ours, 1))
            bare_runs.append(round(bare, 1))
            ratios.append(ours / bare)
            cpu_ratios.append(round(bare_cpu / ours_cpu, 3))
        pool.close()
    emit(
        "image_decode",
        ratios,
        ">= 0.70",
        spark_images_per_s=spark_runs,
        opencv_images_per_s=bare_runs,
        # CPU seconds of the bare loop / of Spark (driver, JVM, Python workers) for the same
        # work: what the wall-time ratio tends to on an idle machine whose cores both scale.
        cpu_ratio=cpu_ratios,
        images=len(paths),
        size=args.size,
        slots=SLOTS,
    )
    spark.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
