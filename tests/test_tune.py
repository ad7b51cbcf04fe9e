"""sparkzoo.tune: the space, the pieces of a trial, and whole searches on local[2] Spark with a
real MLflow store (the standalone cluster's search is in test_cluster.py)."""

from __future__ import annotations

import os
import signal
import time

import mlflow
import numpy as np
import pandas as pd
import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

from sparkzoo.tune.plot import search_figure
from sparkzoo.tune.space import grid, grid_size, nest, parse_space
from sparkzoo.tune.tracking import flat_params
from sparkzoo.tune.trials import takes_data


# ---- the space (fast) ---------------------------------------------------------------------
def test_short_forms_become_optuna_distributions():
    space = parse_space(
        {
            "batch_size": [16, 32],
            "learning_rate": ("loguniform", 1e-4, 1e-1),
            "dropout": ("uniform", 0.0, 0.5),
            "epochs": ("int", 1, 5),
            "momentum": FloatDistribution(0.5, 0.9),
            "model_params": {"units": ("int", 8, 64, 8), "activation": ["relu", "tanh"]},
        }
    )
    assert space["batch_size"] == CategoricalDistribution([16, 32])
    assert space["learning_rate"] == FloatDistribution(1e-4, 1e-1, log=True)
    assert space["dropout"] == FloatDistribution(0.0, 0.5)
    assert space["epochs"] == IntDistribution(1, 5)
    assert space["momentum"] == FloatDistribution(0.5, 0.9)
    assert space["model_params.units"] == IntDistribution(8, 64, step=8)
    flat = {"batch_size": 16, "model_params.units": 24, "model_params.activation": "tanh"}
    assert nest(flat) == {"batch_size": 16, "model_params": {"units": 24, "activation": "tanh"}}
    assert flat_params(nest(flat)) == {
        "batch_size": "16",
        "model_params.units": "24",
        "model_params.activation": "tanh",
    }


@pytest.mark.parametrize(
    ("space", "message"),
    [
        ({}, "non-empty dict"),
        ({"lr": ("loguniform", 0, 1)}, "'lr'.*low > 0"),
        ({"lr": ("uniform", 2, 1)}, "'lr'.*low 2 is above high 1"),
        ({"lr": ("normal", 0, 1)}, "'lr'"),
        ({"units": []}, "'units'.*at least one"),
        ({"model_params": {}}, "model_params"),
        ({"lr": ("uniform", 0, float("inf"))}, "finite"),
    ],
)
def test_a_bad_space_is_refused_naming_the_key(space, message):
    with pytest.raises(ValueError, match=message):
        parse_space(space)


def test_grid_enumerates_lists_and_int_ranges_and_refuses_float_ranges():
    values = grid(parse_space({"a": [1, 2], "b": ("int", 0, 2)}))
    assert values == {"a": [1, 2], "b": [0, 1, 2]}
    assert grid_size(values) == 6
    with pytest.raises(ValueError, match="'lr'"):
        grid(parse_space({"lr": ("uniform", 0.1, 0.2)}))


def test_a_trial_function_takes_data_when_it_has_a_third_parameter():
    assert not takes_data(lambda params, report: 0.0)
    assert takes_data(lambda params, report, data: 0.0)
    assert takes_data(lambda *args: 0.0)


def test_the_estimator_trial_gets_the_trials_values():
    import tensorflow as tf

    from sparkzoo.trainer import KerasEstimator
    from sparkzoo.tune.driver import _trial_estimator, with_learning_rate

    def builder(units=4):
        return tf.keras.Sequential([tf.keras.Input((3,)), tf.keras.layers.Dense(units)])

    base = KerasEstimator(model=builder, optimizer=tf.keras.optimizers.SGD(0.1), batch_size=8)
    trial = _trial_estimator(
        base,
        {"batch_size": 64, "learning_rate": 0.003, "model_params": {"units": 7}},
        workers=1,
        run_name="t",
    )
    assert trial.get("batch_size") == 64 and base.get("batch_size") == 8
    assert trial.get("model")().layers[-1].units == 7
    assert float(trial.get("optimizer").learning_rate) == pytest.approx(0.003)
    assert type(trial.get("optimizer")).__name__ == "SGD"
    assert trial.get("log_to_mlflow") is False and trial.get("max_retries") == 0
    assert float(with_learning_rate("adam", 0.5).learning_rate) == pytest.approx(0.5)


