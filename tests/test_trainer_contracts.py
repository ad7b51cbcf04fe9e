"""The trainer where its users' code already lives: Spark ML Params and persistence (Pipeline,
CrossValidator, TrainValidationSplit; local and HDFS), MLflow as a client (pyfunc, spark_udf,
the Model Registry, MLflow's default store, `mlflow models serve`), TensorBoard, classifier
columns for Spark ML evaluators, Horovod's and Databricks' names (marker: spark unless said).
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from test_trainer_spark import _blobs, _estimator, build_mlp

from sparkzoo.trainer import HorovodRunner, KerasEstimator, KerasModel, RankFailedError
from sparkzoo.trainer.estimator import HOROVOD_ONLY_PARAMS
from sparkzoo.trainer.params import camel
from sparkzoo.trainer.scoring import classify

from conftest import run_python


# ---- typed Params (fast) ------------------------------------------------------------------------
def test_every_param_has_typed_accessors_in_spark_naming():
    from pyspark.ml.param import TypeConverters

    estimator = KerasEstimator()
    for param in estimator.params:
        assert param.typeConverter is not TypeConverters.identity, param.name
        assert hasattr(estimator, f"set{camel(param.name)}"), param.name
        assert hasattr(estimator, f"get{camel(param.name)}"), param.name
    assert estimator.setEpochs(3).setBatchSize(16.0).getEpochs() == 3
    assert estimator.getBatchSize() == 16 and isinstance(estimator.getBatchSize(), int)
    assert estimator.setFeatureCols(("a", "b")).getFeatureCols() == ["a", "b"]


@pytest.mark.parametrize(
    ("name", "value", "error"),
    [
        ("batch_size", "large", TypeError),
        ("batch_size", 0, ValueError),
        ("epochs", 2.5, TypeError),
        ("feature_cols", "pixels", TypeError),
        ("label_cols", ["y", "y"], ValueError),
        ("validation", 1.5, ValueError),
        ("validation", "", ValueError),
        ("nan_policy", "skip", ValueError),
        ("shuffle", "sometimes", TypeError),
        ("model", 42, TypeError),
        ("store", 3.0, TypeError),
    ],
)
def test_a_bad_value_fails_at_set_time_naming_the_param(name, value, error):
    with pytest.raises(error, match=f'param "{name}"'):
        KerasEstimator(**{name: value})
    with pytest.raises(error, match=f'param "{name}"'):
        getattr(KerasEstimator(), f"set{camel(name)}")(value)


@pytest.mark.horovod
def test_horovod_and_spark_ml_names_are_accepted():
    from horovod.spark.common.backend import SparkBackend
    from horovod.spark.common.store import Store

    estimator = KerasEstimator(
        num_proc=3, random_seed=7, run_id="r1", weightCol="w", store=Store.create("/tmp/zoo")
    )
    assert estimator.getNumWorkers() == 3 and estimator.getNumProc() == 3
    assert estimator.getSeed() == 7 and estimator.getRandomSeed() == 7
    assert estimator.getRunName() == "r1" and estimator.getSampleWeightCol() == "w"
    assert estimator.getStore() == "file:///tmp/zoo"
    assert KerasEstimator(backend=SparkBackend(num_proc=2)).getNumWorkers() == 2
    assert KerasEstimator(inmemory_cache_all=True).getMemoryBudgetMb() == float("inf")
    with pytest.raises(TypeError, match="num_proc and num_workers"):
        KerasEstimator(num_proc=2, num_workers=2)


@pytest.mark.parametrize("knob", sorted(HOROVOD_ONLY_PARAMS))
def test_horovod_only_knobs_say_what_to_use_instead(knob):
    expected = f"{knob!r} is Horovod's and has no use in sparkzoo: {HOROVOD_ONLY_PARAMS[knob]}"
    with pytest.raises(ValueError, match=re.escape(expected)):
        KerasEstimator(**{knob: 1})


def test_unknown_params_are_named():
    with pytest.raises(TypeError, match=r"unknown KerasEstimator parameters \['epoch'\]"):
        KerasEstimator(epoch=3)
    with pytest.raises(ValueError, match="backend=object is Horovod's process launcher"):
        KerasEstimator(backend=object())


def test_runner_arguments_follow_databricks():
    with pytest.raises(ValueError, match="driver_log_verbosity must be one of"):
        HorovodRunner(np=2, driver_log_verbosity="everything")
    with pytest.raises(TypeError, match="np must be an integer"):
        HorovodRunner(np="2")
    with pytest.raises(TypeError):
        HorovodRunner(2)  # keyword-only, as sparkdl's
    assert HorovodRunner(np=-2).num_processor == -2


def test_classifier_columns_from_scores():
    predicted, probability = classify(np.array([[0.2, 0.7, 0.1], [0.6, 0.3, 0.1]]))
    assert predicted.tolist() == [1.0, 0.0] and probability.shape == (2, 3)
    predicted, probability = classify(np.array([[0.8], [0.3], [0.5]]))
    assert predicted.tolist() == [1.0, 0.0, 1.0]
    np.testing.assert_allclose(probability, [[0.2, 0.8], [0.7, 0.3], [0.5, 0.5]])


# ---- a fitted pipeline, shared -------------------------------------------------------------------
@pytest.fixture(scope="module")
def data(spark):
    frame = _blobs(600)
    frame["weight"] = 1.0
    return spark.createDataFrame(frame).cache()


@pytest.fixture(scope="module")
def tracking(tmp_path_factory):
    return f"sqlite:///{tmp_path_factory.mktemp('mlflow')}/mlflow.db"


@pytest.fixture(scope="module")
def fitted_pipeline(data, tracking, tmp_path_factory):
    from pyspark.ml import Pipeline

    store = tmp_path_factory.mktemp("store")
    estimator = _estimator(
        output_cols=["scores"],
        prediction_col="prediction",
        probability_col="probability",
        log_to_mlflow=True,
        tracking_uri=tracking,
        store=str(store),
        run_name="contracts",
        registered_model_name="sparkzoo-contracts-mlp",
    )
    return Pipeline(stages=[estimator]).fit(data), store


def _scored(model, df) -> pd.DataFrame:
    return model.transform(df).drop("features").toPandas()


def test_pipeline_model_saves_and_loads_with_identical_predictions(fitted_pipeline, data, tmp_path):
    from pyspark.ml import PipelineModel

    model, _ = fitted_pipeline
    path = str(tmp_path / "pipeline-model")
    model.save(path)
    loaded = PipelineModel.load(path)
    assert isinstance(loaded.stages[0], KerasModel) and loaded.stages[0].uid == model.stages[0].uid
    before, after = _scored(model, data), _scored(loaded, data)
    np.testing.assert_array_equal(np.stack(before["scores"]), np.stack(after["scores"]))
    np.testing.assert_array_equal(before["prediction"], after["prediction"])
    assert loaded.stages[0].getHistory() == model.stages[0].getHistory()

    with pytest.raises(Exception, match="already exists"):
        model.save(path)  # Spark's Pipeline writer refuses an existing path too
    model.write().overwrite().save(path)  # the Pipeline's own writer replaces it
    assert PipelineModel.load(path).stages[0].uid == model.stages[0].uid


def test_model_writer_refuses_an_existing_path_and_overwrites_atomically(fitted_pipeline, tmp_path):
    stage = fitted_pipeline[0].stages[0]
    path = tmp_path / "m"
    stage.write().save(str(path))
    with pytest.raises(FileExistsError, match=r"write\(\).overwrite\(\)"):
        stage.write().save(str(path))
    stage.setBatchSize(256)
    stage.write().overwrite().save(str(path))
    assert KerasModel.load(str(path)).getBatchSize() == 256
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m"]  # no temporary folder left
    stage.setBatchSize(1024)


def test_loading_something_else_is_refused(fitted_pipeline, tmp_path):
    with pytest.raises(FileNotFoundError, match="holds no saved KerasModel"):
        KerasModel.load(str(tmp_path))
    estimator_path = str(tmp_path / "estimator")
    _estimator().save(estimator_path)
    with pytest.raises(ValueError, match=r"holds a saved .*KerasEstimator, not a KerasModel"):
        KerasModel.load(estimator_path)


def test_unfitted_pipeline_saves_and_loads_with_its_params(spark, tmp_path):
    import tensorflow as tf
    from pyspark.ml import Pipeline

    estimator = _estimator(
        optimizer=tf.keras.optimizers.SGD(0.05), epochs=3, callbacks=[], seed=11,
        gradient_compression="fp16",
    )  # fmt: skip
    path = str(tmp_path / "pipeline")
    Pipeline(stages=[estimator]).save(path)
    loaded = Pipeline.load(path).getStages()[0]
    assert isinstance(loaded, KerasEstimator) and loaded.uid == estimator.uid
    assert loaded.getEpochs() == 3 and loaded.getSeed() == 11
    assert loaded.getGradientCompression() == "fp16"
    assert loaded.getModel()().count_params() == build_mlp().count_params()
    assert type(loaded.getOptimizer()).__name__ == "SGD"
    assert loaded.getOptimizer().get_config()["learning_rate"] == pytest.approx(0.05)
    from pyspark.ml.evaluation import MulticlassClassificationEvaluator
    from pyspark.ml.tuning import CrossValidator, ParamGridBuilder

    grid = ParamGridBuilder().addGrid(estimator.batch_size, [16, 64]).build()
    search = CrossValidator(
        estimator=estimator, estimatorParamMaps=grid, evaluator=MulticlassClassificationEvaluator()
    )
    search.save(str(tmp_path / "cv"))
    restored_search = CrossValidator.load(str(tmp_path / "cv"))
    assert [m[restored_search.getEstimator().batch_size] for m in
            restored_search.getEstimatorParamMaps()] == [16, 64]  # fmt: skip
    model_object = _estimator(model=build_mlp())  # a model, not a builder: saved as .keras
    model_object.save(str(tmp_path / "with-model"))
    restored = KerasEstimator.load(str(tmp_path / "with-model")).getModel()
    assert restored.count_params() == build_mlp().count_params()


def test_an_estimator_holding_a_validation_dataframe_cannot_be_saved(data, tmp_path):
    with pytest.raises(ValueError, match="validation is a DataFrame"):
        _estimator(validation=data).save(str(tmp_path / "e"))
    assert not (tmp_path / "e").exists()


@pytest.mark.hdfs
def test_pipeline_model_on_hdfs(fitted_pipeline, data, hdfs):
    from pyspark.ml import PipelineModel

    model, _ = fitted_pipeline
    path = f"{hdfs}/contracts/pipeline-{time.time_ns()}"
    model.write().save(path)
    loaded = PipelineModel.load(path)
    np.testing.assert_array_equal(
        np.stack(_scored(model, data)["scores"]), np.stack(_scored(loaded, data)["scores"])
    )
    with pytest.raises(FileExistsError):
        model.stages[0].write().save(path + "/stages/0_" + model.stages[0].uid)


def test_classifier_columns_feed_spark_ml_evaluators(fitted_pipeline, data):
    from pyspark.ml.evaluation import (
        BinaryClassificationEvaluator,
        MulticlassClassificationEvaluator,
    )
    from pyspark.ml.linalg import VectorUDT

    scored = fitted_pipeline[0].transform(data)
    assert scored.schema["prediction"].dataType.simpleString() == "double"
    assert isinstance(scored.schema["probability"].dataType, VectorUDT)
    accuracy = MulticlassClassificationEvaluator(metricName="accuracy").evaluate(scored)
    auc = BinaryClassificationEvaluator(rawPredictionCol="probability").evaluate(scored)
    assert accuracy > 0.9 and auc > 0.95


def test_transform_refuses_to_overwrite_a_column(fitted_pipeline, data):
    with pytest.raises(ValueError, match=r"already has column\(s\) \['prediction'\]"):
        fitted_pipeline[0].transform(data.withColumn("prediction", data.label))


# ---- MLflow as a client ------------------------------------------------------------------------
def test_pyfunc_predict_and_spark_udf_score_what_transform_scores(fitted_pipeline, data, tracking):
    import mlflow

    stage = fitted_pipeline[0].stages[0]
    mlflow.set_tracking_uri(tracking)
    try:
        uri = f"runs:/{stage.run_id}/model"
        assert stage.model_uri is not None
        pdf = data.select("features").toPandas()
        predicted = mlflow.pyfunc.load_model(uri).predict(pdf[["features"]])
        expected = _scored(fitted_pipeline[0], data)
        np.testing.assert_allclose(np.stack(predicted["scores"]), np.stack(expected["scores"]))
        np.testing.assert_array_equal(predicted["prediction"], expected["prediction"])

        udf = mlflow.pyfunc.spark_udf(data.sparkSession, uri, env_manager="local")
        via_udf = data.withColumn("out", udf("features")).select("out.*").toPandas()
        np.testing.assert_allclose(np.stack(via_udf["scores"]), np.stack(expected["scores"]))
        np.testing.assert_array_equal(via_udf["prediction"], expected["prediction"])

        with pytest.raises(mlflow.exceptions.MlflowException, match="features"):
            mlflow.pyfunc.load_model(uri).predict(pdf.rename(columns={"features": "pixels"}))
        version = mlflow.MlflowClient().get_registered_model("sparkzoo-contracts-mlp")
        assert version.latest_versions[0].run_id == stage.run_id
    finally:
        mlflow.set_tracking_uri(None)


def test_pyfunc_with_scalar_columns_vectors_and_two_inputs(spark, tmp_path):
    import mlflow
    import tensorflow as tf
    from pyspark.ml.functions import array_to_vector

    def two_inputs():
        a, b = tf.keras.Input((2,), name="a"), tf.keras.Input((4,), name="b")
        joined = tf.keras.layers.Concatenate()([a, b])
        return tf.keras.Model([a, b], tf.keras.layers.Dense(1)(joined))

    from pyspark.sql import functions as F

    frame = _blobs(200)
    df = spark.createDataFrame(frame).withColumn("vec", array_to_vector("features"))
    tracking = f"sqlite:///{tmp_path}/mlflow.db"
    estimator = KerasEstimator(
        model=two_inputs,
        loss="mse",
        feature_cols=["x0", "vec"],
        label_cols=["label"],
        batch_size=32,
        epochs=1,
        num_workers=2,
        log_to_mlflow=True,
        tracking_uri=tracking,
        verbose=0,
    )
    with pytest.raises(ValueError, match="'x0' has 1 values per row but the model's feature"):
        estimator.fit(df)
    df = df.withColumn("pair", F.array("x0", "x1"))
    fitted = estimator.setFeatureCols(["pair", "vec"]).fit(df)
    expected = fitted.transform(df).select("prediction").toPandas()["prediction"].to_numpy()
    mlflow.set_tracking_uri(tracking)
    try:
        uri = f"runs:/{fitted.run_id}/model"
        pdf = df.select("pair", "vec").toPandas()
        np.testing.assert_allclose(mlflow.pyfunc.load_model(uri).predict(pdf), expected, rtol=1e-6)
        udf = mlflow.pyfunc.spark_udf(spark, uri, env_manager="local")
        got = df.select(udf("pair", "vec").alias("p")).toPandas()["p"].to_numpy()
        np.testing.assert_allclose(got, expected, rtol=1e-6)
    finally:
        mlflow.set_tracking_uri(None)


def test_default_store_is_mlflows_own(data, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    fitted = _estimator(epochs=1, log_to_mlflow=True, run_name="default-store").fit(data)
    assert (tmp_path / "mlflow.db").exists()
    # A separate process with MLflow's defaults, in the same folder, sees the run.
    out = run_python(
        "import mlflow; r = mlflow.search_runs(search_all_experiments=True); "
        "print(sorted(r['tags.mlflow.runName']))",
        cwd=tmp_path,
        env={"MLFLOW_TRACKING_URI": ""},
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert "default-store" in out.stdout and fitted.run_id


# An MLflow user's program as MLflow's docs write it: it imports MLflow, not sparkzoo, and loads
# one logged run through each of the three loaders.
_THREE_LOADERS = """
import json, sys
import mlflow, mlflow.tensorflow
import numpy as np, pandas as pd
from pyspark.sql import SparkSession

