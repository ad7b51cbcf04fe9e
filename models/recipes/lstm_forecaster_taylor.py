"""LSTM one-step-ahead forecaster of the Taylor half-hourly electricity demand series.

Data: pmdarima's copy of Taylor (2003): 4,032 half-hourly values (MW), England and Wales,
5 June to 27 August 2000. Split in time order: the first 80 % (3,225 points) train, the last
20 % (807 points) are held out. The model reads two columns over the last ``WINDOW`` steps:
the demand, and the demand one week (336 steps) before the step after each, so its last
row holds the value one week before the target, known in advance (a one-day window cannot
otherwise see the weekly cycle, and then loses to the weekly seasonal naive forecast). The
first week has no week-ago value and only feeds those of later rows.
``sparkzoo.datasets.windows.make_windows`` cuts the windows inside each part and
standardises each column with the mean and standard deviation of its training rows only
(both in the card). Metrics: MAE and RMSE in MW of the one-step-ahead forecasts of the
held-out points (every held-out point after the part's first ``WINDOW``). Baselines in the
same run, on the same target points: seasonal naive (the value one week = 336 steps earlier,
and one day = 48 earlier) and last value.

Example::

    python -m sparkzoo.models.recipes lstm_forecaster.taylor
"""

from __future__ import annotations

import functools

import numpy as np

from sparkzoo import keras2 as keras
from sparkzoo import models
from sparkzoo.datasets.loaders import time_series
from sparkzoo.datasets.windows import Windows, make_windows
from sparkzoo.models.recipes.common import Trained
from sparkzoo.trainer import KerasEstimator

TAG = "lstm_forecaster.taylor"
FAMILY = "lstm_forecaster"
WINDOW = 48  # one day of half-hours
WEEK, DAY = 336, 48
HELD_OUT_FRACTION = 0.2
COLUMNS = ["value", "week_ago"]  # week_ago at step t: the value at t + 1 - WEEK
CONFIG = {
    "window": WINDOW,
    "features": len(COLUMNS),
    "horizon": 1,
    "output_features": 1,
    "units": (64, 32),
    "dropout": 0.1,
}
EPOCHS = 20
CHECK_LIMIT = 300


@functools.lru_cache(maxsize=1)
def series() -> np.ndarray:
    """The 4,032 demand values in time order (MW)."""
    frame = time_series("taylor").sort_values("timestamp")
    return frame["value"].to_numpy(dtype="float64")


def held_out_start() -> int:
    """Index of the first held-out point: the last 20 % of the series are held out."""
    return int(len(series()) * (1 - HELD_OUT_FRACTION))


