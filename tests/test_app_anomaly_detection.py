"""apps/anomaly_detection: pipeline functions on tiny inputs, the CLI end to end on Spark (local
and hdfs:// output). Its --help, bad input, notebook and submit.sh: tests/test_apps_contract.py
with apps/anomaly_detection/contract.json."""

from __future__ import annotations

import contextlib
import io
import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from sparkzoo.apps.anomaly_detection import pipeline
from sparkzoo.apps.anomaly_detection.__main__ import MODELS, main
from sparkzoo.apps.common import read_metrics

# A short CLI run: 30 % of Taylor (1,210 points), small windows and LSTM, one epoch.
TINY = ["--sample-rate", "0.3", "--epochs", "1", "--window", "24", "--units", "8,4",
        "--anomalies", "8", "--master", "local[2]"]  # fmt: skip


def nab_csv(path: Path, values: np.ndarray, start: str = "2024-01-01") -> Path:
    stamps = pd.date_range(start, periods=len(values), freq="5min")
    frame = pd.DataFrame({"timestamp": stamps.strftime("%Y-%m-%d %H:%M:%S"), "value": values})
    frame.to_csv(path, index=False)
    return path


# ---- fast: pipeline functions -----------------------------------------------------------------


def test_head_fraction_keeps_a_contiguous_prefix():
    frame = pd.DataFrame({"value": np.arange(10.0)})
    assert pipeline.head_fraction(frame, 0.3)["value"].tolist() == [0.0, 1.0, 2.0]
    assert len(pipeline.head_fraction(frame, 1.0)) == 10
    with pytest.raises(ValueError, match="sample rate 0"):
        pipeline.head_fraction(frame, 0.0)


def test_load_packaged_injects_labelled_anomalies_into_the_real_series():
    from sparkzoo.datasets import time_series

    frame = pipeline.load_packaged("taylor", anomalies=6, seed=1, sample_rate=0.25)
    assert len(frame) == 1008 and frame["index"].tolist() == list(range(1008))
    assert list(frame.columns[:4]) == ["index", "timestamp", "value", "label"]
    assert set(frame.loc[frame["label"], "event"]) == set(range(6))
    real = time_series("taylor")["value"].to_numpy()[:1008]
    # values change inside the anomalies only, and there they do
    unchanged = ~frame["label"].to_numpy()
    assert np.allclose(frame["value"].to_numpy()[unchanged], real[unchanged])
    spikes = frame["kind"].to_numpy() == "spike"
    assert spikes.sum() == 2 and not np.allclose(frame["value"].to_numpy()[spikes], real[spikes])


def test_load_packaged_can_keep_the_training_history_clean():
    from sparkzoo.datasets import time_series

    frame = pipeline.load_packaged(
        "taylor", anomalies=6, seed=1, sample_rate=0.25, clean_fraction=0.5
    )
    real = time_series("taylor")["value"].to_numpy()[:1008]
    assert not frame["label"].to_numpy()[:504].any()
    assert (frame["event"].to_numpy()[:504] == -1).all()
    np.testing.assert_allclose(frame["value"].to_numpy()[:504], real[:504])
    assert set(frame.loc[frame["label"], "event"]) == set(range(6))
    assert frame["index"].tolist() == list(range(1008))
    with pytest.raises(ValueError, match="clean fraction"):
        pipeline.load_packaged("taylor", clean_fraction=1.0)


def test_load_packaged_rejects_an_unknown_series():
    with pytest.raises(ValueError, match="unknown series 'nope': choose one of taylor"):
        pipeline.load_packaged("nope")


def test_load_nab_reads_values_and_label_windows(tmp_path):
    csv = nab_csv(tmp_path / "machine.csv", np.arange(12.0))
    labels = tmp_path / "combined_windows.json"
    labels.write_text(
        json.dumps({"realKnownCause/machine.csv": [["2024-01-01 00:10:00", "2024-01-01 00:20:00"]]})
    )
    frame = pipeline.load_nab(str(csv), str(labels))
    assert frame["label"].tolist() == [False] * 2 + [True] * 3 + [False] * 7
    assert frame["event"].tolist() == [-1] * 2 + [0] * 3 + [-1] * 7
    assert frame["value"].tolist() == list(np.arange(12.0))
    unlabelled = pipeline.load_nab(str(csv), sample_rate=0.5)
    assert len(unlabelled) == 6 and unlabelled["label"].isna().all()