uri = f"runs:/{sys.argv[1]}/model"
x = np.load("features.npy")
keras_model = mlflow.tensorflow.load_model(uri)
direct = keras_model.predict(x, verbose=0)
pdf = pd.DataFrame({"features": list(x)})
pyfunc = mlflow.pyfunc.load_model(uri).predict(pdf)
spark = SparkSession.builder.master("local[1]").config("spark.ui.enabled", "false").getOrCreate()
udf = mlflow.pyfunc.spark_udf(spark, uri, env_manager="local")
rows = spark.createDataFrame(pd.DataFrame({"features": [r.tolist() for r in x]}))
scored = rows.withColumn("out", udf("features")).select("out.*").toPandas()
spark.stop()
print(json.dumps({
    "keras_module": type(keras_model).__module__,
    "tensorflow": direct.tolist(),
    "pyfunc": np.stack(pyfunc["scores"]).tolist(),
    "spark_udf": np.stack(scored["scores"]).tolist(),
}))
"""


def test_mlflows_three_loaders_read_one_logged_run(data, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    fitted = _estimator(
        epochs=1,
        log_to_mlflow=True,
        run_name="three-loaders",
        output_cols=["scores"],
        prediction_col="prediction",
    ).fit(data)
    sample = data.limit(50).toPandas()
    expected = _scored(fitted, data.sparkSession.createDataFrame(sample))
    np.save(tmp_path / "features.npy", np.stack(sample["features"]).astype(np.float32))
    (tmp_path / "load.py").write_text(_THREE_LOADERS)
    out = subprocess.run(
        [sys.executable, "load.py", fitted.run_id], cwd=tmp_path, capture_output=True,
        text=True, timeout=600,
        env={k: v for k, v in os.environ.items() if k not in ("MLFLOW_TRACKING_URI",
                                                               "TF_USE_LEGACY_KERAS")},
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    loaded = json.loads(out.stdout.strip().splitlines()[-1])
    want = np.stack(expected["scores"])
    for loader in ("tensorflow", "pyfunc", "spark_udf"):
        np.testing.assert_allclose(np.array(loaded[loader]), want, rtol=1e-5, atol=1e-6)
    assert loaded["keras_module"].split(".")[0] in ("keras", "tf_keras")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.slow
def test_mlflow_models_serve_answers_with_the_same_predictions(fitted_pipeline, data, tracking):
    stage = fitted_pipeline[0].stages[0]
    port = _free_port()
    mlflow_cli = str(Path(sys.executable).with_name("mlflow"))
    server = subprocess.Popen(
        [mlflow_cli, "models", "serve", "-m", f"runs:/{stage.run_id}/model",
         "--env-manager", "local", "-h", "127.0.0.1", "-p", str(port)],
        env={
            **os.environ,
            "MLFLOW_TRACKING_URI": tracking,
            # MLflow starts `uvicorn` by name: the environment's scripts must be on PATH.
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        },
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/ping", timeout=2)
                break
            except OSError:
                assert server.poll() is None, server.stdout.read()[-3000:]
                assert time.monotonic() < deadline, "the scoring server did not start"
                time.sleep(1)
        rows = data.select("features").limit(5).toPandas()
        body = {"dataframe_split": {"columns": ["features"],
                                    "data": [[list(map(float, v))] for v in rows["features"]]}}  # fmt: skip
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/invocations",
            data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json"},
        )
        answer = json.loads(urllib.request.urlopen(request, timeout=60).read())["predictions"]
        expected = _scored(stage, data.limit(5))
        np.testing.assert_allclose(
            [row["scores"] for row in answer], np.stack(expected["scores"]), rtol=1e-5
        )
        bad = urllib.request.Request(
            f"http://127.0.0.1:{port}/invocations",
            data=json.dumps(
                {"dataframe_split": {"columns": ["pixels"], "data": [[[1.0]]]}}
            ).encode(),
            headers={"Content-Type": "application/json"},
        )
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(bad, timeout=60)
        assert refused.value.code == 400
    finally:
        server.terminate()
        server.wait(timeout=30)


# ---- TensorBoard ---------------------------------------------------------------------------------
def test_tensorboard_reads_the_event_files_of_rank_zero(fitted_pipeline):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    _, store = fitted_pipeline
    logs = store / "contracts" / "logs"
    train = EventAccumulator(str(logs / "train"), size_guidance={"tensors": 0}).Reload()
    assert [e.step for e in train.Tensors("epoch_loss")] == [0, 1]
    assert train.Tags()["graph"] or train.Tags().get("meta_graph")


# ---- sample weights, no labels, seeds --------------------------------------------------------------
def test_sample_weights_scale_each_rows_loss(data):
    from pyspark.sql import functions as F

    # Every row weighted 0: no loss, no gradient, so the model stays as it was built.
    fitted = _estimator(sample_weight_col="weight", epochs=2).fit(
        data.withColumn("weight", F.lit(0.0))
    )
    assert fitted.getHistory()["loss"] == [0.0, 0.0]
    for trained, initial in zip(
        fitted.getModel().get_weights(), build_mlp().get_weights(), strict=True
    ):
        np.testing.assert_array_equal(trained, initial)
    moved = _estimator(weightCol="weight", epochs=1).fit(data)  # weights of 1: it trains
    assert moved.getHistory()["loss"][0] > 0.0


class _AutoEncoder:
    """A model that computes its own loss (no label columns), like DeepBit's train_step."""

    def __new__(cls):
        import tensorflow as tf

        class Reconstruct(tf.keras.Model):
            def train_step(self, data):
                with tf.GradientTape() as tape:
                    loss = tf.reduce_mean(tf.square(self(data, training=True) - data))
                # minimize(), so Horovod's DistributedOptimizer averages the gradients
                self.optimizer.minimize(loss, self.trainable_variables, tape=tape)
                return {"loss": loss}

        inputs = tf.keras.Input((4,))
        return Reconstruct(inputs, tf.keras.layers.Dense(4)(tf.keras.layers.Dense(2)(inputs)))


