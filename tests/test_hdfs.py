"""The local HDFS for real: Spark, sparkzoo.fs, saved models and the trainer's checkpoints on
``hdfs://``; a stopped HDFS fails fast, a restarted one keeps its data (marker: hdfs).

The session's HDFS (the ``hdfs`` fixture of conftest) starts only when one of these tests is
selected. The unmarked tests at the end check a machine without Java, and need no HDFS.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
import uuid

import numpy as np
import pytest

from sparkzoo import fs
from sparkzoo.services import hdfs as hdfs_services


def _fresh(hdfs: str, what: str) -> str:
    return f"{hdfs}/tests/{what}-{uuid.uuid4().hex[:8]}"


# ---- sparkzoo.fs ------------------------------------------------------------------------------
def test_fs_round_trip_on_hdfs(hdfs, tmp_path):
    base = _fresh(hdfs, "fs")
    target = fs.join(base, "a", "b.bin")
    fs.write_bytes(target, b"first")
    fs.write_bytes(target, b"second")  # overwrites, through a temporary name
    assert fs.read_bytes(target) == b"second"
    assert fs.listdir(fs.join(base, "a")) == ["b.bin"]
    assert fs.isdir(fs.join(base, "a")) and not fs.isdir(target)
    assert fs.listdir(fs.join(base, "missing")) == [] and fs.listdir(target) == []

    with pytest.raises(KeyError), fs.open(target, "wb") as handle:
        handle.write(b"half")
        raise KeyError("the writer failed")
    assert fs.read_bytes(target) == b"second" and fs.listdir(fs.join(base, "a")) == ["b.bin"]
    with fs.open(target, "rb") as handle:
        handle.seek(3)
        assert handle.read() == b"ond"
    with pytest.raises(FileNotFoundError, match=f"'{base}/nope' does not exist"):
        fs.read_bytes(fs.join(base, "nope"))

    tree = tmp_path / "tree"
    (tree / "sub").mkdir(parents=True)
    payload = np.random.default_rng(0).bytes(5 << 20)  # more than one copy chunk
    (tree / "sub" / "big.bin").write_bytes(payload)
    (tree / "small.txt").write_text("small")
    fs.put(str(tree), fs.join(base, "tree"))
    assert fs.listdir(base) == ["a", "tree"]
    fs.get(fs.join(base, "tree"), str(tmp_path / "back"))
    assert (tmp_path / "back" / "sub" / "big.bin").read_bytes() == payload
    assert (tmp_path / "back" / "small.txt").read_text() == "small"

    fs.check_writable(fs.join(base, "store"))
    fs.delete(base)
    assert not fs.exists(base) and not fs.exists(target)


# ---- Spark ------------------------------------------------------------------------------------
def test_spark_writes_and_reads_parquet_on_hdfs(spark, hdfs):
    from pyspark.sql import functions as F

    path = _fresh(hdfs, "parquet")
    df = spark.range(1000).withColumn("square", F.col("id") * F.col("id"))
    df.repartition(3).write.parquet(path)
    names = fs.listdir(path)
    assert "_SUCCESS" in names and sum(n.endswith(".parquet") for n in names) == 3
    back = spark.read.parquet(path)
    assert back.count() == 1000
    assert back.agg(F.sum("square")).first()[0] == sum(i * i for i in range(1000))


# ---- the trainer ------------------------------------------------------------------------------
def build_mlp():
    import tensorflow as tf

    tf.keras.utils.set_random_seed(0)
    return tf.keras.Sequential(
        [
            tf.keras.layers.Input((4,)),
            tf.keras.layers.Dense(8, activation="relu"),
            tf.keras.layers.Dense(2, activation="softmax"),
        ],
        name="mlp",
    )


def test_keras_model_saves_to_and_loads_from_hdfs(hdfs):
    from sparkzoo.trainer import KerasModel
    from sparkzoo.trainer.columns import ColumnSpec
    from sparkzoo.trainer.rank_training import keras_model_bytes

    model = KerasModel(
        keras_model_bytes(build_mlp()),
        [ColumnSpec("features", "array", 4, False)],
        [(4,)],
        [(2,)],
        history={"loss": [0.5]},
    )
    path = _fresh(hdfs, "saved") + "/model"
    model.save(path)
    assert fs.listdir(path) == ["metadata", "model.keras"]  # a Spark ML stage folder
    assert fs.listdir(path.rsplit("/", 1)[0]) == [path.rsplit("/", 1)[1]]  # no temporary left
    with pytest.raises(FileExistsError, match=re.escape(path)):
        model.save(path)
    loaded = KerasModel.load(path)
    assert loaded.history == {"loss": [0.5]} and loaded.features == model.features
    x = np.random.default_rng(1).normal(size=(5, 4)).astype(np.float32)
    np.testing.assert_allclose(
        loaded.keras_model().predict(x, verbose=0), model.keras_model().predict(x, verbose=0)
    )


def test_trainer_checkpoints_to_hdfs_and_resumes(spark, hdfs, capsys):
    import pandas as pd

    from sparkzoo.trainer import KerasEstimator

    rng = np.random.default_rng(0)
    label = rng.integers(0, 2, 256)
    x = rng.normal(size=(256, 4)).astype(np.float32) + (label[:, None] * 2 - 1) * 2.0
    df = spark.createDataFrame(pd.DataFrame({"features": list(x), "label": label}))
    store = _fresh(hdfs, "store")

    def estimator(epochs):
        return KerasEstimator(
            model=build_mlp,
            optimizer="adam",
            loss="sparse_categorical_crossentropy",
            metrics=["accuracy"],
            feature_cols=["features"],
            label_cols=["label"],
            batch_size=32,
            epochs=epochs,
            num_workers=2,
            store=store,
            run_name="run",
            log_to_mlflow=False,
        )

    estimator(2).fit(df)
    assert fs.listdir(f"{store}/run/checkpoints") == [
        "epoch-00001.npz",
        "epoch-00002.npz",
        "latest.json",
    ]
    capsys.readouterr()
    fitted = estimator(3).fit(df)
    out = capsys.readouterr().out
    assert "resuming run from its checkpoint after epoch 2" in out
    assert [line.split()[1] for line in out.splitlines() if line.startswith("epoch ")] == ["3/3"]
    assert len(fitted.history["loss"]) == 3
    assert "epoch-00003.npz" in fs.listdir(f"{store}/run/checkpoints")


# ---- stop and restart -------------------------------------------------------------------------
def test_stopped_hdfs_fails_fast_and_a_restart_keeps_the_data(hdfs_service):
    """Stops the session's HDFS and starts it again (same URI) before it returns."""
    state = hdfs_service.dir
    path = _fresh(hdfs_service.uri, "kept") + "/data.bin"
    fs.write_bytes(path, b"still here")
    assert hdfs_services.stop(state)
    try:
        assert hdfs_services.status(state) is None
        for operation in (fs.read_bytes, fs.exists, lambda p: fs.write_bytes(p, b"x")):
            started = time.monotonic()
            with pytest.raises(ConnectionError, match=re.escape(f"for '{path}'")):
                operation(path)
            assert time.monotonic() - started < 5
    finally:
        again = hdfs_services.start(state)
    assert again.uri == hdfs_service.uri
    assert fs.read_bytes(path) == b"still here"