def test_load_nab_names_missing_files_and_bad_values(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"--input .*nowhere\.csv"):
        pipeline.load_nab(str(tmp_path / "nowhere.csv"))
    csv = nab_csv(tmp_path / "s.csv", np.arange(5.0))
    with pytest.raises(FileNotFoundError, match=r"--labels .*labels\.json"):
        pipeline.load_nab(str(csv), str(tmp_path / "labels.json"))
    (tmp_path / "bad.csv").write_text(
        "timestamp,value\n2024-01-01 00:00:00,1\n2024-01-01 00:05:00,x\n"
    )
    with pytest.raises(ValueError, match="value"):
        pipeline.load_nab(str(tmp_path / "bad.csv"))


def test_events_number_each_run_of_labelled_points():
    label = np.array([0, 1, 1, 0, 1, 0, 0, 1], bool)
    assert pipeline._events(label).tolist() == [-1, 0, 0, -1, 1, -1, -1, 2]


def test_scores_against_labels():
    flags = np.array([1, 1, 0, 0, 1, 0], bool)
    labels = np.array([1, 0, 1, 0, 1, 1], bool)
    events = np.array([0, -1, 1, -1, 2, 2])
    s = pipeline.scores_against_labels(flags, labels, events)
    assert (s["precision"], s["recall"]) == (round(2 / 3, 4), 0.5)
    assert s["f1"] == round(2 * (2 / 3) * 0.5 / (2 / 3 + 0.5), 4)
    assert (s["event_recall"], s["events_found"]) == (round(2 / 3, 4), 2)
    assert pipeline.scores_against_labels(np.zeros(3), np.zeros(3))["f1"] == 0.0
    with pytest.raises(ValueError, match="differ in shape"):
        pipeline.scores_against_labels(np.zeros(3), np.zeros(4))


def test_baselines_use_the_forecaster_windows_inside_each_part():
    from sparkzoo.models.timeseries import sliding_windows

    rng = np.random.default_rng(0)
    scaled = rng.standard_normal(60)
    scaled[45] = 12.0  # a spike in the held-out part (points 30..59)
    history, point, index = pipeline._history_windows(scaled, train_rows=30, window=5)
    assert index.tolist() == list(range(5, 30)) + list(range(35, 60))
    x, y = sliding_windows(scaled[30:], window=5, horizon=1)
    assert np.allclose(history[25:], x[:, :, 0]) and np.allclose(point[25:], y[:, 0, 0])
    z = pipeline.zscore_scores(scaled, 30, 5)
    assert z.loc[z["score"].idxmax(), "index"] == 45
    forest = pipeline.isolation_forest_scores(scaled, 30, 5)
    assert forest["index"].tolist() == index.tolist() and forest["score"].between(0, 1).all()
    assert forest.loc[forest["score"].idxmax(), "index"] in (45, 46)


def _frame_with_spikes(n: int = 200) -> pd.DataFrame:
    values = np.sin(np.arange(n) / 5.0)
    label = np.zeros(n, bool)
    label[[i for i in (40, 150, 170) if i < n]] = True
    values[label] += 6.0
    return pd.DataFrame(
        {
            "index": np.arange(n),
            "timestamp": pd.date_range("2024-01-01", periods=n, freq="h"),
            "value": values,
            "label": label,
            "event": pipeline._events(label),
        }
    )


