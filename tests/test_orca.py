"""sparkzoo.orca: an Orca TF2 program, written as BigDL Orca's NCF tutorial writes it
(init_orca_context, a model_creator that returns a compiled model, Estimator.from_keras, fit /
evaluate / predict / save, stop_orca_context) with only its imports changed, on real
MovieLens-100K ratings (the recbole wheel). The tutorial's own data script reads ml-1m's files
and its feature tables; this program keeps its steps and its NCF, on user and item ids alone,
with one sampled negative per positive, as the tutorial's prepare_data does.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

pytestmark = pytest.mark.spark

# Step 0: the imports, Orca's but for the package (was: bigdl.orca, bigdl.orca.learn.tf2)
from sparkzoo.orca import Estimator, OrcaContext, init_orca_context, stop_orca_context  # noqa: E402

RATINGS = 20_000  # the first 20,000 of the 100,000 ratings: a quick run (said in the docstring)


def _ncf_frame() -> tuple[pd.DataFrame, int, int]:
    from sparkzoo.datasets import movielens_100k

    ratings = movielens_100k().ratings.head(RATINGS)
    positives = ratings[ratings["rating"] >= 4][["user_id", "item_id"]]
    rng = np.random.default_rng(0)
    negatives = pd.DataFrame(
        {"user_id": positives["user_id"].to_numpy(),
         "item_id": rng.integers(1, 1683, len(positives))}
    )  # fmt: skip
    frame = pd.concat(
        [positives.assign(label=1.0), negatives.assign(label=0.0)], ignore_index=True
    ).sample(frac=1.0, random_state=0)
    return frame.rename(columns={"user_id": "user", "item_id": "item"}), 944, 1683


def ncf_model(user_num, item_num, factor_num, lr):
    import tensorflow as tf

    user = tf.keras.layers.Input(shape=(), dtype="int32", name="user")
    item = tf.keras.layers.Input(shape=(), dtype="int32", name="item")
    u = tf.keras.layers.Embedding(user_num, factor_num)(user)
    i = tf.keras.layers.Embedding(item_num, factor_num)(item)
    gmf = tf.keras.layers.Multiply()([u, i])
    mlp = tf.keras.layers.Dense(factor_num, activation="relu")(
        tf.keras.layers.Concatenate()([u, i])
    )
    out = tf.keras.layers.Dense(1, activation="sigmoid")(tf.keras.layers.Concatenate()([gmf, mlp]))
    model = tf.keras.Model(inputs=[user, item], outputs=out)
    model.compile(
        optimizer=tf.keras.optimizers.Adam(lr),
        loss="binary_crossentropy",
        metrics=["accuracy", tf.keras.metrics.AUC(name="auc")],
    )
    return model


@pytest.fixture(scope="module")
def orca(spark):
    # Step 1: init the Orca context (it joins the test session's Spark)
    sc = init_orca_context(cluster_mode="local", cores=2, memory="2g")
    yield sc
    stop_orca_context()


def test_orca_ncf_program_runs_with_its_imports_changed(orca, tmp_path):
    frame, user_num, item_num = _ncf_frame()
    spark = OrcaContext.get_spark_session()
    df = spark.createDataFrame(frame)
    train_df, val_df = df.randomSplit([0.8, 0.2], seed=100)

    # Step 3: the model, through a creator of config, compiled there (Adam at 0.01)
    config = dict(user_num=user_num, item_num=item_num, factor_num=8, lr=0.01)

    def model_creator(config):
        return ncf_model(config["user_num"], config["item_num"], config["factor_num"],
                         config["lr"])  # fmt: skip

    # Step 4: distributed training
    est = Estimator.from_keras(model_creator=model_creator, config=config, backend="spark",
                               workers_per_node=2)  # fmt: skip
    stats = est.fit(train_df, epochs=2, batch_size=256, feature_cols=["user", "item"],
                    label_cols=["label"], validation_data=val_df)  # fmt: skip
    assert len(stats) == 2 and {"loss", "accuracy", "auc", "val_loss", "val_auc"} <= set(stats[0])
    assert stats[1]["loss"] < stats[0]["loss"]

    # Step 5: distributed evaluation: equal to Keras' evaluate of all rows in one process
    result = est.evaluate(val_df, feature_cols=["user", "item"], label_cols=["label"],
                          batch_size=256)  # fmt: skip
    assert set(result) == {"loss", "accuracy", "auc"}
    local = val_df.toPandas()
    expected = est.get_model().evaluate(
        [local["user"].to_numpy(), local["item"].to_numpy()], local["label"].to_numpy(),
        batch_size=256, verbose=0, return_dict=True,
    )  # fmt: skip
    for name in result:
        assert result[name] == pytest.approx(expected[name], abs=2e-3), name
    assert result["auc"] > 0.75  # it learnt who likes what (random: 0.5)

    # prediction: the DataFrame plus a `prediction` column
    predicted = est.predict(val_df, feature_cols=["user", "item"]).toPandas()
    assert len(predicted) == len(local) and "prediction" in predicted

    # Step 6: save the trained model; a new estimator loads it and predicts the same
    path = str(tmp_path / "NCF_model.h5")
    est.save(path)
    again = Estimator.from_keras(model_creator=model_creator, config=config).load(path)
    first = est.get_model().predict([local["user"].to_numpy(), local["item"].to_numpy()],
                                    verbose=0)  # fmt: skip
    second = again.get_model().predict([local["user"].to_numpy(), local["item"].to_numpy()],
                                       verbose=0)  # fmt: skip
    np.testing.assert_allclose(first, second, rtol=1e-6)
    est.shutdown()


def test_orca_arguments_sparkzoo_does_not_support_are_named(orca):
    spark = OrcaContext.get_spark_session()
    df = spark.createDataFrame(pd.DataFrame({"user": [1, 2], "item": [1, 2], "label": [0.0, 1.0]}))
    est = Estimator.from_keras(model_creator=lambda c: ncf_model(3, 3, 2, 0.01))
    with pytest.raises(ValueError, match="class_weight"):
        est.fit(df, feature_cols=["user", "item"], label_cols=["label"], class_weight={0: 2.0})
    with pytest.raises(ValueError, match="feature_cols= is needed"):
        est.fit(df, label_cols=["label"])
    with pytest.raises(TypeError, match="Spark or pandas DataFrame"):
        est.predict([1, 2, 3], feature_cols=["user"])
    with pytest.raises(ValueError, match="not started by sparkzoo"):
        init_orca_context(cluster_mode="yarn-client")
