"""The trainer on a real local[2] Spark with real Horovod rings (marker: spark)."""

from __future__ import annotations

import json
import os
import signal
import time

import numpy as np
import pytest

from sparkzoo.trainer import (
    HorovodRunner,
    KerasEstimator,
    KerasModel,
    RankFailedError,
    TrainingFailedError,
)
from sparkzoo.trainer.columns import ColumnError, prepare_columns

pytestmark = pytest.mark.spark


# ---- data and models ------------------------------------------------------------------------
def _blobs(n: int = 800, seed: int = 0):
    """Two separable classes in 4 dimensions: features as an array column and as scalars."""
    import pandas as pd

    rng = np.random.default_rng(seed)
    label = rng.integers(0, 2, n)
    x = rng.normal(size=(n, 4)).astype(np.float32) + (label[:, None] * 2 - 1) * 2.0
    return pd.DataFrame(
        {"features": list(x), **{f"x{i}": x[:, i] for i in range(4)}, "label": label}
    )


@pytest.fixture(scope="module")
def blobs(spark):
    return spark.createDataFrame(_blobs()).cache()


def build_mlp():
    import tensorflow as tf

    tf.keras.utils.set_random_seed(0)
    return tf.keras.Sequential(
        [
            tf.keras.layers.Input((4,)),
            tf.keras.layers.Dense(8, activation="relu"),
            tf.keras.layers.Dense(2, activation="softmax"),
        ],
        name="mlp",
    )


def _estimator(**overrides):
    params = dict(
        model=build_mlp,
        optimizer="adam_0.01",
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
        feature_cols=["features"],
        label_cols=["label"],
        batch_size=32,
        epochs=2,
        num_workers=2,
        log_to_mlflow=False,
        verbose=1,
    )
    params |= overrides
    if params["optimizer"] == "adam_0.01":
        import tensorflow as tf

        params["optimizer"] = tf.keras.optimizers.Adam(0.01)
    return KerasEstimator(**params)


def _accuracy(model: KerasModel, df) -> float:
    scored = model.transform(df).select("label", "prediction").toPandas()
    predicted = np.argmax(np.stack(scored["prediction"]), axis=1)
    return float((predicted == scored["label"]).mean())


# ---- HorovodRunner --------------------------------------------------------------------------
def _allreduce_rank(offset):
    import horovod.tensorflow as hvd
    import tensorflow as tf

    print(f"rank {hvd.rank()} says hi")
    return float(hvd.allreduce(tf.constant(hvd.rank() + offset), op=hvd.Sum).numpy())


@pytest.mark.horovod
def test_runner_returns_rank_zeros_value_and_prefixes_output(spark, capsys):
    runner = HorovodRunner(np=2, spark=spark, driver_log_verbosity="all")
    assert runner.run(_allreduce_rank, offset=1.0) == 3.0
    out = capsys.readouterr().out
    assert "[0]<stdout>: rank 0 says hi" in out and "[1]<stdout>: rank 1 says hi" in out


@pytest.mark.horovod
def test_runner_on_the_driver_is_one_rank():
    assert HorovodRunner(np=-1).run(_allreduce_rank, offset=5.0) == 5.0


def _fail_on_rank_one():
    import horovod.tensorflow as hvd
    import tensorflow as tf

    if hvd.rank() == 1:
        raise KeyError("no such feature")
    hvd.allreduce(tf.constant(1.0))


@pytest.mark.horovod
def test_runner_raises_the_failing_ranks_traceback(spark):
    with pytest.raises(RankFailedError) as caught:
        HorovodRunner(np=2, spark=spark).run(_fail_on_rank_one)
    assert caught.value.rank == 1
    assert "KeyError: 'no such feature'" in str(caught.value)
    assert "_fail_on_rank_one" in caught.value.remote_traceback


@pytest.mark.horovod
def test_runner_refuses_more_ranks_than_slots_within_seconds(spark):
    start = time.monotonic()
    with pytest.raises(ValueError, match=r"asked for 5 Horovod ranks .* 2 task slots"):
        HorovodRunner(np=5, spark=spark).run(_allreduce_rank, offset=0.0)
    assert time.monotonic() - start < 10


