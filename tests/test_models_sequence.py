"""Time-series LSTMs (forecaster, autoencoder, anomaly helpers) and the seq2seq family."""

from __future__ import annotations

import math

import numpy as np
import pytest
import tensorflow as tf

from sparkzoo import models
from sparkzoo.models.seq2seq import (
    beam_decode,
    edit_distance,
    greedy_decode,
    pad_ids,
    phoneme_error_rate,
    sequence_error_rate,
    teacher_forcing,
)
from sparkzoo.models.timeseries import (
    prediction_errors,
    reconstruction_errors,
    sliding_windows,
    threshold_from_errors,
)

# ---- time series ------------------------------------------------------------------------


def test_sliding_windows_cut_windows_and_the_values_after_them():
    x, y = sliding_windows(np.arange(10.0), window=3, horizon=2)
    assert x.shape == (6, 3, 1) and y.shape == (6, 2, 1)
    np.testing.assert_array_equal(x[0, :, 0], [0, 1, 2])
    np.testing.assert_array_equal(y[0, :, 0], [3, 4])
    np.testing.assert_array_equal(y[-1, :, 0], [8, 9])
    windows, none = sliding_windows(np.zeros((20, 3)), window=5, stride=5)
    assert windows.shape == (4, 5, 3) and none is None
    with pytest.raises(ValueError, match="4 points is too short for window 3 \\+ horizon 2"):
        sliding_windows(np.arange(4.0), 3, 2)
    with pytest.raises(ValueError, match=r"got shape \(2, 3, 4\)"):
        sliding_windows(np.zeros((2, 3, 4)), 1)


def test_forecaster_output_shape_follows_horizon_and_output_features():
    model = models.get("lstm_forecaster", window=10, features=3, horizon=4, units=(6,))
    assert model.output_shape == (None, 4, 3)
    model = models.get("lstm_forecaster", window=10, features=3, horizon=2, output_features=1)
    assert model.output_shape == (None, 2, 1)
    with pytest.raises(ValueError, match="units must be one or more positive sizes"):
        models.get("lstm_forecaster", units=(0,))


def _sine(points: int, period: float = 20.0) -> np.ndarray:
    return np.sin(2 * np.pi * np.arange(points) / period).astype("float32")


def test_forecaster_learns_a_sine_wave():
    tf.keras.utils.set_random_seed(1)
    x, y = sliding_windows(_sine(200), window=12, horizon=1)
    model = models.get("lstm_forecaster", window=12, horizon=1, units=(8,), dropout=0.0)
    model.compile(tf.keras.optimizers.Adam(0.02), "mse")

    def mse() -> float:
        return float(np.mean((model(x, training=False).numpy() - y) ** 2))

    first = mse()
    rng = np.random.default_rng(0)
    for _ in range(50):
        batch = rng.integers(0, len(x), 16)
        model.train_on_batch(x[batch], y[batch])
    last = mse()
    assert last < 0.1 * first, (first, last)


@pytest.mark.slow
def test_autoencoder_reconstructs_a_spike_window_worse_than_normal_windows():
    tf.keras.utils.set_random_seed(2)
    windows, _ = sliding_windows(_sine(300), window=20, stride=2)
    model = models.get("lstm_autoencoder", window=20, units=(16, 8))
    assert model.output_shape == (None, 20, 1)
    model.compile(tf.keras.optimizers.Adam(0.02), "mse")
    model.fit(windows, windows, batch_size=32, epochs=12, verbose=0)
    normal = reconstruction_errors(model, windows)
    spiked = windows[:5].copy()
    spiked[:, 10, 0] += 4.0  # one wild point in each window
    errors = reconstruction_errors(model, spiked)
    assert errors.shape == (5,)
    threshold = threshold_from_errors(normal, "quantile", q=0.99)
    assert np.all(errors > threshold), (errors, threshold)
    assert np.all(errors > 3 * np.median(normal))