def test_a_model_without_labels_trains(data):
    fitted = _estimator(model=_AutoEncoder, loss=None, label_cols=[], metrics=[], epochs=3).fit(
        data
    )
    losses = fitted.getHistory()["loss"]
    assert len(losses) == 3 and losses[-1] < losses[0]
    assert fitted.getLabelColumns() == []


def test_the_same_seed_gives_the_same_weights(data):
    def weights(seed):
        fitted = _estimator(seed=seed, deterministic=True, epochs=1).fit(data)
        return fitted.getModel().get_weights()

    first, again, other = weights(5), weights(5), weights(6)
    for a, b in zip(first, again, strict=True):
        np.testing.assert_array_equal(a, b)
    assert any(not np.array_equal(a, b) for a, b in zip(first, other, strict=True))


# ---- grids: each point trains with its own values; the best model saves --------------------------
@pytest.mark.slow
def test_train_validation_split_trains_each_grid_point_and_saves(data, tmp_path):
    from pyspark.ml.evaluation import MulticlassClassificationEvaluator
    from pyspark.ml.tuning import (
        ParamGridBuilder,
        TrainValidationSplit,
        TrainValidationSplitModel,
    )

    estimator = _estimator(prediction_col="predicted", output_cols=["scores"])
    grid = ParamGridBuilder().addGrid(estimator.epochs, [1, 3]).build()
    split = TrainValidationSplit(
        estimator=estimator,
        estimatorParamMaps=grid,
        evaluator=MulticlassClassificationEvaluator(predictionCol="predicted"),
        trainRatio=0.75,
        collectSubModels=True,
        seed=0,
    )
    model = split.fit(data)
    assert [len(m.getHistory()["loss"]) for m in model.subModels] == [1, 3]
    assert estimator.getEpochs() == 2  # the grid did not change the estimator itself
    path = str(tmp_path / "tvs")
    model.write().save(path)
    loaded = TrainValidationSplitModel.load(path)
    np.testing.assert_array_equal(
        np.stack(_scored(model.bestModel, data)["scores"]),
        np.stack(_scored(loaded.bestModel, data)["scores"]),
    )
    assert loaded.getEstimatorParamMaps()[1][loaded.getEstimator().epochs] == 3


