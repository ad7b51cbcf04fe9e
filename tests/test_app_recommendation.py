"""apps/recommendation: MovieLens -> NCF / Wide & Deep on the distributed trainer -> HR@10 next
to ALS and popularity -> top-k Parquet. Its --help, bad input, notebook and submit.sh:
tests/test_apps_contract.py with apps/recommendation/contract.json."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from sparkzoo.apps.common import read_metrics
from sparkzoo.apps.recommendation import pipeline
from sparkzoo.apps.recommendation.__main__ import MODELS, TOP_K, main


def tiny_data(users: int = 6, items: int = 400, per_user: int = 30, seed: int = 0):
    rng = np.random.default_rng(seed)
    rows = []
    for user in range(users):
        for t, item in enumerate(rng.choice(items, per_user, replace=False)):
            rows.append((100 + user, 1000 + int(item), 4.0, 10 * t))
    ratings = pd.DataFrame(rows, columns=["user_id", "item_id", "rating", "timestamp"])
    return pipeline.MovieLensData(ratings, source="tiny")


def test_index_ids_maps_raw_ids_to_contiguous_rows():
    data = tiny_data()
    ids = pipeline.index_ids(data)
    assert ids.num_users == 6
    assert ids.ratings["user_id"].between(0, 5).all()
    assert ids.ratings["item_id"].max() == ids.num_items - 1
    # the mapping goes back to the raw ids, row for row
    np.testing.assert_array_equal(
        ids.user_ids[ids.ratings["user_id"]], data.ratings["user_id"].to_numpy()
    )
    np.testing.assert_array_equal(
        ids.item_ids[ids.ratings["item_id"]], data.ratings["item_id"].to_numpy()
    )


def test_index_ids_names_a_missing_column_and_a_missing_id():
    data = tiny_data()
    with pytest.raises(ValueError, match="timestamp"):
        pipeline.index_ids(pipeline.MovieLensData(data.ratings.drop(columns="timestamp")))
    broken = data.ratings.astype({"item_id": "float64"})
    broken.loc[3, "item_id"] = np.nan
    with pytest.raises(ValueError, match="row 3"):
        pipeline.index_ids(pipeline.MovieLensData(broken))


def test_sample_users_keeps_whole_histories():
    data = pipeline.load_movielens()
    small = pipeline.sample_users(data, 0.1, seed=1)
    kept = small.ratings["user_id"].unique()
    assert 50 < len(kept) < 150
    full_counts = data.ratings["user_id"].value_counts()
    np.testing.assert_array_equal(
        small.ratings["user_id"].value_counts().sort_index(), full_counts.loc[sorted(kept)]
    )
    with pytest.raises(ValueError, match="too few"):
        pipeline.sample_users(tiny_data(users=3), 0.01)


def test_split_needs_enough_movies_for_the_negatives():
    ids = pipeline.index_ids(tiny_data(items=60, per_user=10))
    with pytest.raises(ValueError, match="99 negatives"):
        pipeline.make_split(ids)
    split = pipeline.make_split(pipeline.index_ids(tiny_data()), negatives=99)
    assert split.candidates.shape == (6, 100)
    assert len(split.train) == 6 * 29


def test_wide_deep_inputs_use_the_side_features_of_movielens_100k():
    ids = pipeline.index_ids(pipeline.load_movielens())
    assert (ids.num_users, ids.num_items) == (943, 1682)
    config = pipeline.model_config("wide_deep", ids)
    assert set(config["categorical"]) == {"user", "item", "genre", "decade", "occupation", "gender"}
    inputs = pipeline.model_inputs(
        "wide_deep", config, np.array([0, 1]), np.array([5, 6]), ids.side
    )
    assert sorted(inputs) == sorted([*config["categorical"], "age"])
    assert inputs["genre"].shape == (2, 1)
    assert inputs["occupation"][1, 0] == ids.side["occupation"][1]
    model = pipeline.build_model("wide_deep", config)
    assert model.predict(inputs, verbose=0).shape == (2, 1)
    with pytest.raises(ValueError, match="unknown model"):
        pipeline.model_config("bpr", ids)


def test_top_k_skips_seen_movies_and_ranks_by_score():
    ids = pipeline.index_ids(tiny_data())
    config = pipeline.model_config("ncf", ids)
    model = pipeline.build_model("ncf", config)
    seen = [np.unique(g.to_numpy()) for _, g in ids.ratings.groupby("user_id")["item_id"]]
    spec = {
        "key": "test",
        "model": "ncf",
        "config": config,
        "weights": model.get_weights(),
        "side": None,
        "seen": seen,
        "user_ids": ids.user_ids,
        "item_ids": ids.item_ids,
        "titles": np.array([f"movie {i}" for i in ids.item_ids]),
    }
    scorer = pipeline.scoring_model(spec)
    batches = [np.array([0, 1]), np.array([5])]
    top = pd.concat(pd.DataFrame(pipeline.top_k_batch(scorer, b, spec, 5)) for b in batches)
    assert list(top.groupby("user_id").size()) == [5, 5, 5]
    for user, group in top.groupby("user_id"):
        assert list(group["rank"]) == [1, 2, 3, 4, 5]
        assert group["score"].is_monotonic_decreasing
        rated = set(tiny_data().ratings.query(f"user_id == {user}").item_id)
        assert not rated & set(group["item_id"])  # never a movie the user already rated
    expected = model.predict(
        [np.zeros((ids.num_items, 1)), np.arange(ids.num_items)[:, None]], verbose=0
    ).ravel()
    expected[seen[0]] = -np.inf
    assert list(top[top.user_id == 100]["item_id"]) == list(ids.item_ids[np.argsort(-expected)[:5]])


def test_cli_choices_are_the_pipelines():
    assert (pipeline.MODELS, pipeline.TOP_K) == (MODELS, TOP_K)


def _check_run(metrics: dict, recommendations: pd.DataFrame, top_k: int) -> None:
    figures = metrics["metrics"]
    for name in ("als", "popularity"):
        assert 0.0 <= figures[name]["hr@10"] <= 1.0
        assert figures[name]["ndcg@10"] <= figures[name]["hr@10"]
    assert 0.0 <= figures["hr@10"] <= 1.0
    assert figures["candidates"] == 100
    assert len(figures["hr_curve"][figures["model"]]) == 20
    assert list(recommendations.columns) == ["user_id", "rank", "item_id", "title", "score"]
    assert recommendations["user_id"].nunique() == figures["users"]
    assert (recommendations.groupby("user_id").size() == top_k).all()


def test_cli_trains_ncf_and_writes_recommendations(spark, tmp_path):
    out = tmp_path / "out"
    rc = main(["--output", str(out), "--sample-rate", "0.05", "--rounds", "1", "--top-k", "5"])
    assert rc == 0
    assert sorted(p.name for p in out.iterdir()) == [
        "hit_ratio.png",
        "metrics.json",
        "model",
        "recommendations",
    ]
    recommendations = pd.read_parquet(out / "recommendations")
    metrics = read_metrics(str(out))
    _check_run(metrics, recommendations, 5)
    assert metrics["args"]["model"] == "ncf"
    # every recommended movie is one the user never rated, titles filled in
    ratings = pipeline.load_movielens().ratings
    rated = set(zip(ratings.user_id, ratings.item_id, strict=True))
    assert not any(
        (u, i) in rated
        for u, i in zip(recommendations.user_id, recommendations.item_id, strict=True)
    )
    assert (recommendations["title"] != "").mean() > 0.95
    assert (out / "hit_ratio.png").read_bytes()[:4] == b"\x89PNG"


@pytest.mark.hdfs
def test_cli_wide_deep_writes_to_hdfs(spark, hdfs):
    target = f"{hdfs}/apps/recommendation"
    assert (
        main(["--output", target, "--model", "wide_deep", "--sample-rate", "0.05", "--rounds", "1"])
        == 0
    )
    metrics = read_metrics(target)
    assert metrics["metrics"]["model"] == "wide_deep"
    recommendations = spark.read.parquet(f"{target}/recommendations").toPandas()
    _check_run(metrics, recommendations, 10)
