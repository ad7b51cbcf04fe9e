"""Recommendation models: NeuMF (NCF) and Wide & Deep, with the leave-last-out ranking protocol.

- :func:`ncf` is NeuMF (He et al., 2017, "Neural Collaborative Filtering"): a generalised
  matrix-factorisation branch and an MLP branch, each with its own user and item embeddings,
  concatenated into one sigmoid that scores a (user, item) pair.
- :func:`wide_deep` is Wide & Deep (Cheng et al., 2016): a linear model over sparse and crossed
  categorical features plus an MLP over embeddings and continuous features, summed into one
  logit.
- :func:`leave_last_out`, :func:`sample_negatives`, :func:`ranking_candidates`,
  :func:`hit_ratio_at_k` and :func:`ndcg_at_k` implement the NCF paper's evaluation: hold out
  each user's latest interaction, rank it among 99 items the user never touched, report HR@10
  and NDCG@10. Only numpy and pandas here (no Spark).

Example::

    train, test = leave_last_out(ratings)                    # user_id, item_id, timestamp
    candidates = ranking_candidates(test, ratings, num_items, 99, seed=0)  # (users, 100)
    scores = score_candidates(model, test["user_id"].to_numpy(), candidates)
    hit_ratio_at_k(scores, k=10), ndcg_at_k(scores, k=10)    # the positive is column 0
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from sparkzoo import keras2 as keras
from sparkzoo.models.registry import register

# ---- NeuMF ------------------------------------------------------------------------------


def _ncf_example(config: dict, n: int, rng: np.random.Generator):
    users = rng.integers(0, config["num_users"], (n, 1))
    items = rng.integers(0, config["num_items"], (n, 1))
    return [users, items], rng.integers(0, 2, (n, 1)).astype("float32")


@register(
    "ncf",
    task="recommendation",
    tiny={"num_users": 10, "num_items": 12, "factors": 4, "mlp_layers": (8, 4)},
    example=_ncf_example,
    loss="binary_crossentropy",
    metrics=("accuracy",),
)
def ncf(
    num_users: int = 943,
    num_items: int = 1682,
    factors: int = 8,
    mlp_layers: Sequence[int] = (64, 32, 16, 8),
    l2: float = 0.0,
    dropout: float = 0.0,
    name: str = "ncf",
) -> keras.Model:
    """NeuMF: GMF and MLP branches with separate embeddings, concatenated into a sigmoid score.

    Inputs are two integer columns, ``user_id`` in ``[0, num_users)`` and ``item_id`` in
    ``[0, num_items)``, each of shape ``(1,)``; the output, shape ``(1,)``, is the probability
    that the user interacts with the item (train with binary cross-entropy on positives and
    sampled negatives). The GMF branch multiplies ``factors``-sized embeddings element-wise;
    the MLP branch concatenates two ``mlp_layers[0] // 2``-sized embeddings and runs them
    through the dense ``mlp_layers``, as in the paper. ``l2`` regularises every embedding.

    Example::

        model = ncf(num_users=943, num_items=1682, factors=16, mlp_layers=(64, 32, 16))
        model.compile("adam", "binary_crossentropy")
        model.fit([users, items], labels)      # users, items: (n, 1) integer ids
    """
    mlp_layers = [int(u) for u in mlp_layers]
    if num_users < 1 or num_items < 1 or factors < 1:
        raise ValueError(
            f"num_users, num_items and factors must be positive, got {num_users}, "
            f"{num_items}, {factors}"
        )
    if not mlp_layers or mlp_layers[0] < 2:
        raise ValueError(f"mlp_layers must start with a size >= 2, got {mlp_layers}")
    regularizer = keras.regularizers.l2(l2) if l2 else None
    user = keras.Input((1,), dtype="int64", name="user_id")
    item = keras.Input((1,), dtype="int64", name="item_id")

    def embed(ids, count: int, size: int, layer_name: str):
        vectors = keras.layers.Embedding(
            count,
            size,
            embeddings_initializer=keras.initializers.RandomNormal(stddev=0.01),
            embeddings_regularizer=regularizer,
            name=layer_name,
        )(ids)
        return keras.layers.Flatten(name=f"{layer_name}_flat")(vectors)

    gmf = keras.layers.Multiply(name="gmf")(
        [
            embed(user, num_users, factors, "gmf_user_embedding"),
            embed(item, num_items, factors, "gmf_item_embedding"),
        ]
    )
    half = mlp_layers[0] // 2
    x = keras.layers.Concatenate(name="mlp_concat")(
        [
            embed(user, num_users, half, "mlp_user_embedding"),
            embed(item, num_items, half, "mlp_item_embedding"),
        ]
    )
    for i, units in enumerate(mlp_layers[1:]):
        x = keras.layers.Dense(units, activation="relu", name=f"mlp{i + 1}")(x)
        if dropout:
            x = keras.layers.Dropout(dropout, name=f"mlp{i + 1}_dropout")(x)
    x = keras.layers.Concatenate(name="neumf")([gmf, x])
    output = keras.layers.Dense(
        1, activation="sigmoid", kernel_initializer="lecun_uniform", name="score"
    )(x)
    return keras.Model([user, item], output, name=name)


# ---- Wide & Deep ------------------------------------------------------------------------


def _wide_deep_inputs(config: dict) -> tuple[dict[str, int], list[str]]:
    categorical = dict(config.get("categorical") or {})
    continuous = list(config.get("continuous") or [])
    return categorical, continuous


def _wide_deep_example(config: dict, n: int, rng: np.random.Generator):
    categorical, continuous = _wide_deep_inputs(config)
    x = {name: rng.integers(0, vocab, (n, 1)) for name, vocab in categorical.items()}
    x.update({name: rng.standard_normal((n, 1)).astype("float32") for name in continuous})
    classes = config.get("num_classes", 2)
    y = rng.integers(0, classes, (n, 1))
    return x, (y.astype("float32") if classes == 2 else y)


def _wide_deep_loss(config: dict):
    return (
        "binary_crossentropy" if config["num_classes"] == 2 else "sparse_categorical_crossentropy"
    )


@register(
    "wide_deep",
    task="recommendation",
    tiny={
        "categorical": {"user": 6, "item": 7, "genre": 3},
        "crossed": [["user", "genre"]],
        "cross_buckets": 16,
        "continuous": ["age"],
        "embedding_dim": 3,
        "hidden": (8,),
    },
    example=_wide_deep_example,
    loss=_wide_deep_loss,
    metrics=("accuracy",),
)
def wide_deep(
    categorical: Mapping[str, int] | None = None,
    crossed: Sequence[Sequence[str]] = (),
    continuous: Sequence[str] = (),
    cross_buckets: int = 1000,
    embedding_dim: int = 8,
    hidden: Sequence[int] = (64, 32),
    dropout: float = 0.0,
    num_classes: int = 2,
    name: str = "wide_deep",
) -> keras.Model:
    """Wide & Deep: a linear model over sparse and crossed ids plus an MLP over embeddings.

    ``categorical`` maps each categorical column to its vocabulary size (ids in
    ``[0, size)``); ``crossed`` lists groups of categorical columns whose combinations the wide
    part learns one weight for (hashed into ``cross_buckets`` bins); ``continuous`` names the
    numeric columns (fed to the deep part). There is one model input per column, shape
    ``(1,)``, named after it: the categorical columns in the order given, then the continuous
    ones. The output is a sigmoid probability ``(1,)`` for ``num_classes=2``, a softmax
    otherwise.

    Example::

        model = wide_deep(categorical={"user": 943, "item": 1682, "genre": 19},
                          crossed=[["user", "genre"]], continuous=["age"])
        model.fit({"user": u, "item": i, "genre": g, "age": a}, clicked)
    """
    categorical = {str(k): int(v) for k, v in (categorical or {}).items()}
    crossed = [[str(c) for c in group] for group in crossed]
    continuous = [str(c) for c in continuous]
    if not categorical and not continuous:
        raise ValueError("wide_deep needs at least one categorical or continuous column")
    for column, vocab in categorical.items():
        if vocab < 1:
            raise ValueError(f"categorical column {column!r} has vocabulary size {vocab}")
    for group in crossed:
        unknown = [c for c in group if c not in categorical]
        if len(group) < 2 or unknown:
            raise ValueError(
                f"crossed group {group} must name two or more categorical columns "
                f"(unknown: {unknown}; categorical: {sorted(categorical)})"
            )
    clash = set(categorical) & set(continuous)
    if clash:
        raise ValueError(f"columns {sorted(clash)} are both categorical and continuous")
    if num_classes < 2:
        raise ValueError(f"num_classes must be >= 2, got {num_classes}")

    cat_inputs = {c: keras.Input((1,), dtype="int64", name=c) for c in categorical}
    num_inputs = {c: keras.Input((1,), dtype="float32", name=c) for c in continuous}
    logits = 1 if num_classes == 2 else num_classes

    # Wide: one weight per id (an embedding of width `logits` is a linear layer over one-hot
    # ids without building the one-hot matrix), for every column and every crossed group.
    wide_terms = []
    for column, vocab in categorical.items():
        weights = keras.layers.Embedding(vocab, logits, name=f"wide_{column}")(cat_inputs[column])
        wide_terms.append(keras.layers.Flatten(name=f"wide_{column}_flat")(weights))
    for group in crossed:
        label = "_x_".join(group)
        ids = keras.layers.HashedCrossing(cross_buckets, name=f"cross_{label}")(
            tuple(cat_inputs[c] for c in group)
        )
        weights = keras.layers.Embedding(cross_buckets, logits, name=f"wide_{label}")(ids)
        wide_terms.append(keras.layers.Flatten(name=f"wide_{label}_flat")(weights))

    # Deep: dense embeddings of the categorical ids next to the continuous values.
    deep_terms = []
    for column, vocab in categorical.items():
        vectors = keras.layers.Embedding(vocab, embedding_dim, name=f"deep_{column}")(
            cat_inputs[column]
        )
        deep_terms.append(keras.layers.Flatten(name=f"deep_{column}_flat")(vectors))
    deep_terms += list(num_inputs.values())
    x = (
        keras.layers.Concatenate(name="deep_concat")(deep_terms)
        if len(deep_terms) > 1
        else deep_terms[0]
    )
    for i, units in enumerate(hidden):
        x = keras.layers.Dense(int(units), activation="relu", name=f"deep{i + 1}")(x)
        if dropout:
            x = keras.layers.Dropout(dropout, name=f"deep{i + 1}_dropout")(x)
    terms = [keras.layers.Dense(logits, name="deep_logit")(x), *wide_terms]
    logit = keras.layers.Add(name="wide_plus_deep")(terms) if len(terms) > 1 else terms[0]
    activation = "sigmoid" if num_classes == 2 else "softmax"
    output = keras.layers.Activation(activation, name="probability")(logit)
    return keras.Model([*cat_inputs.values(), *num_inputs.values()], output, name=name)


# ---- the leave-last-out ranking protocol -------------------------------------------------


def _check_columns(frame: pd.DataFrame, columns: Sequence[str], what: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ValueError(f"{what} lacks columns {missing}; it has {list(frame.columns)}")


def leave_last_out(
    interactions: pd.DataFrame,
    user_col: str = "user_id",
    time_col: str = "timestamp",
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Split off each user's latest interaction (ties broken by row order) as the test set.

    Returns ``(train, test)``; ``test`` has one row per user who has two or more
    interactions (a user with a single one stays in ``train``).

    Example::

        train, test = leave_last_out(ratings)   # ratings: user_id, item_id, timestamp
    """
    _check_columns(interactions, [user_col, time_col], "interactions")
    order = interactions.reset_index(drop=True)
    order = order.assign(_row=np.arange(len(order))).sort_values([user_col, time_col, "_row"])
    last = order.groupby(user_col).tail(1)
    counts = order.groupby(user_col)[user_col].transform("size")
    test_mask = order.index.isin(last.index) & (counts.to_numpy() > 1)
    train = order[~test_mask].drop(columns="_row").sort_index()
    test = order[test_mask].drop(columns="_row").sort_values(user_col)
    return train.reset_index(drop=True), test.reset_index(drop=True)