# ---- column checks before training ------------------------------------------------------------
def test_missing_column_is_named(blobs):
    with pytest.raises(ColumnError, match="feature column 'pixels' is not in the DataFrame"):
        prepare_columns(blobs, ["pixels"], ["label"])


def test_string_column_is_refused(spark):
    df = spark.createDataFrame([("a", 1)], "text string, label int")
    with pytest.raises(ColumnError, match="'text' has type string"):
        prepare_columns(df, ["text"], ["label"])


def test_ragged_arrays_are_refused(spark):
    df = spark.createDataFrame([([1.0, 2.0], 0), ([1.0], 1)], "f array<double>, label int")
    with pytest.raises(ColumnError, match="'f' holds arrays of 1 to 2 values"):
        prepare_columns(df, ["f"], ["label"])


def test_empty_dataframe_is_refused(blobs):
    with pytest.raises(ColumnError, match="empty"):
        prepare_columns(blobs.limit(0), ["features"], ["label"])


def test_nan_fails_by_default_and_drop_counts(spark):
    df = spark.createDataFrame(
        [([1.0, float("nan")], 0), ([1.0, 2.0], 1), ([3.0, 4.0], None)],
        "f array<double>, label int",
    )
    with pytest.raises(ColumnError, match=r"'f': 1 rows, 'label': 1 rows"):
        prepare_columns(df, ["f"], ["label"])
    prepared = prepare_columns(df, ["f"], ["label"], nan_policy="drop")
    assert prepared.rows == 1 and prepared.dropped_rows == 2


def test_vectors_and_nested_arrays_become_flat_arrays(spark):
    from pyspark.ml.linalg import Vectors

    df = spark.createDataFrame(
        [(Vectors.dense([1.0, 2.0]), [[1, 2], [3, 4]], 0)], ["v", "grid", "label"]
    )
    prepared = prepare_columns(df, ["v", "grid"], ["label"])
    assert [(s.kind, s.size) for s in prepared.features] == [("vector", 2), ("array", 4)]
    row = prepared.df.first()
    assert list(row["v"]) == [1.0, 2.0] and list(row["grid"]) == [1, 2, 3, 4]


def test_transform_converts_only_vectors_and_nested_arrays(spark):
    """Flat arrays and scalars reach the model as they are; a vector gets a converted copy,
    dropped afterwards. (A copy of a flat column would travel to Python and back with every
    row: for a 96 x 96 x 3 image, 27,648 floats converted one by one each way.)"""
    import tensorflow as tf
    from pyspark.ml.linalg import Vectors

    from sparkzoo.trainer.columns import ColumnSpec
    from sparkzoo.trainer.rank_training import keras_model_bytes

    inputs = [tf.keras.Input((2,)), tf.keras.Input((2,)), tf.keras.Input((1,))]
    summed = tf.keras.layers.Dense(1, kernel_initializer="ones", use_bias=False)(
        tf.keras.layers.Concatenate()(inputs)
    )
    specs = [
        ColumnSpec("a", "array", 2, False),
        ColumnSpec("v", "vector", 2, False),
        ColumnSpec("s", "scalar", 1, False),
    ]
    model = KerasModel(
        keras_model_bytes(tf.keras.Model(inputs, summed)), specs, [(2,), (2,), (1,)], [(1,)]
    )
    df = spark.createDataFrame([([1.0, 2.0], Vectors.dense([3.0, 4.0]), 5.0)], ["a", "v", "s"])
    scored = model.transform(df)
    plan = scored._jdf.queryExecution().analyzed().toString()
    assert "__sparkzoo_input_1" in plan  # the vector's array copy
    assert "__sparkzoo_input_0" not in plan and "__sparkzoo_input_2" not in plan
    assert scored.columns == ["a", "v", "s", "prediction"]
    assert scored.first()["prediction"] == pytest.approx(15.0)


# ---- KerasEstimator -------------------------------------------------------------------------
# Both engines where Horovod is installed (the classic stack); the tf engine everywhere.
ENGINES = [pytest.param("horovod", marks=pytest.mark.horovod), "tf"]


