"""apps/transfer_learning: the digits' framing, the source and its errors, and a class-folder
tree on HDFS. A whole run on the digits (10 labels per class: the fine-tuned network above 0.6
held-out accuracy, its model saved), the notebook and the app's own bad input are in
test_apps_contract.py, from the app's contract.json."""

from __future__ import annotations

import json

import numpy as np
import pytest

from sparkzoo.apps.transfer_learning import __main__ as cli
from sparkzoo.apps.transfer_learning import pipeline as tl


def test_the_cli_and_the_pipeline_name_the_same_methods():
    assert cli.METHODS == tl.METHODS


def test_digits_are_framed_like_mnist():
    digit = np.zeros((1, 64), np.float32)
    digit[0, :] = 16  # all ink
    framed = tl.frame_digits(digit, (28, 28, 1))
    assert framed.shape == (1, 28, 28, 1) and framed.max() == 255
    ink_rows = np.flatnonzero(framed[0, :, :, 0].max(axis=1))
    assert (ink_rows.min(), ink_rows.max()) == (4, 23)  # the centre 20 of 28, as MNIST
    rgb = tl.frame_digits(digit, (32, 32, 3))
    assert rgb.shape == (1, 32, 32, 3) and np.array_equal(rgb[..., 0], rgb[..., 2])


def test_labels_per_class_are_parsed_sorted_with_all_last():
    assert tl.parse_per_class(["50", "all", "5", "10"]) == [5, 10, 50, None]
    for bad in ("0", "-3", "few"):
        with pytest.raises(ValueError, match=f"--labels-per-class '{bad}'"):
            tl.parse_per_class([bad])


def test_the_source_comes_from_its_card_and_bad_sources_are_named():
    source = tl.load_source("lenet5.mnist")
    assert source.input_shape == (28, 28, 1)
    assert source.card.preprocessing == {"scale": 1 / 255}
    with pytest.raises(ValueError, match="not an image classifier"):
        tl.load_source("ssd_lite.scenes")
    with pytest.raises(ValueError, match="--weights"):
        tl.load_source("resnet18")
    with pytest.raises(ValueError, match="--source"):
        tl.load_source("no_such_model")
    with pytest.raises(ValueError, match=r"--freeze-to 'conv9'.*conv2"):
        tl.check_freeze_to(source, "conv9")
    assert tl.check_freeze_to(source, None) == "fc2"


@pytest.mark.slow
def test_a_class_folder_tree_on_hdfs_in_and_out(spark, hdfs):
    from sklearn.datasets import load_digits

    from sparkzoo import fs
    from sparkzoo.datasets.images import png_bytes

    digits = load_digits()
    tree = f"{hdfs}/transfer/digits"
    # 3 classes, 10 images each: 3 labelled per class leaves each of the 2 ranks fewer rows
    # than half a batch (a trainer case of its own)
    for i in np.concatenate([np.flatnonzero(digits.target == c)[:10] for c in range(3)]):
        image = tl.frame_digits(digits.data[i : i + 1], (28, 28, 1))[0].astype(np.uint8)
        fs.write_bytes(f"{tree}/class{digits.target[i]}/{i}.png", png_bytes(image))
    out = f"{hdfs}/transfer/out"
    args = ["--input", tree, "--output", out, "--labels-per-class", "3", "--epochs", "2"]
    assert cli.main([*args, "--methods", "logistic", "--no-baseline"]) == 0
    metrics = json.loads(fs.read_bytes(f"{out}/metrics.json"))["metrics"]
    assert metrics["classes"] == ["class0", "class1", "class2"]
    assert metrics["train_rows"] == [9]
    assert set(metrics["accuracy"]) == {"logistic"}
    assert fs.exists(f"{out}/learning_curve.png")
