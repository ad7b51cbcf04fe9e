"""apps/text_classification: the checks of its input, its scores and the confidently wrong
reviews, and a run plus ``score`` on HDFS (your own CSV of real reviews in, Parquet scores
out, the same probabilities as the saved vocabulary gives locally). A run on the default
corpus, the notebook and the app's own bad input are in test_apps_contract.py, from the app's
contract.json."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from sparkzoo.apps.text_classification import __main__ as cli
from sparkzoo.apps.text_classification import pipeline as tc
from sparkzoo.datasets.loaders import rotten_tomatoes


def test_the_cli_and_the_pipeline_name_the_same_models():
    assert cli.MODELS == tc.MODELS


def test_inputs_are_read_by_their_names():
    assert tc.table_format("hdfs://h:1/r/reviews.CSV") == "csv"
    assert tc.table_format("new.txt") == "text"
    assert tc.table_format("out/reviews/") == "parquet"


def test_missing_columns_and_single_classes_are_named():
    with pytest.raises(ValueError, match=r"r\.csv: no column 'text' \(--text-col\); its columns "
                       r"are 'review', 'label'"):  # fmt: skip
        tc.check_columns(["review", "label"], "r.csv", {"--text-col": "text"})
    with pytest.raises(ValueError, match="label column 'stars' has one class \\('5'\\) in 3 rows"):
        tc.check_classes({"5": 3}, "r.csv", "stars")
    with pytest.raises(ValueError, match=r"r\.csv: no rows with both a text and a label"):
        tc.check_classes({}, "r.csv", "label")
    assert tc.check_classes({"pos": 2, "neg": 1}, "r.csv", "label") == ["neg", "pos"]


def test_a_local_csv_of_real_reviews_is_checked_before_spark(tmp_path):
    reviews = rotten_tomatoes()[["text", "category"]].head(40)
    path = tmp_path / "reviews.csv"
    reviews.assign(text=reviews["text"] + ', "quoted", and\nbroken').to_csv(path, index=False)
    assert tc.check_local_input(str(path), "text", "category") == ["fresh", "rotten"]
    with pytest.raises(ValueError, match="no column 'label' \\(--label-col\\)"):
        tc.check_local_input(str(path), "text", "label")


def test_accuracy_and_macro_f1():
    truth = np.array([0, 0, 0, 1, 1, 1, 1, 1])
    guess = np.array([0, 1, 1, 1, 1, 1, 1, 0])
    # class 0: precision 1/2, recall 1/3 -> F1 0.4; class 1: precision 4/6, recall 4/5 -> 8/11
    assert tc.classification_scores(truth, guess, 2) == {
        "accuracy": 0.625,
        "f1": round((0.4 + 8 / 11) / 2, 4),
    }
    majority = tc.classification_scores(truth, np.ones(8, int), 2)
    assert majority["accuracy"] == 0.625 and majority["f1"] == round((0 + 10 / 13) / 2, 4)


def test_the_most_confidently_wrong_come_first():
    probabilities = np.array([[0.9, 0.1], [0.2, 0.8], [0.45, 0.55], [0.03, 0.97], [0.6, 0.4]])
    wrong = tc.confidently_wrong(["a", "b", "c", "d", "e"], np.array([1, 0, 0, 1, 0]),
                                 probabilities, ["rotten", "fresh"], n=2)  # fmt: skip
    assert wrong == [
        {"text": "a", "label": "fresh", "predicted": "rotten", "probability": 0.9},
        {"text": "b", "label": "rotten", "predicted": "fresh", "probability": 0.8},
    ]


def test_model_configurations_and_the_confusion_figure():
    spec = {"vocabulary": ["film", "good"], "length": 12, "labels": ["neg", "pos", "mixed"]}
    assert tc.model_config("text_cnn", spec, 8, 4) == {
        "vocab_size": 4, "seq_len": 12, "num_classes": 3, "embedding_dim": 8,
        "kernel_sizes": [3, 4, 5], "filters": 4,
    }  # fmt: skip
    assert tc.model_config("text_rnn", spec, 8, units=6)["units"] == 6
    with pytest.raises(ValueError, match="--model 'bert'"):
        tc.model_config("bert", spec)
    with pytest.raises(ValueError, match="--seq-len 4"):
        tc.model_config("text_cnn", {**spec, "length": 4})
    evaluation = tc.Evaluation(
        ["neg", "pos"],
        scores={m: {"accuracy": 0.5, "f1": 0.4} for m in ("model", "tfidf_logistic")},
        confusion={m: [[3, 1], [2, 4]] for m in ("model", "tfidf_logistic")},
    )
    figure = tc.confusion_figure(evaluation, "text_cnn")
    assert len(figure.axes) == 2 and figure.axes[0].get_title().startswith("text_cnn")


@pytest.mark.slow
def test_run_and_score_on_hdfs_with_your_own_columns(spark, hdfs):
    from sparkzoo import fs
    from sparkzoo.models.recipes.text_cnn_rotten_tomatoes import encode
    from sparkzoo.trainer import KerasModel

    reviews = rotten_tomatoes(full=True).sample(400, random_state=1)
    table = pd.DataFrame({"review": reviews["text"], "verdict": reviews["category"]})
    fs.write_bytes(f"{hdfs}/text/reviews.csv", table.to_csv(index=False).encode())
    out = f"{hdfs}/text/out"
    args = ["--input", f"{hdfs}/text/reviews.csv", "--text-col", "review", "--label-col",
            "verdict", "--epochs", "1", "--seq-len", "30", "--embedding-dim", "8", "--filters",
            "8", "--min-count", "1", "--no-baseline", "--output", out]  # fmt: skip
    assert cli.main(args) == 0
    metrics = json.loads(fs.read_bytes(f"{out}/metrics.json"))["metrics"]
    assert metrics["classes"] == ["fresh", "rotten"]
    assert metrics["train_rows"] + metrics["held_out_rows"] == 400
    assert set(metrics["results"]) == {"model"}
    assert fs.exists(f"{out}/confusion_matrix.png")

    # score new texts (a text file, one per line) with the saved model and its vocabulary
    texts = rotten_tomatoes().sample(25, random_state=2)["text"].str.replace("\n", " ").tolist()
    fs.write_bytes(f"{hdfs}/text/new.txt", ("\n".join(texts) + "\n").encode())
    scored_out = f"{hdfs}/text/scored"
    assert cli.main(["score", "--model", f"{out}/model", "--input", f"{hdfs}/text/new.txt",
                     "--output", scored_out]) == 0  # fmt: skip
    scored = spark.read.parquet(f"{scored_out}/scores").toPandas()
    assert sorted(scored["text"]) == sorted(texts)
    assert set(scored["prediction"]) <= {"fresh", "rotten"}
    probabilities = np.stack(scored["probabilities"].to_numpy())
    np.testing.assert_allclose(probabilities.sum(axis=1), 1, atol=1e-5)
    np.testing.assert_allclose(scored["probability"], probabilities.max(axis=1), atol=1e-6)
    # the same probabilities as the saved spec (the zoo card's format) gives locally
    spec = json.loads(fs.read_bytes(f"{out}/model/preprocessing.json"))
    model = KerasModel.load(f"{out}/model/keras").keras_model()
    local = model.predict(encode(scored["text"].tolist(), spec), verbose=0)
    np.testing.assert_allclose(probabilities, local, atol=1e-5)
    summary = json.loads(fs.read_bytes(f"{scored_out}/metrics.json"))["metrics"]
    assert summary["rows"] == 25 and sum(summary["predicted"].values()) == 25