@pytest.mark.parametrize("engine", ENGINES)
def test_fit_on_two_workers_and_transform(blobs, capsys, engine):
    fitted = _estimator(epochs=3, validation=0.2, engine=engine).fit(blobs)
    out = capsys.readouterr().out
    assert [line.split()[1] for line in out.splitlines() if line.startswith("epoch ")] == [
        "1/3",
        "2/3",
        "3/3",
    ]
    assert "val_accuracy" in out and "samples/s" in out
    assert (
        len(fitted.history["loss"]) == 3 and fitted.history["loss"][-1] < fitted.history["loss"][0]
    )
    assert _accuracy(fitted, blobs) > 0.95
    # where the start-up went: every phase measured, together no more than fit() to step 1
    phases = fitted.summary["startup_phases"]
    assert set(phases) == {
        "slots_s", "driver_model_s", "columns_s", "plan_s", "tasks_s", "ring_s", "partition_s",
        "first_step_s",
    }  # fmt: skip
    assert all(v is not None and v >= 0 for v in phases.values()), phases
    assert sum(phases.values()) <= fitted.summary["startup_s"] + 1e-3


@pytest.mark.timeout(300)
def test_workers_reused_by_rings_of_another_size_still_allreduce(blobs):
    # One worker, then two: the worker of the first ring must not keep a one-rank view.
    for workers in (1, 2, 1, 2):
        fitted = _estimator(num_workers=workers, epochs=1).fit(blobs)
        assert fitted.summary["num_workers"] == workers


def _one_linear_update(spark, rate=0.1, initializer="glorot_uniform", **params):
    """The weights of a linear model after one epoch on 32 rows: 2 ranks x 2 batches of 8,
    plain SGD, and the one step of plain Keras on all 32 rows at once."""
    import pandas as pd
    import tensorflow as tf

    rng = np.random.default_rng(1)
    x = rng.normal(size=(32, 3)).astype(np.float32)
    y = (x @ np.array([1.0, -2.0, 0.5]) + rng.normal(0, 0.1, 32)).astype(np.float32)
    df = spark.createDataFrame(pd.DataFrame({"features": list(x), "y": y})).coalesce(1)

    def linear():
        tf.keras.utils.set_random_seed(0)
        dense = tf.keras.layers.Dense(1, kernel_initializer=initializer)
        return tf.keras.Sequential([tf.keras.Input((3,)), dense])

    fitted = _estimator(
        model=linear, optimizer=tf.keras.optimizers.SGD(rate), loss="mse", metrics=[],
        label_cols=["y"], batch_size=8, epochs=1, shuffle=False, scale_lr=False, **params,
    ).fit(df)  # fmt: skip
    one_step = linear()
    one_step.compile(tf.keras.optimizers.SGD(rate), "mse")
    one_step.train_on_batch(x, y[:, None])
    flat = lambda model: np.concatenate([w.ravel() for w in model.get_weights()])  # noqa: E731
    return flat(fitted.keras_model()), flat(one_step)


@pytest.mark.horovod
def test_backward_passes_per_step_makes_one_update_of_the_larger_batch(spark):
    # Each rank adds up its two batches' gradients, the ranks average them, one SGD step: the
    # step of all 32 rows at once. Two steps (the default) land elsewhere.
    accumulated, one_step = _one_linear_update(spark, backward_passes_per_step=2)
    np.testing.assert_allclose(accumulated, one_step, rtol=1e-5, atol=1e-6)
    every_batch, _ = _one_linear_update(spark)
    assert np.abs(every_batch - one_step).max() > 1e-2


@pytest.mark.horovod
def test_fp16_gradient_compression_allreduces_16_bit_gradients(spark):
    import horovod.tensorflow.keras as hvd

    # From zero weights, one SGD step at rate 1 leaves minus the averaged gradient: with fp16
    # compression each weight is a 16-bit float, near the full-precision step; without, not.
    def one_update(compression):
        weights, one_step = _one_linear_update(
            spark, rate=1.0, initializer="zeros", backward_passes_per_step=2,
            gradient_compression=compression,
        )  # fmt: skip
        return weights, one_step, np.array_equal(weights.astype(np.float16), weights)

    assert _estimator(gradient_compression=hvd.Compression.fp16).getGradientCompression() == "fp16"
    compressed, one_step, compressed_is_16_bit = one_update(hvd.Compression.fp16)
    assert compressed_is_16_bit
    np.testing.assert_allclose(compressed, one_step, rtol=2e-3)
    full, _, full_is_16_bit = one_update(None)
    assert not full_is_16_bit
    np.testing.assert_allclose(full, one_step, rtol=1e-5, atol=1e-6)


