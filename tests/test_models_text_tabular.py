"""Text classifiers (Kim CNN, recurrent) and the tabular MLP with its imbalance handling."""

from __future__ import annotations

import math

import numpy as np
import pytest
import tensorflow as tf

from sparkzoo import models
from sparkzoo.models.tabular import FocalLoss, balanced_class_weights, tabular_loss

# ---- text -------------------------------------------------------------------------------


def _ids(n: int = 4, seq_len: int = 10, vocab: int = 20) -> np.ndarray:
    ids = np.random.default_rng(0).integers(1, vocab, (n, seq_len))
    ids[:, -3:] = 0
    return ids


def test_text_cnn_has_one_convolution_per_width_and_returns_probabilities():
    model = models.get(
        "text_cnn", vocab_size=20, seq_len=10, num_classes=3, embedding_dim=4, filters=5
    )
    assert {layer.name for layer in model.layers} >= {"conv3", "conv4", "conv5"}
    assert model.get_layer("features").output_shape == (None, 3 * 5)
    probabilities = model(_ids()).numpy()
    assert probabilities.shape == (4, 3)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-5)
    with pytest.raises(ValueError, match=r"kernel width 5 is longer than the sequence \(4 ids\)"):
        models.get("text_cnn", seq_len=4)


@pytest.mark.parametrize("cell", ["lstm", "gru", "bilstm", "bigru"])
def test_text_rnn_builds_and_trains_with_every_cell(cell):
    tf.keras.utils.set_random_seed(0)
    model = models.get(
        "text_rnn", vocab_size=20, seq_len=10, num_classes=2, embedding_dim=4, units=3, cell=cell
    )
    recurrent = model.get_layer(cell)
    assert isinstance(recurrent, tf.keras.layers.Bidirectional) == cell.startswith("bi")
    assert model.get_layer("dropout").input_shape == (None, 6 if cell.startswith("bi") else 3)
    # One eager step: tracing a bidirectional RNN's gradient costs more than the step itself.
    model.compile("adam", "sparse_categorical_crossentropy", run_eagerly=True)
    loss = model.train_on_batch(_ids(), np.array([0, 1, 0, 1]))
    assert np.isfinite(loss)
    assert model(_ids()).shape == (4, 2)


def test_text_rnn_reads_only_the_tokens_before_the_padding():
    # With padding masked, [5, 6, 7, 0, 0, 0] must score as [5, 6, 7] does in a model with the
    # same weights and no room for padding (seq_len changes no weight shape).
    tf.keras.utils.set_random_seed(0)
    config = {"vocab_size": 20, "embedding_dim": 4, "units": 3, "cell": "lstm"}
    padded = models.get("text_rnn", seq_len=6, **config)
    short = models.get("text_rnn", seq_len=3, **config)
    short.set_weights(padded.get_weights())
    np.testing.assert_allclose(
        padded(np.array([[5, 6, 7, 0, 0, 0]])).numpy(),
        short(np.array([[5, 6, 7]])).numpy(),
        rtol=1e-5,
    )
    with pytest.raises(ValueError, match="cell must be one of"):
        models.get("text_rnn", cell="rnn")


# ---- tabular ----------------------------------------------------------------------------


def test_balanced_class_weights_for_a_90_10_split():
    weights = balanced_class_weights(np.array([0] * 90 + [1] * 10))
    assert weights == pytest.approx({0: 100 / 180, 1: 5.0})
    # Each class then weighs the same in total.
    assert 90 * weights[0] == pytest.approx(10 * weights[1])
    assert balanced_class_weights([2, 2, 7]) == pytest.approx({2: 0.75, 7: 1.5})
    with pytest.raises(ValueError, match="labels is empty"):
        balanced_class_weights([])


def test_focal_loss_at_gamma_zero_is_cross_entropy():
    y = np.array([[1.0], [0.0], [1.0], [0.0]], "float32")
    p = np.array([[0.9], [0.2], [0.3], [0.6]], "float32")
    bce = tf.keras.losses.BinaryCrossentropy()(y, p).numpy()
    assert FocalLoss(gamma=0.0)(y, p).numpy() == pytest.approx(bce, rel=1e-5)
    assert FocalLoss(gamma=0.0)(y[:, 0], p).numpy() == pytest.approx(bce, rel=1e-5)

    labels = np.array([0, 2, 1])
    probs = np.array([[0.7, 0.2, 0.1], [0.1, 0.1, 0.8], [0.3, 0.3, 0.4]], "float32")
    sce = tf.keras.losses.SparseCategoricalCrossentropy()(labels, probs).numpy()
    assert FocalLoss(gamma=0.0)(labels, probs).numpy() == pytest.approx(sce, rel=1e-5)