def sample_negatives(
    interactions: pd.DataFrame,
    num_negatives: int,
    seed: int = 0,
    num_items: int | None = None,
    user_col: str = "user_id",
    item_col: str = "item_id",
    per: str = "interaction",
) -> pd.DataFrame:
    """Items each user never interacted with, drawn uniformly: the negatives of implicit feedback.

    ``per="interaction"`` draws ``num_negatives`` for every row of ``interactions`` (NCF
    training: 4 negatives per positive); ``per="user"`` draws ``num_negatives`` distinct ones
    per user (the 99 of the evaluation protocol). Item ids are ``0 .. num_items - 1``
    (``num_items`` defaults to the largest id + 1). Returns a DataFrame of ``user_col``,
    ``item_col`` pairs.

    Example::

        negatives = sample_negatives(train, 4, seed=0, num_items=1682)
    """
    _check_columns(interactions, [user_col, item_col], "interactions")
    if num_negatives < 0:
        raise ValueError(f"num_negatives must be >= 0, got {num_negatives}")
    if per not in ("interaction", "user"):
        raise ValueError(f"per must be 'interaction' or 'user', got {per!r}")
    users = interactions[user_col].to_numpy()
    items = interactions[item_col].to_numpy().astype("int64")
    num_items = int(items.max()) + 1 if num_items is None else int(num_items)
    if items.min() < 0 or items.max() >= num_items:
        raise ValueError(f"{item_col} ids must be within [0, {num_items}), got {items.max()}")
    seen = pd.Series(items).groupby(users).agg(lambda s: set(s.tolist())).to_dict()
    rng = np.random.default_rng(seed)
    out_users, out_items = [], []
    if per == "user":
        for user in sorted(seen):
            unseen = num_items - len(seen[user])
            if unseen < num_negatives:
                raise ValueError(
                    f"user {user} has interacted with {len(seen[user])} of {num_items} items: "
                    f"fewer than {num_negatives} negatives are left"
                )
            out_items.append(_draw_unseen(rng, seen[user], num_items, num_negatives, True))
            out_users.append(np.full(num_negatives, user))
    else:
        for user, count in zip(*np.unique(users, return_counts=True), strict=True):
            if len(seen[user]) >= num_items and num_negatives:
                raise ValueError(f"user {user} has interacted with every item: no negatives")
            out_items.append(_draw_unseen(rng, seen[user], num_items, count * num_negatives))
            out_users.append(np.full(count * num_negatives, user))
    user_values = np.concatenate(out_users) if out_users else np.array([], dtype=users.dtype)
    item_values = np.concatenate(out_items) if out_items else np.array([], dtype="int64")
    return pd.DataFrame({user_col: user_values, item_col: item_values})


