"""Grapheme-to-phoneme seq2seq (GRU + attention) on CMUdict words; phoneme error rate.

Data: the CMU Pronouncing Dictionary (first-listed pronunciation, stress digits removed: 39
ARPAbet phonemes), words of letters a-z only, at most ``MAX_LETTERS`` letters and
``MAX_PHONEMES`` phonemes. A seed-0 permutation of those words fixes the split: its first
``TEST_WORDS`` are held out, the next ``TRAIN_WORDS`` train the model (a subsample, to keep
training short). Metric: phoneme error rate (edit distance over reference length) with greedy
decoding, and beam search; word error rate. Baseline in the same run: the pronunciation of
the training word with the most similar spelling (character 1-3-gram TF-IDF, cosine).

Example::

    python -m sparkzoo.models.recipes seq2seq.cmudict
"""

from __future__ import annotations

import functools
import re
import string
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
import pandas as pd
from sklearn.feature_extraction.text import TfidfVectorizer

from sparkzoo import keras2 as keras
from sparkzoo import models
from sparkzoo.datasets.loaders import cmudict_pairs
from sparkzoo.models.recipes.common import Trained
from sparkzoo.models.seq2seq import (
    beam_decode,
    greedy_decode,
    phoneme_error_rate,
    sequence_error_rate,
    teacher_forcing,
)
from sparkzoo.trainer import KerasEstimator

TAG = "seq2seq.cmudict"
FAMILY = "seq2seq"
MAX_LETTERS = 16
MAX_PHONEMES = 16
TEST_WORDS = 2_000
TRAIN_WORDS = 40_000
SPLIT_SEED = 0
LETTERS = string.ascii_lowercase  # letter i has source id i + 1; 0 pads
PAD_ID, START_ID, END_ID, FIRST_PHONEME_ID = 0, 1, 2, 3
CONFIG_BASE = {
    "source_vocab": len(LETTERS) + 1,
    "embedding_dim": 64,
    "units": 128,
    "cell": "gru",
    "attention": "luong",
    "source_len": MAX_LETTERS,
    "target_len": MAX_PHONEMES + 1,  # the phonemes and the end id
}
# PER still falls by ~1 point an epoch at 5-6 epochs; more words beat more epochs.
EPOCHS = 6
BEAM_WIDTH = 4
CHECK_LIMIT = 400


class Split(NamedTuple):
    train: pd.DataFrame  # word, phonemes (list of ARPAbet symbols, no stress)
    test: pd.DataFrame
    phonemes: list[str]  # the target vocabulary: phoneme i has id i + FIRST_PHONEME_ID


@functools.lru_cache(maxsize=1)
def held_out_split() -> Split:
    """The fixed split (seed 0): 2,000 held-out words and 40,000 training words."""
    pairs = cmudict_pairs(pronunciations="first", stress=False)
    letters_only = pairs["word"].str.fullmatch(f"[{LETTERS}]{{1,{MAX_LETTERS}}}")
    short = pairs["phonemes"].map(len) <= MAX_PHONEMES
    words = pairs[letters_only & short].sort_values("word").reset_index(drop=True)
    order = np.random.default_rng(SPLIT_SEED).permutation(len(words))
    test = words.iloc[order[:TEST_WORDS]].reset_index(drop=True)
    train = words.iloc[order[TEST_WORDS : TEST_WORDS + TRAIN_WORDS]].reset_index(drop=True)
    # The phonemes of every kept word (not only the sample's), sorted, so the ids do not depend
    # on the sample's order.
    phonemes = sorted({p for row in words["phonemes"] for p in row})
    return Split(train[["word", "phonemes"]], test[["word", "phonemes"]], phonemes)