def test_detect_thresholds_on_the_training_part_and_scores_held_out_points():
    frame = _frame_with_spikes()
    # A stand-in detector's errors: distance from the clean sine (the spikes stand out).
    errors = pd.DataFrame(
        {
            "index": np.arange(10, 200),
            "error": np.abs(frame["value"] - np.sin(np.arange(200) / 5.0))[10:],
        }
    )
    result = pipeline.detect(frame, errors, train_rows=100, window=10, quantile=0.9)
    assert result.evaluated["held_out_points"] == 90
    assert result.evaluated["held_out_anomalous_points"] == 2
    assert result.metrics["lstm"]["recall"] == 1.0 and result.metrics["lstm"]["auprc"] == 1.0
    assert set(result.metrics) == {"lstm", "rolling_zscore", "isolation_forest"}
    assert result.metrics["rolling_zscore"]["events_found"] == 2
    points = result.points
    assert list(points.columns) == [c.split()[0] for c in pipeline.POINTS_SCHEMA.split(", ")]
    assert (points["part"] == "test").sum() == 100
    # The threshold depends on the training part only: change held-out errors, same threshold.
    changed = errors.assign(error=np.where(errors["index"] >= 100, 99.0, errors["error"]))
    again = pipeline.detect(frame, changed, train_rows=100, window=10, quantile=0.9)
    assert again.thresholds == result.thresholds
    with pytest.raises(ValueError, match=r"quantile 1\.5"):
        pipeline.detect(frame, errors, 100, 10, quantile=1.5)


def test_plot_detections_draws_the_series_and_the_error():
    frame = _frame_with_spikes()
    errors = pd.DataFrame({"index": np.arange(10, 200), "error": np.abs(frame["value"])[10:]})
    figure = pipeline.plot_detections(frame, pipeline.detect(frame, errors, 100, 10), "t")
    top, bottom = figure.axes
    assert len(top.lines[0].get_xdata()) == 200 and bottom.get_yscale() == "log"


def test_cli_model_choices_are_the_pipelines():
    assert pipeline.MODELS == MODELS


def test_windows_too_short_are_refused_before_spark():
    frame = _frame_with_spikes(60)
    with pytest.raises(ValueError, match="training part has 30 points, too few for windows of 24"):
        pipeline.spark_windows(None, frame, window=24)
    with pytest.raises(ValueError, match="unknown model 'arima'"):
        pipeline.spark_windows(None, frame, window=4, model="arima")


# ---- spark: the CLI end to end ----------------------------------------------------------------


def test_spark_windows_match_the_local_windows_of_the_baselines(spark):
    frame = _frame_with_spikes(120)
    windows = pipeline.spark_windows(spark, frame, window=6, train_fraction=0.5)
    rows = windows.train.unionByName(windows.test).orderBy("end").toPandas()
    scaled = windows.scaler.transform(frame["value"].to_numpy()[:, None], ["value"])[:, 0]
    history, point, index = pipeline._history_windows(scaled, 60, 6)
    windows.unpersist()
    assert rows["end"].tolist() == index.tolist()
    assert np.allclose(np.stack(rows["features"]), history, atol=1e-5)
    assert np.allclose(np.stack(rows["label"])[:, 0], point, atol=1e-5)


def _check_output(spark, out: str, model: str) -> dict:
    from sparkzoo import fs
    from sparkzoo.apps.common import read_metrics

    record = read_metrics(out)
    m = record["metrics"]
    assert record["app"] == "anomaly_detection" and m["model"] == model
    assert m["points"] == 1210 and m["train_points"] == 605
    assert m["labels"] == "injected (synthetic)" and m["held_out_events"] >= 1
    for name in pipeline.DETECTORS:
        for key in ("precision", "recall", "f1", "event_recall"):
            assert 0.0 <= m[f"{name}_{key}"] <= 1.0
    points = spark.read.parquet(fs.join(out, "points"))
    assert [f.name for f in points.schema.fields] == [
        c.split()[0] for c in pipeline.POINTS_SCHEMA.split(", ")
    ]
    rows = points.toPandas()
    assert rows["index"].is_unique and rows["error"].ge(0).all()
    assert (rows["part"] == "test").sum() >= m["held_out_points"]
    assert rows.loc[rows["part"] == "test", "is_anomaly"].sum() == m["flagged_held_out"]
    assert fs.read_bytes(fs.join(out, "detections.png"))[:4] == b"\x89PNG"
    return m


