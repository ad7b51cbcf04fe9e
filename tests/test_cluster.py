"""The trainer on a real two-worker Spark standalone cluster (marker: slow)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

from sparkzoo.services import cluster

# HorovodRunner and a Horovod KerasEstimator on the cluster (a tf-engine run needs its own test)
pytestmark = pytest.mark.slow

JOB = textwrap.dedent("""
    import sys
    import numpy as np, pandas as pd
    from sparkzoo import init_spark
    from sparkzoo.trainer import HorovodRunner, KerasEstimator

    spark = init_spark(sys.argv[1], app_name="sparkzoo-cluster-test",
                       **{"spark.executor.memory": "900m", "spark.executor.cores": "1"})
    def where():
        import os, horovod.tensorflow as hvd, tensorflow as tf
        total = hvd.allreduce(tf.constant(float(hvd.rank() + 1)), op=hvd.Sum)
        return [hvd.size(), float(total.numpy())]

    print("RUNNER", HorovodRunner(np=2, spark=spark).run(where))
    from sparkzoo.spark import slot_count
    print("SLOTS", slot_count(spark))

    def build():
        import tensorflow as tf
        tf.keras.utils.set_random_seed(0)
        return tf.keras.Sequential([tf.keras.Input((4,)), tf.keras.layers.Dense(8, activation="relu"),
                                    tf.keras.layers.Dense(2, activation="softmax")])

    rng = np.random.default_rng(0)
    label = rng.integers(0, 2, 600)
    x = rng.normal(size=(600, 4)).astype(np.float32) + (label[:, None] * 2 - 1) * 2.0
    df = spark.createDataFrame(pd.DataFrame({"features": list(x), "label": label}))
    fitted = KerasEstimator(model=build, loss="sparse_categorical_crossentropy",
                            metrics=["accuracy"], feature_cols=["features"], label_cols=["label"],
                            batch_size=32, epochs=3, num_workers=2, log_to_mlflow=False).fit(df)
    scored = fitted.transform(df).toPandas()
    accuracy = (np.argmax(np.stack(scored["prediction"]), 1) == scored["label"]).mean()
    print("ACCURACY", accuracy)
    spark.stop()
""")


def run_job(tmp_path, name: str, source: str, *args: str, timeout: int = 600):
    """Write ``source`` as ``name`` and run it (a driver of its own) against the cluster at
    ``args[0]``; asserts it succeeded and returns the CompletedProcess."""
    script = tmp_path / name
    script.write_text(source)
    out = subprocess.run(
        [sys.executable, str(script), *args], capture_output=True, text=True, timeout=timeout
    )
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-4000:]
    return out


@pytest.fixture(scope="module")
def standalone(tmp_path_factory):
    state = tmp_path_factory.mktemp("cluster")
    # Each worker offers one fake GPU: Spark schedules it without checking it exists.
    info = cluster.start(workers=2, cores=1, memory="1200m", state_dir=state, fake_gpus=1)
    try:
        yield info
    finally:
        cluster.stop(state)
        assert cluster.status(state) is None


def test_cluster_reports_its_workers(standalone):
    assert standalone.url.startswith("spark://127.0.0.1:")
    assert cluster.status(standalone.dir) is not None
    assert cluster._alive_workers(standalone.web_ui) == 2


@pytest.mark.horovod
def test_trainer_runs_two_ranks_across_two_workers(standalone, tmp_path):
    out = run_job(tmp_path, "job.py", JOB, standalone.url)
    lines = dict(line.split(" ", 1) for line in out.stdout.splitlines() if " " in line)
    assert lines["SLOTS"] == "2"
    assert lines["RUNNER"] == "[2, 3.0]"
    assert float(lines["ACCURACY"]) > 0.9


TF_JOB = textwrap.dedent("""
    import sys
    import numpy as np, tensorflow as tf
    from sparkzoo import init_spark
    from sparkzoo.datasets import mnist_split
    from sparkzoo.models.lenet import lenet5
    from sparkzoo.trainer import KerasEstimator, MirroredStrategyRunner

    EPOCHS, BATCH, LR = 6, 32, 1e-3
    spark = init_spark(sys.argv[1], app_name="sparkzoo-cluster-tf",
                       **{"spark.executor.memory": "1200m", "spark.executor.cores": "1"})

    def where(greeting):
        import json, os
        return [greeting, json.loads(os.environ["TF_CONFIG"])["task"]["index"]]

    print("RUNNER", MirroredStrategyRunner(num_slots=2, use_gpu=False, spark=spark).run(where, greeting="hi"))

    train, test = mnist_split()
    x_test = np.stack(test["pixels"]).reshape(-1, 28, 28, 1)
    build = lambda: lenet5((28, 28, 1), 10)
    fitted = KerasEstimator(model=build, optimizer=tf.keras.optimizers.Adam(LR),
                            loss="sparse_categorical_crossentropy", feature_cols=["pixels"],
                            label_cols=["label"], batch_size=BATCH, epochs=EPOCHS, num_workers=2,
                            engine="tf", log_to_mlflow=False, tensorboard=False, verbose=0,
                            ).fit(spark.createDataFrame(train))
    scores = fitted.getModel().predict(x_test, verbose=0)
    print("TWO_RANKS", float((scores.argmax(1) == test["label"]).mean()))

    # One process, the same global batch and learning rate (2 ranks x 32, lr x 2).
    tf.keras.utils.set_random_seed(0)
    alone = build()
    alone.compile(tf.keras.optimizers.Adam(LR * 2), "sparse_categorical_crossentropy")
    alone.fit(np.stack(train["pixels"]).reshape(-1, 28, 28, 1), train["label"].to_numpy(),
              batch_size=BATCH * 2, epochs=EPOCHS, verbose=0)
    print("ONE_PROCESS", float((alone.predict(x_test, verbose=0).argmax(1) == test["label"]).mean()))
    spark.stop()
