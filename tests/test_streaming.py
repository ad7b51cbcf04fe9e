"""sparkzoo.streaming and KerasModel.transform on a streaming DataFrame: real Structured
Streaming on the session's local[2] Spark, files landing in a folder while the query runs,
stopped and started again from its checkpoint (the apps' ``stream`` commands:
tests/test_app_object_detection.py, tests/test_app_anomaly_detection.py)."""

from __future__ import annotations

import json
import os
import shutil
import time

import numpy as np
import pytest
import tensorflow as tf

from sparkzoo import fs
from sparkzoo.streaming import Progress, commit_batch, run_until_stopped, trigger
from sparkzoo.trainer import KerasModel
from sparkzoo.trainer.arrays import ColumnSpec
from sparkzoo.trainer.rank_training import keras_model_bytes


def land(folder, name: str, text: str) -> None:
    """A file appears in ``folder`` at once (written beside it, then renamed in)."""
    staged = os.path.join(os.path.dirname(folder), f".{name}")
    with open(staged, "w") as handle:
        handle.write(text)
    os.rename(staged, os.path.join(folder, name))


def json_rows(ids, width: int = 3) -> str:
    rows = [{"id": int(i), "x": [float(i) / (k + 1) for k in range(width)]} for i in ids]
    return "\n".join(json.dumps(r) for r in rows)


def test_trigger_arguments():
    assert trigger(2) == {"processingTime": "2 seconds"}
    assert trigger(0.5) == {"processingTime": "0.5 seconds"}
    assert trigger(None) == {"processingTime": "0 seconds"}
    assert trigger(3, available_now=True) == {"availableNow": True}
    with pytest.raises(ValueError, match="--trigger-seconds must be > 0"):
        trigger(0)


def test_commit_batch_writes_each_batch_once_and_clears_a_half_written_attempt(tmp_path):
    folder = str(tmp_path / "table")
    stale = tmp_path / "table" / "_batch=3.staging"
    stale.mkdir(parents=True)
    (stale / "part-0").write_text("half of an attempt that was stopped")

    def write(path):
        fs.write_bytes(fs.join(path, "part-0"), b"rows of batch 3")

    target, written = commit_batch(folder, 3, write)
    assert written and target.endswith("batch=3") and not stale.exists()
    assert fs.read_bytes(fs.join(target, "part-0")) == b"rows of batch 3"
    # A replay of batch 3 (its commit did not reach the checkpoint) writes nothing.
    assert commit_batch(folder, 3, lambda path: pytest.fail("written twice")) == (target, False)
    assert sorted(os.listdir(folder)) == ["batch=3"]


def _keras_model() -> tuple[KerasModel, tf.keras.Model]:
    tf.keras.utils.set_random_seed(0)
    net = tf.keras.Sequential([tf.keras.Input((3,)), tf.keras.layers.Dense(2)])
    model = KerasModel(
        keras_model_bytes(net), [ColumnSpec("x", "array", 3, False)], [(3,)], [(2,)], ["y"], 16
    )
    return model, net


def test_keras_model_transforms_a_stream_exactly_once_across_a_restart(spark, tmp_path):
    model, net = _keras_model()
    inbox, out, checkpoint = (str(tmp_path / n) for n in ("in", "out", "checkpoint"))
    os.makedirs(inbox)

    def start():
        rows = spark.readStream.schema("id bigint, x array<double>").json(inbox)
        return (
            model.transform(rows)
            .writeStream.format("parquet")
            .option("checkpointLocation", checkpoint)
            .trigger(processingTime="0.2 seconds")
            .start(out)
        )

    query = start()
    while query.lastProgress is None:  # the query reports itself idle: nothing has landed
        time.sleep(0.1)
    land(inbox, "a.json", json_rows(range(0, 5)))
    query.processAllAvailable()
    land(inbox, "b.json", json_rows(range(5, 12)))
    query.processAllAvailable()
    query.stop()
    # Progress counts the rows of each micro-batch once, though the query, idle before the
    # first file landed, reported that batch's id with no rows first.
    progress = Progress("rows", say=lambda line: None)
    progress(query)
    assert progress.rows == 12 and 1 <= progress.batches <= 2
    land(inbox, "c.json", json_rows(range(12, 20)))  # lands while nothing runs
    query = start()
    land(inbox, "d.json", json_rows(range(20, 23)))
    query.processAllAvailable()
    query.stop()

    table = spark.read.parquet(out).toPandas().sort_values("id")
    assert table["id"].tolist() == list(range(23))  # every row once: none lost, none twice
    x = np.stack(table["x"].to_numpy()).astype(np.float32)
    expected = net.predict_on_batch(x)
    assert np.allclose(np.stack(table["y"].to_numpy()), expected, atol=1e-5)


def test_run_until_stopped_reports_progress_and_stops_an_available_now_query(spark, tmp_path):
    inbox = tmp_path / "in"
    inbox.mkdir()
    for n in range(3):
        land(str(inbox), f"{n}.json", json_rows(range(n * 4, n * 4 + 4)))
    lines = []
    progress = Progress("rows", say=lines.append)
    query = (
        spark.readStream.schema("id bigint, x array<double>")
        .option("maxFilesPerTrigger", 1)
        .json(str(inbox))
        .writeStream.queryName("progress_test")
        .format("parquet")
        .option("checkpointLocation", str(tmp_path / "checkpoint"))
        .trigger(availableNow=True)
        .start(str(tmp_path / "out"))
    )
    assert run_until_stopped([query], progress, poll_seconds=0.2) is False
    assert not query.isActive
    assert (progress.batches, progress.rows) == (3, 12)
    assert len(lines) == 3 and lines[-1].startswith("batch 2: 4 rows in ")
    assert lines[-1].endswith("12 rows so far")
    shutil.rmtree(inbox)