def week_ago_features(values: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """``(len(rows), 2)``: the value at each row and the value one week before the next row."""
    return np.stack([values[rows], values[rows + 1 - WEEK]], axis=1)


def test_windows(spec: dict) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Held-out windows, scaled as the card says: ``(x, y_mw, positions)``.

    ``x`` is ``(n, WINDOW, 2)`` scaled inputs; ``y_mw`` the next value in MW; ``positions``
    the index of each target point in the series.
    """
    values = series()
    window = spec["window"]
    positions = np.arange(held_out_start() + window, len(values))
    rows = positions[:, None] - window + np.arange(window)  # (n, window) input steps
    raw = week_ago_features(values, rows.ravel()).reshape(len(positions), window, 2)
    x = (raw - np.asarray(spec["mean"])) / np.asarray(spec["std"])
    return x.astype("float32"), values[positions], positions


def forecast_mw(model, x: np.ndarray, spec: dict) -> np.ndarray:
    """Model forecasts back in MW (the demand column's std and mean undone)."""
    scaled = model.predict(x, batch_size=512, verbose=0).reshape(-1)
    return scaled * spec["std"][0] + spec["mean"][0]


def errors(predicted: np.ndarray, actual: np.ndarray) -> dict:
    diff = np.asarray(predicted, dtype="float64") - np.asarray(actual, dtype="float64")
    return {
        "mae": round(float(np.mean(np.abs(diff))), 2),
        "rmse": round(float(np.sqrt(np.mean(diff**2))), 2),
    }


def check_metric(model, limit: int = CHECK_LIMIT) -> float:
    """MAE (MW) of the one-step forecasts for the first ``limit`` held-out windows."""
    spec = models.card(TAG).preprocessing
    x, y, _ = test_windows(spec)
    return float(np.mean(np.abs(forecast_mw(model, x[:limit], spec) - y[:limit])))


def spark_windows(spark) -> Windows:
    """make_windows over the series with its week-ago column, split as :func:`held_out_start`."""
    # One series of 4,032 rows: lagged in pandas (exact, one pass), then windowed on Spark.
    frame = time_series("taylor").sort_values("timestamp")
    frame = frame.assign(week_ago=frame["value"].shift(WEEK - 1)).dropna(subset=["week_ago"])
    lagged = spark.createDataFrame(frame[["timestamp", *COLUMNS]])
    rows = len(series()) - (WEEK - 1)
    train_rows = held_out_start() - (WEEK - 1)
    # make_windows takes int(rows * fraction) rows for training; the half row guards
    # against the fraction landing a hair below the intended count.
    windows = make_windows(
        lagged,
        time_col="timestamp",
        value_cols=COLUMNS,
        target_cols=["value"],
        window=WINDOW,
        horizon=1,
        splits=((train_rows + 0.5) / rows, 0.0),
        scaling="standard",
    )
    if windows.parts["train"]["rows"] != train_rows:
        raise RuntimeError(f"make_windows split {windows.parts}, expected {train_rows} train rows")
    return windows


def train(spark, args):
    windows = spark_windows(spark)
    scaler = windows.scaler
    spec = {
        "window": WINDOW,
        "columns": COLUMNS,
        "mean": list(scaler.center),
        "std": list(scaler.scale),
        "scaler": scaler.to_dict(),
        "input": f"({WINDOW}, 2) for the {WINDOW} half-hours up to now, oldest first: "
        f"column 0 the demand (MW) at each step, column 1 the demand {WEEK} steps (one "
        "week) before the step after it; subtract mean and divide by std per column",
        "output": "the next half-hour's demand, scaled: multiply by std[0] and add mean[0] for MW",
    }

    # The card's local windows (check_metric, apps) must be the windows Spark held out.
    x_test, y_test, positions = test_windows(spec)
    spark_test = windows.test.orderBy("start").toPandas()
    spark_x = np.stack(spark_test["features"].to_numpy()).reshape(x_test.shape)
    if len(spark_test) != len(x_test) or not np.allclose(spark_x, x_test, atol=1e-4):
        raise RuntimeError("local held-out windows differ from make_windows' test windows")

    epochs = args.epochs or EPOCHS
    estimator = KerasEstimator(
        model=lambda: models.get(FAMILY, **CONFIG),
        optimizer=keras.optimizers.Adam(1.5e-3),  # x workers (linear scaling)
        loss="mse",
        metrics=["mae"],
        feature_cols=["features"],
        label_cols=["label"],
        batch_size=32,
        epochs=epochs,
        num_workers=args.workers,
        seed=args.seed,
        run_name=f"recipe-{TAG}",
    )
    fitted = estimator.fit(windows.train.select("features", "label"))
    train_windows = fitted.summary["train_rows"]
    windows.unpersist()
    model = fitted.keras_model()

    values = series()
    predicted = forecast_mw(model, x_test, spec)
    check = float(np.mean(np.abs(predicted[:CHECK_LIMIT] - y_test[:CHECK_LIMIT])))
    baselines = {
        "seasonal_naive_week": values[positions - WEEK],
        "seasonal_naive_day": values[positions - DAY],
        "last_value": values[positions - 1],
    }
    return Trained(
        model=model,
        config=CONFIG,
        task="time-series-forecasting",
        summary="Stacked LSTM forecasting the next half-hour of England and Wales electricity "
        "demand from the last day and the same day a week earlier",
        input={"shape": [WINDOW, 2], "dtype": "float32", "raw": spec["input"]},
        preprocessing=spec,
        data={
            "name": "Taylor (2003) half-hourly electricity demand, England and Wales, "
            "5 June - 27 August 2000, 4,032 points in MW (pmdarima.datasets.load_taylor)",
            "licence": "R forecast package's `taylor` data as shipped by pmdarima (MIT), "
            "kindly provided by J. W. Taylor (J. Oper. Res. Soc. 54, 799-805, 2003)",
            "split": f"time order: the last {len(values) - held_out_start():,} points "
            f"(20 %, from index {held_out_start():,}) held out, the points before train; "
            f"windows of {WINDOW} inside each part: {train_windows:,} training windows "
            f"(targets from index {WEEK - 1 + WINDOW} on, as the first week only feeds the "
            f"week-ago column), {len(x_test):,} held-out one-step targets (indices "
            f"{positions[0]:,}-{positions[-1]:,}); scaler fitted on the training rows only",
        },
        metrics={
            **{f"{k}_mw": v for k, v in errors(predicted, y_test).items()},
            "held_out_windows": len(x_test),
            "workers": args.workers,
            "epochs": epochs,
            "fit_s": round(fitted.summary["fit_s"], 1),
        },
        check={"metric": "mae_mw", "limit": CHECK_LIMIT, "value": check, "tolerance": 0.5},
        baselines={
            f"{name}_{k}_mw": v
            for name, guess in baselines.items()
            for k, v in errors(guess, y_test).items()
        },
        notes=f"Trained with KerasEstimator on {args.workers} workers (Horovod ranks as Spark "
        "barrier tasks) on make_windows' training windows, MSE on standardised values, Adam "
        "1.5e-3 x workers, batch 32 per worker. The baselines and the week-ago column look "
        "back across the split into the training part (history known at forecast time).",
    )
