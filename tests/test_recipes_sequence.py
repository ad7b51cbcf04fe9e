"""The data protocols and preprocessing of the ncf, text_cnn, seq2seq and lstm_forecaster
recipes: the held-out splits are fixed, and the local encoders the cards describe give the
ids and windows the models were trained on."""

from __future__ import annotations

import numpy as np
import pytest

from sparkzoo.models.recipes import (
    lstm_forecaster_taylor,
    ncf_ml100k,
    seq2seq_cmudict,
    text_cnn_rotten_tomatoes,
)


# ---- ncf.ml100k ----------------------------------------------------------------------------
@pytest.mark.slow  # draws 99 negatives for each of 943 users (~5 s)
def test_ncf_protocol_holds_out_each_users_latest_rating_among_100_fixed_candidates():
    split = ncf_ml100k.protocol()
    assert len(split.test) == 943 and len(split.train) == 99_057
    assert split.candidates.shape == (943, 100)
    np.testing.assert_array_equal(split.candidates[:, 0], split.test["item_id"])
    latest = split.train.groupby("user_id")["timestamp"].max()
    held_out = split.test.set_index("user_id")["timestamp"]
    assert (held_out >= latest.reindex(held_out.index)).all()
    seen = set(zip(split.train["user_id"], split.train["item_id"], strict=True))
    seen |= set(zip(split.test["user_id"], split.test["item_id"], strict=True))
    user0 = split.test["user_id"].iloc[0]
    assert not any((user0, item) in seen for item in split.candidates[0, 1:])
    assert len(set(split.candidates[0])) == 100


def test_ncf_ids_are_movielens_ids_minus_one_and_out_of_range_ids_are_named():
    np.testing.assert_array_equal(ncf_ml100k.to_model_ids([1, 943], "user_id"), [0, 942])
    with pytest.raises(ValueError, match=r"item_id must be within \[1, 1682\], got \[0, 1683\]"):
        ncf_ml100k.to_model_ids([5, 0, 1683], "item_id")


def test_ncf_training_pairs_draw_fresh_unrated_negatives_each_round():
    from sparkzoo.datasets.loaders import movielens_100k

    ratings = movielens_100k().ratings
    small = ratings[ratings["user_id"] <= 3].assign(item_id=lambda r: r["item_id"] - 1)
    pairs = ncf_ml100k.training_pairs(small, rounds=2, seed=0)
    assert len(pairs) == 2 * 5 * len(small) and pairs["label"].sum() == 2 * len(small)
    negatives = pairs[pairs["label"] == 0]
    rated = set(zip(small["user_id"], small["item_id"], strict=True))
    drawn = zip(negatives["user_id"], negatives["item_id"], strict=True)
    assert not any(pair in rated for pair in drawn)
    half = len(small) * 4
    first, second = negatives["item_id"].iloc[:half], negatives["item_id"].iloc[half:]
    assert not np.array_equal(first.to_numpy(), second.to_numpy())


# ---- text_cnn.rotten_tomatoes -------------------------------------------------------------
SPEC = text_cnn_rotten_tomatoes.preprocessing_spec(["film", "fine", "its", "a"])


def test_text_encoding_follows_the_card_spec():
    assert text_cnn_rotten_tomatoes.tokens("It's a FINE film!", SPEC) == [
        "its",
        "a",
        "fine",
        "film",
    ]
    ids = text_cnn_rotten_tomatoes.encode(["It's a FINE, dull film", None], SPEC)
    assert ids.shape == (2, text_cnn_rotten_tomatoes.SEQ_LEN) and ids.dtype == np.int64
    np.testing.assert_array_equal(ids[0, :6], [4, 5, 3, 1, 2, 0])  # "dull" is unknown: 1
    assert not ids[1].any()


