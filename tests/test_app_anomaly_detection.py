"""apps/anomaly_detection: pipeline functions on tiny inputs, the CLI end to end on Spark (local
and hdfs:// output). Its --help, bad input, notebook and submit.sh: tests/test_apps_contract.py
with apps/anomaly_detection/contract.json."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from sparkzoo.apps.anomaly_detection import pipeline
from sparkzoo.apps.anomaly_detection.__main__ import MODELS, main

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


def test_cli_end_to_end_on_spark(spark, tmp_path, capsys):
    out = tmp_path / "out"
    assert main([*TINY, "--output", str(out)]) == 0
    m = _check_output(spark, str(out), "lstm_forecaster")
    assert m["held_out_points"] == 605 - 24  # every held-out point after the first window
    printed = capsys.readouterr().out
    assert "isolation_forest" in printed and str(out) in printed


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
