"""NeuMF, Wide & Deep and the leave-last-out ranking protocol (HR@k, NDCG@k)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import tensorflow as tf

from sparkzoo import models
from sparkzoo.models.recommendation import (
    hit_ratio_at_k,
    leave_last_out,
    ndcg_at_k,
    positive_ranks,
    ranking_candidates,
    sample_negatives,
    score_candidates,
)

# ---- metrics ----------------------------------------------------------------------------


def _scores_with_positive_at(rank: int, columns: int = 100) -> np.ndarray:
    """One row: the positive (column 0) is the ``rank``-th highest score (1-based)."""
    negatives = np.linspace(0.9, 0.0, columns - 1)  # strictly decreasing, all distinct
    positive = 1.0 if rank == 1 else (negatives[rank - 2] + negatives[rank - 1]) / 2
    return np.r_[positive, negatives][None, :]


def test_hit_ratio_and_ndcg_of_known_rankings():
    first, third, eleventh = (_scores_with_positive_at(r) for r in (1, 3, 11))
    assert positive_ranks(np.vstack([first, third, eleventh])).tolist() == [0, 2, 10]
    assert hit_ratio_at_k(first, 10) == 1.0 and ndcg_at_k(first, 10) == 1.0
    assert hit_ratio_at_k(third, 10) == 1.0
    assert ndcg_at_k(third, 10) == pytest.approx(1 / math.log2(4)) == pytest.approx(0.5)
    assert hit_ratio_at_k(third, 2) == 0.0 and ndcg_at_k(third, 2) == 0.0
    assert hit_ratio_at_k(eleventh, 10) == 0.0 and ndcg_at_k(eleventh, 10) == 0.0
    both = np.vstack([first, third, eleventh])
    assert hit_ratio_at_k(both, 10) == pytest.approx(2 / 3)
    assert ndcg_at_k(both, 10) == pytest.approx((1 + 0.5 + 0) / 3)


def test_positive_in_another_column_and_ties_count_against_it():
    scores = np.array([[0.2, 0.9, 0.5]])
    assert hit_ratio_at_k(scores, k=1, positive_col=1) == 1.0
    # A model scoring everything alike earns nothing from the column order.
    flat = np.full((4, 100), 0.5)
    assert hit_ratio_at_k(flat, 10) == 0.0 and positive_ranks(flat).tolist() == [99] * 4


def test_metrics_refuse_bad_input():
    with pytest.raises(ValueError, match=r"scores must be \(users, candidates\).*\(5,\)"):
        hit_ratio_at_k(np.zeros(5))
    with pytest.raises(ValueError, match="k must be >= 1, got 0"):
        ndcg_at_k(np.zeros((2, 3)), k=0)
    with pytest.raises(ValueError, match="NaN"):
        ndcg_at_k(np.array([[np.nan, 1.0]]))


# ---- the protocol -----------------------------------------------------------------------


def _interactions() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "user_id": [0, 0, 0, 1, 1, 2],
            "item_id": [3, 1, 4, 1, 5, 2],
            "timestamp": [10, 30, 20, 5, 5, 7],
        }
    )


def test_leave_last_out_holds_out_each_users_latest_item():
    train, test = leave_last_out(_interactions())
    # user 0: latest is item 1 (t=30); user 1: a tie at t=5, the later row wins; user 2 has
    # a single interaction and stays in train.
    assert test[["user_id", "item_id"]].values.tolist() == [[0, 1], [1, 5]]
    assert sorted(map(tuple, train[["user_id", "item_id"]].values.tolist())) == [
        (0, 3),
        (0, 4),
        (1, 1),
        (2, 2),
    ]
    with pytest.raises(ValueError, match=r"lacks columns \['timestamp'\]"):
        leave_last_out(_interactions().drop(columns="timestamp"))


def test_sample_negatives_never_returns_a_seen_item_and_is_seeded():
    data = _interactions()
    negatives = sample_negatives(data, 4, seed=0, num_items=8)
    assert len(negatives) == 4 * len(data)
    assert negatives.groupby("user_id").size().to_dict() == {0: 12, 1: 8, 2: 4}
    seen = set(zip(data.user_id, data.item_id, strict=True))
    pairs = set(zip(negatives.user_id, negatives.item_id, strict=True))
    assert not pairs & seen
    assert negatives.item_id.between(0, 7).all()
    assert negatives.equals(sample_negatives(data, 4, seed=0, num_items=8))
    assert not negatives.equals(sample_negatives(data, 4, seed=1, num_items=8))

    per_user = sample_negatives(data, 5, seed=0, num_items=8, per="user")
    assert per_user.groupby("user_id").item_id.nunique().to_dict() == {0: 5, 1: 5, 2: 5}
    with pytest.raises(ValueError, match="user 0 has interacted with 3 of 8 items: fewer than 6"):
        sample_negatives(data, 6, num_items=8, per="user")
    with pytest.raises(ValueError, match=r"ids must be within \[0, 4\)"):
        sample_negatives(data, 1, num_items=4)


def test_ranking_candidates_put_the_positive_first_and_unseen_items_after():
    data = _interactions()
    _, test = leave_last_out(data)
    candidates = ranking_candidates(test, data, num_items=10, num_negatives=5, seed=0)
    assert candidates.shape == (2, 6)
    assert candidates[:, 0].tolist() == [1, 5]
    assert not set(candidates[0, 1:]) & {1, 3, 4}
    assert not set(candidates[1, 1:]) & {1, 5}
    assert all(len(set(row[1:])) == 5 for row in candidates)


# ---- NeuMF ------------------------------------------------------------------------------


def test_ncf_scores_are_probabilities_of_shape_batch_by_one():
    model = models.get("ncf", num_users=7, num_items=9, factors=3, mlp_layers=(8, 4))
    assert [t.name for t in model.inputs] == ["user_id", "item_id"]
    users = np.arange(7).reshape(-1, 1)
    scores = model([users, users + 2]).numpy()
    assert scores.shape == (7, 1) and np.all((scores > 0) & (scores < 1))
    # GMF 3 + MLP 4 per user and per item; MLP 8->4, then 3 + 4 -> 1.
    assert model.count_params() == (7 + 9) * (3 + 4) + (8 * 4 + 4) + (7 + 1)
    with pytest.raises(ValueError, match="mlp_layers must start with a size >= 2"):
        models.get("ncf", mlp_layers=())


def test_ncf_learns_which_group_of_items_each_group_of_users_likes():
    # Users 0-19 touch 6 of items 0-9, users 20-39 6 of items 10-19. Each user's last item is
    # held out; the model has seen it only through the other users of the group, and must
    # rank it above 9 items of the other group.
    tf.keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    users = np.arange(40)
    liked = [u // 20 * 10 + rng.permutation(10)[:6] for u in users]
    data = pd.DataFrame(
        {
            "user_id": np.repeat(users, 6),
            "item_id": np.concatenate(liked),
            "timestamp": np.tile(np.arange(6), len(users)),
        }
    )
    train, test = leave_last_out(data)
    # Negatives drawn against all the data, so no held-out item is taught as disliked.
    negatives = sample_negatives(data, 3, seed=0, num_items=20)
    rows = pd.concat([train.assign(label=1.0), negatives.assign(label=0.0)])
    model = models.get("ncf", num_users=40, num_items=20, factors=4, mlp_layers=(8, 4))
    model.compile(tf.keras.optimizers.Adam(0.01), "binary_crossentropy")
    model.fit(
        [rows.user_id.to_numpy()[:, None], rows.item_id.to_numpy()[:, None]],
        rows.label.to_numpy(),
        batch_size=64,
        epochs=10,
        verbose=0,
    )
    other_group = [(np.arange(10) + (10 if u < 20 else 0))[:9] for u in test.user_id]
    candidates = np.column_stack([test.item_id.to_numpy(), np.array(other_group)])
    scores = score_candidates(model, test.user_id.to_numpy(), candidates)
    assert hit_ratio_at_k(scores, k=3) >= 0.9
    assert ndcg_at_k(scores, k=10) > ndcg_at_k(np.random.default_rng(1).random((40, 10)), k=10)


# ---- Wide & Deep ------------------------------------------------------------------------

CONFIG = {
    "categorical": {"user": 5, "item": 6, "genre": 3},
    "crossed": [["user", "genre"]],
    "continuous": ["age", "price"],
    "cross_buckets": 8,
    "embedding_dim": 2,
    "hidden": (4,),
}


def _wide_deep_batch(n: int = 6) -> dict:
    rng = np.random.default_rng(0)
    batch = {c: rng.integers(0, v, (n, 1)) for c, v in CONFIG["categorical"].items()}
    batch |= {c: rng.standard_normal((n, 1)).astype("float32") for c in CONFIG["continuous"]}
    return batch


def test_wide_deep_has_one_input_per_column_in_order():
    model = models.get("wide_deep", **CONFIG)
    assert [t.name for t in model.inputs] == ["user", "item", "genre", "age", "price"]
    batch = _wide_deep_batch()
    probabilities = model(batch).numpy()
    assert probabilities.shape == (6, 1) and np.all((probabilities > 0) & (probabilities < 1))
    # The same values as a list in input order give the same scores.
    as_list = model([batch[t.name] for t in model.inputs]).numpy()
    np.testing.assert_allclose(as_list, probabilities, rtol=1e-6)
    assert model.get_layer("wide_user_x_genre").input_dim == 8


def test_wide_deep_multiclass_and_bad_configs():
    model = models.get("wide_deep", **{**CONFIG, "num_classes": 4})
    probabilities = model(_wide_deep_batch()).numpy()
    assert probabilities.shape == (6, 4)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-5)
    assert models.family("wide_deep").loss_for({"num_classes": 4}) == (
        "sparse_categorical_crossentropy"
    )
    with pytest.raises(ValueError, match=r"crossed group \['user', 'city'\].*unknown: \['city'\]"):
        models.get("wide_deep", categorical={"user": 3}, crossed=[["user", "city"]])
    with pytest.raises(ValueError, match=r"columns \['age'\] are both categorical and continuous"):
        models.get("wide_deep", categorical={"age": 3}, continuous=["age"])
    with pytest.raises(ValueError, match="at least one categorical or continuous column"):
        models.get("wide_deep")
