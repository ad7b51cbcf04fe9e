"""The vae family: its two loss terms, the train step's metrics, saving with its beta, the
held-out measures and the PCA baseline. Building, one fitted step, save/load and predict at
the tiny size are in test_models_zoo.py; the shipped vae.mnist against its card in
test_models_pretrained.py."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from sparkzoo import models
from sparkzoo.models.vae import (
    VAEModel,
    decode,
    encode,
    evaluate,
    kl_divergence,
    pca_reconstruction_mse,
    reconstruction_loss,
)

TINY = models.family("vae").tiny


def test_the_kl_term_is_zero_at_the_prior_and_grows_away_from_it():
    assert kl_divergence(tf.zeros((1, 2)), tf.zeros((1, 2))).numpy() == pytest.approx([0.0])
    # KL(N(1, 1) || N(0, 1)) = 1/2 per dimension
    assert kl_divergence(tf.ones((1, 2)), tf.zeros((1, 2))).numpy() == pytest.approx([1.0])


def test_the_reconstruction_term_is_the_bernoulli_cross_entropy_summed_over_pixels():
    images = tf.constant([[[[1.0], [0.0]]]])  # one 1x2 image
    probabilities = tf.constant([[[[0.5], [0.5]]]])
    assert reconstruction_loss(images, probabilities).numpy() == pytest.approx([2 * np.log(2)])


def test_the_train_step_reports_the_three_losses_and_beta_survives_saving(tmp_path):
    tf.keras.utils.set_random_seed(0)
    net = models.get("vae", **TINY, beta=2.5)
    x = np.random.default_rng(0).random((8, *TINY["input_shape"]), dtype="float32")
    net.compile(tf.keras.optimizers.legacy.Adam(1e-2))
    history = net.fit(x, epochs=2, batch_size=4, verbose=0, validation_data=(x,)).history
    assert set(history) == {"loss", "reconstruction_loss", "kl_loss"} | {
        f"val_{k}" for k in ("loss", "reconstruction_loss", "kl_loss")
    }
    total = history["reconstruction_loss"][-1] + 2.5 * history["kl_loss"][-1]
    assert history["loss"][-1] == pytest.approx(total, rel=1e-4)
    net.save(tmp_path / "vae.keras")
    loaded = tf.keras.models.load_model(tmp_path / "vae.keras", compile=False)
    assert isinstance(loaded, VAEModel) and loaded.beta == 2.5
    np.testing.assert_allclose(encode(loaded, x), encode(net, x), atol=1e-6)
    assert decode(loaded, np.zeros((3, TINY["latent_dim"]))).shape == (3, *TINY["input_shape"])


def test_held_out_measures_repeat_with_the_seed_and_the_shipped_vae_beats_pca():
    from sparkzoo.models.recipes.vae_mnist import held_out_split, images

    x_train, _, x_test, _ = held_out_split()
    train, test = images(x_train), images(x_test[:200])
    net = models.get("vae.mnist")
    first, again = evaluate(net, test, seed=0), evaluate(net, test, seed=0)
    assert first == again
    assert first["elbo"] == pytest.approx(-first["reconstruction_loss"] - first["kl_loss"])
    assert evaluate(net, test, seed=1)["elbo"] != first["elbo"]
    pca = pca_reconstruction_mse(train, test, components=2)
    assert first["reconstruction_mse"] < pca < 0.1


def test_a_size_the_strides_cannot_halve_is_refused():
    with pytest.raises(ValueError, match=r"divisible by 2 \*\* len\(filters\) = 4.*\(30, 30, 1\)"):
        models.get("vae", input_shape=(30, 30, 1))


def test_the_term_metrics_are_not_model_weights():
    # Under MultiWorkerMirroredStrategy a metric variable is read by a collective: as model
    # weights they would be read by rank 0's checkpoint alone, and the tf engine failed.
    for name in ("vae", "deepbit"):
        net = models.get(name, **models.family(name).tiny)
        assert len(net.weights) == len(net.trainable_weights) + len(net.non_trainable_weights)
        assert not [w.name for w in net.weights if w.name.split(":")[0] in ("total", "count")]
        assert [m.name for m in net.metrics][: len(net.TERMS)] == list(net.TERMS)
