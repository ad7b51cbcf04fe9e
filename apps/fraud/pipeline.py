"""Fraud detection on card transactions: the steps of ``python -m sparkzoo.apps.fraud``.

The UnionPay use case of the Analytics Zoo talks, rebuilt: transactions -> per-account and
per-merchant aggregates over *past* windows on Spark (no look-ahead) -> a time-ordered split
(train earliest, validation, test latest) -> ``tabular_mlp`` trained with Horovod through
:class:`sparkzoo.trainer.KerasEstimator` with fraud rows weighted up and a focal loss ->
AUPRC and precision at recall 0.8 on the test part, beside scikit-learn's
``HistGradientBoostingClassifier`` and ``LogisticRegression`` on the same features -> a
threshold chosen on the validation part -> batch scoring of new transactions.

The data steps (the two input layouts, past-window features, the time split, the feature
vector) live in :mod:`~sparkzoo.apps.fraud.features`; this module re-exports them, so one
namespace holds every step.

Example::

    spark = init_spark()
    raw = load_transactions(spark)                       # synthetic, 63k rows
    data = prepare(raw)                                  # layout, label, event time
    feats = add_features(data)                           # past-window aggregates
    train, val, test = time_split(feats)
    prep = fit_preprocessor(train, feature_columns(data.layout))
    fitted = train_mlp(assemble(train, prep), prep, workers=2, epochs=5)
"""

from __future__ import annotations

import functools
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from matplotlib.figure import Figure
from pyspark.sql import functions as F
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import average_precision_score, precision_recall_curve, roc_auc_score

from sparkzoo import fs
from sparkzoo import keras2 as keras
from sparkzoo.apps.fraud.features import (
    CREDITCARD_INPUT,
    EVENT_TIME,
    FEATURES,
    FLAG,
    KEY,
    LABEL,
    NO_HISTORY_HOURS,
    SCORE,
    TARGET_RECALL,
    TRANSACTION_COLUMNS,
    WEIGHT,
    Preprocessor,
    Transactions,
    add_features,
    assemble,
    detect_layout,
    feature_columns,
    fit_preprocessor,
    load_transactions,
    prepare,
    sample_accounts,
    time_split,
)
from sparkzoo.models.registry import get as zoo_model
from sparkzoo.models.tabular import FocalLoss
from sparkzoo.trainer import KerasEstimator, KerasModel
from sparkzoo.tune import SearchResult, search

if TYPE_CHECKING:
    from pyspark.sql import DataFrame


def fraud_weight(positives: int, negatives: int, share: float) -> int:
    """The loss weight of each positive row that makes the positives count for about ``share``
    of the training loss (at least 1: never less than an ordinary row).

    Example::

        fraud_weight(10, 990, 0.2)    # 25: 10 rows x 25 weigh as 250 against 990 negatives
    """
    if not 0.0 < share < 1.0:
        raise ValueError(f"positive share must be in (0, 1), got {share}")
    if positives <= 0:
        raise ValueError(
            "the training part holds no fraud: nothing to learn from (use more data, a larger "
            "--sample-rate or a higher --fraud-rate)"
        )
    wanted = share / (1.0 - share) * negatives
    return max(1, round(wanted / positives))


def with_class_weights(train: DataFrame, share: float = 0.2) -> DataFrame:
    """``train`` with a ``weight`` column: :func:`fraud_weight` for fraud rows, 1 for the
    others (the trainer's ``sample_weight_col``: every rank weighs its rows' losses, no row is
    repeated). Returns (DataFrame, fraud weight)."""

    counts = {r[0]: r[1] for r in train.groupBy(LABEL).count().collect()}
    weight = fraud_weight(counts.get(1, 0), counts.get(0, 0), share)
    weighted = train.withColumn(
        WEIGHT, F.when(F.col(LABEL) == 1, F.lit(float(weight))).otherwise(F.lit(1.0))
    )
    return weighted, weight


def build_mlp(input_dim: int, hidden: Sequence[int] = (64, 32), dropout: float = 0.2):
    """``tabular_mlp`` from the model zoo for ``input_dim`` features (focal loss setting)."""
    return zoo_model(
        "tabular_mlp", input_dim=input_dim, hidden=tuple(hidden), dropout=dropout, loss="focal"
    )