@pytest.fixture(scope="module")
def tiny_run(spark, tmp_path_factory) -> tuple[Path, str]:
    """The TINY batch run (its output folder and what it printed), made once for the tests
    of its output and of ``stream``, which scores with the model it saved."""
    out = tmp_path_factory.mktemp("anomaly_detection") / "out"
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        assert main([*TINY, "--output", str(out)]) == 0
    return out, printed.getvalue()


def test_cli_end_to_end_on_spark(spark, tiny_run):
    out, printed = tiny_run
    m = _check_output(spark, str(out), "lstm_forecaster")
    assert m["held_out_points"] == 605 - 24  # every held-out point after the first window
    assert "isolation_forest" in printed and str(out) in printed
    saved = pipeline.load_detector(str(out / "model"))
    assert (saved.model, saved.window) == ("lstm_forecaster", 24)
    assert saved.threshold == pytest.approx(read_metrics(str(out))["metrics"]["thresholds"]["lstm"])


def test_cli_bad_input_on_spark_leaves_no_output(spark, tmp_path, capsys):
    csv = nab_csv(tmp_path / "short.csv", np.arange(80.0))
    out = tmp_path / "out"
    assert main(["--input", str(csv), "--output", str(out), "--window", "24"]) == 2
    assert "training part has 40 points, too few" in capsys.readouterr().err
    assert not out.exists() and not list(tmp_path.glob("out.tmp-*"))


def test_cli_autoencoder_writes_to_hdfs(spark, hdfs):
    from sparkzoo import fs

    out = f"{hdfs}/apps/anomaly_detection"
    assert main([*TINY, "--model", "lstm_autoencoder", "--output", out, "--overwrite"]) == 0
    _check_output(spark, out, "lstm_autoencoder")
    # The autoencoder scores every point (each is in some window), not only those after one.
    assert spark.read.parquet(fs.join(out, "points")).count() == 1210


# ---- stream: points of CSV files landing in a folder (Structured Streaming) -----------------


def _land(inbox: Path, name: str, frame: pd.DataFrame) -> None:
    """A NAB CSV appears in ``inbox`` at once (written beside it, then renamed in)."""
    staged = inbox.parent / f".{name}"
    nab = frame.assign(timestamp=frame["timestamp"].dt.strftime("%Y-%m-%d %H:%M:%S"))
    nab[["timestamp", "value"]].to_csv(staged, index=False)
    os.rename(staged, inbox / name)


def test_stream_scores_landing_points_as_the_batch_run_did(spark, tiny_run, tmp_path, capsys):
    from sparkzoo.apps.anomaly_detection import streaming

    run, _ = tiny_run
    # The held-out part of the TINY run's series (its first 605 points trained the LSTM).
    frame = pipeline.load_packaged("taylor", 8, 0, 1.0, 0.3, clean_fraction=0.5)
    held = frame.iloc[605:].reset_index(drop=True)
    inbox, out, checkpoint = tmp_path / "in", str(tmp_path / "out"), str(tmp_path / "ck")
    inbox.mkdir()
    saved = pipeline.load_detector(str(run / "model"))
    query = streaming.start(spark, str(inbox), out, checkpoint, saved, 0.2, all_points=True)
    _land(inbox, "a.csv", held.iloc[:10])  # shorter than a window: state only
    query.processAllAvailable()
    _land(inbox, "b.csv", held.iloc[10:300])
    query.processAllAvailable()
    query.stop()
    # Started again from the checkpoint (the last 24 points are in its state); a late file
    # (points already seen) is left out.
    _land(inbox, "c.csv", held.iloc[300:])
    _land(inbox, "d-late.csv", held.iloc[100:130])
    args = ["stream", "--run", str(run), "--input", str(inbox), "--checkpoint", checkpoint]
    assert main([*args, "--output", out, "--all-points", "--available-now"]) == 0
    assert "points in 1 micro-batches (no more input)" in capsys.readouterr().out

    streamed = spark.read.parquet(f"{out}/points").toPandas()
    assert streamed["timestamp"].is_unique and len(streamed) == 605 - 24
    batch = spark.read.parquet(str(run / "points")).toPandas()
    batch = batch[batch["part"] == "test"]
    both = batch.merge(streamed, on="timestamp", suffixes=("_batch", ""))
    assert len(both) == len(streamed)  # the same points as the batch run's held-out ones
    assert np.allclose(both["error"], both["error_batch"], rtol=1e-3, atol=1e-6)
    clear = (both["error_batch"] - saved.threshold).abs() > 1e-4  # not on the threshold
    assert (both.loc[clear, "is_anomaly"] == both.loc[clear, "is_anomaly_batch"]).all()
    assert np.allclose(both["value"], both["value_batch"])

    # The default: the flagged points only, in anomalies/.
    fresh = ["--output", str(tmp_path / "flagged"), "--checkpoint", str(tmp_path / "ck2")]
    assert main([*args[:-2], *fresh, "--available-now"]) == 0
    flagged = spark.read.parquet(str(tmp_path / "flagged" / "anomalies")).toPandas()
    assert sorted(flagged["timestamp"]) == sorted(streamed.loc[streamed["is_anomaly"], "timestamp"])