def preprocessing_spec(phonemes: Sequence[str]) -> dict:
    """The card's preprocessing: letter ids in, phoneme ids out."""
    return {
        "lowercase": True,
        "letters": LETTERS,  # letter i has source id i + 1
        "source_pad_id": PAD_ID,
        "source_len": MAX_LETTERS,
        "phonemes": list(phonemes),  # phoneme i has target id i + first_phoneme_id
        "target_pad_id": PAD_ID,
        "start_id": START_ID,
        "end_id": END_ID,
        "first_phoneme_id": FIRST_PHONEME_ID,
        "max_phonemes": MAX_PHONEMES,
        "stress": False,
    }


def encode_words(words: Sequence[str], spec: dict) -> np.ndarray:
    """Words to the ``(n, source_len)`` letter ids the model reads.

    Example::

        encode_words(["cat"], spec)[0, :4]   # [3, 1, 20, 0]
    """
    letters, length = spec["letters"], spec["source_len"]
    pattern = re.compile(f"[{re.escape(letters)}]{{1,{length}}}")
    out = np.zeros((len(words), length), dtype="int64")
    for row, word in enumerate(words):
        word = word.lower() if spec["lowercase"] else word
        if not pattern.fullmatch(word):
            raise ValueError(
                f"word {row} ({word!r}) must be 1 to {length} of the letters {letters!r}"
            )
        out[row, : len(word)] = [letters.index(c) + 1 for c in word]
    return out


def encode_phonemes(sequences: Sequence[Sequence[str]], spec: dict) -> list[list[int]]:
    index = {p: i + spec["first_phoneme_id"] for i, p in enumerate(spec["phonemes"])}
    return [[index[p] for p in sequence] for sequence in sequences]


def decode_phonemes(ids: Sequence[Sequence[int]], spec: dict) -> list[list[str]]:
    """Model output ids to ARPAbet symbols (ids outside the phoneme range are dropped)."""
    first, phonemes = spec["first_phoneme_id"], spec["phonemes"]
    return [[phonemes[i - first] for i in row if first <= i < first + len(phonemes)] for row in ids]


def pronounce(model, words: Sequence[str], spec: dict, beam_width: int = 1) -> list[list[str]]:
    """Phonemes for ``words``: greedy decoding, or beam search with ``beam_width > 1``.

    Example::

        pronounce(model, ["sparkzoo"], models.card("seq2seq.cmudict").preprocessing)
    """
    source = encode_words(words, spec)
    max_len = spec["max_phonemes"] + 1
    if beam_width > 1:
        ids = beam_decode(model, source, beam_width, spec["start_id"], spec["end_id"], max_len)
    else:
        ids = greedy_decode(model, source, spec["start_id"], spec["end_id"], max_len)
    return decode_phonemes(ids, spec)


def check_metric(model, limit: int = CHECK_LIMIT) -> float:
    """PER with greedy decoding on the first ``limit`` held-out words."""
    split = held_out_split()
    spec = preprocessing_spec(split.phonemes)
    test = split.test.iloc[:limit]
    return phoneme_error_rate(pronounce(model, test["word"].tolist(), spec), test["phonemes"])


def nearest_spelling(train: pd.DataFrame, words: Sequence[str]) -> list[list[str]]:
    """Baseline: the pronunciation of the training word spelt most alike (char 1-3-grams)."""
    vectorizer = TfidfVectorizer(analyzer="char_wb", ngram_range=(1, 3))
    known = vectorizer.fit_transform(train["word"])
    query = vectorizer.transform(list(words))
    # Rows are L2-normalised, so the dot product is the cosine similarity.
    nearest = np.asarray((query @ known.T).argmax(axis=1)).ravel()
    return [list(train["phonemes"].iloc[i]) for i in nearest]


def training_frame(train: pd.DataFrame, spec: dict) -> pd.DataFrame:
    source = encode_words(train["word"].tolist(), spec)
    decoder_inputs, targets = teacher_forcing(
        encode_phonemes(train["phonemes"], spec),
        spec["start_id"],
        spec["end_id"],
        spec["max_phonemes"] + 1,
    )
    return pd.DataFrame(
        {
            "source_ids": list(source),
            "decoder_input_ids": list(decoder_inputs),
            "target_ids": list(targets),
        }
    )