def test_error_helpers_refuse_mismatched_shapes_and_unknown_metrics():
    model = models.get("lstm_forecaster", window=4, horizon=2, units=(3,))
    x = np.zeros((5, 4, 1), "float32")
    with pytest.raises(ValueError, match=r"targets of shape \(5, 3\) do not match .* \(5, 2, 1\)"):
        prediction_errors(model, x, np.zeros((5, 3)))
    targets = np.random.default_rng(0).standard_normal((5, 2))
    forecast = model(x).numpy()[:, :, 0]
    np.testing.assert_allclose(
        prediction_errors(model, x, targets, metric="mae"),
        np.abs(forecast - targets).mean(axis=1),
        rtol=1e-5,
    )
    with pytest.raises(ValueError, match="metric must be 'mse' or 'mae', got 'rmse'"):
        prediction_errors(model, x, np.zeros((5, 2)), metric="rmse")


def test_threshold_from_errors_known_values_and_bad_input():
    errors = np.arange(101.0)
    assert threshold_from_errors(errors, "quantile", q=0.99) == pytest.approx(99.0)
    assert threshold_from_errors([1.0, 2.0, 3.0], "mean_std", k=1.0) == pytest.approx(
        2.0 + math.sqrt(2 / 3)
    )
    with pytest.raises(ValueError, match="method must be 'quantile' or 'mean_std'"):
        threshold_from_errors(errors, "iqr")
    with pytest.raises(ValueError, match="errors is empty"):
        threshold_from_errors([])
    with pytest.raises(ValueError, match="1 NaN or inf"):
        threshold_from_errors([1.0, np.nan])
    with pytest.raises(ValueError, match=r"q must be within \[0, 1\], got 99"):
        threshold_from_errors(errors, q=99)


# ---- seq2seq ----------------------------------------------------------------------------


def test_teacher_forcing_shifts_targets_and_pads():
    dec_in, target = teacher_forcing([[5, 6], [7]], start_id=1, end_id=2, length=4)
    np.testing.assert_array_equal(dec_in, [[1, 5, 6, 0], [1, 7, 0, 0]])
    np.testing.assert_array_equal(target, [[5, 6, 2, 0], [7, 2, 0, 0]])
    with pytest.raises(ValueError, match=r"sequence 0 has 4 ids; .* needs length >= 5, got 4"):
        teacher_forcing([[3, 4, 5, 6]], 1, 2, 4)
    with pytest.raises(ValueError, match="contains id 0"):
        teacher_forcing([[3, 0]], 1, 2, 4)
    np.testing.assert_array_equal(pad_ids([[3, 4], [5]], 3), [[3, 4, 0], [5, 0, 0]])


def test_seq2seq_refuses_unknown_cell_and_attention():
    with pytest.raises(ValueError, match="cell must be one of \\['gru', 'lstm'\\], got 'rnn'"):
        models.get("seq2seq", cell="rnn")
    with pytest.raises(ValueError, match="attention must be one of"):
        models.get("seq2seq", attention="dot")


@pytest.mark.parametrize(
    ("cell", "attention"), [("lstm", "luong"), ("gru", "bahdanau"), ("lstm", None)]
)
def test_step_decoder_agrees_with_the_teacher_forced_model(cell, attention):
    # Greedy decoding runs the model's layers one step at a time; feeding its output back as
    # the teacher-forced decoder input must reproduce the same argmax at every step, padded
    # sources included (the source mask must reach the attention the same way).
    tf.keras.utils.set_random_seed(3)
    model = models.get(
        "seq2seq",
        source_vocab=9,
        target_vocab=8,
        embedding_dim=6,
        units=10,
        cell=cell,
        attention=attention,
        source_len=6,
        target_len=5,
    )
    source = pad_ids([[3, 4, 5, 6, 7, 8], [4, 4, 3], [8]], 6)
    decoded = greedy_decode(model, source, start_id=1, end_id=2, max_len=5)
    for row, ids in enumerate(decoded):
        steps = [*ids, 2] if len(ids) < 5 else ids
        dec_in = pad_ids([[1, *steps[:-1]]], 5)
        probabilities = model([source[row : row + 1], dec_in]).numpy()[0]
        probabilities[:, 0] = 0.0  # the decoders never emit padding
        np.testing.assert_array_equal(probabilities.argmax(-1)[: len(steps)], steps)
    assert beam_decode(model, source, beam_width=1, start_id=1, end_id=2, max_len=5) == decoded