def test_gradient_compression_needs_the_horovod_engine(blobs):
    assert _estimator(gradient_compression="none").getGradientCompression() is None
    assert _estimator().getGradientCompression() is None
    with pytest.raises(ValueError, match="gradient_compression='fp16' needs the horovod engine"):
        _estimator(engine="tf", gradient_compression="FP16").fit(blobs)
    with pytest.raises(ValueError, match=r"gradient_compression.*'int8'"):
        _estimator(gradient_compression="int8")


def test_backward_passes_per_step_needs_the_horovod_engine(blobs):
    with pytest.raises(ValueError, match="backward_passes_per_step=2 needs the horovod engine"):
        _estimator(engine="tf", backward_passes_per_step=2).fit(blobs)
    with pytest.raises(ValueError, match="backward_passes_per_step"):
        _estimator(backward_passes_per_step=0)


def test_scalar_feature_columns_and_a_single_output(spark, blobs):
    import tensorflow as tf

    def regressor():
        tf.keras.utils.set_random_seed(0)
        return tf.keras.Sequential([tf.keras.layers.Input((4,)), tf.keras.layers.Dense(1)])

    df = blobs.selectExpr("x0", "x1", "x2", "x3", "cast(x0 + x1 + x2 + x3 as double) as total")
    fitted = _estimator(
        model=regressor,
        loss="mse",
        metrics=[],
        feature_cols=["x0", "x1", "x2", "x3"],
        label_cols=["total"],
        epochs=10,
        optimizer=tf.keras.optimizers.Adam(0.05),
    ).fit(df)
    scored = fitted.transform(df)
    assert dict(scored.dtypes)["prediction"] == "double"
    rows = scored.toPandas()
    # the target is the sum of the features: a Dense(1) learns it almost exactly
    assert np.mean(np.abs(rows["prediction"] - rows["total"])) < 0.2


def test_one_input_partition_and_a_spilling_partition(spark, blobs, capsys):
    # fewer partitions than workers, and a memory budget far below a partition's size
    fitted = _estimator(memory_budget_mb=0.001, verbose=2).fit(blobs.coalesce(1))
    out = capsys.readouterr().out
    assert out.count("(spilled to local disk)") == 2
    assert _accuracy(fitted, blobs) > 0.9


def test_validation_dataframe(spark):
    train, val = (spark.createDataFrame(_blobs(400, seed)) for seed in (1, 2))
    fitted = _estimator(validation=val, epochs=2).fit(train)
    assert len(fitted.history["val_loss"]) == 2


def test_validation_names_a_column_whose_true_rows_are_held_out(spark):
    # Horovod's contract: validation="is_val". The marked rows carry flipped labels: held out,
    # the model is wrong on all of them; trained on, they would have confused it.
    frame = _blobs(600, seed=3)
    frame["is_val"] = (np.arange(len(frame)) % 4 == 0).astype(int)
    frame.loc[frame["is_val"] == 1, "label"] = 1 - frame.loc[frame["is_val"] == 1, "label"]
    df = spark.createDataFrame(frame)
    fitted = _estimator(validation="is_val", epochs=3).fit(df)
    assert fitted.history["accuracy"][-1] > 0.9
    assert fitted.history["val_accuracy"][-1] < 0.1
    flags = df.withColumn("flag", df["is_val"] == 1).drop("is_val")
    again = _estimator(validation="flag", epochs=1).fit(flags)  # a boolean column
    assert again.history["val_accuracy"][-1] < 0.2


@pytest.mark.parametrize(
    ("column", "match"),
    [("nope", "names no column"), ("x0", "holds"), ("name", "is string")],
)
def test_a_bad_validation_column_is_named(spark, column, match):
    frame = _blobs(40)
    frame["name"] = "a"
    with pytest.raises(ValueError, match=match):
        _estimator(validation=column).fit(spark.createDataFrame(frame))