def test_copy_with_extra_params_trains_with_them(data):
    estimator = _estimator()
    copied = estimator.copy({estimator.epochs: 1, estimator.batch_size: 64})
    assert copied.getEpochs() == 1 and estimator.getEpochs() == 2
    assert len(copied.fit(data).getHistory()["loss"]) == 1


# ---- HorovodRunner: np < 0, driver_log_verbosity, log_to_driver --------------------------------
def _rank_sum(offset):
    import horovod.tensorflow as hvd
    import tensorflow as tf

    from sparkzoo.trainer import log_to_driver

    hvd.init()
    print(f"rank {hvd.rank()} prints")
    log_to_driver(f"rank {hvd.rank()} logs")
    return float(hvd.allreduce(tf.constant(hvd.rank() + offset), op=hvd.Sum).numpy())


@pytest.mark.horovod
def test_negative_np_runs_that_many_ranks_on_the_driver(capfd):
    assert HorovodRunner(np=-2).run(_rank_sum, offset=1.0) == 3.0
    out = capfd.readouterr().out
    assert "[0]<stdout>: rank 0 prints" in out and "[1]<stdout>: rank 1 prints" in out
    assert "[1] rank 1 logs" in out


def _fail_on_rank_one():
    import horovod.tensorflow as hvd
    import tensorflow as tf

    hvd.init()
    if hvd.rank() == 1:
        raise KeyError("no such feature")
    hvd.allreduce(tf.constant(1.0))