# ---- the command line -------------------------------------------------------------------------
def _sparkzoo(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "sparkzoo", *args],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, **(env or {})},
    )


@pytest.mark.slow
def test_cli_starts_reports_and_stops_its_own_hdfs(tmp_path, hdfs_service):
    state = str(tmp_path / "cli-hdfs")
    started = _sparkzoo("hdfs", "start", "--dir", state)
    assert started.returncode == 0, started.stdout + started.stderr
    uri = re.search(r"HDFS up: (hdfs://127\.0\.0\.1:\d+)", started.stdout).group(1)
    try:
        assert uri != hdfs_service.uri
        status = _sparkzoo("hdfs", "status", "--dir", state)
        assert status.returncode == 0
        assert status.stdout.strip() == f"up: {uri}, 1 live DataNode(s), data in {state}"
        fs.write_bytes(f"{uri}/hello.txt", b"hello")
        assert fs.read_bytes(f"{uri}/hello.txt") == b"hello"
    finally:
        stopped = _sparkzoo("hdfs", "stop", "--dir", state)
    assert stopped.stdout.strip() == "stopped"
    status = _sparkzoo("hdfs", "status", "--dir", state)
    assert (status.returncode, status.stdout.strip()) == (3, "not running")
    assert _sparkzoo("hdfs", "stop", "--dir", state).stdout.strip().startswith("no HDFS recorded")
    # It ended its own NameNode and DataNode only: the session's HDFS still answers.
    assert hdfs_services.status(hdfs_service.dir) is not None
    assert fs.exists(hdfs_service.uri + "/")


# ---- without Java (unmarked: no HDFS needed) ---------------------------------------------------
def test_start_without_java_says_so_before_downloading(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    monkeypatch.delenv("JAVA_HOME", raising=False)
    with pytest.raises(RuntimeError, match=r"Java was not found .* need Java 8 or newer"):
        hdfs_services.start(tmp_path / "state", jars_dir=tmp_path / "jars")
    assert not (tmp_path / "jars").exists() and not (tmp_path / "state").exists()


def test_cli_start_without_java_fails_with_the_reason(tmp_path):
    out = _sparkzoo(
        "hdfs",
        "start",
        "--dir",
        str(tmp_path / "state"),
        env={"PATH": str(tmp_path), "JAVA_HOME": ""},
    )
    assert out.returncode == 1
    assert "error: Java was not found" in out.stderr
