"""Time-series windows on Spark, on the real half-hourly electricity load of pmdarima's Taylor
series (4,032 points, June-August 2000)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from sparkzoo.datasets.windows import Scaler, make_windows

WINDOW, HORIZON = 24, 2


@pytest.fixture(scope="module")
def taylor() -> pd.DataFrame:
    from pmdarima.datasets import load_taylor

    load = load_taylor()
    # a second column (load a day earlier) so windows hold several values per step
    return pd.DataFrame(
        {"t": np.arange(len(load)), "load": load, "lag_day": np.roll(load, 48).astype(float)}
    )


@pytest.fixture(scope="module")
def taylor_df(spark, taylor):
    # shuffled and in several partitions, so the sort and the numbering have work to do
    return spark.createDataFrame(taylor.sample(frac=1.0, random_state=0)).repartition(3)


@pytest.fixture(scope="module")
def windows(taylor_df):
    # small blocks, so many windows are finished with rows of the next block
    w = make_windows(taylor_df, "t", ["load", "lag_day"], WINDOW, HORIZON, block_rows=300)
    yield w
    w.unpersist()


def _sorted(df) -> pd.DataFrame:
    return df.toPandas().sort_values("start").reset_index(drop=True)


# ---- the scaler alone --------------------------------------------------------------------------
def test_scaler_inverse_undoes_transform_for_flat_windows():
    scaler = Scaler("standard", ("a", "b"), (10.0, -1.0), (2.0, 0.5))
    values = np.array([[12.0, 0.0, 8.0, -1.5]])  # two steps of (a, b), time-major
    scaled = scaler.transform(values)
    np.testing.assert_allclose(scaled, [[1.0, 2.0, -1.0, -1.0]])
    np.testing.assert_allclose(scaler.inverse(scaled), values)
    np.testing.assert_allclose(scaler.inverse([1.0, -1.0], ["a"]), [12.0, 8.0])
    assert Scaler.from_dict(scaler.to_dict()) == scaler
    with pytest.raises(ValueError, match=r"not fitted on \['c'\]"):
        scaler.inverse([1.0], ["c"])
    with pytest.raises(ValueError, match="not a multiple of the 2 columns"):
        scaler.inverse([1.0, 2.0, 3.0])


def test_scaler_saves_and_loads(tmp_path):
    scaler = Scaler("minmax", ("load",), (100.0,), (50.0,))
    scaler.save(str(tmp_path / "scaler.json"))
    assert Scaler.load(str(tmp_path / "scaler.json")) == scaler


# ---- windows on Spark ----------------------------------------------------------------------------
def test_windows_hold_the_right_rows_in_every_part(windows, taylor):
    rows = len(taylor)
    sizes = [int(rows * 0.7), int(rows * 0.15)]
    sizes.append(rows - sum(sizes))
    starts = [0, sizes[0], sizes[0] + sizes[1]]
    values = taylor[["load", "lag_day"]].to_numpy()
    scaled = (values - np.array(windows.scaler.center)) / np.array(windows.scaler.scale)
    span = WINDOW + HORIZON
    for name, size, start in zip(("train", "validation", "test"), sizes, starts, strict=True):
        got = _sorted(getattr(windows, name))
        # every window inside the part, none crossing its edges
        assert got["start"].tolist() == list(range(start, start + size - span + 1))
        assert (got["end"] - got["start"] == span - 1).all()
        assert windows.parts[name]["first_time"] == start
        assert windows.parts[name]["last_time"] == start + size - 1
        features = np.stack(got["features"])
        labels = np.stack(got["label"])
        assert features.shape[1] == WINDOW * 2 and labels.shape[1] == HORIZON * 2
        expected = np.stack([scaled[s : s + WINDOW].ravel() for s in got["start"]])
        expected_labels = np.stack([scaled[s + WINDOW : s + span].ravel() for s in got["start"]])
        np.testing.assert_allclose(features, expected, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(labels, expected_labels, rtol=1e-5, atol=1e-5)


def test_scaler_is_fitted_on_the_training_rows_only(windows, taylor):
    train = taylor[["load", "lag_day"]].to_numpy()[: int(len(taylor) * 0.7)]
    np.testing.assert_allclose(windows.scaler.center, train.mean(axis=0))
    np.testing.assert_allclose(windows.scaler.scale, train.std(axis=0))
    everything = taylor["load"].mean()
    assert abs(windows.scaler.center[0] - everything) > 100  # the later months differ


def test_labels_go_back_to_megawatts(windows, taylor):
    got = (
        windows.test.select(
            "start", windows.scaler.inverse_column("label", ["load", "lag_day"]).alias("raw")
        )
        .orderBy("start")
        .limit(5)
        .toPandas()
    )
    for start, raw in zip(got["start"], got["raw"], strict=True):
        expected = taylor[["load", "lag_day"]].to_numpy()[start + WINDOW : start + WINDOW + 2]
        np.testing.assert_allclose(raw, expected.ravel(), rtol=1e-5)
    first = windows.test.orderBy("start").select("label").first().label
    np.testing.assert_allclose(
        windows.scaler.inverse(first),
        taylor[["load", "lag_day"]].to_numpy()[got["start"][0] + WINDOW :][:2].ravel(),
        rtol=1e-5,
    )


def test_autoencoder_windows_minmax_and_stride(taylor_df, taylor):
    w = make_windows(
        taylor_df,
        "t",
        "load",
        window=48,
        target="window",
        splits=(0.5, 0.5),
        scaling="minmax",
        stride=12,
    )
    try:
        train = _sorted(w.train)
        assert train["start"].tolist() == list(range(0, 2016 - 48 + 1, 12))
        np.testing.assert_array_equal(np.stack(train["features"]), np.stack(train["label"]))
        values = np.stack(train["features"])
        assert values.min() >= 0 and values.max() <= 1 and values.max() > 0.99
        assert w.test.count() == 0 and w.parts["test"]["rows"] == 0
        assert _sorted(w.validation)["start"].iloc[0] == 2016
        first_half = taylor["load"].to_numpy()[:2016]
        np.testing.assert_allclose(w.scaler.center, [first_half.min()])
    finally:
        w.unpersist()


def test_bad_series_are_refused_with_the_reason(spark, taylor_df):
    from pyspark.sql import functions as F

    with pytest.raises(ValueError, match="column 'power' is not in the DataFrame"):
        make_windows(taylor_df, "t", "power", window=4)
    text = taylor_df.withColumn("name", F.lit("x"))
    with pytest.raises(ValueError, match="value column 'name' has type string"):
        make_windows(text, "t", "name", window=4)
    doubled = taylor_df.union(taylor_df.limit(3))
    with pytest.raises(ValueError, match=r"'t' has repeated values \(4035 rows, 4032 distinct"):
        make_windows(doubled, "t", "load", window=4)
    holes = taylor_df.withColumn(
        "load", F.when(F.col("t") < 2, F.lit(float("nan"))).otherwise(F.col("load"))
    )
    with pytest.raises(ValueError, match="'load' has 2 null or NaN values"):
        make_windows(holes, "t", "load", window=4)
    with pytest.raises(ValueError, match=r"the validation part has 40 rows, fewer than one"):
        make_windows(taylor_df, "t", "load", window=48, splits=(0.98, 0.01, 0.01))
    with pytest.raises(ValueError, match="target columns \\['x'\\] are not among"):
        make_windows(taylor_df, "t", "load", window=4, target_cols="x")
    with pytest.raises(ValueError, match="splits must add up to 1"):
        make_windows(taylor_df, "t", "load", window=4, splits=(0.5, 0.2, 0.2))


@pytest.mark.slow
def test_windows_feed_the_trainer(windows):
    """Forecast the next two half-hours from the last 12 hours, 2 Horovod workers, 1 epoch."""
    import tensorflow as tf

    from sparkzoo.trainer import KerasEstimator

    def build():
        tf.keras.utils.set_random_seed(0)
        return tf.keras.Sequential(
            [
                tf.keras.Input((WINDOW * 2,)),
                tf.keras.layers.Dense(16, activation="relu"),
                tf.keras.layers.Dense(HORIZON * 2),
            ]
        )

    fitted = KerasEstimator(
        model=build,
        optimizer=tf.keras.optimizers.Adam(0.01),
        loss="mse",
        feature_cols=["features"],
        label_cols=["label"],
        batch_size=64,
        epochs=1,
        num_workers=2,
        validation=windows.validation,
        log_to_mlflow=False,
        verbose=0,
    ).fit(windows.train)
    assert fitted.summary["train_rows"] == windows.train.count()
    predicted = np.stack(fitted.transform(windows.test.limit(50)).toPandas()["prediction"])
    assert predicted.shape == (50, HORIZON * 2) and np.isfinite(predicted).all()
    megawatts = windows.scaler.inverse(predicted)
    assert 10_000 < np.median(megawatts[:, 0]) < 60_000  # the series' range, not scaled units
