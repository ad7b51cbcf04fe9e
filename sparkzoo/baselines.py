"""Spark MLlib baselines that recipes and apps measure their models against, in the same run.

They live here, below ``sparkzoo.models`` and ``sparkzoo.apps``, because they need pyspark,
which the model zoo never imports.

Example::

    users, items = als_factors(spark, train[["user_id", "item_id"]], 943, 1682,
                               {"rank": 32, "regParam": 0.1, "alpha": 10.0, "maxIter": 15})
    scores = np.einsum("uk,uck->uc", users[test_users], items[candidates])
"""

from __future__ import annotations

import shutil
import tempfile
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from pyspark.ml.recommendation import ALS

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