def test_text_encoding_refuses_a_spec_with_other_reserved_ids():
    with pytest.raises(ValueError, match="pad 0, out-of-vocabulary 1, words from 2"):
        text_cnn_rotten_tomatoes.encode(["a film"], {**SPEC, "oov_id": 3})


def test_text_split_is_stratified_and_fixed():
    train, test = text_cnn_rotten_tomatoes.held_out_split()
    assert (len(train), len(test)) == (10_246, 2_562)
    assert abs(train["label"].mean() - test["label"].mean()) < 0.002


# ---- seq2seq.cmudict ----------------------------------------------------------------------
def test_g2p_split_and_vocabularies_are_fixed():
    split = seq2seq_cmudict.held_out_split()
    assert len(split.test) == 2_000 and len(split.train) == 40_000
    assert not set(split.train["word"]) & set(split.test["word"])
    assert len(split.phonemes) == 39 and "AH" in split.phonemes and "AH0" not in split.phonemes


def test_g2p_words_and_phonemes_round_trip_through_ids():
    spec = seq2seq_cmudict.preprocessing_spec(seq2seq_cmudict.held_out_split().phonemes)
    np.testing.assert_array_equal(seq2seq_cmudict.encode_words(["Cat"], spec)[0, :4], [3, 1, 20, 0])
    ids = seq2seq_cmudict.encode_phonemes([["K", "AE", "T"]], spec)
    assert seq2seq_cmudict.decode_phonemes([[*ids[0], 2, 0]], spec) == [["K", "AE", "T"]]
    with pytest.raises(ValueError, match=r"word 1 \('r2d2'\) must be 1 to 16 of the letters"):
        seq2seq_cmudict.encode_words(["do", "r2d2"], spec)


def test_nearest_spelling_baseline_returns_a_training_pronunciation():
    split = seq2seq_cmudict.held_out_split()
    guess = seq2seq_cmudict.nearest_spelling(split.train.iloc[:50], [split.train["word"][7]])
    assert guess == [list(split.train["phonemes"][7])]


# ---- lstm_forecaster.taylor ---------------------------------------------------------------
def test_forecaster_windows_hold_out_the_last_20_percent_with_a_week_ago_column():
    values = lstm_forecaster_taylor.series()
    spec = {"window": 48, "mean": [30000.0, 29000.0], "std": [4000.0, 3900.0]}
    x, y, positions = lstm_forecaster_taylor.test_windows(spec)
    assert lstm_forecaster_taylor.held_out_start() == 3225
    assert x.shape == (4032 - 3225 - 48, 48, 2) and positions[0] == 3225 + 48
    raw = x[0] * spec["std"] + spec["mean"]
    np.testing.assert_allclose(raw[:, 0], values[3225:3273], rtol=1e-6)
    # The last step's week-ago value is the target's own value one week (336 steps) earlier.
    np.testing.assert_allclose(raw[-1, 1], values[3273 - 336], rtol=1e-6)
    np.testing.assert_array_equal(y, values[positions])
    assert lstm_forecaster_taylor.errors([1.0, 3.0], [2.0, 2.0]) == {"mae": 1.0, "rmse": 1.0}


# ---- the trainer support the seq2seq recipe relies on --------------------------------------
def test_trainer_takes_one_target_id_per_step_of_a_sequence_output():
    from sparkzoo.trainer.columns import ColumnError, ColumnSpec, check_shapes, fit_to_shapes

    target_ids = ColumnSpec("target_ids", "array", 17, True)
    check_shapes([target_ids], [(17, 42)], "label")  # (steps, classes) output, ids per step
    (labels,) = fit_to_shapes([np.arange(34).reshape(2, 17)], [(17, 42)], "label", ["t"])
    assert labels.shape == (2, 17) and labels[1, 0] == 17
    with pytest.raises(ColumnError, match=r"'target_ids' has 16 values per row .* \(17, 42\)"):
        check_shapes([ColumnSpec("target_ids", "array", 16, True)], [(17, 42)], "label")