def test_the_plot_marks_pruned_and_failed_trials():
    trials = pd.DataFrame(
        {
            "number": [0, 1, 2],
            "value": [0.8, None, None],
            "state": ["COMPLETE", "PRUNED", "FAIL"],
            "finished_s": [3.0, 4.0, 5.0],
            "epochs": [[0.5, 0.8], [0.2], []],
        }
    )
    figure = search_figure(trials, "val_accuracy", "max")
    left, right = figure.axes
    labels = [t.get_text() for t in left.get_legend().get_texts()]
    assert labels == ["complete", "pruned (last epoch's value)", "failed", "best so far"]
    assert len(right.lines) == 2  # the failed trial reported no epoch


# ---- whole searches on Spark --------------------------------------------------------------
@pytest.fixture()
def store(tmp_path):
    return f"sqlite:///{tmp_path / 'mlflow.db'}"


@pytest.mark.slow
def test_a_function_search_records_failures_retries_the_dead_and_stops_bad_trials_early(
    spark, store, tmp_path
):
    from sparkzoo.tune import search

    marker = str(tmp_path / "killed-once")
    # x = 2 is the optimum. The median pruner (after 2 completed trials) stops the x = -4 and
    # x = -5 trials early; the die trial's first attempt kills its Python worker.
    plan = [("ok", 2.0), ("ok", 1.5), ("raise", 1.0), ("die", 2.1), ("ok", -4.0), ("ok", -5.0)]

    # Defined here, not at module level, so the executors unpickle it by value instead of
    # importing this test module (and MLflow with it) in every Python worker.
    def objective(params, report):
        kind, x = plan[params["i"]]
        if kind == "raise":
            raise ArithmeticError(f"trial with x={x} raised")
        if kind == "die" and not os.path.exists(marker):
            open(marker, "w").close()
            os.kill(os.getpid(), signal.SIGKILL)
        for epoch in range(1, 7):
            report(epoch=epoch, score=-((x - 2) ** 2))
            time.sleep(0.3)
        return {"score": -((x - 2) ** 2)}

    result = search(
        objective,
        {"i": list(range(len(plan)))},
        metric="score",
        algorithm="grid",
        num_trials=None,
        parallelism=2,
        early_stopping="median",
        max_failures=1,
        tracking_uri=store,
        experiment_name="tune-test",
        verbose=False,
    )
    trials = result.trials.set_index(result.trials["params"].map(lambda p: p["i"]))
    assert len(trials) == 6
    assert trials.loc[2, "state"] == "FAIL" and "ArithmeticError" in trials.loc[2, "error"]
    assert trials.loc[3, "state"] == "COMPLETE", trials[
        ["state", "seconds", "attempts", "error"]
    ].to_string()
    assert trials.loc[3, "attempts"] == 2
    assert trials.loc[3, "value"] == pytest.approx(-0.01)
    for bad in (4, 5):
        assert trials.loc[bad, "state"] == "PRUNED"
        assert len(trials.loc[bad, "epochs"]) < 6  # stopped before its last epoch
    assert result.best_params == {"i": 0} and result.best_value == 0.0
    assert os.path.getsize(result.plot_path) > 10_000

    client = mlflow.MlflowClient(store)
    children = client.search_runs(
        [client.get_run(result.run_id).info.experiment_id],
        f"tags.mlflow.parentRunId = '{result.run_id}'",
    )
    statuses = sorted(run.info.status for run in children)
    assert statuses == ["FAILED", "FINISHED", "FINISHED", "FINISHED", "KILLED", "KILLED"]
    assert client.get_run(result.run_id).data.metrics["best_value"] == 0.0