def _draw_unseen(
    rng: np.random.Generator, seen: set, num_items: int, count: int, distinct: bool = False
) -> np.ndarray:
    # Rejection sampling: most users touch a small share of the items, so few draws repeat.
    drawn: list[int] = []
    taken: set = set()
    while len(drawn) < count:
        for item in rng.integers(0, num_items, 2 * (count - len(drawn)) + 8).tolist():
            if item in seen or (distinct and item in taken):
                continue
            drawn.append(item)
            taken.add(item)
            if len(drawn) == count:
                break
    return np.asarray(drawn, dtype="int64")


def ranking_candidates(
    test: pd.DataFrame,
    interactions: pd.DataFrame,
    num_items: int,
    num_negatives: int = 99,
    seed: int = 0,
    user_col: str = "user_id",
    item_col: str = "item_id",
) -> np.ndarray:
    """The evaluation matrix ``(len(test), 1 + num_negatives)`` of item ids: each test row's
    positive item in column 0, then ``num_negatives`` items the user never interacted with in
    ``interactions`` (which should hold train and test).

    Example::

        candidates = ranking_candidates(test, ratings, num_items=1682)   # (943, 100)
    """
    _check_columns(test, [user_col, item_col], "test")
    negatives = sample_negatives(
        interactions, num_negatives, seed, num_items, user_col, item_col, per="user"
    )
    by_user = {
        user: group.to_numpy() for user, group in negatives.groupby(user_col, sort=False)[item_col]
    }
    rows = []
    for user, item in zip(test[user_col].to_numpy(), test[item_col].to_numpy(), strict=True):
        if user not in by_user:
            raise ValueError(f"test user {user} has no interactions in `interactions`")
        rows.append(np.concatenate([[item], by_user[user]]))
    return np.asarray(rows, dtype="int64").reshape(len(rows), 1 + num_negatives)