def test_stream_reads_and_writes_hdfs(spark, hdfs, tiny_run, tmp_path):
    from sparkzoo import fs

    run, _ = tiny_run
    frame = pipeline.load_packaged("taylor", 8, 0, 1.0, 0.3, clean_fraction=0.5)
    held = frame.iloc[605:].reset_index(drop=True)
    local = tmp_path / "csv"
    local.mkdir()
    inbox, out = f"{hdfs}/inputs/anomaly_stream", f"{hdfs}/apps/anomaly_stream"
    fs.delete(inbox)
    fs.makedirs(inbox)
    args = ["stream", "--run", str(run), "--input", inbox, "--output", out]
    args += ["--checkpoint", f"{out}_checkpoint", "--all-points", "--available-now"]
    for n, part in enumerate((held.iloc[:300], held.iloc[300:])):
        _land(local, f"{n}.csv", part)
        fs.put(str(local / f"{n}.csv"), f"{inbox}/{n}.csv")
        assert main([*args, "--overwrite"] if n == 0 else args) == 0
    streamed = spark.read.parquet(f"{out}/points").toPandas()
    assert streamed["timestamp"].is_unique and len(streamed) == 605 - 24


def test_stream_refuses_a_folder_without_a_trained_model(tmp_path, capsys):
    args = ["stream", "--run", str(tmp_path), "--input", str(tmp_path)]
    assert main([*args, "--output", str(tmp_path / "o"), "--checkpoint", str(tmp_path / "c")]) == 2
    assert "holds no trained detector (no detector.json)" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


@pytest.mark.slow
def test_stream_cli_stops_on_sigterm_and_resumes_from_its_checkpoint(spark, tiny_run, tmp_path):
    import signal
    import subprocess
    import sys
    import time

    run, _ = tiny_run
    frame = pipeline.load_packaged("taylor", 8, 0, 1.0, 0.3, clean_fraction=0.5)
    held = frame.iloc[605:].reset_index(drop=True)
    inbox, out, checkpoint = tmp_path / "in", tmp_path / "out", str(tmp_path / "ck")
    inbox.mkdir()
    _land(inbox, "a.csv", held.iloc[:200])
    args = ["--run", str(run), "--input", str(inbox), "--output", str(out)]
    args += ["--checkpoint", checkpoint, "--all-points"]
    command = [sys.executable, "-m", "sparkzoo.apps.anomaly_detection", "stream", *args]
    process = subprocess.Popen(
        [*command, "--trigger-seconds", "0.5", "--master", "local[2]"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        committed = out / "points" / "_spark_metadata" / "0"  # the file sink's first commit
        deadline = time.monotonic() + 240
        while not committed.exists() and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.5)
        assert committed.exists(), process.stderr.read()[-3000:] if process.poll() else "waited"
        process.send_signal(signal.SIGTERM)
        stdout, stderr = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 0, stderr[-3000:]
    assert "(stopped by a signal)" in stdout and "batch 0: 200 points in" in stdout

    _land(inbox, "b.csv", held.iloc[200:])
    assert main(["stream", *args, "--available-now"]) == 0
    streamed = spark.read.parquet(str(out / "points")).toPandas()
    assert streamed["timestamp"].is_unique and len(streamed) == 605 - 24