@pytest.mark.slow
def test_a_grid_over_an_estimator_runs_each_combination_once_and_finds_the_better_rate(
    spark, store
):
    import tensorflow as tf

    from sparkzoo.datasets.loaders import digits
    from sparkzoo.trainer import KerasEstimator, KerasModel
    from sparkzoo.tune import search

    def mlp(units=16):
        return tf.keras.Sequential(
            [
                tf.keras.Input((64,)),
                tf.keras.layers.Dense(units, activation="relu"),
                tf.keras.layers.Dense(10, activation="softmax"),
            ]
        )

    estimator = KerasEstimator(
        model=mlp,
        optimizer=tf.keras.optimizers.SGD(1e-5),  # the bad default the search must beat
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
        feature_cols=["pixels"],
        label_cols=["label"],
        batch_size=32,
        epochs=2,
        validation=0.2,
        tracking_uri=store,
        experiment_name="tune-estimator",
    )
    result = search(
        estimator,
        {"learning_rate": [1e-5, 0.3], "model_params": {"units": [8, 32]}},
        df=digits(spark=spark),
        metric="val_accuracy",
        algorithm="grid",
        num_trials=None,
        verbose=False,
    )
    trials = result.trials
    assert len(trials) == 4 and set(trials["state"]) == {"COMPLETE"}
    combos = {(p["learning_rate"], p["model_params"]["units"]) for p in trials["params"]}
    assert combos == {(1e-5, 8), (1e-5, 32), (0.3, 8), (0.3, 32)}
    slow = trials[[p["learning_rate"] == 1e-5 for p in trials["params"]]]["value"]
    assert result.best_params["learning_rate"] == 0.3
    assert result.best_value > slow.max() + 0.3  # clearly better than the bad default
    assert isinstance(result.best_model, KerasModel)
    scored = result.best_model.transform(digits(spark=spark).limit(50)).toPandas()
    assert np.mean(scored["prediction"].map(np.argmax) == scored["label"]) > 0.5

    client = mlflow.MlflowClient(store)
    parent = client.get_run(result.run_id)
    assert parent.data.tags["best_trial"] == str(
        int(trials.loc[trials["value"].idxmax(), "number"])
    )
    mlflow.set_tracking_uri(store)  # the best model is a logged model of the search's run
    try:
        loaded = mlflow.pyfunc.load_model(result.model_uri)
        assert len(loaded.predict(digits().head(3)[["pixels"]])) == 3
    finally:
        mlflow.set_tracking_uri(None)
    children = client.search_runs(
        [parent.info.experiment_id], f"tags.mlflow.parentRunId = '{result.run_id}'"
    )
    assert len(children) == 4
    assert all(len(client.get_metric_history(c.info.run_id, "val_accuracy")) == 2 for c in children)


@pytest.mark.spark
def test_bad_search_arguments_fail_before_any_trial(spark):
    from sparkzoo.trainer import KerasEstimator
    from sparkzoo.tune import search

    fn = lambda params, report: 0.0  # noqa: E731
    with pytest.raises(ValueError, match="mode"):
        search(fn, {"x": [1]}, metric="m", mode="best")
    with pytest.raises(ValueError, match="algorithm"):
        search(fn, {"x": [1]}, metric="m", algorithm="bayes")
    with pytest.raises(ValueError, match="third parameter"):
        search(fn, {"x": [1]}, metric="m", df=spark.range(3))
    with pytest.raises(ValueError, match="'bogus' is not a KerasEstimator Param"):
        search(KerasEstimator(), {"bogus": [1]}, metric="m", df=spark.range(3))
    with pytest.raises(ValueError, match="needs df"):
        search(KerasEstimator(), {"epochs": [1]}, metric="m")


@pytest.mark.slow
def test_a_trial_can_be_a_ring_of_ranks(spark):
    import tensorflow as tf

    from sparkzoo.datasets.loaders import digits
    from sparkzoo.trainer import KerasEstimator
    from sparkzoo.tune import search

    estimator = KerasEstimator(
        model=lambda: tf.keras.Sequential(
            [tf.keras.Input((64,)), tf.keras.layers.Dense(10, activation="softmax")]
        ),
        loss="sparse_categorical_crossentropy",
        feature_cols=["pixels"],
        label_cols=["label"],
        epochs=1,
        validation=0.2,
        log_to_mlflow=False,
    )
    result = search(
        estimator,
        {"batch_size": [32]},
        df=digits(spark=spark),
        metric="val_loss",
        mode="min",
        algorithm="grid",
        num_trials=None,
        workers_per_trial=2,  # both of local[2]'s slots: one trial at a time
        log_to_mlflow=False,
        verbose=False,
    )
    assert list(result.trials["state"]) == ["COMPLETE"]
    assert result.best_model.summary["num_workers"] == 2