def mlp_estimator(
    input_dim: int,
    workers: int = 2,
    epochs: int = 5,
    batch_size: int = 256,
    learning_rate: float = 1e-3,
    hidden: Sequence[int] = (64, 32),
    dropout: float = 0.2,
    focal_gamma: float = 2.0,
    seed: int = 0,
    tracking_uri: str | None = None,
    weighted: bool = True,
) -> KerasEstimator:
    """The :class:`~sparkzoo.trainer.KerasEstimator` of the fraud model: ``tabular_mlp`` with a
    focal loss, the fraud rows weighted up (``weight`` column) when ``weighted``, PR-AUC as its
    metric (``auprc``; ``val_auprc`` with a validation set)."""
    return KerasEstimator(
        model=functools.partial(build_mlp, input_dim, hidden=tuple(hidden), dropout=dropout),
        optimizer=keras.optimizers.Adam(learning_rate),
        loss=FocalLoss(gamma=focal_gamma),
        metrics=[keras.metrics.AUC(curve="PR", name="auprc")],
        feature_cols=[FEATURES],
        label_cols=[LABEL],
        sample_weight_col=WEIGHT if weighted else None,
        batch_size=batch_size,
        epochs=epochs,
        num_workers=workers,
        seed=seed,
        run_name="fraud-tabular-mlp",
        log_to_mlflow=tracking_uri is not None,
        tracking_uri=tracking_uri,
        custom_objects={"FocalLoss": FocalLoss},
    )


def train_mlp(train, input_dim: int, **settings: Any):
    """Train ``tabular_mlp`` on ``train`` (``features``, ``label`` and, if present, the
    per-row loss ``weight`` of :func:`with_class_weights`) with Horovod through
    :func:`mlp_estimator` (``settings`` are its keywords); returns the fitted ``KerasModel``
    (its ``transform`` adds ``prediction``, the fraud probability).

    Example::

        fitted = train_mlp(assemble(weighted, prep), len(prep.input_names), workers=2)
    """
    weighted = WEIGHT in train.columns
    estimator = mlp_estimator(input_dim, weighted=weighted, **settings)
    return estimator.fit(train.select(FEATURES, LABEL, *([WEIGHT] if weighted else [])))


# What --tune searches: the settings a person would try first on a new data set.
TUNE_SPACE = {
    "learning_rate": ("loguniform", 3e-4, 1e-2),
    "batch_size": [64, 128, 256],
    "model_params": {"dropout": ("uniform", 0.0, 0.4)},
}


def tune_mlp(train, val, input_dim: int, trials: int, **settings: Any) -> SearchResult:
    """Search :data:`TUNE_SPACE` for the settings of :func:`mlp_estimator` with the best
    PR-AUC on ``val`` (one worker per trial, trials side by side on the executors, poor ones
    stopped early by the median rule); ``train`` and ``val`` as :func:`train_mlp` takes them."""
    estimator = mlp_estimator(input_dim, **settings).setParams(
        validation=val.select(FEATURES, LABEL).withColumn(WEIGHT, F.lit(1.0)),
        run_name="fraud-tune",
    )
    return search(
        estimator,
        TUNE_SPACE,
        df=train.select(FEATURES, LABEL, WEIGHT),
        metric="val_auprc",
        mode="max",
        num_trials=trials,
        early_stopping="median",
        seed=settings.get("seed", 0),
        log_to_mlflow=settings.get("tracking_uri") is not None,
        tracking_uri=settings.get("tracking_uri"),
    )


def precision_at_recall(y_true: np.ndarray, scores: np.ndarray, recall: float = TARGET_RECALL):
    """The best precision among thresholds whose recall is at least ``recall``; None without
    positives.

    Example::

        precision_at_recall(np.array([0, 1, 1, 0]), np.array([0.1, 0.9, 0.8, 0.7]))   # 1.0
    """

    y_true = np.asarray(y_true)
    if not y_true.sum():
        return None
    precision, achieved, _ = precision_recall_curve(y_true, scores)
    return float(precision[achieved >= recall].max())


