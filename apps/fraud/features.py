"""Fraud detection's data steps: transactions in, past-window features, a time-ordered split
and the standardised feature vector (``python -m sparkzoo.apps.fraud``; the training,
evaluation and scoring steps are in :mod:`~sparkzoo.apps.fraud.pipeline`, which re-exports
these names).

Two input layouts:

- ``transactions`` (the default data: the SYNTHETIC PaySim-like generator
  :func:`sparkzoo.datasets.synthetic.transactions`; no real transaction set ships offline):
  ``timestamp, customer_id, merchant_id, merchant_category, type, amount[, is_fraud]``;
- ``creditcard`` (the Kaggle credit-card CSV a user brings, read by
  :func:`sparkzoo.datasets.readers.read_creditcard`): ``Time, V1..V28, Amount[, Class]``.
  It has no account or merchant ids, so its past windows run over the whole stream.

Example::

    data = prepare(load_transactions(spark))             # layout, label, event time
    train, val, test = time_split(add_features(data))    # past-window aggregates, by time
    prep = fit_preprocessor(train, data.layout)
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
from pyspark.sql import Window
from pyspark.sql import functions as F
from pyspark.sql.types import NumericType

from sparkzoo import fs
from sparkzoo.apps.common import sample
from sparkzoo.datasets.readers import read_creditcard
from sparkzoo.datasets.synthetic import transactions

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession


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
    spark: SparkSession,
    path: str | None = None,
    customers: int = 1000,
    days: int = 30,
    fraud_rate: float = 0.01,
    seed: int = 0,
) -> DataFrame:
    """The raw transactions as a Spark DataFrame.

    No ``path``: the SYNTHETIC PaySim-like generator (``customers`` x ``days``). A ``.csv``
    with the Kaggle header (``Time``, ``V1``..) goes through ``read_creditcard`` (local file)
    or Spark's CSV reader (``hdfs://``); another ``.csv`` is read as a transactions table with
    a header; anything else is read as Parquet.

    Example::

        raw = load_transactions(spark, "creditcard.csv")
    """

    if path is None:
        return transactions(
            n_customers=customers, days=days, fraud_rate=fraud_rate, seed=seed, spark=spark
        )
    if not fs.exists(path):
        raise FileNotFoundError(f"--input {path!r} does not exist")
    if path.lower().endswith(".csv"):
        df = spark.read.csv(path, header=True, inferSchema=True)
        if "Time" in df.columns and "V1" in df.columns and not fs.is_hdfs(path):
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


def prepare(raw: DataFrame, source: str = "input", require_label: bool = True) -> Transactions:
    """Check ``raw`` and give it the columns every later step uses: ``transaction_key``
    (long), ``event_time`` (seconds, long), ``label`` (0/1, when present).

    Missing columns, nulls or NaN in the columns used, negative amounts, labels other than
    0/1, and an empty table raise ``ValueError`` naming the column.

    Example::

        data = prepare(transactions(spark=spark))
        data.layout            # "transactions"
    """

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


def sample_accounts(raw: DataFrame, rate: float, seed: int = 0) -> DataFrame:
    """A ``rate`` sample of whole accounts (every transaction of the sampled customers), so
    the past windows of a sampled row still see its account's history; the credit-card layout
    (no accounts) is sampled by row.

    Example::

        small = sample_accounts(raw, 0.1)
    """

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

    window = Window.partitionBy(*partition) if partition else Window
    start = Window.unboundedPreceding if seconds is None else -int(seconds)
    return window.orderBy(EVENT_TIME).rangeBetween(start, -1)


def _log1p(column):
    return F.log1p(F.coalesce(column, F.lit(0.0)))


def _ratio(amount, mean):
    """log(amount / mean), 0 without history."""

    return F.coalesce(F.log((amount + 1.0) / (mean + 1.0)), F.lit(0.0))


def add_features(data: Transactions) -> DataFrame:
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


def time_split(df: DataFrame, fractions: Sequence[float] = (0.6, 0.2, 0.2)):
    """(train, validation, test) DataFrames by event time: train the earliest ``fractions[0]``
    of the transactions, test the latest ``fractions[2]`` (exact quantiles of the event time;
    rows at or after a cut go to the later part, so a second never straddles two parts).

    Example::

        train, val, test = time_split(feats)
    """

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


def fit_preprocessor(train: DataFrame, layout: str, max_categories: int = 30) -> Preprocessor:
    """Statistics from the TRAINING part only: mean/std of every numeric feature and the
    categories of ``type`` and ``merchant_category`` (transactions layout).

    Example::

        prep = fit_preprocessor(train, "transactions")
    """

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


def assemble(df: DataFrame, prep: Preprocessor) -> DataFrame:
    """``df`` with ``features``: the standardised numeric features and the one-hot categories
    as one ``array<float>`` (the column the model reads).

    Example::

        assemble(test, prep).select("features").first()[0][:3]
    """

    parts = [
        ((F.col(c) - F.lit(m)) / F.lit(s)).cast("float")
        for c, m, s in zip(prep.numeric, prep.mean, prep.std, strict=True)
    ]
    for column, values in prep.vocabulary.items():
        parts += [(F.col(column).cast("string") == v).cast("float") for v in values]
    return df.withColumn(FEATURES, F.array(*parts))


# ---- imbalance, model, metrics ---------------------------------------------------------------
