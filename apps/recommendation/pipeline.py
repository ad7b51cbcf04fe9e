"""NCF recommendation on MovieLens: the steps of ``python -m sparkzoo.apps.recommendation``.

1. :func:`load_movielens` — ratings (the packaged MovieLens-100K, or a MovieLens ratings file
   a user brings: ``u.data``, ``ratings.csv``, ``ratings.dat``; local or ``hdfs://``), with
   the movies' titles and genres and the users' profiles when they are known;
   ``sample_users`` keeps a fraction of the users with all their ratings.
2. :func:`index_ids` — raw ids to contiguous embedding rows; :func:`make_split` — the NCF
   paper's leave-last-out protocol (each user's latest rating held out and ranked among 99
   movies the user never rated).
3. :func:`train` — ``ncf`` (NeuMF) or ``wide_deep`` trained with ``KerasEstimator`` (Horovod
   ranks as Spark barrier tasks) on implicit feedback with fresh negatives each round.
4. :func:`evaluate` — HR@k and NDCG@k of the model next to Spark MLlib ALS (implicit) and item
   popularity on the same candidates, in the same run; :func:`plot_hit_ratio` draws HR@k.
5. :func:`recommend` — the top-k unseen movies of every user, scored on Spark executors (the
   model rebuilt once per Python worker), as a DataFrame ready for Parquet.

Example::

    data = load_movielens()                      # packaged MovieLens-100K
    ids = index_ids(data)
    split = make_split(ids)
    recommender = train(spark, split, ids, model="ncf", workers=2)
    metrics, curves = evaluate(spark, recommender, split, ids)
    recommend(spark, recommender, ids, k=10).write.parquet("recs")
"""

from __future__ import annotations

import os
import tempfile
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import pyarrow as pa
from matplotlib.figure import Figure

from sparkzoo import fs
from sparkzoo import keras2 as keras
from sparkzoo.arrow import to_numpy
from sparkzoo.datasets.loaders import movielens_100k
from sparkzoo.datasets.readers import read_movielens_ratings
from sparkzoo.models.recipes.ncf_ml100k import (
    als_scores,
    make_protocol,
    popularity_scores,
    training_pairs,
)
from sparkzoo.models.recommendation import hit_ratio_at_k, ndcg_at_k, positive_ranks
from sparkzoo.models.registry import get as zoo_model
from sparkzoo.trainer import KerasEstimator
from sparkzoo.trainer.backends import compile_model
from sparkzoo.trainer.inference import map_batches

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession


TOP_K = 10
EVAL_NEGATIVES = 99  # the NCF paper's protocol
NCF_CONFIG = {"factors": 16, "mlp_layers": (64, 32, 16)}  # as ncf.ml100k was trained
WIDE_DEEP_CONFIG = {"embedding_dim": 16, "hidden": (64, 32), "cross_buckets": 1000}
MODELS = ("ncf", "wide_deep")
CURVE_KS = tuple(range(1, 21))


@dataclass
class Recommender:
    """A trained model with what it takes to rebuild and feed it: the registry ``family``
    (``ncf`` or ``wide_deep``), its ``config`` and the fitted ``KerasModel``."""

    family: str
    config: dict[str, Any]
    fitted: Any  # sparkzoo.trainer.KerasModel

    def keras_model(self):
        return self.fitted.keras_model()


@dataclass
class MovieLensData:
    """Ratings (``user_id``, ``item_id``, ``rating``, ``timestamp``; raw MovieLens ids) and,
    when known, ``items`` (``item_id``, ``title``, ``genres``) and ``users`` (``user_id``,
    ``age``, ``gender``, ``occupation``)."""

    ratings: pd.DataFrame
    items: pd.DataFrame | None = None
    users: pd.DataFrame | None = None
    source: str = "MovieLens-100K (packaged)"