def threshold_for_recall(
    y_true: np.ndarray, scores: np.ndarray, recall: float = TARGET_RECALL
) -> float:
    """The highest score threshold (``score >= threshold`` flags) whose recall on these rows
    is at least ``recall`` (the validation part's choice); 0.5 without positives.

    Example::

        threshold_for_recall(np.array([0, 1, 1, 0]), np.array([0.1, 0.9, 0.8, 0.7]), 0.8)  # 0.8
    """
    y_true, scores = np.asarray(y_true), np.asarray(scores, dtype=np.float64)
    positives = np.sort(scores[y_true == 1])[::-1]
    if not len(positives):
        return 0.5
    needed = math.ceil(recall * len(positives) - 1e-9)
    return float(positives[max(needed, 1) - 1])


def score_metrics(y_true: np.ndarray, scores: np.ndarray, threshold: float | None = None) -> dict:
    """AUPRC (average precision), ROC AUC, precision at recall 0.8 and, given a
    ``threshold``, precision/recall/F1 and flagged count there. Undefined figures (no
    positives) are None.

    Example::

        score_metrics(y, p, threshold=0.3)["auprc"]
    """

    y_true = np.asarray(y_true).astype(int)
    scores = np.asarray(scores, dtype=np.float64)
    has_both = 0 < y_true.sum() < len(y_true)
    out: dict[str, Any] = {
        "rows": len(y_true),
        "positives": int(y_true.sum()),
        "auprc": float(average_precision_score(y_true, scores)) if has_both else None,
        "roc_auc": float(roc_auc_score(y_true, scores)) if has_both else None,
        f"precision_at_recall_{TARGET_RECALL}": precision_at_recall(y_true, scores),
    }
    if threshold is not None:
        flagged = scores >= threshold
        tp = int((flagged & (y_true == 1)).sum())
        precision = tp / flagged.sum() if flagged.sum() else None
        recall = tp / y_true.sum() if y_true.sum() else None
        f1 = (
            2 * precision * recall / (precision + recall)
            if precision and recall
            else (0.0 if precision is not None and recall is not None else None)
        )
        out |= {
            "threshold": float(threshold),
            "flagged": int(flagged.sum()),
            "precision": precision,
            "recall": recall,
            "f1": f1,
        }
    return out


def fit_baselines(x_train: np.ndarray, y_train: np.ndarray, seed: int = 0) -> dict[str, Any]:
    """scikit-learn baselines on the same standardised features, each with balanced class
    weights: ``HistGradientBoostingClassifier`` and ``LogisticRegression``.

    Example::

        baselines = fit_baselines(x_train, y_train)
        baselines["hist_gradient_boosting"].predict_proba(x_test)[:, 1]
    """

    if len(np.unique(y_train)) < 2:
        raise ValueError("the training part holds only one class: baselines cannot be fitted")
    hgb = HistGradientBoostingClassifier(class_weight="balanced", random_state=seed)
    logistic = LogisticRegression(class_weight="balanced", max_iter=1000)
    return {
        "hist_gradient_boosting": hgb.fit(x_train, y_train),
        "logistic_regression": logistic.fit(x_train, y_train),
    }


def to_numpy(df: DataFrame, columns: Sequence[str] = (FEATURES, LABEL)) -> list[np.ndarray]:
    """Collect ``columns`` of a (small enough) DataFrame as numpy arrays; an array column
    becomes a 2-d float32 table."""
    frame = df.select(*columns).toPandas()
    out = []
    for c in columns:
        values = frame[c].to_numpy()
        if len(values) and isinstance(values[0], (list, np.ndarray)):
            out.append(np.stack(values).astype(np.float32))
        elif not len(values) and c == FEATURES:
            out.append(np.zeros((0, 0), np.float32))
        else:
            out.append(values)
    return out


@dataclass
class Evaluation:
    """The three models scored on the same validation and test parts."""

    models: dict[str, dict]  # name -> {"test": score_metrics, "validation": score_metrics}
    curves: dict[str, tuple]  # name -> (test labels, test scores), for pr_curve_figure
    scored_test: Any  # the test part scored by the MLP (Spark, cached)
    threshold: float  # the MLP's, chosen on the validation part
    baseline_seconds: float

    def table(self) -> str:
        return metrics_table(self.models)


