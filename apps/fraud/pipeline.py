"""Fraud detection on card transactions: the steps of ``python -m sparkzoo.apps.fraud``.

The UnionPay use case of the Analytics Zoo talks, rebuilt: transactions -> per-account and
per-merchant aggregates over *past* windows on Spark (no look-ahead) -> a time-ordered split
(train earliest, validation, test latest) -> ``tabular_mlp`` trained with Horovod through
:class:`sparkzoo.trainer.KerasEstimator` with fraud rows weighted up and a focal loss ->
AUPRC and precision at recall 0.8 on the test part, beside scikit-learn's
``HistGradientBoostingClassifier`` and ``LogisticRegression`` on the same features -> a
threshold chosen on the validation part -> batch scoring of new transactions.

Two input layouts:

- ``transactions`` (the default data: the SYNTHETIC PaySim-like generator
  :func:`sparkzoo.datasets.synthetic.transactions`; no real transaction set ships offline):
  ``timestamp, customer_id, merchant_id, merchant_category, type, amount[, is_fraud]``;
- ``creditcard`` (the Kaggle credit-card CSV a user brings, read by
  :func:`sparkzoo.datasets.readers.read_creditcard`): ``Time, V1..V28, Amount[, Class]``.
  It has no account or merchant ids, so its past windows run over the whole stream.

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

import json
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

LABEL = "label"  # 0/1 after prepare()
EVENT_TIME = "event_time"  # seconds (long): what every past window is ordered by
KEY = "transaction_key"  # the id every output row carries
FEATURES = "features"  # the standardised feature vector (array<float>)
WEIGHT = "weight"  # per-row loss weight of the training part (with_class_weights)
SCORE = "score"
FLAG = "flag"

TRANSACTION_COLUMNS = (
    "timestamp", "customer_id", "merchant_id", "merchant_category", "type", "amount",
)  # fmt: skip
CREDITCARD_INPUT = ("Time", *(f"V{i}" for i in range(1, 29)), "Amount")

HOUR, DAY, WEEK = 3600, 86400, 7 * 86400
NO_HISTORY_HOURS = 24.0 * 30  # "time since last" of an account's first transaction
TARGET_RECALL = 0.8
CATEGORICAL = ("type", "merchant_category")

# Window features of the transactions layout (all over strictly earlier transactions).
TRANSACTION_FEATURES = (
    "log_amount", "hour_sin", "hour_cos", "weekday_sin", "weekday_cos",
    "acct_count_1h", "acct_count_24h", "acct_count_7d", "acct_count_all", "acct_first",
    "acct_sum_24h", "acct_mean_all", "amount_vs_acct_mean", "amount_vs_acct_max_7d",
    "acct_hours_since_last", "acct_small_1h", "acct_new_merchant",
    "merch_count_1h", "merch_count_24h", "merch_mean_7d", "amount_vs_merch_mean",
)  # fmt: skip
CREDITCARD_FEATURES = (
    *(f"V{i}" for i in range(1, 29)),
    "log_amount", "hour_sin", "hour_cos",
    "stream_count_1m", "stream_count_1h", "stream_mean_1h", "amount_vs_stream_mean",
)  # fmt: skip


@dataclass
class Transactions:
    """A prepared input: the Spark DataFrame, its layout and whether it carries labels."""

    df: Any
    layout: str  # "transactions" or "creditcard"
    labelled: bool


# ---- input -----------------------------------------------------------------------------------


def load_transactions(
    spark,
    path: str | None = None,
    customers: int = 1000,
    days: int = 30,
    fraud_rate: float = 0.01,
    seed: int = 0,
):
    """The raw transactions as a Spark DataFrame.

    No ``path``: the SYNTHETIC PaySim-like generator (``customers`` x ``days``). A ``.csv``
    with the Kaggle header (``Time``, ``V1``..) goes through ``read_creditcard`` (local file)
    or Spark's CSV reader (``hdfs://``); another ``.csv`` is read as a transactions table with
    a header; anything else is read as Parquet.

    Example::

        raw = load_transactions(spark, "creditcard.csv")
    """
    from sparkzoo import fs

    if path is None:
        from sparkzoo.datasets.synthetic import transactions

        return transactions(
            n_customers=customers, days=days, fraud_rate=fraud_rate, seed=seed, spark=spark
        )
    if not fs.exists(path):
        raise FileNotFoundError(f"--input {path!r} does not exist")
    if path.lower().endswith(".csv"):
        df = spark.read.csv(path, header=True, inferSchema=True)
        if "Time" in df.columns and "V1" in df.columns and not fs.is_hdfs(path):
            from sparkzoo.datasets.readers import read_creditcard

            return read_creditcard(path, spark=spark) if "Class" in df.columns else df
        return df
    return spark.read.parquet(path)


def detect_layout(columns: Sequence[str], source: str = "input") -> str:
    """``"creditcard"`` or ``"transactions"`` from the column names; ``ValueError`` naming the
    missing columns when neither fits.

    Example::

        detect_layout(["Time", *[f"V{i}" for i in range(1, 29)], "Amount"])  # "creditcard"
    """
    present = set(columns)
    if "Time" in present or "V1" in present:
        missing = [c for c in CREDITCARD_INPUT if c not in present]
        layout = "creditcard"
    else:
        missing = [c for c in TRANSACTION_COLUMNS if c not in present]
        layout = "transactions"
    if missing:
        raise ValueError(
            f"{source}: missing column(s) {', '.join(missing)} of the {layout} layout "
            f"(transactions: {', '.join(TRANSACTION_COLUMNS)}[, is_fraud]; "
            "credit card: Time, V1..V28, Amount[, Class])"
        )
    return layout


def prepare(raw, source: str = "input", require_label: bool = True) -> Transactions:
    """Check ``raw`` and give it the columns every later step uses: ``transaction_key``
    (long), ``event_time`` (seconds, long), ``label`` (0/1, when present).

    Missing columns, nulls or NaN in the columns used, negative amounts, labels other than
    0/1, and an empty table raise ``ValueError`` naming the column.

    Example::

        data = prepare(transactions(spark=spark))
        data.layout            # "transactions"
    """
    from pyspark.sql import functions as F

    layout = detect_layout(raw.columns, source)
    label_col = "is_fraud" if layout == "transactions" else "Class"
    labelled = label_col in raw.columns
    if require_label and not labelled:
        raise ValueError(f"{source}: no label column {label_col!r} to train and evaluate with")
    if layout == "transactions":
        df = raw.withColumn(EVENT_TIME, F.col("timestamp").cast("timestamp").cast("long"))
        df = df.withColumn("amount", F.col("amount").cast("double"))
        df = df.withColumn("customer_id", F.col("customer_id").cast("string"))
        df = df.withColumn("merchant_id", F.col("merchant_id").cast("string"))
        key = (
            F.col("transaction_id").cast("long")
            if "transaction_id" in raw.columns
            else F.monotonically_increasing_id()
        )
        checked = [*TRANSACTION_COLUMNS, EVENT_TIME]
        amount = "amount"
    else:
        df = raw.withColumn(EVENT_TIME, F.floor(F.col("Time").cast("double")).cast("long"))
        for c in CREDITCARD_INPUT:
            df = df.withColumn(c, F.col(c).cast("double"))
        key = F.monotonically_increasing_id()
        checked = [*CREDITCARD_INPUT]
        amount = "Amount"
    df = df.withColumn(KEY, key)
    if labelled:
        df = df.withColumn(LABEL, F.col(label_col).cast("int"))
        checked.append(LABEL)
    _check_values(df, checked, amount, labelled, source)
    return Transactions(df, layout, labelled)


def _check_values(df, columns: list[str], amount: str, labelled: bool, source: str) -> None:
    from pyspark.sql import functions as F
    from pyspark.sql.types import NumericType

    numeric = {f.name for f in df.schema.fields if isinstance(f.dataType, NumericType)}
    aggregates = [F.count(F.lit(1)).alias("__rows")]
    for c in columns:
        bad = F.col(c).isNull()
        if c in numeric:
            bad = bad | F.isnan(F.col(c))
        aggregates.append(F.sum(bad.cast("int")).alias(c))
    aggregates.append(F.sum((F.col(amount) < 0).cast("int")).alias("__negative"))
    if labelled:
        aggregates.append(F.sum((~F.col(LABEL).isin(0, 1)).cast("int")).alias("__labels"))
    row = df.agg(*aggregates).first().asDict()
    if not row["__rows"]:
        raise ValueError(f"{source}: no transactions (empty input, or empty after sampling)")
    for c in columns:
        if row[c]:
            raise ValueError(f"{source}: column {c!r} holds {row[c]} null/NaN/unparsable value(s)")
    if row["__negative"]:
        raise ValueError(
            f"{source}: column {amount!r} holds {row['__negative']} negative amount(s)"
        )
    if labelled and row["__labels"]:
        raise ValueError(f"{source}: the label column holds {row['__labels']} value(s) not 0/1")


def sample_accounts(raw, rate: float, seed: int = 0):
    """A ``rate`` sample of whole accounts (every transaction of the sampled customers), so
    the past windows of a sampled row still see its account's history; the credit-card layout
    (no accounts) is sampled by row.

    Example::

        small = sample_accounts(raw, 0.1)
    """
    from sparkzoo.apps.common import sample

    if rate >= 1.0:
        return raw
    if "customer_id" not in raw.columns:
        return sample(raw, rate, seed)
    accounts = sample(raw.select("customer_id").distinct(), rate, seed)
    return raw.join(accounts, "customer_id", "left_semi")


# ---- features --------------------------------------------------------------------------------


def _past(partition: Sequence[str], seconds: int | None):
    """The rows of the same ``partition`` strictly before the current row's event time,
    within ``seconds`` (None: all of them). Ending the range at -1 second keeps the current
    row and every row of the same second or later out, so nothing later leaks in."""
    from pyspark.sql import Window

    window = Window.partitionBy(*partition) if partition else Window
    start = Window.unboundedPreceding if seconds is None else -int(seconds)
    return window.orderBy(EVENT_TIME).rangeBetween(start, -1)


def _log1p(column):
    from pyspark.sql import functions as F

    return F.log1p(F.coalesce(column, F.lit(0.0)))


def _ratio(amount, mean):
    """log(amount / mean), 0 without history."""
    from pyspark.sql import functions as F

    return F.coalesce(F.log((amount + 1.0) / (mean + 1.0)), F.lit(0.0))


def add_features(data: Transactions):
    """``data.df`` with the feature columns of its layout (:func:`feature_columns`), each
    computed from strictly earlier transactions only (Spark window functions with
    ``rangeBetween(-window, -1)`` on the event time).

    Transactions layout, per account (``acct_*``): counts in the past hour, day, week and
    all time; amount summed over the past day; mean of all earlier amounts and this amount
    against it; against the week's largest; hours since the last transaction; payments under
    5 in the past hour (card testing); a first visit to this merchant. Per merchant
    (``merch_*``): counts in the past hour and day, mean amount over the past week and this
    amount against it. Time: hour of day and weekday as sine/cosine; log amount.
    Credit-card layout: V1..V28, log amount, hour, and the whole stream's counts in the past
    minute and hour and mean amount over the past hour.

    Example::

        feats = add_features(prepare(raw))
    """
    from pyspark.sql import functions as F

    # Two selects, not a chain of withColumn: every withColumn re-analyses the whole plan,
    # and twenty of them over windows cost Catalyst minutes. Window expressions with the same
    # partition and order share one Window operator.
    df, count = data.df, F.count(F.lit(1))
    if data.layout == "creditcard":
        hour = (F.col(EVENT_TIME) % DAY) / HOUR
        # No account ids: the windows span the whole stream (one partition; fine for the
        # 284,807 rows of the Kaggle file).
        stream_hour = _past([], HOUR)
        stage = df.select(
            "*",
            F.log1p("Amount").alias("log_amount"),
            F.sin(2 * math.pi * hour / 24).alias("hour_sin"),
            F.cos(2 * math.pi * hour / 24).alias("hour_cos"),
            _log1p(count.over(_past([], 60))).alias("stream_count_1m"),
            _log1p(count.over(stream_hour)).alias("stream_count_1h"),
            F.avg("Amount").over(stream_hour).alias("__mean_1h"),
        )
        out = stage.select(
            *[c for c in stage.columns if c != "__mean_1h"],
            _log1p(F.col("__mean_1h")).alias("stream_mean_1h"),
            _ratio(F.col("Amount"), F.col("__mean_1h")).alias("amount_vs_stream_mean"),
        )
        return _per_core(out)
    account, merchant = ["customer_id"], ["merchant_id"]
    amount = F.col("amount")
    hour = F.hour("timestamp") + F.minute("timestamp") / 60.0
    weekday = (F.dayofweek("timestamp") + 5) % 7  # Monday 0
    stage = df.select(
        "*",
        F.log1p(amount).alias("log_amount"),
        F.sin(2 * math.pi * hour / 24).alias("hour_sin"),
        F.cos(2 * math.pi * hour / 24).alias("hour_cos"),
        F.sin(2 * math.pi * weekday / 7).alias("weekday_sin"),
        F.cos(2 * math.pi * weekday / 7).alias("weekday_cos"),
        _log1p(count.over(_past(account, HOUR))).alias("acct_count_1h"),
        _log1p(count.over(_past(account, DAY))).alias("acct_count_24h"),
        _log1p(count.over(_past(account, WEEK))).alias("acct_count_7d"),
        count.over(_past(account, None)).alias("__count_all"),
        _log1p(F.sum(amount).over(_past(account, DAY))).alias("acct_sum_24h"),
        F.avg(amount).over(_past(account, None)).alias("__mean_all"),
        F.max(amount).over(_past(account, WEEK)).alias("__max_7d"),
        F.max(EVENT_TIME).over(_past(account, None)).alias("__last"),
        _log1p(F.sum((amount < 5.0).cast("double")).over(_past(account, HOUR))).alias(
            "acct_small_1h"
        ),
        count.over(_past([*account, *merchant], None)).alias("__visits"),
        _log1p(count.over(_past(merchant, HOUR))).alias("merch_count_1h"),
        _log1p(count.over(_past(merchant, DAY))).alias("merch_count_24h"),
        F.avg(amount).over(_past(merchant, WEEK)).alias("__merch_mean"),
    )
    out = stage.select(
        *[c for c in stage.columns if not c.startswith("__")],
        _log1p(F.col("__count_all")).alias("acct_count_all"),
        (F.col("__count_all") == 0).cast("double").alias("acct_first"),
        _log1p(F.col("__mean_all")).alias("acct_mean_all"),
        _ratio(amount, F.col("__mean_all")).alias("amount_vs_acct_mean"),
        _ratio(amount, F.col("__max_7d")).alias("amount_vs_acct_max_7d"),
        F.log1p(
            F.coalesce((F.col(EVENT_TIME) - F.col("__last")) / HOUR, F.lit(NO_HISTORY_HOURS))
        ).alias("acct_hours_since_last"),
        (F.col("__visits") == 0).cast("double").alias("acct_new_merchant"),
        _log1p(F.col("__merch_mean")).alias("merch_mean_7d"),
        _ratio(amount, F.col("__merch_mean")).alias("amount_vs_merch_mean"),
    )
    return _per_core(out)


def _per_core(df):
    """``df`` in at most one partition per core: the windows leave
    ``spark.sql.shuffle.partitions`` (200) partitions, and every later Python task (scoring,
    collecting) has a fixed start-up cost that tiny partitions multiply."""
    return df.coalesce(max(1, df.sparkSession.sparkContext.defaultParallelism))


def feature_columns(layout: str) -> list[str]:
    """The numeric feature columns :func:`add_features` adds for ``layout``."""
    if layout not in ("transactions", "creditcard"):
        raise ValueError(f"layout must be 'transactions' or 'creditcard', not {layout!r}")
    return list(TRANSACTION_FEATURES if layout == "transactions" else CREDITCARD_FEATURES)


# ---- split -----------------------------------------------------------------------------------


def time_split(df, fractions: Sequence[float] = (0.6, 0.2, 0.2)):
    """(train, validation, test) DataFrames by event time: train the earliest ``fractions[0]``
    of the transactions, test the latest ``fractions[2]`` (exact quantiles of the event time;
    rows at or after a cut go to the later part, so a second never straddles two parts).

    Example::

        train, val, test = time_split(feats)
    """
    from pyspark.sql import functions as F

    fractions = np.asarray(fractions, dtype=float)
    if len(fractions) != 3 or (fractions <= 0).any() or not np.isclose(fractions.sum(), 1.0):
        raise ValueError(
            f"split fractions must be three positive numbers summing to 1: {fractions}"
        )
    cuts = df.approxQuantile(EVENT_TIME, [fractions[0], fractions[0] + fractions[1]], 0.0)
    if len(cuts) < 2:
        raise ValueError("no transactions to split")
    first, second = int(cuts[0]), int(cuts[1])
    if second <= first:
        second = first + 1
    time = F.col(EVENT_TIME)
    return (
        df.where(time < first),
        df.where((time >= first) & (time < second)),
        df.where(time >= second),
    )


# ---- preprocessing ---------------------------------------------------------------------------


@dataclass
class Preprocessor:
    """What turns feature columns into the model's input: the numeric columns with the
    training part's mean and standard deviation, the category vocabularies (one-hot), and the
    decision threshold. Saved as ``preprocess.json`` beside the model."""

    layout: str
    numeric: list[str]
    mean: list[float]
    std: list[float]
    vocabulary: dict[str, list[str]] = field(default_factory=dict)
    threshold: float = 0.5

    @property
    def input_names(self) -> list[str]:
        onehot = [f"{c}={v}" for c, values in self.vocabulary.items() for v in values]
        return [*self.numeric, *onehot]

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)

    @classmethod
    def from_json(cls, text: str | bytes) -> Preprocessor:
        return cls(**json.loads(text))


def fit_preprocessor(train, layout: str, max_categories: int = 30) -> Preprocessor:
    """Statistics from the TRAINING part only: mean/std of every numeric feature and the
    categories of ``type`` and ``merchant_category`` (transactions layout).

    Example::

        prep = fit_preprocessor(train, "transactions")
    """
    from pyspark.sql import functions as F

    numeric = feature_columns(layout)
    row = train.agg(
        *[F.avg(c).alias(f"m{i}") for i, c in enumerate(numeric)],
        *[F.stddev_pop(c).alias(f"s{i}") for i, c in enumerate(numeric)],
        F.count(F.lit(1)).alias("rows"),
    ).first()
    if not row["rows"]:
        raise ValueError("the training part is empty: use more data or a larger --sample-rate")
    mean = [float(row[f"m{i}"]) for i in range(len(numeric))]
    std = [float(row[f"s{i}"] or 0.0) for i in range(len(numeric))]
    std = [s if s > 1e-12 else 1.0 for s in std]
    vocabulary: dict[str, list[str]] = {}
    if layout == "transactions":
        for column in CATEGORICAL:
            top = train.groupBy(column).count().orderBy(F.desc("count"), column)
            vocabulary[column] = sorted(str(r[0]) for r in top.limit(max_categories).collect())
    return Preprocessor(layout, numeric, mean, std, vocabulary)


def assemble(df, prep: Preprocessor):
    """``df`` with ``features``: the standardised numeric features and the one-hot categories
    as one ``array<float>`` (the column the model reads).

    Example::

        assemble(test, prep).select("features").first()[0][:3]
    """
    from pyspark.sql import functions as F

    parts = [
        ((F.col(c) - F.lit(m)) / F.lit(s)).cast("float")
        for c, m, s in zip(prep.numeric, prep.mean, prep.std, strict=True)
    ]
    for column, values in prep.vocabulary.items():
        parts += [(F.col(column).cast("string") == v).cast("float") for v in values]
    return df.withColumn(FEATURES, F.array(*parts))


# ---- imbalance, model, metrics ---------------------------------------------------------------


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


def with_class_weights(train, share: float = 0.2):
    """``train`` with a ``weight`` column: :func:`fraud_weight` for fraud rows, 1 for the
    others (the trainer's ``sample_weight_col``: every rank weighs its rows' losses, no row is
    repeated). Returns (DataFrame, fraud weight)."""
    from pyspark.sql import functions as F

    counts = {r[0]: r[1] for r in train.groupBy(LABEL).count().collect()}
    weight = fraud_weight(counts.get(1, 0), counts.get(0, 0), share)
    weighted = train.withColumn(
        WEIGHT, F.when(F.col(LABEL) == 1, F.lit(float(weight))).otherwise(F.lit(1.0))
    )
    return weighted, weight


def build_mlp(input_dim: int, hidden: Sequence[int] = (64, 32), dropout: float = 0.2):
    """``tabular_mlp`` from the model zoo for ``input_dim`` features (focal loss setting)."""
    from sparkzoo import models

    return models.get(
        "tabular_mlp", input_dim=input_dim, hidden=tuple(hidden), dropout=dropout, loss="focal"
    )


def train_mlp(
    train,
    input_dim: int,
    workers: int = 2,
    epochs: int = 5,
    batch_size: int = 256,
    learning_rate: float = 1e-3,
    hidden: Sequence[int] = (64, 32),
    focal_gamma: float = 2.0,
    seed: int = 0,
    tracking_uri: str | None = None,
):
    """Train ``tabular_mlp`` on ``train`` (``features``, ``label`` and, if present, the
    per-row loss ``weight`` of :func:`with_class_weights`) with Horovod through
    :class:`~sparkzoo.trainer.KerasEstimator`; returns the fitted ``KerasModel`` (its
    ``transform`` adds ``prediction``, the fraud probability).

    Example::

        fitted = train_mlp(assemble(weighted, prep), len(prep.input_names), workers=2)
    """
    import tensorflow as tf

    from sparkzoo.models.tabular import FocalLoss
    from sparkzoo.trainer import KerasEstimator

    estimator = KerasEstimator(
        model=lambda: build_mlp(input_dim, hidden),
        optimizer=tf.keras.optimizers.Adam(learning_rate),
        loss=FocalLoss(gamma=focal_gamma),
        metrics=[tf.keras.metrics.AUC(curve="PR", name="auprc")],
        feature_cols=[FEATURES],
        label_cols=[LABEL],
        sample_weight_col=WEIGHT if WEIGHT in train.columns else None,
        batch_size=batch_size,
        epochs=epochs,
        num_workers=workers,
        seed=seed,
        run_name="fraud-tabular-mlp",
        log_to_mlflow=tracking_uri is not None,
        tracking_uri=tracking_uri,
        custom_objects={"FocalLoss": FocalLoss},
    )
    return estimator.fit(
        train.select(FEATURES, LABEL, *[c for c in [WEIGHT] if c in train.columns])
    )


def precision_at_recall(y_true: np.ndarray, scores: np.ndarray, recall: float = TARGET_RECALL):
    """The best precision among thresholds whose recall is at least ``recall``; None without
    positives.

    Example::

        precision_at_recall(np.array([0, 1, 1, 0]), np.array([0.1, 0.9, 0.8, 0.7]))   # 1.0
    """
    from sklearn.metrics import precision_recall_curve

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
    from sklearn.metrics import average_precision_score, roc_auc_score

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
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.linear_model import LogisticRegression

    if len(np.unique(y_train)) < 2:
        raise ValueError("the training part holds only one class: baselines cannot be fitted")
    hgb = HistGradientBoostingClassifier(class_weight="balanced", random_state=seed)
    logistic = LogisticRegression(class_weight="balanced", max_iter=1000)
    return {
        "hist_gradient_boosting": hgb.fit(x_train, y_train),
        "logistic_regression": logistic.fit(x_train, y_train),
    }


def to_numpy(df, columns: Sequence[str] = (FEATURES, LABEL)) -> list[np.ndarray]:
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


def evaluate(fitted, prep: Preprocessor, train, val, test, seed: int = 0) -> Evaluation:
    """Choose the MLP's threshold on ``val`` (recall 0.8; stored in ``prep``), score ``test``
    with it, fit the scikit-learn baselines on ``train``'s same standardised features, and
    measure every model on ``test`` (each baseline at its own validation threshold).

    Example::

        result = evaluate(fitted, prep, train, val, test)
        print(result.table())
    """
    import time

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
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.metrics import average_precision_score, precision_recall_curve

    figure, axes = plt.subplots(figsize=(6, 4.5))
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
    from sparkzoo import fs

    fs.makedirs(folder)
    fitted.save(fs.join(folder, MODEL_DIR))
    fs.write_bytes(fs.join(folder, PREPROCESS_FILE), prep.to_json().encode())


def load_model(folder: str):
    """(KerasModel, Preprocessor) saved by :func:`save_model`; a clear error when ``folder``
    is not such a model."""
    from sparkzoo import fs
    from sparkzoo.models.tabular import FocalLoss
    from sparkzoo.trainer import KerasModel

    path = fs.join(folder, PREPROCESS_FILE)
    if not fs.exists(path):
        raise FileNotFoundError(
            f"--model {folder!r} holds no fraud model ({PREPROCESS_FILE} missing): pass the "
            "model/ folder a training run wrote"
        )
    prep = Preprocessor.from_json(fs.read_bytes(path))
    return KerasModel.load(fs.join(folder, MODEL_DIR), {"FocalLoss": FocalLoss}), prep


def score(fitted, prep: Preprocessor, df, keep_features: bool = False):
    """``df`` (prepared, with feature columns) with ``score`` (fraud probability) and ``flag``
    (``score >= threshold``), scored by the model in the executors; the assembled
    ``features`` column stays only with ``keep_features``."""
    from pyspark.sql import functions as F

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
    from pyspark.sql import functions as F

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