def test_save_and_load_give_the_same_predictions(blobs, tmp_path):
    fitted = _estimator(epochs=1).fit(blobs)
    path = str(tmp_path / "model")
    fitted.save(path)
    loaded = KerasModel.load(path)
    before = np.stack(fitted.transform(blobs).orderBy("x0").toPandas()["prediction"])
    after = np.stack(loaded.transform(blobs).orderBy("x0").toPandas()["prediction"])
    np.testing.assert_allclose(before, after, rtol=1e-6)
    with pytest.raises(FileExistsError):
        fitted.save(path)


def test_bad_input_fails_before_training(blobs, tmp_path):
    with pytest.raises(ColumnError, match="'pixels'"):
        _estimator(feature_cols=["pixels"]).fit(blobs)
    with pytest.raises(ValueError, match="asked for 3 Horovod ranks"):
        _estimator(num_workers=3).fit(blobs)
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    with pytest.raises(OSError, match="cannot write to the store"):
        _estimator(store=str(blocker)).fit(blobs)
    with pytest.raises(ColumnError, match="shape"):
        _estimator(feature_cols=["x0"]).fit(blobs)


# ---- failures, retries, resume ----------------------------------------------------------------
class KillRankOnce:
    """A Keras callback that kills rank 1's process in epoch ``epoch`` (0-based), once."""

    def __new__(cls, marker: str, epoch: int, how: str = "kill"):
        import tensorflow as tf

        class _Kill(tf.keras.callbacks.Callback):
            def on_train_batch_end(self, batch, logs=None):
                # Horovod's rank, or the TensorFlow worker's index (either engine)
                rank = os.environ.get("HOROVOD_RANK")
                if rank is None:
                    rank = json.loads(os.environ["TF_CONFIG"])["task"]["index"]
                if (
                    int(rank) == 1
                    and self._epoch == epoch
                    and batch == 2
                    and not os.path.exists(marker)
                ):
                    open(marker, "w").close()
                    if how == "kill":
                        os.kill(os.getpid(), signal.SIGKILL)
                    raise RuntimeError("injected failure")

            def on_epoch_begin(self, e, logs=None):
                self._epoch = e

        return _Kill()


@pytest.mark.parametrize("engine", ENGINES)
def test_killed_rank_is_retried_from_the_last_checkpoint(blobs, tmp_path, capsys, engine):
    marker = str(tmp_path / "killed-once")
    store = str(tmp_path / "store")
    fitted = _estimator(
        engine=engine,
        epochs=4,
        store=store,
        run_name="resume",
        max_retries=1,
        callbacks=[KillRankOnce(marker, epoch=2)],
    ).fit(blobs)
    captured = capsys.readouterr()
    assert os.path.exists(marker)
    assert "attempt 1 failed" in captured.err and "rank 1" in captured.err
    assert "resuming run from its checkpoint after epoch 2" in captured.out
    reported = [line.split()[1] for line in captured.out.splitlines() if line.startswith("epoch ")]
    assert reported == ["1/4", "2/4", "3/4", "4/4"]  # epochs 1-2 once, then 3-4 after the resume
    assert len(fitted.history["loss"]) == 4
    assert _accuracy(fitted, blobs) > 0.9


def test_a_finished_run_in_the_store_is_not_trained_again(blobs, tmp_path, capsys):
    store = str(tmp_path / "store")
    _estimator(epochs=2, store=store, run_name="done").fit(blobs)
    capsys.readouterr()
    again = _estimator(epochs=2, store=store, run_name="done").fit(blobs)
    out = capsys.readouterr().out
    assert "resuming run from its checkpoint after epoch 2" in out
    assert not [line for line in out.splitlines() if line.startswith("epoch ")]
    assert len(again.history["loss"]) == 2


def _rank_processes(exclude: set[int]) -> list[str]:
    """Command lines of this process's Python descendants that are not Spark's own workers
    (a TensorFlow child, a Horovod rank), leaving out the PIDs in ``exclude``."""
    import psutil

    found = []
    for child in psutil.Process().children(recursive=True):
        try:
            line = " ".join(child.cmdline())
        except psutil.NoSuchProcess:
            continue
        if child.pid not in exclude and "python" in line and "pyspark." not in line:
            found.append(line)
    return found


