"""The trainer on a real two-worker Spark standalone cluster (marker: slow)."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from sparkzoo.services import cluster

# HorovodRunner and a Horovod KerasEstimator on the cluster (a tf-engine run needs its own test)
pytestmark = [pytest.mark.slow, pytest.mark.horovod]

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


@pytest.fixture(scope="module")
def standalone(tmp_path_factory):
    state = tmp_path_factory.mktemp("cluster")
    info = cluster.start(workers=2, cores=1, memory="1200m", state_dir=state)
    try:
        yield info
    finally:
        cluster.stop(state)
        assert cluster.status(state) is None


def test_cluster_reports_its_workers(standalone):
    assert standalone.url.startswith("spark://127.0.0.1:")
    assert cluster.status(standalone.dir) is not None
    assert cluster._alive_workers(standalone.web_ui) == 2


def test_trainer_runs_two_ranks_across_two_workers(standalone, tmp_path):
    script = tmp_path / "job.py"
    script.write_text(JOB)
    out = subprocess.run(
        [sys.executable, str(script), standalone.url], capture_output=True, text=True, timeout=600
    )
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-4000:]
    lines = dict(line.split(" ", 1) for line in out.stdout.splitlines() if " " in line)
    assert lines["SLOTS"] == "2"
    assert lines["RUNNER"] == "[2, 3.0]"
    assert float(lines["ACCURACY"]) > 0.9