@dataclass
class IndexedData:
    """Ratings with 0-based ids and the side features the ``wide_deep`` model can use.

    ``user_ids[i]`` / ``item_ids[j]`` are the raw ids of embedding rows ``i`` / ``j``;
    ``side`` maps a feature name to an array indexed by user or item row (``None`` when the
    data has no side tables).
    """

    ratings: pd.DataFrame
    user_ids: np.ndarray
    item_ids: np.ndarray
    titles: np.ndarray | None
    side: dict[str, np.ndarray] | None

    @property
    def num_users(self) -> int:
        return len(self.user_ids)

    @property
    def num_items(self) -> int:
        return len(self.item_ids)


# ---- 1. data ----------------------------------------------------------------------------------


def load_movielens(path: str | None = None) -> MovieLensData:
    """The packaged MovieLens-100K (``path=None``) or the ratings file at ``path``.

    Example::

        data = load_movielens("hdfs://127.0.0.1:9000/data/ml-latest-small/ratings.csv")
    """

    if path is None:
        ratings, users, items = movielens_100k()
        return MovieLensData(ratings, items, users)
    if not fs.exists(path):
        raise FileNotFoundError(f"--input {path!r} does not exist")
    if fs.isdir(path):
        raise ValueError(f"--input {path!r} is a folder: name the ratings file in it")
    if fs.is_hdfs(path):
        local = os.path.join(tempfile.mkdtemp(prefix="sparkzoo-ml-"), path.rsplit("/", 1)[-1])
        fs.get(path, local)
        ratings = read_movielens_ratings(local)
    else:
        ratings = read_movielens_ratings(fs.local_path(path))
    if ratings.empty:
        raise ValueError(f"--input {path!r} holds no ratings")
    return MovieLensData(ratings, source=path)


def sample_users(data: MovieLensData, rate: float, seed: int = 0) -> MovieLensData:
    """Keep a fraction ``rate`` of the users, each with all their ratings (leave-last-out
    needs whole histories).

    Example::

        small = sample_users(load_movielens(), 0.1)      # ~94 users
    """
    if rate >= 1.0:
        return data
    users = np.unique(data.ratings["user_id"].to_numpy())
    keep = np.random.default_rng(seed).random(len(users)) < rate
    if keep.sum() < 2:
        raise ValueError(
            f"--sample-rate {rate} keeps {int(keep.sum())} of {len(users)} users: too few to "
            "train and evaluate a recommender"
        )
    ratings = data.ratings[data.ratings["user_id"].isin(users[keep])].reset_index(drop=True)
    return MovieLensData(ratings, data.items, data.users, f"{data.source}, {rate:g} of users")


def _codes(values: pd.Series) -> np.ndarray:
    return pd.Categorical(values.fillna("unknown").astype(str)).codes.astype("int64")