@pytest.mark.parametrize("engine", ENGINES)
def test_failure_after_the_last_retry_names_the_rank_and_cleans_up(
    blobs, tmp_path, monkeypatch, engine
):
    import tempfile

    import psutil

    temp = tmp_path / "temp"
    temp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(temp))  # where the fit's temporary store goes
    before = {p.pid for p in psutil.Process().children(recursive=True)}
    marker = str(tmp_path / "failed")
    with pytest.raises(TrainingFailedError) as caught:
        _estimator(
            engine=engine,
            epochs=2,
            max_retries=0,
            callbacks=[KillRankOnce(marker, epoch=0, how="raise")],
        ).fit(blobs)
    assert caught.value.cause.rank == 1
    assert "RuntimeError: injected failure" in str(caught.value)
    assert not list(temp.glob("sparkzoo-store-*")), "a failed fit left its temporary store"
    # no rank process (a TensorFlow child, a Horovod rank) outlives the failed fit
    deadline = time.monotonic() + 15
    while (left := _rank_processes(before)) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not left, left


@pytest.mark.parametrize("engine", ENGINES)
def test_a_compiled_models_own_optimizer_trains_on_every_rank(blobs, engine):
    from sparkzoo import keras2 as keras

    model = build_mlp()
    # a learning rate of 0: if the ranks trained with anything else ("adam"), weights would move
    model.compile(
        optimizer=keras.optimizers.SGD(learning_rate=0.0), loss="sparse_categorical_crossentropy"
    )
    before = model.get_weights()
    fitted = KerasEstimator(
        model=model, feature_cols=["features"], label_cols=["label"], batch_size=64, epochs=1,
        num_workers=2, engine=engine, log_to_mlflow=False, tensorboard=False, verbose=0,
    ).fit(blobs)  # fmt: skip
    for a, b in zip(before, fitted.keras_model().get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)


def test_checkpoint_callback_keeps_the_best_epochs_weights(spark, tmp_path):
    from sparkzoo import keras2 as keras
    from sparkzoo.trainer.evaluation import evaluate

    train, val = (spark.createDataFrame(_blobs(400, seed)) for seed in (4, 5))
    # "best" by the largest val_loss: the first epoch's weights, not the last ones
    worst = keras.callbacks.ModelCheckpoint(
        str(tmp_path / "best.h5"), monitor="val_loss", mode="max", save_best_only=True
    )
    fitted = _estimator(validation=val, epochs=4, checkpoint_callback=worst).fit(train)
    losses = fitted.history["val_loss"]
    assert max(losses) > 3 * losses[-1]  # training moved: the choice matters
    model = fitted.keras_model()
    model.compile(loss="sparse_categorical_crossentropy")
    kept = evaluate(model, val, ["features"], ["label"])["loss"]
    assert abs(kept - max(losses)) < abs(kept - losses[-1])
    assert kept == pytest.approx(max(losses), rel=0.25)


def test_checkpoint_callback_must_keep_the_best_only():
    from sparkzoo import keras2 as keras

    with pytest.raises(ValueError, match="save_best_only=True"):
        _estimator(checkpoint_callback=keras.callbacks.ModelCheckpoint("m.h5"))
    with pytest.raises(TypeError, match="ModelCheckpoint"):
        _estimator(checkpoint_callback="best")


# ---- MLflow -----------------------------------------------------------------------------------
@pytest.mark.slow
def test_mlflow_run_has_params_epoch_metrics_and_the_model(blobs, tmp_path):
    import mlflow

    uri = f"sqlite:///{tmp_path}/mlflow.db"
    fitted = _estimator(epochs=2, log_to_mlflow=True, tracking_uri=uri, run_name="tracked").fit(
        blobs
    )
    client = mlflow.MlflowClient(uri)
    run = client.get_run(fitted.run_id)
    assert run.info.status == "FINISHED" and run.info.run_name == "tracked"
    assert run.data.params["batch_size"] == "32" and run.data.params["num_workers"] == "2"
    assert [m.step for m in client.get_metric_history(fitted.run_id, "loss")] == [1, 2]
    mlflow.set_tracking_uri(uri)
    logged = client.search_logged_models([run.info.experiment_id])
    assert logged, "no model logged"
    model = mlflow.pyfunc.load_model(logged[0].model_uri).unwrap_python_model().keras_model
    x = np.stack(_blobs(5)["features"])
    np.testing.assert_allclose(
        model.predict(x, verbose=0), fitted.keras_model().predict(x, verbose=0), rtol=1e-5
    )
