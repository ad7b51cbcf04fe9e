"""The SYNTHETIC generators: determinism, boxes, fraud patterns, injected anomalies."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from sparkzoo import datasets
from sparkzoo.datasets import readers, synthetic

# ---------------------------------------------------------------------------- detection scenes


@pytest.fixture(scope="module")
def scenes():
    return synthetic.detection_split(24, 8, seed=0, image_size=96)


def test_scenes_shapes_and_split(scenes):
    train, test = scenes
    assert train.images.shape == (24, 96, 96, 3) and train.images.dtype == np.uint8
    assert test.masks.shape == (8, 96, 96)
    assert (train.subset, test.subset) == ("train", "test")
    assert list(train.boxes.columns) == [*readers.BOX_COLUMNS, "image_index", "object", "label"]
    per_scene = train.boxes.groupby("image_index").size()
    assert set(per_scene.index) == set(range(24)) and per_scene.max() <= 4
    assert (train.boxes["class"] == train.boxes["label"].astype(str)).all()
    assert train.boxes["image"].iloc[0] == "train-00000.png"


def test_boxes_lie_inside_images_and_are_tight_to_the_ink(scenes):
    for part in scenes:
        boxes = part.boxes
        normalised = boxes[["y1", "x1", "y2", "x2"]]
        assert ((normalised >= 0) & (normalised <= 1)).all(axis=None)
        assert (boxes["y2"] > boxes["y1"]).all() and (boxes["x2"] > boxes["x1"]).all()
        assert np.allclose(boxes["y2"], boxes["ymax"] / 96) and np.allclose(
            boxes["x1"], boxes["xmin"] / 96
        )
        for row in boxes.itertuples():
            ys, xs = np.nonzero(part.masks[row.image_index] == row.object)
            extent = (ys.min(), xs.min(), ys.max() + 1, xs.max() + 1)
            assert extent == (row.ymin, row.xmin, row.ymax, row.xmax)


def test_digits_stand_out_from_the_photo(scenes):
    train, _ = scenes
    for row in train.boxes.itertuples():
        image = train.images[row.image_index].astype(np.float64)
        mask = train.masks[row.image_index]
        inside = np.zeros(mask.shape, dtype=bool)
        inside[int(row.ymin) : int(row.ymax), int(row.xmin) : int(row.xmax)] = True
        ink = image[mask == row.object].mean(axis=0)
        background = image[inside & (mask == 0)].mean(axis=0)
        assert np.linalg.norm(ink - background) > 60, row.image


def test_scenes_are_deterministic_and_train_test_digits_disjoint():
    first = synthetic.detection_scenes(4, image_size=64, seed=3)
    again = synthetic.detection_scenes(4, image_size=64, seed=3)
    other = synthetic.detection_scenes(4, image_size=64, seed=4)
    assert np.array_equal(first.images, again.images)
    pd.testing.assert_frame_equal(first.boxes, again.boxes)
    assert not np.array_equal(first.images, other.images)
    _, test = datasets.mnist_split()
    _, pool_labels = synthetic._object_pool("mnist", "test")
    assert np.array_equal(pool_labels, test["label"])


def test_targets_frame_and_coco_round_trip(scenes, tmp_path):
    _, test = scenes
    coords, labels = test.targets(0)
    rows = test.boxes[test.boxes["image_index"] == 0]
    assert coords.shape == (len(rows), 4) and coords.dtype == np.float32
    assert labels.tolist() == rows["label"].tolist()
    frame = test.to_frame()
    assert list(frame.columns) == [
        "image", "image_index", "height", "width", "content", "boxes", "labels",
    ]  # fmt: skip
    assert len(frame) == 8 and frame["content"].iloc[0][:4] == b"\x89PNG"
    assert np.allclose(frame["boxes"].iloc[0], coords)
    path = test.to_coco(str(tmp_path / "coco"))
    assert (tmp_path / "coco" / "images" / "test-00007.png").exists()
    back = readers.read_coco(path)
    columns = ["image", "class", "y1", "x1", "y2", "x2", "ymin", "xmin", "ymax", "xmax"]
    pd.testing.assert_frame_equal(back[columns], test.boxes[columns])


def test_scene_arguments_are_checked():
    with pytest.raises(ValueError, match="subset must be 'train' or 'test'"):
        synthetic.detection_scenes(1, subset="val")
    with pytest.raises(ValueError, match="at least 32 pixels"):
        synthetic.detection_scenes(1, image_size=16)
    with pytest.raises(ValueError, match=r"unknown background photo\(s\) \['lena'\]"):
        synthetic.detection_scenes(1, backgrounds=["lena"])
    with pytest.raises(ValueError, match="objects must be 'mnist' or 'digits'"):
        synthetic.detection_scenes(1, objects="cifar")


# ---------------------------------------------------------------------------- transactions


@pytest.fixture(scope="module")
def payments():
    return synthetic.transactions(n_customers=300, n_merchants=60, days=20, fraud_rate=0.02, seed=0)


def test_transactions_schema_and_fraud(payments):
    assert list(payments.columns) == [
        "transaction_id", "timestamp", "step", "customer_id", "merchant_id",
        "merchant_category", "type", "amount", "is_fraud", "fraud_pattern",
    ]  # fmt: skip
    assert payments["transaction_id"].tolist() == list(range(len(payments)))
    assert payments["timestamp"].is_monotonic_increasing
    start = synthetic.TRANSACTIONS_START
    assert payments["timestamp"].min() >= start
    assert payments["timestamp"].max() < start + pd.Timedelta(days=20)
    hours = (payments["timestamp"] - start) // pd.Timedelta("1h")
    assert (payments["step"] == hours).all()
    assert payments["fraud_pattern"].eq("").eq(payments["is_fraud"] == 0).all()
    assert abs(payments["is_fraud"].mean() - 0.02) < 0.004
    assert set(payments["fraud_pattern"]) == {"", *synthetic.FRAUD_PATTERNS}
    assert (payments["amount"] >= 0.5).all()
    assert set(payments["type"]) == {"PAYMENT", "DEBIT", "CASH_OUT", "TRANSFER"}


def test_fraud_patterns_behave_as_documented(payments):
    fraud = payments[payments["is_fraud"] == 1]
    takeover = fraud[fraud["fraud_pattern"] == "account_takeover"]
    assert set(takeover["type"]) <= {"TRANSFER", "CASH_OUT"}
    testing = fraud[fraud["fraud_pattern"] == "card_testing"]
    assert (testing["amount"] <= 3.0).mean() > 0.5
    assert testing.groupby("customer_id")["amount"].max().min() > 100
    unusual = fraud[fraud["fraud_pattern"] == "unusual"]
    assert unusual["timestamp"].dt.hour.between(1, 4).all()
    normal_median = payments.loc[payments["is_fraud"] == 0, "amount"].median()
    assert takeover["amount"].median() > 10 * normal_median


def test_transactions_are_deterministic(payments):
    again = synthetic.transactions(
        n_customers=300, n_merchants=60, days=20, fraud_rate=0.02, seed=0
    )
    pd.testing.assert_frame_equal(payments, again)
    other = synthetic.transactions(
        n_customers=300, n_merchants=60, days=20, fraud_rate=0.02, seed=1
    )
    assert not payments["amount"].equals(other["amount"])
    clean = synthetic.transactions(n_customers=50, n_merchants=20, days=5, fraud_rate=0.0)
    assert clean["is_fraud"].sum() == 0


def test_creditcard_schema_reads_back_with_the_kaggle_reader(tmp_path):
    kwargs = dict(n_customers=200, n_merchants=40, days=10, fraud_rate=0.02, seed=5)
    card = synthetic.transactions(schema="creditcard", **kwargs)
    plain = synthetic.transactions(**kwargs)
    assert list(card.columns) == list(readers.CREDITCARD_COLUMNS)
    assert len(card) == len(plain) and card["Class"].sum() == plain["is_fraud"].sum()
    assert card["Time"].iloc[0] == 0.0 and card["Time"].is_monotonic_increasing
    assert sorted(card["Amount"]) == sorted(plain["amount"])
    v = card[[f"V{i}" for i in range(1, 29)]].to_numpy()
    assert np.isfinite(v).all() and np.allclose(v.mean(axis=0), 0.0, atol=1e-8)
    # Fraud is separable in V-space: a mean shift along some component.
    shift = np.abs(v[card["Class"] == 1].mean(axis=0) - v[card["Class"] == 0].mean(axis=0))
    assert shift.max() > 1.0
    path = tmp_path / "creditcard.csv"
    card.to_csv(path, index=False)
    back = readers.read_creditcard(str(path))
    pd.testing.assert_frame_equal(back, card, check_exact=False)
    pd.testing.assert_frame_equal(synthetic.transactions(schema="creditcard", **kwargs), card)


def test_transaction_arguments_are_checked():
    with pytest.raises(ValueError, match="fraud_rate must be in"):
        synthetic.transactions(fraud_rate=0.7)
    with pytest.raises(ValueError, match="n_merchants must be >= 12"):
        synthetic.transactions(n_merchants=5)
    with pytest.raises(ValueError, match="schema must be 'transactions' or 'creditcard'"):
        synthetic.transactions(schema="paysim")


# ---------------------------------------------------------------------------- anomalies


def test_inject_anomalies_into_a_real_series():
    flow = datasets.time_series("water_flow")
    injected, labels = synthetic.inject_anomalies(flow, n=6, seed=0)
    assert list(injected.columns) == ["index", "timestamp", "value"]
    assert list(labels.columns) == ["is_anomaly", "kind", "event"]
    assert labels.index.equals(flow.index)
    assert sorted(labels.loc[labels["event"] >= 0, "event"].unique()) == list(range(6))
    assert labels.groupby("event")["kind"].first().drop(-1).tolist() == [
        "spike", "level_shift", "noise", "spike", "level_shift", "noise",
    ]  # fmt: skip
    changed = injected["value"].to_numpy() != flow["value"].to_numpy()
    assert not (changed & ~labels["is_anomaly"].to_numpy()).any()
    step = np.diff(flow["value"].to_numpy()).std()
    spikes = labels["kind"] == "spike"
    assert spikes.sum() == 2
    moved = (injected["value"] - flow["value"]).abs()[spikes]
    assert (moved >= 6 * step).all() and (moved <= 10 * step).all()
    # Never in the first 5%, never two anomalies touching.
    assert not labels["is_anomaly"].iloc[: len(flow) // 20].any()
    flagged = labels["is_anomaly"]
    assert (flagged & ~flagged.shift(fill_value=False)).sum() == 6


def test_inject_anomalies_is_deterministic_and_keeps_the_input_type():
    series = pd.Series(np.sin(np.arange(400) / 10.0), name="wave")
    a, labels_a = synthetic.inject_anomalies(series, n=4, seed=1)
    b, labels_b = synthetic.inject_anomalies(series, n=4, seed=1)
    c, _ = synthetic.inject_anomalies(series, n=4, seed=2)
    assert isinstance(a, pd.Series) and a.name == "wave"
    pd.testing.assert_series_equal(a, b)
    pd.testing.assert_frame_equal(labels_a, labels_b)
    assert not a.equals(c)
    array, labels = synthetic.inject_anomalies(series.to_numpy(), n=3, kinds=("level_shift",))
    assert isinstance(array, np.ndarray) and set(labels["kind"]) == {"", "level_shift"}
    assert series.equals(pd.Series(np.sin(np.arange(400) / 10.0), name="wave"))  # input untouched


def test_inject_anomalies_avoids_gaps_and_refuses_too_many():
    co2 = datasets.time_series("co2")
    injected, labels = synthetic.inject_anomalies(co2, n=20, seed=0)
    assert not (labels["is_anomaly"] & co2["value"].isna()).any()
    assert injected["value"].isna().sum() == 59
    with pytest.raises(ValueError, match="cannot place 50 anomalies in a series of 30 points"):
        synthetic.inject_anomalies(np.arange(30.0), n=50)
    with pytest.raises(ValueError, match=r"unknown anomaly kind\(s\) \['drift'\]"):
        synthetic.inject_anomalies(np.arange(30.0), kinds=("drift",))


# ---------------------------------------------------------------------------- Spark


def test_generators_give_spark_frames(spark):
    frame = synthetic.transactions(n_customers=20, n_merchants=12, days=3, seed=0, spark=spark)
    assert frame.schema.simpleString().startswith(
        "struct<transaction_id:bigint,timestamp:timestamp,step:bigint,customer_id:string"
    )
    assert frame.count() == len(synthetic.transactions(n_customers=20, n_merchants=12, days=3))
    scenes = synthetic.detection_scenes(2, image_size=48, seed=0).to_frame(spark=spark)
    assert dict(scenes.dtypes)["boxes"] == "array<array<double>>"
    assert scenes.count() == 2