""")


def test_tf_engine_on_two_workers_matches_one_process(standalone, tmp_path):
    out = run_job(tmp_path, "tf_job.py", TF_JOB, standalone.url, timeout=900)
    lines = dict(line.split(" ", 1) for line in out.stdout.splitlines() if " " in line)
    assert lines["RUNNER"] == "['hi', 0]"  # rank 0's value, TF_CONFIG set in the task
    two, one = float(lines["TWO_RANKS"]), float(lines["ONE_PROCESS"])
    assert two > 0.9 and abs(two - one) <= 0.02, (two, one)


GPU_JOB = textwrap.dedent("""
    import json, sys
    from sparkzoo import init_spark
    from sparkzoo.trainer import HorovodRunner

    spark = init_spark(sys.argv[1], app_name="sparkzoo-cluster-gpus",
                       **{"spark.executor.memory": "1200m", "spark.executor.cores": "1",
                          "spark.executor.resource.gpu.amount": "1",
                          "spark.task.resource.gpu.amount": "1"})

    def where():
        import os
        import horovod.tensorflow as hvd
        from pyspark import TaskContext
        mine = {"rank": hvd.rank(), "visible": os.environ.get("CUDA_VISIBLE_DEVICES"),
                "assigned": TaskContext.get().resources()["gpu"].addresses}
        return hvd.allgather_object(mine)

    print("RANKS", json.dumps(HorovodRunner(np=2, spark=spark).run(where)))
    spark.stop()
""")


@pytest.mark.horovod
def test_each_rank_sees_the_gpus_spark_assigned_to_its_task(standalone, tmp_path):
    out = run_job(tmp_path, "gpu_job.py", GPU_JOB, standalone.url)
    line = next(x for x in out.stdout.splitlines() if x.startswith("RANKS "))
    ranks = json.loads(line.split(" ", 1)[1])
    assert sorted(r["rank"] for r in ranks) == [0, 1]
    for rank in ranks:
        assert rank["assigned"] == ["0"]  # each worker's one (fake) GPU
        assert rank["visible"] == ",".join(rank["assigned"])  # set before TensorFlow starts


TUNE_JOB = textwrap.dedent("""
    import json, os, signal, sys, time
    from sparkzoo import init_spark
    from sparkzoo.spark import executor_name
    from sparkzoo.tune import search

    # No task retries by Spark itself: the search's own retries and exclusion are under test.
    spark = init_spark(sys.argv[1], app_name="sparkzoo-cluster-tune",
                       **{"spark.executor.memory": "1200m", "spark.executor.cores": "1",
                          "spark.task.maxFailures": "1"})
    BAD = sys.argv[2]  # the executor id whose Python workers die

    def objective(params, report):
        if executor_name().endswith("/" + BAD):
            os.kill(os.getpid(), signal.SIGKILL)
        for epoch in (1, 2):
            report(epoch=epoch, score=-(params["x"] - 1) ** 2)
            time.sleep(0.1)
        return -(params["x"] - 1) ** 2

    result = search(objective, {"x": ("uniform", -3, 3)}, metric="score", num_trials=4,
                    algorithm="random", max_failures=3, log_to_mlflow=False)
    rows = result.trials[["state", "executor", "attempts"]].to_dict("records")
    print("TUNE", json.dumps({"rows": rows, "excluded": result.excluded_executors}))
    spark.stop()
""")


@pytest.mark.slow
def test_a_search_retries_trials_whose_worker_dies_and_excludes_that_executor(standalone, tmp_path):
    out = run_job(tmp_path, "tune.py", TUNE_JOB, standalone.url, "0")
    line = next(line for line in out.stdout.splitlines() if line.startswith("TUNE "))
    report = json.loads(line[len("TUNE ") :])
    rows = report["rows"]
    assert [r["state"] for r in rows] == ["COMPLETE"] * 4, out.stderr[-3000:]
    assert all(r["executor"].endswith("/1") for r in rows)
    assert any(r["attempts"] > 1 for r in rows)  # at least one trial died first and was rerun
    assert [e.rsplit("/", 1)[1] for e in report["excluded"]] == ["0"]