def test_decoding_a_model_that_is_not_seq2seq_names_the_missing_layers():
    with pytest.raises(ValueError, match=r"not a sparkzoo seq2seq model.*encoder"):
        greedy_decode(models.get("lenet5", input_shape=(16, 16, 1)), [[3]], 1, 2)


def _reverse_task(rng: np.random.Generator, n: int):
    sources = [rng.integers(3, 9, rng.integers(2, 5)).tolist() for _ in range(n)]
    return sources, [s[::-1] for s in sources]


@pytest.mark.slow
def test_seq2seq_learns_to_reverse_and_decodes_after_save_and_load(tmp_path):
    tf.keras.utils.set_random_seed(4)
    rng = np.random.default_rng(4)
    sources, targets = _reverse_task(rng, 2000)
    model = models.get(
        "seq2seq",
        source_vocab=9,
        target_vocab=9,
        embedding_dim=16,
        units=48,
        attention="luong",
        source_len=5,
        target_len=5,
    )
    dec_in, target = teacher_forcing(targets, start_id=1, end_id=2, length=5)
    model.compile(tf.keras.optimizers.Adam(0.01), "sparse_categorical_crossentropy")
    model.fit([pad_ids(sources, 5), dec_in], target, batch_size=64, epochs=12, verbose=0)
    model.save(tmp_path / "reverse.keras")
    loaded = tf.keras.models.load_model(tmp_path / "reverse.keras", compile=False)

    test_sources, test_targets = _reverse_task(np.random.default_rng(99), 200)
    greedy = greedy_decode(loaded, test_sources, start_id=1, end_id=2)
    beam = beam_decode(loaded, test_sources, beam_width=3, start_id=1, end_id=2)
    assert sequence_error_rate(greedy, test_targets) <= 0.02
    assert sequence_error_rate(beam, test_targets) <= 0.02
    assert phoneme_error_rate(beam, test_targets) <= 0.01
    assert greedy[:20] == greedy_decode(model, test_sources[:20], start_id=1, end_id=2)


def test_beam_search_returns_its_best_scores_and_checks_width():
    tf.keras.utils.set_random_seed(5)
    model = models.get("seq2seq", **models.family("seq2seq").tiny)
    source = pad_ids([[3, 4], [5, 6, 4]], 6)
    sequences, scores = beam_decode(
        model, source, beam_width=3, start_id=1, end_id=2, return_scores=True
    )
    assert len(sequences) == 2 and scores.shape == (2,) and np.all(scores <= 0)
    with pytest.raises(ValueError, match="beam_width must be >= 1, got 0"):
        beam_decode(model, source, beam_width=0)
    with pytest.raises(ValueError, match=r"takes sources of 6 ids, got shape \(1, 3\)"):
        greedy_decode(model, np.array([[3, 4, 5]]), 1, 2)


def test_edit_distance_and_error_rates_known_values():
    assert edit_distance("kitten", "sitting") == 3
    assert edit_distance([], ["AH"]) == 1
    assert edit_distance(["K", "AE1", "T"], ["K", "AE1", "T"]) == 0
    assert edit_distance("flaw", "lawn") == 2
    assert phoneme_error_rate([["K", "AE1", "T"]], [["K", "AE1", "T", "S"]]) == 0.25
    assert phoneme_error_rate([[1, 2], [9]], [[1, 2], [3, 4]]) == pytest.approx(2 / 4)
    assert sequence_error_rate([[1, 2], [3]], [[1, 2], [4]]) == 0.5
    with pytest.raises(ValueError, match="2 predictions but 1 references"):
        phoneme_error_rate([[1], [2]], [[1]])