def index_ids(data: MovieLensData) -> IndexedData:
    """Map raw user and movie ids to embedding rows ``0 .. n-1`` (sorted raw ids); build the
    side features ``wide_deep`` uses (movie genre and decade, user occupation, gender and age)
    when the data has them.

    Example::

        ids = index_ids(load_movielens())     # ids.num_users == 943, ids.num_items == 1682
    """
    ratings = data.ratings
    missing = [c for c in ("user_id", "item_id", "timestamp") if c not in ratings.columns]
    if missing:
        raise ValueError(f"ratings lack column(s) {missing}; they have {list(ratings.columns)}")
    bad = ratings[["user_id", "item_id", "timestamp"]].isna().any(axis=1)
    if bad.any():
        raise ValueError(f"ratings row {int(np.flatnonzero(bad)[0])} has a missing id or time")
    user_ids = np.unique(ratings["user_id"].to_numpy())
    item_ids = np.unique(ratings["item_id"].to_numpy())
    indexed = ratings.assign(
        user_id=np.searchsorted(user_ids, ratings["user_id"].to_numpy()),
        item_id=np.searchsorted(item_ids, ratings["item_id"].to_numpy()),
    )
    titles = side = None
    if data.items is not None:
        items = data.items.set_index("item_id").reindex(item_ids)
        titles = items["title"].fillna("").astype(str).to_numpy()
        if data.users is not None:
            users = data.users.set_index("user_id").reindex(user_ids)
            age = users["age"].astype("float64").fillna(users["age"].mean()).to_numpy()
            first_genre = items["genres"].map(lambda g: g[0] if isinstance(g, list) and g else None)
            decade = (items["year"].astype("float64") // 10).astype("Int64").astype(str)
            side = {
                "genre": _codes(first_genre),
                "decade": _codes(decade),
                "occupation": _codes(users["occupation"]),
                "gender": _codes(users["gender"]),
                "age": ((age - age.mean()) / (age.std() or 1.0)).astype("float32"),
            }
    return IndexedData(indexed, user_ids, item_ids, titles, side)


# ---- 2. the leave-last-out protocol -----------------------------------------------------------


def make_split(ids: IndexedData, negatives: int = EVAL_NEGATIVES, seed: int = 0):
    """Each user's latest rating held out, ranked among ``negatives`` unrated movies.

    Example::

        split = make_split(ids)     # split.train, split.test, split.candidates (users, 100)
    """

    if ids.num_items <= negatives + 1:
        raise ValueError(
            f"the data has {ids.num_items} movies: ranking among {negatives} negatives needs more"
        )
    return make_protocol(ids.ratings, ids.num_users, ids.num_items, negatives, seed)


# ---- 3. model inputs and training -------------------------------------------------------------


def model_config(model: str, ids: IndexedData) -> dict[str, Any]:
    """The registry config of ``model`` for this data (vocabulary sizes from ``ids``)."""
    if model == "ncf":
        return {"num_users": ids.num_users, "num_items": ids.num_items, **NCF_CONFIG}
    if model == "wide_deep":
        categorical = {"user": ids.num_users, "item": ids.num_items}
        crossed: list[list[str]] = []
        continuous: list[str] = []
        if ids.side:
            for name in ("genre", "decade", "occupation", "gender"):
                categorical[name] = int(ids.side[name].max()) + 1
            crossed = [["occupation", "genre"], ["gender", "genre"], ["user", "genre"]]
            continuous = ["age"]
        return {
            "categorical": categorical,
            "crossed": crossed,
            "continuous": continuous,
            **WIDE_DEEP_CONFIG,
        }
    raise ValueError(f"unknown model {model!r}: choose one of {MODELS}")


_USER_FEATURES = ("occupation", "gender", "age")


def model_inputs(
    model: str, config: dict, users: np.ndarray, items: np.ndarray, side: dict | None
) -> Any:
    """What the Keras model takes for (user, item) row pairs: ``[users, items]`` for ``ncf``;
    a dict of one column per feature for ``wide_deep``."""
    users = np.asarray(users, dtype="int64").reshape(-1, 1)
    items = np.asarray(items, dtype="int64").reshape(-1, 1)
    if model == "ncf":
        return [users, items]
    inputs: dict[str, np.ndarray] = {"user": users, "item": items}
    for name in [*config["categorical"], *config["continuous"]]:
        if name in inputs:
            continue
        rows = users if name in _USER_FEATURES else items
        inputs[name] = side[name][rows[:, 0]].reshape(-1, 1)
    return inputs


def _feature_frame(model: str, config: dict, pairs: pd.DataFrame, side: dict | None):
    inputs = model_inputs(model, config, pairs["user_id"], pairs["item_id"], side)
    names = ["user_id", "item_id"] if model == "ncf" else list(inputs)
    columns = inputs if isinstance(inputs, dict) else dict(zip(names, inputs, strict=True))
    frame = pd.DataFrame({name: np.asarray(v).ravel() for name, v in columns.items()})
    return frame.assign(label=pairs["label"].to_numpy()), names


def build_model(model: str, config: dict):
    return zoo_model(model, **config)


def train(
    spark: SparkSession,
    split,
    ids: IndexedData,
    model: str = "ncf",
    workers: int = 2,
    epochs: int = 1,
    rounds: int = 6,
    batch_size: int = 512,
    seed: int = 0,
    store: str | None = None,
):
    """Train ``model`` on the split's training ratings as implicit feedback: every rating a
    positive, 4 fresh unrated movies per positive as negatives in each of ``rounds`` rounds,
    through ``KerasEstimator`` on ``workers`` Horovod ranks. Returns a :class:`Recommender`.
    """

    config = model_config(model, ids)
    pairs = training_pairs(split.train, rounds, seed, num_items=ids.num_items)
    frame, feature_cols = _feature_frame(model, config, pairs, ids.side)
    estimator = KerasEstimator(
        model=lambda: build_model(model, config),
        optimizer=keras.optimizers.Adam(1e-3),
        loss="binary_crossentropy",
        metrics=["accuracy"],
        feature_cols=feature_cols,
        label_cols=["label"],
        batch_size=batch_size,
        epochs=epochs,
        num_workers=workers,
        seed=seed,
        store=store,
        run_name=f"app-recommendation-{model}",
    )
    return Recommender(model, config, estimator.fit(spark.createDataFrame(frame)))


# ---- 4. evaluation ----------------------------------------------------------------------------


def candidate_scores(keras_model, model: str, config: dict, split, ids: IndexedData) -> np.ndarray:
    """The model's scores of every test user's 100 candidates, ``(users, 100)``."""
    users = np.repeat(split.test["user_id"].to_numpy(), split.candidates.shape[1])
    inputs = model_inputs(model, config, users, split.candidates.ravel(), ids.side)
    scores = keras_model.predict(inputs, batch_size=8192, verbose=0)
    return np.asarray(scores, dtype="float64").reshape(split.candidates.shape)


def ranking_metrics(scores: np.ndarray, k: int = TOP_K) -> dict[str, float]:
    return {
        f"hr@{k}": round(hit_ratio_at_k(scores, k), 4),
        f"ndcg@{k}": round(ndcg_at_k(scores, k), 4),
    }


def evaluate(spark: SparkSession, recommender: Recommender, split, ids: IndexedData, seed: int = 0):
    """HR@10 / NDCG@10 of the model, Spark ALS (implicit) and item popularity on the same
    candidates; returns ``(metrics, curves)`` where ``curves[name]`` is HR@k for k = 1..20.

    Example::

        metrics, curves = evaluate(spark, recommender, split, ids)
        metrics["ncf"]["hr@10"], metrics["als"]["hr@10"]
    """

    model = recommender.family
    scores = {
        model: candidate_scores(recommender.keras_model(), model, recommender.config, split, ids),
        "als": als_scores(spark, split, seed),
        "popularity": popularity_scores(split, seed),
    }
    metrics = {name: ranking_metrics(s) for name, s in scores.items()}
    curves = {
        name: [float(np.mean(positive_ranks(s) < k)) for k in CURVE_KS]
        for name, s in scores.items()
    }
    return metrics, curves


def plot_hit_ratio(curves: dict[str, list[float]], title: str):
    """A matplotlib figure of HR@k (k = 1..20) for every scorer."""
    figure = Figure(figsize=(6, 4))
    axis = figure.subplots()
    for name, values in curves.items():
        axis.plot(CURVE_KS, values, marker="o", markersize=3, label=name)
    axis.axvline(TOP_K, color="grey", linestyle=":", linewidth=1)
    axis.set(xlabel="k (of 100 candidates)", ylabel="hit ratio @ k", title=title, ylim=(0, 1))
    axis.grid(alpha=0.3)
    axis.legend()
    return figure


# ---- 5. top-k recommendations on Spark --------------------------------------------------------

RECOMMENDATIONS_SCHEMA = pa.schema(
    [
        ("user_id", pa.int64()),
        ("rank", pa.int32()),
        ("item_id", pa.int64()),
        ("title", pa.string()),
        ("score", pa.float64()),
    ]
)


def scoring_model(spec: dict[str, Any]):
    """The model of a :func:`recommend` payload, rebuilt from its family, config and weights,
    as the tensorflow backend runs it (its traced graph: ``sparkzoo.trainer.backends``)."""
    model = build_model(spec["model"], spec["config"])
    model.set_weights(spec["weights"])
    return compile_model(model)


def top_k_batch(model, users: np.ndarray, spec: dict[str, Any], k: int) -> dict[str, np.ndarray]:
    """The per-batch function of :func:`recommend` (no Spark in it): every movie scored for
    each user of ``users`` (row indices), the ones the user rated dropped, the ``k`` best kept;
    columns of :data:`RECOMMENDATIONS_SCHEMA`."""
    num_items = len(spec["item_ids"])
    all_items = np.arange(num_items)
    parts = []
    for user in users:
        inputs = model_inputs(
            spec["model"], spec["config"], np.full(num_items, user), all_items, spec["side"]
        )
        scores = np.array(model(inputs, training=False), dtype="float64").ravel()
        scores[spec["seen"][user]] = -np.inf
        top = np.argsort(-scores, kind="stable")[:k]
        top = top[np.isfinite(scores[top])]  # a user who rated every movie gets fewer
        parts.append((np.full(len(top), spec["user_ids"][user]), top, scores[top]))
    user_ids, items, scores = (np.concatenate(c) for c in zip(*parts, strict=True))
    items = items.astype(np.int64)
    return {
        "user_id": user_ids.astype(np.int64),
        "rank": np.concatenate([np.arange(1, len(p[1]) + 1, dtype=np.int32) for p in parts]),
        "item_id": np.asarray(spec["item_ids"])[items].astype(np.int64),
        "title": np.asarray(spec["titles"])[items].astype(object),
        "score": scores,
    }


def recommend(
    spark: SparkSession,
    recommender: Recommender,
    ids: IndexedData,
    k: int = TOP_K,
    partitions: int | None = None,
) -> DataFrame:
    """The ``k`` highest-scored movies each user has not rated, as a Spark DataFrame of
    ``user_id``, ``rank`` (1 = best), ``item_id`` (raw ids), ``title``, ``score``.

    Scoring runs on the executors (``sparkzoo.trainer.inference.map_batches``, per batch
    :func:`top_k_batch`): the model's weights travel once as a broadcast and each Python worker
    rebuilds the model once.

    Example::

        recommend(spark, recommender, ids, k=10).write.parquet("hdfs://127.0.0.1:9000/recs")
    """
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    seen = [np.empty(0, dtype="int64")] * ids.num_users
    for user, items in ids.ratings.groupby("user_id")["item_id"]:
        seen[user] = np.unique(items.to_numpy())
    titles = ids.titles if ids.titles is not None else np.full(ids.num_items, "", dtype=object)
    payload = spark.sparkContext.broadcast(
        {
            "key": uuid.uuid4().hex,
            "model": recommender.family,
            "config": recommender.config,
            "weights": recommender.keras_model().get_weights(),
            "side": ids.side,
            "seen": seen,
            "user_ids": ids.user_ids,
            "item_ids": ids.item_ids,
            "titles": titles.astype(str),
        }
    )
    partitions = partitions or spark.sparkContext.defaultParallelism
    users = spark.createDataFrame(pd.DataFrame({"user": np.arange(ids.num_users)})).repartition(
        partitions
    )
    top = min(k, ids.num_items)
    return map_batches(
        users,
        lambda: scoring_model(payload.value),
        lambda model, users: top_k_batch(model, users, payload.value, top),
        RECOMMENDATIONS_SCHEMA,
        key=payload.value["key"],
        read=lambda batch: to_numpy(batch.column("user")),
        keep_input=False,
    )