def test_focal_loss_known_values_with_gamma_and_alpha():
    y, p = np.array([[1.0], [0.0]], "float32"), np.array([[0.9], [0.9]], "float32")
    per_example = FocalLoss(gamma=2.0, reduction="none")(y, p).numpy()
    # Easy positive: 0.1**2 * -log(0.9); hard negative: 0.9**2 * -log(0.1).
    np.testing.assert_allclose(
        per_example, [0.01 * -math.log(0.9), 0.81 * -math.log(0.1)], rtol=1e-5
    )
    weighted = FocalLoss(gamma=2.0, alpha=0.25, reduction="none")(y, p).numpy()
    np.testing.assert_allclose(weighted, per_example * [0.25, 0.75], rtol=1e-5)
    logits = FocalLoss(gamma=2.0, from_logits=True, reduction="none")(
        y, np.log(p / (1 - p))
    ).numpy()
    np.testing.assert_allclose(logits, per_example, rtol=1e-4)
    per_class = FocalLoss(gamma=1.0, alpha=[1.0, 2.0], reduction="none")(
        np.array([1]), np.array([[0.5, 0.5]], "float32")
    ).numpy()
    np.testing.assert_allclose(per_class, [2.0 * 0.5 * -math.log(0.5)], rtol=1e-5)
    with pytest.raises(ValueError, match="gamma must be >= 0"):
        FocalLoss(gamma=-1.0)


def test_focal_loss_round_trips_through_config_and_a_saved_model(tmp_path):
    loss = FocalLoss(gamma=1.5, alpha=0.3)
    again = FocalLoss.from_config(loss.get_config())
    assert (again.gamma, again.alpha, again.name) == (1.5, 0.3, "focal_loss")
    model = models.get("tabular_mlp", input_dim=3, hidden=(4,))
    model.compile("adam", loss)
    model.save(tmp_path / "m.keras")
    loaded = tf.keras.models.load_model(tmp_path / "m.keras")  # compiled, no custom_objects
    assert isinstance(loaded.loss, FocalLoss) and loaded.loss.gamma == 1.5


def test_the_family_loss_follows_the_loss_setting():
    family = models.family("tabular_mlp")
    assert isinstance(family.loss_for({"loss": "focal", "focal_gamma": 3.0}), FocalLoss)
    assert family.loss_for({"loss": "focal", "focal_gamma": 3.0}).gamma == 3.0
    assert family.loss_for({"loss": "bce"}) == "binary_crossentropy"
    assert tabular_loss({"num_classes": 5}) == "sparse_categorical_crossentropy"
    with pytest.raises(ValueError, match="loss must be one of \\('bce', 'focal'\\), got 'hinge'"):
        models.get("tabular_mlp", loss="hinge")


def test_tabular_mlp_outputs_and_batch_norm_option():
    binary = models.get("tabular_mlp", input_dim=5, hidden=(4, 3))
    assert binary.output_shape == (None, 1)
    assert "batch_norm1" in {layer.name for layer in binary.layers}
    plain = models.get("tabular_mlp", input_dim=5, hidden=(4,), batch_norm=False, dropout=0.0)
    assert not any(isinstance(layer, tf.keras.layers.BatchNormalization) for layer in plain.layers)
    multi = models.get("tabular_mlp", input_dim=5, num_classes=4)
    probabilities = multi(np.zeros((2, 5), "float32")).numpy()
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-5)


def test_class_weights_raise_the_minority_class_probability():
    # On a 90/10 split with overlapping classes, weighting the classes equally moves the
    # predicted probability of the rare class up (the recall it buys).
    rng = np.random.default_rng(0)
    y = (np.arange(400) % 10 == 0).astype("float32")
    x = (rng.standard_normal((400, 4)) + y[:, None] * 0.8).astype("float32")

    def mean_probability(class_weight):
        tf.keras.utils.set_random_seed(0)
        model = models.get("tabular_mlp", input_dim=4, hidden=(8,), dropout=0.0)
        model.compile(tf.keras.optimizers.Adam(0.05), "binary_crossentropy")
        model.fit(x, y, batch_size=100, epochs=15, class_weight=class_weight, verbose=0)
        return float(model(x[y == 1], training=False).numpy().mean())

    assert mean_probability(balanced_class_weights(y)) > mean_probability(None) + 0.2