@pytest.mark.horovod
def test_a_failing_local_rank_is_named_and_leaves_no_process():
    import psutil

    before = {p.pid for p in psutil.Process().children(recursive=True)}
    with pytest.raises(RankFailedError) as caught:
        HorovodRunner(np=-2).run(_fail_on_rank_one)
    assert caught.value.rank == 1 and "KeyError: 'no such feature'" in str(caught.value)
    assert {p.pid for p in psutil.Process().children(recursive=True)} <= before


@pytest.mark.horovod
def test_log_callback_only_shows_logs_but_not_prints(spark, capsys):
    assert HorovodRunner(np=2, spark=spark).run(_rank_sum, offset=0.0) == 1.0
    out = capsys.readouterr().out
    assert "[0] rank 0 logs" in out and "[1] rank 1 logs" in out
    assert "<stdout>: rank 0 prints" not in out
    HorovodRunner(np=2, spark=spark, driver_log_verbosity="all").run(_rank_sum, offset=0.0)
    assert "[1]<stdout>: rank 1 prints" in capsys.readouterr().out


# ---- Horovod's own Spark example, ported by changing the import ---------------------------------
@pytest.mark.slow
@pytest.mark.horovod
def test_horovods_keras_spark_mnist_example_runs_with_sparkzoo(spark, tmp_path):
    """``examples/spark/keras/keras_spark_mnist.py`` of Horovod, on real MNIST digits written
    as the LIBSVM file it downloads; only the import of the estimator changed."""
    from horovod.spark.common.backend import SparkBackend
    from horovod.spark.common.store import Store
    from pyspark.ml.evaluation import MulticlassClassificationEvaluator
    from pyspark.ml.feature import OneHotEncoder
    from pyspark.sql import types as T
    from pyspark.sql.functions import udf
    from sklearn.datasets import dump_svmlight_file
    from tensorflow import keras
    from tensorflow.keras.layers import Conv2D, Dense, Dropout, Flatten, MaxPooling2D
    from tensorflow.keras.models import Sequential

    import sparkzoo.trainer as hvd  # was: import horovod.spark.keras as hvd
    from sparkzoo.datasets import mnist

    digits = mnist().sample(2000, random_state=0)
    libsvm_path = str(tmp_path / "mnist.libsvm")
    dump_svmlight_file(np.stack(digits["pixels"]), digits["label"], libsvm_path)

    store = Store.create(str(tmp_path / "work"))
    df = spark.read.format("libsvm").option("numFeatures", "784").load(libsvm_path)
    encoder = OneHotEncoder(inputCols=["label"], outputCols=["label_vec"], dropLast=False)
    train_df = encoder.fit(df).transform(df)
    train_df, test_df = train_df.randomSplit([0.9, 0.1], seed=0)

    model = Sequential()
    model.add(Conv2D(32, kernel_size=(3, 3), activation="relu", input_shape=(28, 28, 1)))
    model.add(Conv2D(64, (3, 3), activation="relu"))
    model.add(MaxPooling2D(pool_size=(2, 2)))
    model.add(Dropout(0.25))
    model.add(Flatten())
    model.add(Dense(128, activation="relu"))
    model.add(Dropout(0.5))
    model.add(Dense(10, activation="softmax"))
    optimizer = keras.optimizers.Adadelta(1.0)
    loss = keras.losses.categorical_crossentropy

    backend = SparkBackend(num_proc=2, stdout=sys.stdout, stderr=sys.stderr)
    keras_estimator = hvd.KerasEstimator(
        backend=backend,
        store=store,
        model=model,
        optimizer=optimizer,
        loss=loss,
        metrics=["accuracy"],
        feature_cols=["features"],
        label_cols=["label_vec"],
        batch_size=64,
        epochs=2,
        random_seed=1,
        inmemory_cache_all=True,
        verbose=1,
        callbacks=[keras.callbacks.TensorBoard(log_dir=str(tmp_path / "tb"), profile_batch=0)],
        log_to_mlflow=False,
    )
    keras_model = keras_estimator.fit(train_df).setOutputCols(["label_prob"])

    pred_df = keras_model.transform(test_df)
    argmax = udf(lambda v: float(np.argmax(v)), returnType=T.DoubleType())
    pred_df = pred_df.withColumn("label_pred", argmax(pred_df.label_prob))
    evaluator = MulticlassClassificationEvaluator(
        predictionCol="label_pred", labelCol="label", metricName="accuracy"
    )
    assert evaluator.evaluate(pred_df) > 0.8
    assert (tmp_path / "work").is_dir()  # checkpoints went to the Horovod store


def test_engine_choice_and_a_missing_horovod(monkeypatch):
    from sparkzoo.trainer import estimator as est_module

    with pytest.raises(ValueError, match=r'param "engine"'):
        KerasEstimator(engine="mpi")
    assert est_module.resolve_engine("tf") == "tf"
    monkeypatch.setattr(est_module, "horovod_available", lambda: False)
    assert est_module.resolve_engine("auto") == "tf"
    with pytest.raises(ValueError, match=r"needs Horovod.*`make setup`.*engine='tf'"):
        est_module.resolve_engine("horovod")