def format_figure(value: float | None) -> str:
    """A figure with 3 decimals, ``n/a`` for an undefined one."""
    return "n/a" if value is None else f"{value:.3f}"


def metrics_table(models: dict[str, dict]) -> str:
    """The test figures of :attr:`Evaluation.models` as a small text table.

    Example::

        print(metrics_table(read_metrics(out)["metrics"]["models"]))
    """
    key = f"precision_at_recall_{TARGET_RECALL}"
    lines = [f"{'model':<24} {'AUPRC':>7} {'P@R0.8':>7} {'ROC AUC':>8}"]
    for name, m in models.items():
        t = m["test"]
        figures = [format_figure(t[k]) for k in ("auprc", key, "roc_auc")]
        lines.append(f"{name:<24} {figures[0]:>7} {figures[1]:>7} {figures[2]:>8}")
    return "\n".join(lines)


def evaluate(
    fitted, prep: Preprocessor, train: DataFrame, val: DataFrame, test: DataFrame, seed: int = 0
) -> Evaluation:
    """Choose the MLP's threshold on ``val`` (recall 0.8; stored in ``prep``), score ``test``
    with it, fit the scikit-learn baselines on ``train``'s same standardised features, and
    measure every model on ``test`` (each baseline at its own validation threshold).

    Example::

        result = evaluate(fitted, prep, train, val, test)
        print(result.table())
    """

    x_val, y_val, s_val = to_numpy(score(fitted, prep, val, True), (FEATURES, LABEL, SCORE))
    prep.threshold = threshold_for_recall(y_val, s_val, TARGET_RECALL)
    scored_test = score(fitted, prep, test, keep_features=True).cache()
    x_test, y_test, s_test = to_numpy(scored_test, (FEATURES, LABEL, SCORE))
    x_train, y_train = to_numpy(assemble(train, prep))
    start = time.perf_counter()
    baselines = fit_baselines(x_train, y_train, seed)
    seconds = time.perf_counter() - start
    scores = {"tabular_mlp": (s_val, s_test)}
    for name, model in baselines.items():
        scores[name] = (model.predict_proba(x_val)[:, 1], model.predict_proba(x_test)[:, 1])
    models, curves = {}, {}
    for name, (s_v, s_t) in scores.items():
        models[name] = {
            "test": score_metrics(y_test, s_t, threshold_for_recall(y_val, s_v)),
            "validation": score_metrics(y_val, s_v),
        }
        curves[name] = (y_test, s_t)
    return Evaluation(models, curves, scored_test.drop(FEATURES), prep.threshold, seconds)


def pr_curve_figure(curves: dict[str, tuple[np.ndarray, np.ndarray]], threshold_point=None):
    """A matplotlib figure of precision-recall curves: ``{name: (y_true, scores)}``; the
    chosen operating point (recall, precision) is marked when given."""
    figure = Figure(figsize=(6, 4.5))
    axes = figure.subplots()
    prevalence = None
    for name, (y_true, scores) in curves.items():
        if not np.asarray(y_true).sum():
            continue
        precision, recall, _ = precision_recall_curve(y_true, scores)
        ap = average_precision_score(y_true, scores)
        axes.step(recall, precision, where="post", label=f"{name} (AUPRC {ap:.3f})")
        prevalence = float(np.mean(y_true))
    if prevalence is not None:
        axes.axhline(prevalence, color="grey", linestyle=":", label=f"chance ({prevalence:.3f})")
    axes.axvline(TARGET_RECALL, color="grey", linestyle="--", linewidth=0.8)
    if threshold_point is not None and None not in threshold_point:
        axes.plot(*threshold_point, "ko", label="MLP at the validation threshold")
    axes.set(xlabel="recall", ylabel="precision", xlim=(0, 1.01), ylim=(0, 1.02))
    axes.set_title("Fraud detection, test part (latest transactions)")
    axes.legend(loc="lower left", fontsize=8)
    figure.tight_layout()
    return figure


# ---- scoring ---------------------------------------------------------------------------------

MODEL_DIR, PREPROCESS_FILE = "keras", "preprocess.json"


def save_model(fitted, prep: Preprocessor, folder: str) -> None:
    """Write the trained model (``keras/``) and ``preprocess.json`` (features, training
    statistics, categories, threshold) into ``folder``."""

    fs.makedirs(folder)
    fitted.save(fs.join(folder, MODEL_DIR))
    fs.write_bytes(fs.join(folder, PREPROCESS_FILE), prep.to_json().encode())


