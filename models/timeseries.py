"""LSTM models for time series: a forecaster and an autoencoder, and the error helpers that
turn either into an anomaly detector.

The anomaly-detection recipe of Analytics Zoo (and of Malhotra et al., 2015/2016): train on
normal windows, score each window by how badly the model predicts its next values
(:func:`prediction_errors`) or reconstructs it (:func:`reconstruction_errors`), and flag the
windows whose error passes a threshold learnt from normal data
(:func:`threshold_from_errors`).

Example::

    x, y = sliding_windows(series, window=48, horizon=1)
    model = lstm_forecaster(window=48, features=1, horizon=1)
    model.compile("adam", "mse"); model.fit(x, y, epochs=5)
    errors = prediction_errors(model, x, y)
    flagged = errors > threshold_from_errors(errors, "quantile", q=0.99)
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from sparkzoo import keras2 as keras
from sparkzoo.models.registry import register


def sliding_windows(
    values: np.ndarray, window: int, horizon: int = 0, stride: int = 1
) -> tuple[np.ndarray, np.ndarray | None]:
    """Cut a series into windows ``(n, window, features)`` and the ``horizon`` values after each.

    ``values`` is ``(time,)`` or ``(time, features)``. With ``horizon=0`` the targets are
    ``None`` (windows for an autoencoder); otherwise they are ``(n, horizon, features)``.

    Example::

        x, y = sliding_windows(np.arange(10.0), window=3, horizon=2)
        x[0, :, 0], y[0, :, 0]   # [0, 1, 2], [3, 4]
    """
    values = np.asarray(values, dtype="float32")
    if values.ndim == 1:
        values = values[:, None]
    if values.ndim != 2:
        raise ValueError(f"values must be (time,) or (time, features), got shape {values.shape}")
    if window < 1 or horizon < 0 or stride < 1:
        raise ValueError(
            f"need window >= 1, horizon >= 0, stride >= 1; got {window}, {horizon}, {stride}"
        )
    count = (len(values) - window - horizon) // stride + 1
    if count < 1:
        raise ValueError(
            f"a series of {len(values)} points is too short for window {window} + horizon {horizon}"
        )
    starts = np.arange(count) * stride
    x = values[starts[:, None] + np.arange(window)]
    if not horizon:
        return x, None
    return x, values[starts[:, None] + window + np.arange(horizon)]


def _forecast_example(config: dict, n: int, rng: np.random.Generator):
    window, features = config["window"], config["features"]
    horizon, outputs = config["horizon"], config["output_features"] or features
    x = rng.standard_normal((n, window, features)).astype("float32")
    return x, rng.standard_normal((n, horizon, outputs)).astype("float32")


def _autoencoder_example(config: dict, n: int, rng: np.random.Generator):
    x = rng.standard_normal((n, config["window"], config["features"])).astype("float32")
    return x, x


@register(
    "lstm_forecaster",
    task="time-series-forecasting",
    tiny={"window": 8, "features": 2, "horizon": 3, "units": (8, 4)},
    example=_forecast_example,
    loss="mse",
    metrics=("mae",),
)
def lstm_forecaster(
    window: int = 48,
    features: int = 1,
    horizon: int = 1,
    units: Sequence[int] = (64, 32),
    dropout: float = 0.2,
    output_features: int | None = None,
    name: str = "lstm_forecaster",
) -> keras.Model:
    """Stacked LSTM that maps a window ``(window, features)`` to the next ``horizon`` values.

    Each LSTM layer of ``units`` feeds the next (all but the last return sequences); dropout
    follows each. The output is ``(horizon, output_features)`` (``output_features`` defaults to
    ``features``), one linear value per future step and series.

    Example::

        model = lstm_forecaster(window=48, features=1, horizon=6, units=(32, 16))
        model.compile("adam", "mse")
    """
    units = _positive_ints(units, "units")
    outputs_per_step = output_features or features
    inputs = keras.Input((window, features), name="window")
    x = inputs
    for i, size in enumerate(units):
        last = i == len(units) - 1
        x = keras.layers.LSTM(size, return_sequences=not last, name=f"lstm{i + 1}")(x)
        if dropout:
            x = keras.layers.Dropout(dropout, name=f"dropout{i + 1}")(x)
    x = keras.layers.Dense(horizon * outputs_per_step, name="forecast")(x)
    outputs = keras.layers.Reshape((horizon, outputs_per_step), name="horizon")(x)
    return keras.Model(inputs, outputs, name=name)


@register(
    "lstm_autoencoder",
    task="time-series-reconstruction",
    tiny={"window": 8, "features": 2, "units": (8, 4)},
    example=_autoencoder_example,
    loss="mse",
    metrics=("mae",),
)
def lstm_autoencoder(
    window: int = 48,
    features: int = 1,
    units: Sequence[int] = (64, 32),
    dropout: float = 0.0,
    name: str = "lstm_autoencoder",
) -> keras.Model:
    """LSTM autoencoder: encoder LSTMs -> RepeatVector -> decoder LSTMs -> TimeDistributed Dense.

    The encoder's LSTMs have ``units`` (the last one is the bottleneck: one vector per
    window); the decoder mirrors them and a per-step linear layer rebuilds the
    ``(window, features)`` input. Windows unlike the training data reconstruct badly, which is
    what :func:`reconstruction_errors` measures.

    Example::

        model = lstm_autoencoder(window=32, features=1, units=(32, 8))
        model.compile("adam", "mse"); model.fit(x, x, epochs=10)
    """
    units = _positive_ints(units, "units")
    inputs = keras.Input((window, features), name="window")
    x = inputs
    for i, size in enumerate(units):
        last = i == len(units) - 1
        x = keras.layers.LSTM(size, return_sequences=not last, name=f"encoder{i + 1}")(x)
        if dropout:
            x = keras.layers.Dropout(dropout, name=f"encoder_dropout{i + 1}")(x)
    x = keras.layers.RepeatVector(window, name="repeat")(x)
    for i, size in enumerate(reversed(units)):
        x = keras.layers.LSTM(size, return_sequences=True, name=f"decoder{i + 1}")(x)
        if dropout:
            x = keras.layers.Dropout(dropout, name=f"decoder_dropout{i + 1}")(x)
    outputs = keras.layers.TimeDistributed(keras.layers.Dense(features), name="reconstruction")(x)
    return keras.Model(inputs, outputs, name=name)


def prediction_errors(
    model: keras.Model,
    windows: np.ndarray,
    targets: np.ndarray,
    metric: str = "mse",
    batch_size: int = 256,
) -> np.ndarray:
    """One error per window: how far the forecast of ``model`` is from the actual ``targets``.

    ``targets`` may be ``(n, horizon)`` or ``(n, horizon, features)``; ``metric`` is ``"mse"``
    or ``"mae"`` over the horizon and features.

    Example::

        errors = prediction_errors(forecaster, x_test, y_test)
    """
    predicted = model.predict(np.asarray(windows, dtype="float32"), batch_size, verbose=0)
    return _errors(predicted, targets, metric, "targets")


def reconstruction_errors(
    model: keras.Model, windows: np.ndarray, metric: str = "mse", batch_size: int = 256
) -> np.ndarray:
    """One error per window: how badly ``model`` (an autoencoder) reconstructs it.

    Example::

        errors = reconstruction_errors(autoencoder, x_test)
    """
    windows = np.asarray(windows, dtype="float32")
    return _errors(model.predict(windows, batch_size, verbose=0), windows, metric, "windows")


def _errors(predicted: np.ndarray, actual: np.ndarray, metric: str, what: str) -> np.ndarray:
    actual = np.asarray(actual, dtype="float32")
    if actual.size != predicted.size or len(actual) != len(predicted):
        raise ValueError(
            f"{what} of shape {actual.shape} do not match the model's output of shape "
            f"{predicted.shape}"
        )
    diff = predicted.reshape(len(predicted), -1) - actual.reshape(len(actual), -1)
    if metric == "mse":
        return np.mean(diff**2, axis=1)
    if metric == "mae":
        return np.mean(np.abs(diff), axis=1)
    raise ValueError(f"metric must be 'mse' or 'mae', got {metric!r}")


def threshold_from_errors(
    errors: np.ndarray, method: str = "quantile", q: float = 0.99, k: float = 3.0
) -> float:
    """The error above which a window counts as anomalous, learnt from (mostly normal) errors.

    ``method="quantile"``: the ``q`` quantile of ``errors``; ``method="mean_std"``: the mean
    plus ``k`` standard deviations.

    Example::

        threshold_from_errors(np.array([1.0, 2.0, 3.0]), "mean_std", k=1.0)  # 2.816...
    """
    errors = np.asarray(errors, dtype="float64").ravel()
    if errors.size == 0:
        raise ValueError("errors is empty: there is nothing to learn a threshold from")
    if not np.all(np.isfinite(errors)):
        raise ValueError(f"errors holds {int(np.sum(~np.isfinite(errors)))} NaN or inf values")
    if method == "quantile":
        if not 0.0 <= q <= 1.0:
            raise ValueError(f"q must be within [0, 1], got {q}")
        return float(np.quantile(errors, q))
    if method == "mean_std":
        return float(errors.mean() + k * errors.std())
    raise ValueError(f"method must be 'quantile' or 'mean_std', got {method!r}")


def _positive_ints(values: Sequence[int] | int, what: str) -> list[int]:
    values = [values] if isinstance(values, int) else [int(v) for v in values]
    if not values or any(v < 1 for v in values):
        raise ValueError(f"{what} must be one or more positive sizes, got {values}")
    return values