def score_candidates(
    model: keras.Model, users: np.ndarray, candidates: np.ndarray, batch_size: int = 4096
) -> np.ndarray:
    """Scores ``(users, candidates)`` of a (user_id, item_id) model such as :func:`ncf`.

    Example::

        scores = score_candidates(model, test["user_id"].to_numpy(), candidates)
    """
    users = np.asarray(users, dtype="int64").ravel()
    candidates = np.asarray(candidates, dtype="int64")
    if candidates.ndim != 2 or len(candidates) != len(users):
        raise ValueError(
            f"candidates must be (users, items) with one row per user ({len(users)}), got "
            f"shape {candidates.shape}"
        )
    pairs_u = np.repeat(users, candidates.shape[1])[:, None]
    pairs_i = candidates.reshape(-1, 1)
    scores = model.predict([pairs_u, pairs_i], batch_size=batch_size, verbose=0)
    return np.asarray(scores, dtype="float64").reshape(candidates.shape)


def positive_ranks(scores: np.ndarray, positive_col: int = 0) -> np.ndarray:
    """0-based rank of each row's positive among its candidates (0 = scored highest).

    A negative scored equal to the positive counts as ranked above it: a model that scores
    every item alike gets no credit for the order of the columns.

    Example::

        positive_ranks(np.array([[0.9, 0.1, 0.5], [0.2, 0.3, 0.9]]))   # [0, 2]
    """
    scores = np.asarray(scores, dtype="float64")
    if scores.ndim != 2 or not 0 <= positive_col < scores.shape[1]:
        raise ValueError(
            f"scores must be (users, candidates) with column {positive_col}, got {scores.shape}"
        )
    if not np.all(np.isfinite(scores)):
        raise ValueError("scores holds NaN or inf values")
    positive = scores[:, positive_col : positive_col + 1]
    others = np.delete(scores, positive_col, axis=1)
    return np.sum(others >= positive, axis=1)


def hit_ratio_at_k(scores: np.ndarray, k: int = 10, positive_col: int = 0) -> float:
    """Share of rows whose positive is among the ``k`` highest scores (HR@k).

    Example::

        hit_ratio_at_k(np.array([[0.9, 0.1, 0.5]]), k=1)   # 1.0
    """
    _check_k(k)
    return float(np.mean(positive_ranks(scores, positive_col) < k))


def ndcg_at_k(scores: np.ndarray, k: int = 10, positive_col: int = 0) -> float:
    """Mean NDCG@k with one relevant item per row: ``1 / log2(rank + 2)`` if it is in the top k.

    Example::

        ndcg_at_k(np.array([[0.5, 0.9, 0.7, 0.1]]), k=10)   # positive 3rd: 1/log2(4) = 0.5
    """
    _check_k(k)
    ranks = positive_ranks(scores, positive_col)
    return float(np.mean(np.where(ranks < k, 1.0 / np.log2(ranks + 2.0), 0.0)))


def _check_k(k: int) -> None:
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
