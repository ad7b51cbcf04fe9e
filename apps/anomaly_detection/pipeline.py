"""LSTM anomaly detection on a time series, on Spark, with the baselines measured beside it.

The steps (each a function below; ``__main__`` and the notebook chain them):

1. :func:`load_packaged` (a real series from :mod:`sparkzoo.datasets` with SYNTHETIC labelled
   anomalies injected by :func:`sparkzoo.datasets.synthetic.inject_anomalies`) or
   :func:`load_nab` (a NAB-format CSV, with NAB labels if given) -> a point frame
   ``index, timestamp, value, label``;
2. :func:`spark_windows`: rolling windows on Spark (:func:`sparkzoo.datasets.windows.make_windows`),
   split in time order into a training and a held-out part, the scaler fitted on the training
   rows only;
3. :func:`train_detector`: ``lstm_forecaster`` (predict the next point) or ``lstm_autoencoder``
   (rebuild the window) trained with :class:`sparkzoo.trainer.KerasEstimator`;
4. :func:`point_errors`: the model's error for every point, computed on Spark;
5. :func:`zscore_scores`, :func:`isolation_forest_scores`: the baselines on the same windows;
6. :func:`detect`: one threshold per detector, the same quantile of its scores on the training
   part, then precision / recall / F1 (:func:`scores_against_labels`) on the held-out points;
7. :func:`plot_detections`: the series with flagged points and true anomalies marked.

Example::

    frame = load_packaged("taylor", anomalies=16, seed=0)
    windows = spark_windows(spark, frame, window=48, model="lstm_forecaster")
    fitted = train_detector(windows, "lstm_forecaster", epochs=5)
    errors = point_errors(fitted, windows, "lstm_forecaster")
    result = detect(frame, errors, windows.parts["train"]["rows"], window=48)
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from pyspark.sql import functions as F
from sklearn.ensemble import IsolationForest
from sklearn.metrics import average_precision_score

from sparkzoo import fs
from sparkzoo import keras2 as keras
from sparkzoo.datasets.loaders import list_time_series, time_series
from sparkzoo.datasets.readers import read_nab
from sparkzoo.datasets.synthetic import inject_anomalies
from sparkzoo.datasets.windows import Scaler, make_windows
from sparkzoo.models.registry import get as zoo_model
from sparkzoo.models.timeseries import sliding_windows, threshold_from_errors
from sparkzoo.trainer import KerasEstimator, KerasModel

if TYPE_CHECKING:
    from pyspark.sql import SparkSession


MODELS = ("lstm_forecaster", "lstm_autoencoder")
DETECTORS = ("lstm", "rolling_zscore", "isolation_forest")
POINTS_SCHEMA = (
    "index bigint, timestamp timestamp, value double, part string, error double, "
    "is_anomaly boolean, zscore double, zscore_flag boolean, iforest double, "
    "iforest_flag boolean, label boolean"
)


# ---- 1. the series ----------------------------------------------------------------------------


def _check_series(frame: pd.DataFrame, source: str) -> pd.DataFrame:
    if "value" not in frame.columns:
        raise ValueError(f"{source}: no 'value' column; it has {list(frame.columns)}")
    values = pd.to_numeric(frame["value"], errors="coerce")
    bad = np.flatnonzero(~np.isfinite(values.to_numpy(np.float64)))
    if len(bad):
        raise ValueError(
            f"{source}: column 'value' has {len(bad)} missing, NaN or non-numeric values "
            f"(first at row {int(bad[0])})"
        )
    if len(frame) == 0:
        raise ValueError(f"{source}: the series is empty")
    return frame


def head_fraction(frame: pd.DataFrame, rate: float) -> pd.DataFrame:
    """The first ``rate`` of the points (a contiguous stretch: a time series sampled at random
    would lose the shape the detectors learn).

    Example::

        head_fraction(frame, 0.25)   # the first quarter of the series
    """
    if not 0.0 < rate <= 1.0:
        raise ValueError(f"sample rate {rate} must be in (0, 1]")
    return frame.iloc[: max(1, round(len(frame) * rate))].reset_index(drop=True)


def load_packaged(
    name: str = "taylor",
    anomalies: int = 16,
    seed: int = 0,
    magnitude: float = 1.0,
    sample_rate: float = 1.0,
    clean_fraction: float = 0.0,
) -> pd.DataFrame:
    """A real packaged series (``sparkzoo.datasets.time_series(name)``, missing values
    dropped) with ``anomalies`` SYNTHETIC labelled anomalies injected (spikes, level shifts,
    noise bursts, cycling). ``sample_rate`` keeps the first fraction before injecting.
    ``clean_fraction`` leaves the first share of the series as it was (the history a detector
    is trained and thresholded on, assumed normal as in practice) and injects into the rest.

    Returns ``index`` (0..n-1), ``timestamp``, ``value`` (with the anomalies), ``label``
    (bool: inside an injected anomaly), ``event`` (the anomaly's number, -1 outside) and
    ``kind``.

    Example::

        frame = load_packaged("taylor", anomalies=16)
        frame["label"].sum()
    """

    known = list(list_time_series()["name"])
    if name not in known:
        raise ValueError(f"unknown series {name!r}: choose one of {', '.join(known)}")
    frame = time_series(name, dropna=True)
    frame = head_fraction(frame[["timestamp", "value"]], sample_rate)
    if not 0.0 <= clean_fraction < 1.0:
        raise ValueError(f"clean fraction {clean_fraction} must be in [0, 1)")
    clean = int(len(frame) * clean_fraction)
    later, labels = inject_anomalies(
        frame.iloc[clean:], n=anomalies, seed=seed, magnitude=magnitude
    )
    frame = pd.concat([frame.iloc[:clean], later])
    labels = pd.concat(
        [
            pd.DataFrame({"is_anomaly": False, "kind": "", "event": -1}, index=frame.index[:clean]),
            labels,
        ]
    )
    frame = frame.assign(
        label=labels["is_anomaly"].to_numpy(),
        event=labels["event"].to_numpy(),
        kind=labels["kind"].to_numpy(),
    )
    frame.insert(0, "index", np.arange(len(frame), dtype=np.int64))
    return _check_series(frame, f"series {name!r}")


def load_nab(
    path: str, labels: str | None = None, key: str | None = None, sample_rate: float = 1.0
) -> pd.DataFrame:
    """A NAB-format CSV (``timestamp,value``) and, if given, NAB's labels JSON
    (``combined_windows.json`` or ``combined_labels.json``), read by
    :func:`sparkzoo.datasets.readers.read_nab` and sorted by time.

    Returns the columns of :func:`load_packaged`; ``label`` is None (unknown) without labels.

    Example::

        frame = load_nab("nyc_taxi.csv", "combined_windows.json")
    """

    if not os.path.exists(path):
        raise FileNotFoundError(f"--input {path!r} does not exist")
    if labels is not None and not os.path.exists(labels):
        raise FileNotFoundError(f"--labels {labels!r} does not exist")
    raw = read_nab(path, labels, key=key).sort_values("timestamp", kind="stable")
    if raw["timestamp"].duplicated().any():
        first = raw["timestamp"][raw["timestamp"].duplicated()].iloc[0]
        raise ValueError(f"{path}: timestamp {first} appears more than once")
    raw = head_fraction(raw.reset_index(drop=True), sample_rate)
    label = raw["is_anomaly"].to_numpy(bool) if labels is not None else None
    frame = pd.DataFrame(
        {
            "index": np.arange(len(raw), dtype=np.int64),
            "timestamp": raw["timestamp"].to_numpy(),
            "value": raw["value"].to_numpy(np.float64),
            "label": label,
            "event": _events(label) if label is not None else -1,
            "kind": np.where(label, "labelled", "") if label is not None else "",
        }
    )
    return _check_series(frame, path)


def _events(label: np.ndarray) -> np.ndarray:
    """Number each run of consecutive True values (an event); -1 elsewhere."""
    label = np.asarray(label, bool)
    starts = label & ~np.concatenate([[False], label[:-1]])
    return np.where(label, np.cumsum(starts) - 1, -1).astype(np.int64)


# ---- 2. windows on Spark ----------------------------------------------------------------------


def spark_windows(
    spark: SparkSession, frame: pd.DataFrame, window: int = 48, model: str = "lstm_forecaster",
    train_fraction: float = 0.5,
):  # fmt: skip
    """Rolling windows of ``frame``'s values on Spark, the first ``train_fraction`` of the
    points for training and the rest held out, scaled with the training part's mean and
    standard deviation (:func:`sparkzoo.datasets.windows.make_windows`).

    The forecaster's windows hold ``window`` points and, as label, the point after them; the
    autoencoder's label is the window itself. ``start``/``end`` are point indices.

    Example::

        windows = spark_windows(spark, frame, window=48)
        windows.train.count()
    """

    _check_model(model)
    if not 0.0 < train_fraction < 1.0:
        raise ValueError(f"train fraction {train_fraction} must be in (0, 1)")
    train_rows = int(len(frame) * train_fraction)
    for part, rows in (("training", train_rows), ("held-out", len(frame) - train_rows)):
        if rows < 2 * (window + 1):
            raise ValueError(
                f"the {part} part has {rows} points, too few for windows of {window} "
                f"(need at least {2 * (window + 1)}): use a longer series, a higher "
                "--sample-rate or a smaller --window"
            )
    df = spark.createDataFrame(
        frame[["index", "value"]].astype({"index": "int64", "value": "float64"}),
        "index bigint, value double",
    )
    forecaster = model == "lstm_forecaster"
    return make_windows(
        df,
        time_col="index",
        value_cols=["value"],
        window=window,
        horizon=1,
        target="next" if forecaster else "window",
        splits=(train_fraction, 0.0),
        scaling="standard",
    )


def _check_model(model: str) -> None:
    if model not in MODELS:
        raise ValueError(f"unknown model {model!r}: choose one of {', '.join(MODELS)}")


# ---- 3. training ------------------------------------------------------------------------------


def build_model(model: str, window: int, units: Sequence[int] = (32, 16)):
    """The Keras model for ``model`` from the zoo (``sparkzoo.models``), untrained.

    Example::

        build_model("lstm_forecaster", window=48).output_shape   # (None, 1, 1)
    """

    _check_model(model)
    if model == "lstm_forecaster":
        return zoo_model(model, window=window, features=1, horizon=1, units=tuple(units))
    return zoo_model(model, window=window, features=1, units=tuple(units))


def train_detector(
    windows,
    model: str = "lstm_forecaster",
    units: Sequence[int] = (32, 16),
    epochs: int = 10,
    workers: int = 2,
    batch_size: int = 32,
    learning_rate: float = 1e-3,
    seed: int = 0,
    tracking_uri: str | None = None,
):
    """Train ``model`` on the training windows with :class:`sparkzoo.trainer.KerasEstimator`
    (``workers`` Horovod ranks as Spark barrier tasks); returns the fitted ``KerasModel``.

    The detector is unsupervised: it never sees a label (the training part is whatever the
    data holds; the packaged default keeps it free of injected anomalies).

    Example::

        fitted = train_detector(windows, "lstm_forecaster", epochs=10, workers=2)
    """

    window = windows.window
    units = tuple(units)
    estimator = KerasEstimator(
        model=lambda: build_model(model, window, units),
        optimizer=keras.optimizers.Adam(learning_rate),  # x workers (linear scaling)
        loss="mse",
        feature_cols=["features"],
        label_cols=["label"],
        batch_size=batch_size,
        epochs=epochs,
        num_workers=workers,
        seed=seed,
        run_name=f"anomaly-detection-{model}",
        tracking_uri=tracking_uri,
        log_to_mlflow=tracking_uri is not None,
    )
    return estimator.fit(windows.train.select("features", "label"))


# ---- 4. errors on Spark -----------------------------------------------------------------------


def point_errors(fitted, windows, model: str = "lstm_forecaster") -> pd.DataFrame:
    """The model's squared error for every point that has one, computed on Spark over the
    training and held-out windows: ``index, error``, sorted.

    Forecaster: the point after each window, scored by its one-step forecast error.
    Autoencoder: each point, scored by its squared reconstruction error averaged over every
    window that contains it (errors are in scaled units either way).

    Example::

        errors = point_errors(fitted, windows, "lstm_forecaster")
    """

    _check_model(model)
    scored = fitted.transform(windows.train.unionByName(windows.test))
    if model == "lstm_forecaster":
        # One value per window: the prediction is a scalar column, the label an array of 1.
        errors = scored.select(
            F.col("end").alias("index"),
            F.pow(F.col("prediction") - F.element_at("label", 1), 2).alias("error"),
        )
    else:
        steps = scored.select(
            "start",
            F.posexplode(F.zip_with("prediction", "label", lambda p, x: F.pow(p - x, 2))).alias(
                "pos", "squared"
            ),
        )
        errors = steps.groupBy((F.col("start") + F.col("pos")).alias("index")).agg(
            F.mean("squared").alias("error")
        )
    return errors.toPandas().sort_values("index").reset_index(drop=True)


# ---- 5. baselines on the same windows ---------------------------------------------------------


def _history_windows(
    scaled: np.ndarray, train_rows: int, window: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(history, point, index)``: for every point with ``window`` points before it in its
    own part, those points and the point itself - the forecaster's windows, cut locally."""

    histories, points, indices = [], [], []
    for lo, hi in ((0, train_rows), (train_rows, len(scaled))):
        x, y = sliding_windows(scaled[lo:hi], window=window, horizon=1)
        histories.append(x[:, :, 0])
        points.append(y[:, 0, 0])
        indices.append(np.arange(lo + window, hi))
    return np.concatenate(histories), np.concatenate(points), np.concatenate(indices)


def zscore_scores(scaled: np.ndarray, train_rows: int, window: int) -> pd.DataFrame:
    """Rolling z-score: ``|x_t - mean| / std`` of the ``window`` points before ``t`` (the same
    windows the forecaster reads); ``index, score``.

    Example::

        zscore_scores(np.r_[np.zeros(10), 5.0, np.zeros(9)], train_rows=10, window=4)
    """
    history, point, index = _history_windows(scaled, train_rows, window)
    spread = history.std(axis=1)
    # A flat history would divide by zero: floor its spread at a small share of the series'.
    spread = np.maximum(spread, 1e-3 * max(float(np.std(scaled)), 1e-12))
    score = np.abs(point - history.mean(axis=1)) / spread
    return pd.DataFrame({"index": index, "score": score})


def isolation_forest_scores(
    scaled: np.ndarray, train_rows: int, window: int, seed: int = 0
) -> pd.DataFrame:
    """scikit-learn's ``IsolationForest`` fitted on the training part's windows and scoring
    every window; ``index, score`` (higher: more anomalous).

    Features per point: its ``window`` predecessors and itself (scaled as the LSTM sees
    them), its step from the previous point and its distance from the history mean.

    Example::

        isolation_forest_scores(scaled, train_rows=2000, window=48)
    """

    history, point, index = _history_windows(scaled, train_rows, window)
    features = np.column_stack(
        [history, point, point - history[:, -1], point - history.mean(axis=1)]
    )
    train = index < train_rows
    forest = IsolationForest(n_estimators=200, random_state=seed).fit(features[train])
    return pd.DataFrame({"index": index, "score": -forest.score_samples(features)})


# ---- 6. thresholds and scores -----------------------------------------------------------------


def scores_against_labels(
    flags: np.ndarray, labels: np.ndarray, events: np.ndarray | None = None
) -> dict:
    """Point-wise precision, recall and F1 of ``flags`` against ``labels``; with ``events``
    (the anomaly number per point, -1 outside), the share of events with a flagged point.

    Example::

        scores_against_labels(np.array([1, 1, 0, 0]), np.array([1, 0, 1, 0]))
        # {'precision': 0.5, 'recall': 0.5, 'f1': 0.5, ...}
    """
    flags, labels = np.asarray(flags, bool), np.asarray(labels, bool)
    if flags.shape != labels.shape:
        raise ValueError(f"flags {flags.shape} and labels {labels.shape} differ in shape")
    hits = int(np.sum(flags & labels))
    precision = hits / int(flags.sum()) if flags.any() else 0.0
    recall = hits / int(labels.sum()) if labels.any() else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    out = {
        "precision": round(precision, 4),
        "recall": round(recall, 4),
        "f1": round(f1, 4),
        "flagged": int(flags.sum()),
        "true_positives": hits,
    }
    if events is not None:
        events = np.asarray(events)
        numbers = np.unique(events[events >= 0])
        found = [n for n in numbers if flags[events == n].any()]
        out["event_recall"] = round(len(found) / len(numbers), 4) if len(numbers) else 0.0
        out["events_found"] = len(found)
    return out


@dataclass
class Detection:
    """What :func:`detect` found: a table of scored points and the figures."""

    points: pd.DataFrame
    thresholds: dict[str, float]
    train_rows: int = 0
    metrics: dict[str, dict] = field(default_factory=dict)
    evaluated: dict = field(default_factory=dict)


def detect(
    frame: pd.DataFrame,
    errors: pd.DataFrame,
    train_rows: int,
    window: int,
    quantile: float = 0.99,
    scaler=None,
    seed: int = 0,
) -> Detection:
    """Threshold the LSTM's errors and the two baselines' scores, and score them all.

    Each detector's threshold is the ``quantile`` of its scores on the TRAINING part
    (unlabelled: labels are never used to pick it). Every detector is evaluated on the same
    points: the held-out points with a full window before them in their part.

    ``points`` has one row per point with an LSTM error: ``index, timestamp, value, part,
    error, is_anomaly, zscore, zscore_flag, iforest, iforest_flag, label``.

    Example::

        result = detect(frame, errors, train_rows=2016, window=48)
        result.metrics["lstm"]["f1"], result.metrics["rolling_zscore"]["f1"]
    """

    if not 0.0 < quantile < 1.0:
        raise ValueError(f"threshold quantile {quantile} must be in (0, 1)")
    values = frame["value"].to_numpy(np.float64)
    if scaler is not None:
        scaled = scaler.transform(values[:, None], ["value"])[:, 0]
    else:
        train = values[:train_rows]
        scaled = (values - train.mean()) / (train.std() or 1.0)
    baselines = {
        "rolling_zscore": zscore_scores(scaled, train_rows, window),
        "isolation_forest": isolation_forest_scores(scaled, train_rows, window, seed),
    }
    points = frame[["index", "timestamp", "value"]].merge(errors, on="index", how="inner")
    for name, column in (("rolling_zscore", "zscore"), ("isolation_forest", "iforest")):
        scores = baselines[name].rename(columns={"score": column})
        points = points.merge(scores, on="index", how="left")
    points["part"] = np.where(points["index"] < train_rows, "train", "test")
    # The points every detector scores: a full window behind them inside their own part.
    in_part = points["index"] - np.where(points["part"] == "train", 0, train_rows)
    common = (in_part >= window).to_numpy()
    train_mask = common & (points["part"] == "train").to_numpy()
    test_mask = common & (points["part"] == "test").to_numpy()

    thresholds = {}
    for name, column, flag in (
        ("lstm", "error", "is_anomaly"),
        ("rolling_zscore", "zscore", "zscore_flag"),
        ("isolation_forest", "iforest", "iforest_flag"),
    ):
        thresholds[name] = threshold_from_errors(
            points.loc[train_mask, column], "quantile", q=quantile
        )
        points[flag] = points[column].to_numpy() > thresholds[name]
    labelled = frame["label"].notna().all() if "label" in frame else False
    points["label"] = (
        frame.set_index("index").loc[points["index"], "label"].to_numpy(bool) if labelled else None
    )
    columns = [c.split()[0] for c in POINTS_SCHEMA.split(", ")]
    result = Detection(points=points[columns], thresholds=thresholds, train_rows=train_rows)
    result.evaluated = {
        "train_points_for_thresholds": int(train_mask.sum()),
        "held_out_points": int(test_mask.sum()),
        "first_held_out_index": int(points.loc[test_mask, "index"].min())
        if test_mask.any()
        else None,
    }
    if labelled:
        truth = points["label"].to_numpy(bool)[test_mask]
        events = frame.set_index("index").loc[points["index"], "event"].to_numpy()[test_mask]
        result.evaluated["held_out_anomalous_points"] = int(truth.sum())
        result.evaluated["held_out_events"] = len(np.unique(events[events >= 0]))
        for name, flag, column in (
            ("lstm", "is_anomaly", "error"),
            ("rolling_zscore", "zscore_flag", "zscore"),
            ("isolation_forest", "iforest_flag", "iforest"),
        ):
            flags = points[flag].to_numpy(bool)[test_mask]
            result.metrics[name] = scores_against_labels(flags, truth, events)
            # Threshold-free: how well the scores rank anomalous points above normal ones.
            result.metrics[name]["auprc"] = (
                round(float(average_precision_score(truth, points.loc[test_mask, column])), 4)
                if truth.any()
                else None
            )
    return result


# ---- the trained detector, for `stream` --------------------------------------------------------


@dataclass
class SavedDetector:
    """What ``stream`` needs of a batch run: the trained model, the window it reads, the
    scaler fitted on the training part and the LSTM's threshold (on that scale)."""

    fitted: KerasModel
    model: str
    window: int
    scaler: Scaler
    threshold: float


def save_detector(folder: str, fitted, model: str, window: int, scaler, threshold: float) -> None:
    """Write the trained detector under ``folder`` (local or hdfs://): ``keras/`` (the
    ``KerasModel``) and ``detector.json`` (model, window, threshold, scaler).

    Example::

        save_detector(out.path("model"), fitted, "lstm_forecaster", 48, windows.scaler,
                      result.thresholds["lstm"])
    """
    fitted.write().overwrite().save(fs.join(folder, "keras"))
    record = {"model": model, "window": window, "threshold": threshold, "scaler": scaler.to_dict()}
    fs.write_bytes(fs.join(folder, "detector.json"), json.dumps(record, indent=2).encode())


def load_detector(folder: str) -> SavedDetector:
    """The detector :func:`save_detector` wrote under ``folder`` (a batch run's ``model/``).

    Example::

        saved = load_detector("out/anomaly/model")
    """
    meta = fs.join(folder, "detector.json")
    if not fs.exists(meta):
        raise FileNotFoundError(
            f"{folder} holds no trained detector (no detector.json): give the output folder "
            "of a batch run (python -m sparkzoo.apps.anomaly_detection run)"
        )
    record = json.loads(fs.read_bytes(meta))
    return SavedDetector(
        fitted=KerasModel.load(fs.join(folder, "keras")),
        model=record["model"],
        window=int(record["window"]),
        scaler=Scaler.from_dict(record["scaler"]),
        threshold=float(record["threshold"]),
    )


# ---- 7. the picture ---------------------------------------------------------------------------


def plot_detections(frame: pd.DataFrame, result: Detection, title: str = "", unit: str = ""):
    """A matplotlib figure: the series with true anomalies shaded and the LSTM's flagged
    points marked (top), the LSTM's error and its threshold (bottom); the dashed line is where
    the held-out part starts.

    Example::

        figure = plot_detections(frame, result, "taylor + injected anomalies", "MW")
    """
    # A bare Figure (no pyplot): no global backend to switch, nothing left open.

    points = result.points
    x = frame["index"].to_numpy()
    figure = Figure(figsize=(12, 6))
    top, bottom = figure.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [3, 1.3]})
    top.plot(x, frame["value"], lw=0.6, color="#4a6fa5", label="series")
    if "label" in frame and frame["label"].notna().all():
        label = frame["label"].to_numpy(bool)
        events = _events(label)
        for number in np.unique(events[events >= 0]):
            at = x[events == number]
            top.axvspan(at[0] - 0.5, at[-1] + 0.5, color="#f4a261", alpha=0.35, lw=0)
        top.scatter(x[label], frame["value"].to_numpy()[label], s=5, color="#e76f51", zorder=2,
                    label="true anomaly (labelled)")  # fmt: skip
    flagged = points[points["is_anomaly"]]
    top.scatter(flagged["index"], flagged["value"], s=14, color="#d62828", zorder=3,
                label=f"flagged by the LSTM ({len(flagged)})")  # fmt: skip
    bottom.plot(points["index"], points["error"], lw=0.6, color="#333333", label="LSTM error")
    bottom.axhline(result.thresholds["lstm"], color="#d62828", lw=0.8, label="threshold")
    bottom.set_yscale("log")
    for axis in (top, bottom):
        axis.axvline(result.train_rows - 0.5, color="grey", ls="--", lw=0.8)
        axis.legend(loc="upper left", fontsize=8, ncol=3)
    top.set_title(title + "  (left of the dashed line: training part; right: held out)")
    top.set_ylabel(unit or "value")
    bottom.set_ylabel("squared error (scaled)")
    bottom.set_xlabel("point index")
    figure.tight_layout()
    return figure
