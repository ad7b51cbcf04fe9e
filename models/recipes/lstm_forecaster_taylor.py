"""LSTM one-step-ahead forecaster of the Taylor half-hourly electricity demand series.

Data: pmdarima's copy of Taylor (2003): 4,032 half-hourly values (MW), England and Wales,
5 June to 27 August 2000. Split in time order: the first 80 % (3,225 points) train, the last
20 % (807 points) are held out. ``sparkzoo.datasets.windows.make_windows`` cuts each part
into windows of ``WINDOW`` points with the next point as the target, and standardises
with the mean and standard deviation of the training points only (both in the card).
Metrics: MAE and RMSE in MW of the one-step-ahead forecasts of the held-out part (every
held-out point after its first ``WINDOW``). Baselines in the same run, on the same target
points: seasonal naive (the value one week = 336 steps earlier, and one day = 48 earlier) and
last value.

Example::

    python -m sparkzoo.models.recipes lstm_forecaster.taylor
"""

from __future__ import annotations

import functools

import numpy as np

TAG = "lstm_forecaster.taylor"
FAMILY = "lstm_forecaster"
WINDOW = 48  # one day of half-hours
TRAIN_FRACTION = 0.8
WEEK, DAY = 336, 48
CONFIG = {"window": WINDOW, "features": 1, "horizon": 1, "units": (64, 32), "dropout": 0.1}
EPOCHS = 30
CHECK_LIMIT = 300


@functools.lru_cache(maxsize=1)
def series() -> np.ndarray:
    """The 4,032 demand values in time order (MW)."""
    from sparkzoo.datasets.loaders import time_series

    frame = time_series("taylor").sort_values("timestamp")
    return frame["value"].to_numpy(dtype="float64")


def train_rows() -> int:
    """Points in the training part (the first 80 %, as make_windows counts them)."""
    return int(len(series()) * TRAIN_FRACTION)


def test_windows(spec: dict) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Held-out windows, scaled as the card says: ``(x, y_mw, positions)``.

    ``x`` is ``(n, WINDOW, 1)`` scaled inputs; ``y_mw`` the next value in MW; ``positions``
    the index of each target point in the series.
    """
    from sparkzoo.models.timeseries import sliding_windows

    values = series()
    start = train_rows()
    scaled = (values[start:] - spec["mean"][0]) / spec["std"][0]
    x, _ = sliding_windows(scaled, window=spec["window"], horizon=1)
    positions = start + spec["window"] + np.arange(len(x))
    return x, values[positions], positions


def forecast_mw(model, x: np.ndarray, spec: dict) -> np.ndarray:
    """Model forecasts back in MW (the card's std and mean undone)."""
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
    from sparkzoo import models

    spec = models.card(TAG).preprocessing
    x, y, _ = test_windows(spec)
    return float(np.mean(np.abs(forecast_mw(model, x[:limit], spec) - y[:limit])))


def train(spark, args):
    import tensorflow as tf

    from sparkzoo import models
    from sparkzoo.datasets.loaders import time_series
    from sparkzoo.datasets.windows import make_windows
    from sparkzoo.models.recipes.common import Trained
    from sparkzoo.trainer import KerasEstimator

    frame = time_series("taylor", spark=spark)
    windows = make_windows(
        frame,
        time_col="timestamp",
        value_cols=["value"],
        window=WINDOW,
        horizon=1,
        splits=(TRAIN_FRACTION, 0.0),
        scaling="standard",
    )
    scaler = windows.scaler
    spec = {
        "window": WINDOW,
        "mean": [scaler.center[0]],
        "std": [scaler.scale[0]],
        "scaler": scaler.to_dict(),
        "input": f"the last {WINDOW} half-hourly demand values in MW, oldest first, shape "
        f"({WINDOW}, 1); subtract mean and divide by std",
        "output": "the next half-hour's demand, scaled: multiply by std and add mean for MW",
    }
    if windows.parts["train"]["rows"] != train_rows():
        raise RuntimeError(f"make_windows split {windows.parts} differs from {train_rows()}")

    # The card's local windows (check_metric, apps) must be the windows Spark held out.
    x_test, y_test, positions = test_windows(spec)
    spark_test = windows.test.orderBy("start").toPandas()
    spark_x = np.stack(spark_test["features"].to_numpy()).reshape(x_test.shape)
    if len(spark_test) != len(x_test) or not np.allclose(spark_x, x_test, atol=1e-5):
        raise RuntimeError("local held-out windows differ from make_windows' test windows")

    epochs = args.epochs or EPOCHS
    estimator = KerasEstimator(
        model=lambda: models.get(FAMILY, **CONFIG),
        optimizer=tf.keras.optimizers.Adam(1e-3),
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
    windows.unpersist()
    model = fitted.keras_model()

    values = series()
    lstm = errors(forecast_mw(model, x_test, spec), y_test)
    check = float(
        np.mean(np.abs(forecast_mw(model, x_test[:CHECK_LIMIT], spec) - y_test[:CHECK_LIMIT]))
    )
    return Trained(
        model=model,
        config=CONFIG,
        task="time-series-forecasting",
        summary="Stacked LSTM forecasting the next half-hour of England and Wales electricity "
        "demand from the previous day",
        input={"shape": [WINDOW, 1], "dtype": "float32", "raw": spec["input"]},
        preprocessing=spec,
        data={
            "name": "Taylor (2003) half-hourly electricity demand, England and Wales, "
            "5 June - 27 August 2000, 4,032 points in MW (pmdarima.datasets.load_taylor)",
            "licence": "R forecast package's `taylor` data as shipped by pmdarima (MIT), "
            "kindly provided by J. W. Taylor (J. Oper. Res. Soc. 54, 799-805, 2003)",
            "split": f"time order: first {train_rows():,} points (80 %) train, last "
            f"{len(values) - train_rows():,} held out; windows of {WINDOW} inside each part, "
            f"so {len(x_test):,} held-out one-step targets (points {positions[0]}-"
            f"{positions[-1]}); scaler fitted on the training points only",
        },
        metrics={
            **{f"{k}_mw": v for k, v in lstm.items()},
            "held_out_windows": len(x_test),
            "workers": args.workers,
            "epochs": epochs,
            "fit_s": round(fitted.summary["fit_s"], 1),
        },
        check={"metric": "mae_mw", "limit": CHECK_LIMIT, "value": check, "tolerance": 0.5},
        baselines={
            **{
                f"seasonal_naive_week_{k}_mw": v
                for k, v in errors(values[positions - WEEK], y_test).items()
            },
            **{
                f"seasonal_naive_day_{k}_mw": v
                for k, v in errors(values[positions - DAY], y_test).items()
            },
            **{f"last_value_{k}_mw": v for k, v in errors(values[positions - 1], y_test).items()},
        },
        notes=f"Trained with KerasEstimator on {args.workers} workers (Horovod ranks as Spark "
        "barrier tasks) on make_windows' training windows, MSE on standardised values, Adam "
        "1e-3 x workers, batch 32 per worker. Baselines may look back across the split into "
        "the training part (history known at forecast time).",
    )
