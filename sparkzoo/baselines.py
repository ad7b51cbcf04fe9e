"""Baselines that recipes and apps measure their models against, in the same run: Spark
MLlib's implicit ALS and scikit-learn's TF-IDF + logistic regression for text.

They live here, below ``sparkzoo.models`` and ``sparkzoo.apps``, because ALS needs pyspark,
which the model zoo never imports, and because a recipe and an app share them.

Example::

    users, items = als_factors(spark, train[["user_id", "item_id"]], 943, 1682,
                               {"rank": 32, "regParam": 0.1, "alpha": 10.0, "maxIter": 15})
    scores = np.einsum("uk,uck->uc", users[test_users], items[candidates])
    model = tfidf_logistic_regression(train["text"], train["label"])
    model.predict(test["text"])
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from pyspark.ml.recommendation import ALS
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline

if TYPE_CHECKING:
    from pyspark.sql import SparkSession


def als_factors(
    spark: SparkSession,
    interactions: pd.DataFrame,
    num_users: int,
    num_items: int,
    params: dict,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """Spark MLlib ALS with implicit preferences on ``interactions`` (0-based ``user_id``,
    ``item_id``; every row one interaction). Returns the user and item factor matrices,
    ``(num_users, rank)`` and ``(num_items, rank)``; rows of ids ALS never saw are zero.
    """
    # Checkpoints cut ALS's lineage every 10 iterations; without them the driver can hit
    # a StackOverflowError serialising 15 iterations' worth of RDD lineage.
    checkpoints = tempfile.mkdtemp(prefix="sparkzoo-als-")
    try:
        spark.sparkContext.setCheckpointDir(checkpoints)
        frame = spark.createDataFrame(interactions[["user_id", "item_id"]].assign(rating=1.0))
        als = ALS(
            userCol="user_id",
            itemCol="item_id",
            ratingCol="rating",
            implicitPrefs=True,
            seed=seed,
            **params,
        ).fit(frame)
        users, items = np.zeros((num_users, params["rank"])), np.zeros((num_items, params["rank"]))
        for row in als.userFactors.collect():
            users[row["id"]] = row["features"]
        for row in als.itemFactors.collect():
            items[row["id"]] = row["features"]
    finally:
        shutil.rmtree(checkpoints, ignore_errors=True)
    return users, items


def tfidf_logistic_regression(texts: Sequence[str], labels: Sequence) -> Pipeline:
    """scikit-learn's TF-IDF (words and bigrams, sublinear counts) + logistic regression
    (C=4), fitted on ``texts`` and their ``labels``: the established answer for short-text
    classification that the zoo's text models are measured against."""
    model = make_pipeline(
        TfidfVectorizer(ngram_range=(1, 2), min_df=1, sublinear_tf=True),
        LogisticRegression(C=4.0, max_iter=2000),
    )
    return model.fit(list(texts), list(labels))
