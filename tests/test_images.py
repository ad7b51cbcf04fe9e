"""ImageSet: real photographs (and two broken files) read, decoded and transformed by Spark."""

from __future__ import annotations

import os

import cv2
import numpy as np
import pytest
import skimage.data

from sparkzoo.datasets.images import (
    ImageDecodeError,
    ImageSet,
    balanced_partitions,
    decode_image,
    image_to_struct,
    local_path,
    struct_to_image,
)
from sparkzoo.datasets.transforms import (
    CenterCrop,
    ColorJitter,
    Compose,
    Expand,
    HorizontalFlip,
    RandomCrop,
    Resize,
    ToTensor,
    row_rng,
)

GOOD = {
    "cats/chelsea.jpg": "chelsea",
    "cats/cat.png": "cat",
    "objects/coffee.jpg": "coffee",
    "objects/rocket.jpg": "rocket",
    "objects/nested/astronaut.png": "astronaut",
}
BROKEN = ("cats/truncated.jpg", "objects/garbage.png")


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """Real photographs from skimage as JPEG and PNG, one truncated JPEG, one garbage PNG and
    a text file the glob leaves out."""
    root = tmp_path_factory.mktemp("photos")
    for name, photo in GOOD.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(path), getattr(skimage.data, photo)()[:, :, ::-1])
    whole = (root / "objects/coffee.jpg").read_bytes()
    (root / BROKEN[0]).write_bytes(whole[: len(whole) // 2])
    (root / BROKEN[1]).write_bytes(b"\x89PNG\r\n\x1a\n" + b"not really a png" * 20)
    (root / "objects/notes.txt").write_text("not an image")
    return root


def _rel(path: str, folder) -> str:
    return os.path.relpath(path.removeprefix("file:"), folder)


def _local(path: str) -> np.ndarray:
    return decode_image(open(path.removeprefix("file:"), "rb").read())


# ---- decoding and the struct, without Spark ----------------------------------------------------
def test_decode_image_reads_rgb_and_refuses_bad_bytes(folder):
    image = decode_image((folder / "cats/chelsea.jpg").read_bytes())
    assert image.shape == (300, 451, 3) and image.dtype == np.uint8
    bgr = decode_image((folder / "cats/chelsea.jpg").read_bytes(), color="bgr")
    np.testing.assert_array_equal(image, bgr[:, :, ::-1])
    assert decode_image((folder / "cats/cat.png").read_bytes(), color="gray").shape[2] == 1
    with pytest.raises(ImageDecodeError, match=r"not a readable image \(\d+ bytes\)"):
        decode_image((folder / BROKEN[0]).read_bytes())
    with pytest.raises(ImageDecodeError, match="empty file"):
        decode_image(b"")
    with pytest.raises(ValueError, match="color must be one of"):
        decode_image(b"x", color="cmyk")


def test_struct_round_trip_keeps_values_type_and_layout():
    photo = skimage.data.astronaut()[:40, :60]
    struct = image_to_struct(photo, "a.png")
    assert (struct["height"], struct["width"], struct["nChannels"], struct["mode"]) == (
        40,
        60,
        3,
        16,  # OpenCV's CV_8UC3, as in Spark's image schema
    )
    np.testing.assert_array_equal(struct_to_image(struct), photo)
    tensor = ToTensor("CHW", scale=1 / 255)(photo)
    struct = image_to_struct(tensor, "a.png", layout="CHW")
    assert struct["mode"] == 21 and struct["layout"] == "CHW"  # CV_32FC3
    np.testing.assert_array_equal(struct_to_image(struct), tensor)


def test_files_are_dealt_into_partitions_of_about_equal_bytes():
    sizes = {"a/1.jpg": 90, "a/2.jpg": 80, "b/3.jpg": 10, "b/4.jpg": 10, "c/5.jpg": 60}
    parts = balanced_partitions(list(sizes), list(sizes.values()), 2)
    assert sorted(p for part in parts for p in part) == sorted(sizes)  # each file once
    assert all(list(part) == sorted(part) for part in parts)  # each in path order
    assert sorted(sum(sizes[p] for p in part) for part in parts) == [110, 140]
    assert balanced_partitions(["x.jpg"], [5], 3) == (("x.jpg",), (), ())


def test_local_paths_of_the_uris_spark_lists():
    assert local_path("file:///photos/sp%20ace/%C3%A9t%C3%A9/a%2520b.jpg") == (
        "/photos/sp ace/été/a%20b.jpg"
    )
    assert local_path("/photos/a.jpg") == "/photos/a.jpg"


# ---- Spark ---------------------------------------------------------------------------------------
def test_corrupt_files_keep_an_error_naming_the_file(spark, folder):
    images = ImageSet.read(spark, str(folder), labels=True)
    assert images.classes == ["cats", "nested", "objects"]  # the folder holding each file
    rows = {_rel(r.path, folder): r for r in images.df.collect()}
    assert sorted(rows) == sorted([*GOOD, *BROKEN])  # recursive, and the .txt left out
    for name, row in rows.items():
        assert row.label == name.split("/")[-2]
        assert row.label_id == images.classes.index(row.label)
        if name in BROKEN:
            assert row.image is None
            assert row.error.startswith(row.path) and name in row.error
            assert "not a readable image" in row.error
        else:
            assert row.error is None
            np.testing.assert_array_equal(struct_to_image(row.image), _local(row.path))
            assert row.image.origin == row.path and row.image.layout == "HWC"


def test_spark_and_python_reads_give_the_same_rows(spark, folder):
    by_spark = ImageSet.read(spark, str(folder), labels=True, fetch="spark").df.collect()
    by_python = ImageSet.read(spark, str(folder), labels=True, fetch="python").df.collect()
    assert sorted(by_spark) == sorted(by_python)
    with pytest.raises(ValueError, match="fetch must be 'auto', 'spark' or 'python'"):
        ImageSet.read(spark, str(folder), fetch="jvm")


def test_local_folders_with_spaces_and_accents_are_read_in_balanced_partitions(spark, tmp_path):
    """Spark lists local files as URIs (file:///sp%20ace/...); the rows name them as the
    binaryFile source does, the labels are the folder names, and each of the 4 tasks gets
    about a quarter of the bytes."""
    photo = skimage.data.astronaut()[:, :, ::-1]
    for n, folder_name in enumerate(["sp ace", "été", "plain"] * 4):
        side = 64 + 48 * n  # files of very different sizes
        path = tmp_path / folder_name / f"p {n}%20.jpg"
        path.parent.mkdir(exist_ok=True)
        cv2.imwrite(str(path), cv2.resize(photo, (side, side)))
    images = ImageSet.read(spark, str(tmp_path), labels=True, num_partitions=4)
    assert images.classes == sorted(["sp ace", "été", "plain"])
    rows = images.df.collect()
    by_spark = ImageSet.read(spark, str(tmp_path), labels=True, fetch="spark").df.collect()
    assert sorted(rows) == sorted(by_spark) and len(rows) == 12
    for row in rows:
        assert row.error is None and row.path.startswith("file:/") and "%2520" not in row.path
        assert row.label == row.path.split("/")[-2]
        assert row.label_id == images.classes.index(row.label)
    sizes = images.df.rdd.mapPartitions(
        lambda rows: [sum(os.path.getsize(r.path.removeprefix("file:")) for r in rows)]
    ).collect()
    assert len(sizes) == 4 and max(sizes) < 1.5 * min(sizes)


def test_paths_read_by_the_workers_and_a_missing_file(spark, folder, tmp_path):
    # a table of paths (no bytes): the Python workers read each file themselves
    rows = [(str(folder / "cats/chelsea.jpg"),), (str(tmp_path / "gone.jpg"),)]
    df = spark.createDataFrame(rows, "location string")
    got = ImageSet.from_binary(df, path_col="location", content_col=None).df.collect()
    ok = next(r for r in got if r.error is None)
    np.testing.assert_array_equal(struct_to_image(ok.image), _local(ok.path))
    error = next(r.error for r in got if r.error)
    assert error.startswith(str(tmp_path / "gone.jpg")) and "FileNotFoundError" in error


def test_drop_mode_leaves_the_broken_files_out_and_counts_them(spark, folder):
    images = ImageSet.read(spark, str(folder), on_error="drop")
    df = images.df
    assert "error" not in df.columns
    assert df.count() == len(GOOD)
    assert images.dropped_count() == 2
    failures = sorted(_rel(r.path, folder) for r in images.errors().collect())
    assert failures == sorted(BROKEN)


def test_raise_mode_fails_the_job_naming_the_file(spark, folder):
    with pytest.raises(Exception, match=r"cannot read image file:.*(truncated\.jpg|garbage\.png)"):
        ImageSet.read(spark, str(folder / "cats"), on_error="raise").df.collect()


def test_transforms_through_spark_equal_the_local_chain(spark, folder):
    chain = Compose(
        [
            Resize(160),
            RandomCrop(128),
            Expand(max_ratio=1.5, p=0.7),
            HorizontalFlip(),
            ColorJitter(0.3, 0.3, 0.3),
            Resize((64, 64)),
            ToTensor("CHW", scale=1 / 255),
        ]
    )
    images = ImageSet.read(spark, str(folder), on_error="drop").transform(chain, seed=11)
    rows = images.df.collect()
    assert len(rows) == len(GOOD)
    for row in rows:
        got = struct_to_image(row.image)
        assert got.shape == (3, 64, 64) and got.dtype == np.float32
        assert row.image.layout == "CHW"
        expected = chain(_local(row.path), row_rng(row.path.removeprefix("file:"), 11))
        np.testing.assert_array_equal(got, expected)


def test_chains_stack_and_arrays_feed_fixed_length_columns(spark, folder):
    images = (
        ImageSet.read(spark, str(folder / "objects"), labels=True, on_error="keep")
        .transform(Resize(40))
        .transform(CenterCrop(32).then(HorizontalFlip()), seed=3)
    )
    df = images.to_arrays("pixels")
    assert df.schema["pixels"].dataType.simpleString() == "array<float>"
    rows = df.collect()
    assert len(rows) == 4  # 3 photos (one nested deeper) and the garbage file
    for row in rows:
        if row.error:
            assert row.pixels is None and "garbage.png" in row.error
            continue
        local = Resize(40)(_local(row.path))
        local = (CenterCrop(32).then(HorizontalFlip()))(local, row_rng(row.path, 3))
        np.testing.assert_array_equal(np.array(row.pixels, np.float32), local.ravel())
    assert images.classes == ["nested", "objects"]


def test_a_transform_that_fails_on_one_image_is_that_rows_error(spark, folder):
    images = ImageSet.read(spark, str(folder / "cats"), on_error="drop").transform(CenterCrop(310))
    errors = {r.path.rsplit("/", 1)[-1]: r.error for r in images.errors().collect()}
    # chelsea is 300 pixels high: too small; cat.png too; the truncated file fails to decode
    assert set(errors) == {"chelsea.jpg", "cat.png", "truncated.jpg"}
    assert "needs an image of at least 310x310, got 300x451" in errors["chelsea.jpg"]


def test_given_classes_and_unknown_folders(spark, folder):
    images = ImageSet.read(spark, str(folder), labels=True, classes=["objects"])
    ids = {r.label: r.label_id for r in images.df.select("label", "label_id").collect()}
    assert ids == {"objects": 0, "cats": None, "nested": None}


def test_bad_arguments_are_named(spark, folder, tmp_path):
    with pytest.raises(FileNotFoundError, match=r"no file matching '\*\.bmp'"):
        ImageSet.read(spark, str(folder), glob="*.bmp")
    with pytest.raises(FileNotFoundError, match="no file matching"):
        ImageSet.read(spark, str(folder), recursive=False)  # the files are in sub-folders
    with pytest.raises(ValueError, match="on_error must be one of"):
        ImageSet.read(spark, str(folder), on_error="ignore")
    with pytest.raises(ValueError, match=r"num_partitions must be a number of partitions.*-2"):
        ImageSet.read(spark, str(folder), num_partitions=-2)
    with pytest.raises(TypeError, match="transform takes a Transform"):
        ImageSet.read(spark, str(folder)).transform(lambda image: image)
    with pytest.raises(ValueError, match="already tensors"):
        ImageSet.read(spark, str(folder)).transform(ToTensor()).transform(Resize(3))


@pytest.mark.slow
def test_digit_images_train_a_model_from_their_image_structs(spark, tmp_path):
    """sklearn's real 8 x 8 digits as PNG files, one folder per class: KerasEstimator trains
    on ImageSet's image column, and the model scores the same images as structs, as arrays
    (``to_arrays``) and as read by Spark's own image source alike."""
    import tensorflow as tf
    from sklearn.datasets import load_digits

    from sparkzoo.trainer import KerasEstimator

    tracking = f"sqlite:///{tmp_path}/mlflow.db"
    digits = load_digits()
    for i, (image, label) in enumerate(zip(digits.images[:300], digits.target[:300], strict=True)):
        (tmp_path / str(label)).mkdir(exist_ok=True)
        cv2.imwrite(str(tmp_path / str(label) / f"{i}.png"), (image * 16).astype(np.uint8))
    images = ImageSet.read(spark, str(tmp_path), labels=True, color="gray")
    df = images.df.drop("error")
    assert images.classes == [str(d) for d in range(10)]

    def build():
        tf.keras.utils.set_random_seed(0)
        return tf.keras.Sequential(
            [
                tf.keras.Input((8, 8, 1)),
                tf.keras.layers.Rescaling(1 / 255),
                tf.keras.layers.Flatten(),
                tf.keras.layers.Dense(10, activation="softmax"),
            ]
        )

    fitted = KerasEstimator(
        model=build,
        optimizer=tf.keras.optimizers.Adam(0.01),
        loss="sparse_categorical_crossentropy",
        feature_cols=["image"],
        label_cols=["label_id"],
        batch_size=32,
        epochs=1,
        num_workers=2,
        tracking_uri=tracking,
        verbose=0,
    ).fit(df)
    assert fitted.summary["train_rows"] == 300

    def scores(frame, column, path):
        scored = fitted.setFeatureCols([column]).transform(frame).orderBy(path).toPandas()
        return np.stack(scored["prediction"])

    from_structs = scores(df, "image", "path")
    assert from_structs.shape == (300, 10)
    from_arrays = scores(images.to_arrays("pixels"), "pixels", "path")
    np.testing.assert_allclose(from_structs, from_arrays, rtol=1e-6)
    sparks_own = spark.read.format("image").load(str(tmp_path / "*" / "*.png"))
    np.testing.assert_allclose(scores(sparks_own, "image", "image.origin"), from_structs, rtol=1e-6)
    # MLflow's clients score the structs (as Rows, or as dicts through spark_udf) alike; with
    # one output column, that column is the answer
    import mlflow
    from pyspark.sql import functions as F

    mlflow.set_tracking_uri(tracking)
    try:
        rows = df.orderBy("path").select("image").limit(5).toPandas()
        scored = mlflow.pyfunc.load_model(fitted.model_uri).predict(rows)
        np.testing.assert_allclose(np.stack(scored), from_structs[:5], rtol=1e-5)
        predict = mlflow.pyfunc.spark_udf(
            spark, fitted.model_uri, result_type="array<float>", env_manager="local"
        )
        # spark_udf takes a lone struct argument as the input's columns: wrap the image in one
        wrapped = predict(F.struct("image")).alias("out")
        via_udf = df.orderBy("path").limit(5).select(wrapped).toPandas()
        np.testing.assert_allclose(np.stack(via_udf["out"]), from_structs[:5], rtol=1e-5)
    finally:
        mlflow.set_tracking_uri(None)


def test_a_file_sparks_image_source_could_not_decode_is_named(spark, folder):
    import tensorflow as tf

    from sparkzoo.trainer import KerasModel
    from sparkzoo.trainer.arrays import ColumnSpec
    from sparkzoo.trainer.rank_training import keras_model_bytes

    net = tf.keras.Sequential([tf.keras.Input((4, 4, 3)), tf.keras.layers.Flatten()])
    model = KerasModel(
        keras_model_bytes(net), [ColumnSpec("image", "image", 48, False)], [(4, 4, 3)],
        [(48,)], ["out"], 8,
    )  # fmt: skip
    garbage = spark.read.format("image").load(str(folder / "objects" / "*.png"))  # mode -1
    with pytest.raises(
        Exception, match=r"not decoded \(mode -1\), the first at row 0 \('.*garbage.png'\)"
    ):
        model.transform(garbage).collect()


def test_images_of_different_sizes_are_refused_before_training(spark, folder):
    from sparkzoo.trainer.columns import ColumnError, prepare_columns

    photos = ImageSet.read(spark, str(folder)).df.where("error IS NULL")
    with pytest.raises(ColumnError, match=r"column 'image' holds images of \d+ to \d+ values"):
        prepare_columns(photos, ["image"], [])


def test_nan_among_float_pixels_fails_before_training_or_is_dropped(spark):
    from sparkzoo.trainer.columns import ColumnError, prepare_columns

    def image(values, dtype, mode):  # 2 x 2, one channel
        return ("mem", 2, 2, 1, mode, np.asarray(values, dtype).tobytes())

    rows = [
        (image([0.5, -1.0, 2.0, 3.0], np.float32, 5), 0),
        (image([0.5, -1.0, 2.0, np.nan], np.float32, 5), 1),
        (image([np.inf, -np.inf, 0.0, -0.0], np.float32, 5), 2),  # infinities: not NaN
        (image([0.5, np.nan, 2.0, 3.0], np.float64, 6), 3),
        (image([np.nan, 1.0, 2.0, 3.0], np.float16, 7), 4),
        (image([255, 255, 255, 255], np.uint8, 0), 5),  # the bytes of a float32 NaN
    ]
    df = spark.createDataFrame(
        rows,
        "image struct<origin:string,height:int,width:int,nChannels:int,mode:int,data:binary>,"
        " label int",
    )
    with pytest.raises(ColumnError, match=r"null or NaN values in 'image': 3 rows \(of 6\)"):
        prepare_columns(df, ["image"], ["label"])
    prepared = prepare_columns(df, ["image"], ["label"], nan_policy="drop")
    assert prepared.dropped_rows == 3
    assert sorted(r.label for r in prepared.df.select("label").collect()) == [0, 2, 5]


@pytest.mark.hdfs
def test_images_from_hdfs_with_labels_and_errors(spark, hdfs, folder):
    import uuid

    from sparkzoo import fs

    base = f"{hdfs}/tests/images-{uuid.uuid4().hex[:8]}"
    fs.put(str(folder), base)
    images = ImageSet.read(spark, base, labels=True).transform(RandomCrop(64), seed=2)
    rows = images.df.collect()
    # the Python workers read hdfs:// through sparkzoo.fs just as Spark's Hadoop client does
    by_python = ImageSet.read(spark, base, labels=True, fetch="python")
    assert sorted(by_python.transform(RandomCrop(64), seed=2).df.collect()) == sorted(rows)
    assert len(rows) == len(GOOD) + len(BROKEN)
    for row in rows:
        assert row.path.startswith("hdfs://")
        name = row.path.split(base.split("://", 1)[1], 1)[1].lstrip("/")
        assert row.label == name.split("/")[-2]
        if name in BROKEN:
            assert row.error.startswith(row.path) and "not a readable image" in row.error
            continue
        local = decode_image((folder / name).read_bytes())
        # random draws are keyed by the full hdfs:// URI of the row
        np.testing.assert_array_equal(
            struct_to_image(row.image), RandomCrop(64)(local, row_rng(row.path, 2))
        )