def load_model(folder: str):
    """(KerasModel, Preprocessor) saved by :func:`save_model`; a clear error when ``folder``
    is not such a model."""

    path = fs.join(folder, PREPROCESS_FILE)
    if not fs.exists(path):
        raise FileNotFoundError(
            f"--model {folder!r} holds no fraud model ({PREPROCESS_FILE} missing): pass the "
            "model/ folder a training run wrote"
        )
    prep = Preprocessor.from_json(fs.read_bytes(path))
    return KerasModel.load(fs.join(folder, MODEL_DIR), {"FocalLoss": FocalLoss}), prep


def score(fitted, prep: Preprocessor, df: DataFrame, keep_features: bool = False) -> DataFrame:
    """``df`` (prepared, with feature columns) with ``score`` (fraud probability) and ``flag``
    (``score >= threshold``), scored by the model in the executors; the assembled
    ``features`` column stays only with ``keep_features``."""

    scored = fitted.transform(assemble(df, prep)).withColumnRenamed("prediction", SCORE)
    scored = scored.withColumn(FLAG, F.col(SCORE) >= F.lit(prep.threshold))
    return scored if keep_features else scored.drop(FEATURES)


def score_new(fitted, prep: Preprocessor, new: Transactions, history: Transactions | None = None):
    """Score the ``new`` transactions. Their past-window features see ``history`` (earlier
    transactions of the same accounts, e.g. the training data) when given, else only the
    batch itself; history rows are not scored.

    Example::

        scored = score_new(fitted, prep, prepare(batch, require_label=False))
    """

    if new.layout != prep.layout:
        raise ValueError(f"the model was trained on the {prep.layout} layout, not {new.layout}")
    columns = _scoring_columns(new)
    df = new.df.select(*columns).withColumn("__new", F.lit(True))
    if history is not None:
        if history.layout != new.layout:
            raise ValueError("--history and --input must have the same layout")
        past = history.df.select(*columns).withColumn("__new", F.lit(False))
        df = df.unionByName(past)
    feats = add_features(Transactions(df, new.layout, new.labelled)).where("__new").drop("__new")
    return score(fitted, prep, feats)


def _scoring_columns(data: Transactions) -> list[str]:
    base = list(TRANSACTION_COLUMNS if data.layout == "transactions" else CREDITCARD_INPUT)
    extra = [LABEL] if data.labelled else []
    return [KEY, EVENT_TIME, *base, *extra]


def output_columns(layout: str, labelled: bool) -> list[str]:
    """The columns of a scored Parquet output: the id, time, the input's descriptive columns,
    label (when known), score and flag."""
    base = (
        ["timestamp", "customer_id", "merchant_id", "merchant_category", "type", "amount"]
        if layout == "transactions"
        else ["Time", "Amount"]
    )
    return [KEY, EVENT_TIME, *base, *([LABEL] if labelled else []), SCORE, FLAG]


# The steps of the app in one namespace (the data steps come from .features).
__all__ = [
    "CREDITCARD_INPUT",
    "EVENT_TIME",
    "FEATURES",
    "FLAG",
    "KEY",
    "LABEL",
    "NO_HISTORY_HOURS",
    "SCORE",
    "TARGET_RECALL",
    "TRANSACTION_COLUMNS",
    "TUNE_SPACE",
    "WEIGHT",
    "Evaluation",
    "Preprocessor",
    "Transactions",
    "add_features",
    "assemble",
    "build_mlp",
    "detect_layout",
    "evaluate",
    "feature_columns",
    "fit_baselines",
    "fit_preprocessor",
    "format_figure",
    "fraud_weight",
    "load_model",
    "load_transactions",
    "metrics_table",
    "mlp_estimator",
    "output_columns",
    "pr_curve_figure",
    "precision_at_recall",
    "prepare",
    "sample_accounts",
    "save_model",
    "score",
    "score_metrics",
    "score_new",
    "threshold_for_recall",
    "time_split",
    "to_numpy",
    "train_mlp",
    "tune_mlp",
    "with_class_weights",
]