def train(spark, args):
    split = held_out_split()
    spec = preprocessing_spec(split.phonemes)
    config = {**CONFIG_BASE, "target_vocab": len(split.phonemes) + FIRST_PHONEME_ID}
    epochs = args.epochs or EPOCHS
    estimator = KerasEstimator(
        model=lambda: models.get(FAMILY, **config),
        optimizer=keras.optimizers.Adam(2.5e-3),  # x workers (linear scaling)
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
        feature_cols=["source_ids", "decoder_input_ids"],
        label_cols=["target_ids"],
        batch_size=128,
        epochs=epochs,
        num_workers=args.workers,
        gradient_clipnorm=5.0,
        seed=args.seed,
        run_name=f"recipe-{TAG}",
    )
    fitted = estimator.fit(spark.createDataFrame(training_frame(split.train, spec)))
    model = fitted.keras_model()

    words, references = split.test["word"].tolist(), list(split.test["phonemes"])
    greedy = pronounce(model, words, spec)
    beam = pronounce(model, words, spec, beam_width=BEAM_WIDTH)
    neighbour = nearest_spelling(split.train, words)
    check = phoneme_error_rate(greedy[:CHECK_LIMIT], references[:CHECK_LIMIT])
    return Trained(
        model=model,
        config=config,
        task="sequence-to-sequence",
        summary="Grapheme-to-phoneme encoder-decoder (GRU, Luong attention): English word "
        "spelling to ARPAbet phonemes without stress, trained on CMUdict",
        input={
            "source_ids": {"shape": [MAX_LETTERS], "dtype": "int64"},
            "decoder_input_ids": {"shape": [MAX_PHONEMES + 1], "dtype": "int64"},
            "raw": f"one lower-case word of 1-{MAX_LETTERS} letters a-z; decode with "
            "sparkzoo.models.recipes.seq2seq_cmudict.pronounce (greedy or beam search)",
        },
        preprocessing=spec,
        labels=None,
        data={
            "name": "CMU Pronouncing Dictionary (the cmudict package's data file, read "
            "directly), first-listed pronunciations, stress removed",
            "licence": "BSD-2-Clause-style CMU terms (use for any research or commercial "
            "purpose completely unrestricted)",
            "split": f"words of letters a-z only, <= {MAX_LETTERS} letters and <= "
            f"{MAX_PHONEMES} phonemes, sorted; numpy default_rng({SPLIT_SEED}).permutation: "
            f"first {TEST_WORDS:,} held out, next {TRAIN_WORDS:,} train (the rest unused)",
        },
        metrics={
            "per_greedy": round(phoneme_error_rate(greedy, references), 4),
            f"per_beam{BEAM_WIDTH}": round(phoneme_error_rate(beam, references), 4),
            "wer_greedy": round(sequence_error_rate(greedy, references), 4),
            f"wer_beam{BEAM_WIDTH}": round(sequence_error_rate(beam, references), 4),
            "held_out": len(words),
            "workers": args.workers,
            "epochs": epochs,
            "fit_s": round(fitted.summary["fit_s"], 1),
        },
        check={"metric": "per_greedy", "limit": CHECK_LIMIT, "value": check, "tolerance": 0.002},
        baselines={
            "nearest_spelling_per": round(phoneme_error_rate(neighbour, references), 4),
            "nearest_spelling_wer": round(sequence_error_rate(neighbour, references), 4),
        },
        notes=f"Trained with KerasEstimator on {args.workers} workers (Horovod ranks as Spark "
        "barrier tasks) with teacher forcing, Adam 2.5e-3 x workers, batch 128 per worker, "
        "gradients clipped to norm 5. PER = total phoneme edit distance / total reference "
        "phonemes.",
    )
