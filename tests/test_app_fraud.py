"""The fraud app: past-window features without look-ahead, the time split, the imbalance and
threshold helpers, the CLI end to end (train, then score new transactions), bad input,
HDFS output. Its --help, notebook and spark-submit: tests/test_apps_contract.py with
apps/fraud/contract.json."""

from __future__ import annotations

import json
import uuid

import numpy as np
import pandas as pd
import pytest

from sparkzoo.apps.fraud import pipeline as fp

# A small synthetic run: 1000 customers x 0.06, 30 days, 5% fraud (about 3,800 rows).
SMALL = ["--sample-rate", "0.06", "--fraud-rate", "0.05", "--epochs", "1", "--batch-size", "64"]


# ---- fast unit tests ---------------------------------------------------------------------------


def test_layout_is_detected_and_missing_columns_are_named():
    assert fp.detect_layout(fp.TRANSACTION_COLUMNS) == "transactions"
    assert fp.detect_layout([*fp.CREDITCARD_INPUT, "Class"]) == "creditcard"
    with pytest.raises(ValueError, match=r"my.csv: missing column\(s\) merchant_id, amount"):
        fp.detect_layout(["timestamp", "customer_id", "merchant_category", "type"], "my.csv")
    with pytest.raises(ValueError, match="V28, Amount of the creditcard layout"):
        fp.detect_layout(["Time", *[f"V{i}" for i in range(1, 28)]])
    with pytest.raises(ValueError, match="layout must be"):
        fp.feature_columns("paysim")


def test_fraud_weight_reaches_the_share():
    assert fp.fraud_weight(10, 990, 0.2) == 25  # 10 x 25 weigh as 250 against 990 honest rows
    assert fp.fraud_weight(500, 500, 0.2) == 1  # never below an ordinary row
    with pytest.raises(ValueError, match="holds no fraud"):
        fp.fraud_weight(0, 100, 0.2)
    with pytest.raises(ValueError, match=r"share must be in \(0, 1\)"):
        fp.fraud_weight(1, 100, 1.0)


def test_threshold_reaches_the_recall_on_its_rows():
    y = np.array([0, 1, 1, 0, 1, 1, 0, 1])
    s = np.array([0.1, 0.9, 0.8, 0.7, 0.6, 0.3, 0.2, 0.05])
    threshold = fp.threshold_for_recall(y, s, 0.8)  # 4 of the 5 fraud: the 4th best is 0.3
    assert threshold == 0.3
    assert (s[y == 1] >= threshold).mean() >= 0.8
    assert fp.threshold_for_recall(y, s, 1.0) == 0.05
    assert fp.threshold_for_recall(np.zeros(3), np.ones(3)) == 0.5  # no fraud: the default
    # 4 fraud among the 5 rows scored >= 0.3
    assert fp.precision_at_recall(y, s, 0.8) == pytest.approx(4 / 5)
    assert fp.precision_at_recall(np.zeros(3), np.ones(3)) is None


def test_score_metrics_at_a_threshold():
    y = np.array([0, 0, 1, 1, 0, 1])
    s = np.array([0.1, 0.4, 0.35, 0.8, 0.2, 0.9])
    m = fp.score_metrics(y, s, threshold=0.35)
    assert (m["rows"], m["positives"], m["flagged"]) == (6, 3, 4)
    assert m["precision"] == pytest.approx(0.75) and m["recall"] == pytest.approx(1.0)
    assert m["f1"] == pytest.approx(2 * 0.75 / 1.75)
    assert m["auprc"] == pytest.approx(0.9166666, abs=1e-6)
    assert m["precision_at_recall_0.8"] == pytest.approx(0.75)
    none = fp.score_metrics(np.zeros(4), np.linspace(0, 1, 4), threshold=0.5)
    assert none["auprc"] is None and none["recall"] is None


def test_preprocessor_round_trips_through_json():
    prep = fp.Preprocessor(
        "transactions", ["a", "b"], [1.0, 2.0], [0.5, 1.0], {"type": ["DEBIT", "PAYMENT"]}, 0.42
    )
    assert prep.input_names == ["a", "b", "type=DEBIT", "type=PAYMENT"]
    assert fp.Preprocessor.from_json(prep.to_json()) == prep


def test_baselines_need_both_classes():
    with pytest.raises(ValueError, match="only one class"):
        fp.fit_baselines(np.zeros((5, 2)), np.zeros(5))


# ---- spark: features, split, preprocessing -------------------------------------------------------


def _rows(rows: list[tuple]) -> pd.DataFrame:
    """Transactions from (seconds after 2024-01-01, customer, merchant, amount, fraud)."""
    return pd.DataFrame(
        {
            "transaction_id": np.arange(len(rows), dtype=np.int64),
            "timestamp": pd.Timestamp("2024-01-01")
            + pd.to_timedelta([r[0] for r in rows], unit="s"),
            "customer_id": [r[1] for r in rows],
            "merchant_id": [r[2] for r in rows],
            "merchant_category": "grocery",
            "type": "PAYMENT",
            "amount": [float(r[3]) for r in rows],
            "is_fraud": [r[4] for r in rows],
        }
    )


def _features(spark, frame: pd.DataFrame) -> pd.DataFrame:
    data = fp.prepare(spark.createDataFrame(frame))
    columns = ["transaction_id", *fp.feature_columns("transactions")]
    out = fp.add_features(data).select(*columns).toPandas()
    return out.sort_values("transaction_id").set_index("transaction_id")


BASE = [
    (0, "A", "m1", 20.0, 0),
    (600, "A", "m2", 30.0, 0),
    (1200, "B", "m1", 5.0, 0),
    (3000, "A", "m1", 2.0, 0),
    (3000, "B", "m2", 40.0, 0),  # same second as the row before, other customer
    (90000, "A", "m3", 500.0, 1),
]


def test_features_see_only_strictly_earlier_rows(spark):
    features = _features(spark, _rows(BASE))
    a3 = features.loc[3]  # A at 3000 s: A's rows at 0 and 600 are in the past hour
    assert a3["acct_count_1h"] == pytest.approx(np.log1p(2))
    assert a3["acct_mean_all"] == pytest.approx(np.log1p(25.0))
    assert a3["amount_vs_acct_mean"] == pytest.approx(np.log(3.0 / 26.0))
    assert a3["acct_hours_since_last"] == pytest.approx(np.log1p(2400 / 3600))
    assert a3["acct_new_merchant"] == 0.0  # A paid m1 at 0 s
    assert a3["merch_count_1h"] == pytest.approx(np.log1p(2))  # m1 at 0 and 1200 s
    first = features.loc[0]
    assert (first["acct_count_all"], first["acct_first"], first["acct_new_merchant"]) == (
        0.0,
        1.0,
        1.0,
    )
    assert first["acct_hours_since_last"] == pytest.approx(np.log1p(fp.NO_HISTORY_HOURS))
    b4 = features.loc[4]  # B at 3000 s: the A row of the same second is not its past
    assert b4["merch_count_1h"] == pytest.approx(np.log1p(1))  # m2 at 600 s only
    a5 = features.loc[5]  # a day later: nothing in A's past hour or day
    assert (a5["acct_count_1h"], a5["acct_count_24h"]) == (0.0, 0.0)
    assert a5["acct_count_7d"] == pytest.approx(np.log1p(3))


def test_no_look_ahead_later_rows_change_nothing(spark):
    """Adding transactions after a row, or changing later ones (amount, merchant, label),
    even in the same second, leaves that row's features exactly as they were."""
    before = _features(spark, _rows(BASE))
    later = [
        *BASE[:5],
        (90000, "A", "m1", 9999.0, 0),  # changed: amount, merchant, label
        (3000, "A", "m1", 777.0, 1),  # same second as row 3 (A): not its past
        (3001, "A", "m1", 1.0, 1),
        (3001, "B", "m2", 1.0, 1),
        (50000, "C", "m1", 80.0, 0),
    ]
    after = _features(spark, _rows(later))
    pd.testing.assert_frame_equal(before.loc[[0, 1, 2, 3, 4]], after.loc[[0, 1, 2, 3, 4]])
    # ...while a row that does have them in its past sees them.
    assert after.loc[7, "acct_count_1h"] == pytest.approx(np.log1p(4))


def test_time_split_is_ordered_and_complete(spark):
    data = fp.prepare(
        spark.createDataFrame(
            _rows([(i * 60, f"C{i % 3}", "m1", 10.0, i % 7 == 0) for i in range(50)])
        )
    )
    train, val, test = fp.time_split(data.df, (0.6, 0.2, 0.2))
    times = [
        sorted(r[0] for r in part.select(fp.EVENT_TIME).collect()) for part in (train, val, test)
    ]
    sizes = [len(t) for t in times]
    assert sum(sizes) == 50 and all(
        abs(n - m) <= 1 for n, m in zip(sizes, [30, 10, 10], strict=True)
    )
    assert times[0][-1] < times[1][0] and times[1][-1] < times[2][0]
    with pytest.raises(ValueError, match="summing to 1"):
        fp.time_split(data.df, (0.5, 0.2, 0.2))


def test_preprocessor_uses_the_training_part_only(spark):
    rows = [(i * 60, "A", "m1", 10.0 if i < 30 else 1000.0, int(i % 5 == 0)) for i in range(50)]
    feats = fp.add_features(fp.prepare(spark.createDataFrame(_rows(rows))))
    train, _, _ = fp.time_split(feats)
    prep = fp.fit_preprocessor(train, "transactions")
    log_amount = prep.numeric.index("log_amount")
    assert prep.mean[log_amount] == pytest.approx(np.log1p(10.0))  # the 1000s come later
    assert prep.std[log_amount] == 1.0  # constant in training: mapped to 0, not divided by 0
    assert prep.vocabulary == {"type": ["PAYMENT"], "merchant_category": ["grocery"]}
    vectors = np.stack(fp.assemble(train, prep).select(fp.FEATURES).toPandas()[fp.FEATURES])
    assert vectors.shape == (29, len(prep.input_names))  # times before the 0.6 quantile
    assert np.allclose(vectors[:, log_amount], 0.0)
    weighted, factor = fp.with_class_weights(train, 0.5)
    assert factor == 4  # 6 fraud x 4 weigh 24 against 23 honest rows
    totals = {r[0]: r[1] for r in weighted.groupBy("label").sum(fp.WEIGHT).collect()}
    assert totals == {1: 24.0, 0: 23.0} and weighted.count() == 29  # no row repeated


def test_prepare_names_bad_values(spark):
    frame = _rows(BASE)
    frame.loc[2, "amount"] = np.nan
    with pytest.raises(ValueError, match="column 'amount' holds 1 null/NaN"):
        fp.prepare(spark.createDataFrame(frame), "bad.parquet")
    frame = _rows(BASE)
    frame.loc[1, "is_fraud"] = 3
    with pytest.raises(ValueError, match=r"label column holds 1 value\(s\) not 0/1"):
        fp.prepare(spark.createDataFrame(frame))
    with pytest.raises(ValueError, match="no label column 'is_fraud'"):
        fp.prepare(spark.createDataFrame(_rows(BASE).drop(columns="is_fraud")))
    with pytest.raises(ValueError, match="no transactions"):
        fp.prepare(spark.createDataFrame(_rows(BASE)).limit(0))


# ---- spark: the CLI end to end -----------------------------------------------------------------


def _check_training_output(read_json, read_parquet, exists) -> dict:
    record = read_json("metrics.json")
    metrics = record["metrics"]
    assert record["app"] == "fraud" and record["loadavg"] is not None
    assert set(metrics["models"]) == {
        "tabular_mlp",
        "hist_gradient_boosting",
        "logistic_regression",
    }
    rows = metrics["rows"]
    assert rows["train"] > rows["validation"] > 0 and rows["test"] > 0
    for name, m in metrics["models"].items():
        test = m["test"]
        assert test["rows"] == rows["test"], name
        if test["positives"]:
            assert 0.0 < test["auprc"] <= 1.0 and 0.0 <= test["precision_at_recall_0.8"] <= 1.0
    assert 0.0 <= metrics["threshold"] <= 1.0
    scored = read_parquet("scored_test")
    assert scored.columns == fp.output_columns("transactions", True)
    assert scored.count() == rows["test"]
    low, high = scored.selectExpr("min(score)", "max(score)").first()
    assert 0.0 <= low <= high <= 1.0
    assert scored.where(f"flag != (score >= {metrics['threshold']})").count() == 0
    prep = fp.Preprocessor.from_json(json.dumps(read_json("model/preprocess.json")))
    assert prep.threshold == metrics["threshold"] and prep.input_names == metrics["features"]
    assert exists("model/keras/model.keras") and exists("pr_curve.png")
    return metrics


def test_cli_trains_evaluates_and_scores_new_transactions(spark, tmp_path):
    from sparkzoo.apps.fraud.__main__ import main
    from sparkzoo.datasets.synthetic import transactions

    out = tmp_path / "out"
    assert main(["--output", str(out), *SMALL, "--tune", "2"]) == 0
    tuning = json.loads((out / "metrics.json").read_text())["metrics"]["tuning"]
    assert len(tuning["trials"]) == 2 and (out / "tune.png").exists()
    assert set(tuning["best_params"]) == {"learning_rate", "batch_size", "model_params"}
    _check_training_output(
        lambda n: json.loads((out / n).read_text()),
        lambda n: spark.read.parquet(str(out / n)),
        lambda n: (out / n).exists(),
    )
    assert (out / "pr_curve.png").read_bytes()[:4] == b"\x89PNG"

    # New transactions: another month of 40 customers, scored with and without history.
    batch = transactions(n_customers=40, days=10, fraud_rate=0.05, seed=7)
    batch.drop(columns=["is_fraud", "fraud_pattern"]).to_csv(tmp_path / "new.csv", index=False)
    scored_dir = tmp_path / "scored"
    assert (
        main(
            [
                "score",
                "--model",
                str(out / "model"),
                "--input",
                str(tmp_path / "new.csv"),
                "--output",
                str(scored_dir),
            ]
        )
        == 0
    )
    scores = spark.read.parquet(str(scored_dir / "scores"))
    assert scores.count() == len(batch)
    assert scores.columns == fp.output_columns("transactions", False)
    metrics = json.loads((scored_dir / "metrics.json").read_text())["metrics"]
    assert metrics["rows"] == len(batch)
    assert metrics["flagged"] == scores.where("flag").count()


def test_cli_bad_input_leaves_no_output(spark, tmp_path, capsys):
    from sparkzoo.apps.fraud.__main__ import main

    out = tmp_path / "out"
    assert main(["--input", str(tmp_path / "missing.csv"), "--output", str(out)]) == 2
    assert "missing.csv' does not exist" in capsys.readouterr().err
    bad = tmp_path / "bad.csv"
    _rows(BASE).drop(columns="merchant_id").to_csv(bad, index=False)
    assert main(["--input", str(bad), "--output", str(out)]) == 2
    assert "missing column(s) merchant_id" in capsys.readouterr().err
    assert not out.exists() and sorted(p.name for p in tmp_path.iterdir()) == ["bad.csv"]
    assert main(["score", "--model", str(tmp_path), "--input", str(bad), "--output", str(out)]) == 2
    assert "holds no fraud model" in capsys.readouterr().err
    assert not out.exists()


def test_creditcard_layout_features_and_reader(spark, tmp_path):
    """The Kaggle CSV layout (here the generator's creditcard view written as a CSV): read
    through read_creditcard, stream windows over strictly earlier seconds only."""
    from sparkzoo.datasets.synthetic import transactions

    path = tmp_path / "creditcard.csv"
    frame = transactions(n_customers=20, days=3, fraud_rate=0.05, schema="creditcard")
    frame.to_csv(path, index=False)
    raw = fp.load_transactions(spark, str(path))
    data = fp.prepare(raw, str(path))
    assert (data.layout, data.labelled) == ("creditcard", True)
    feats = fp.add_features(data).select("Time", *fp.feature_columns("creditcard")).toPandas()
    assert len(feats) == len(frame)
    times = feats["Time"].to_numpy()
    row = len(feats) // 2
    t = np.floor(times[row])
    earlier = np.floor(times)
    expected = ((earlier >= t - 3600) & (earlier <= t - 1)).sum()
    assert feats["stream_count_1h"].iloc[row] == pytest.approx(np.log1p(expected))
    bad = tmp_path / "bad.csv"
    frame.drop(columns="V7").to_csv(bad, index=False)
    with pytest.raises(ValueError, match=r"missing column\(s\) V7"):
        fp.prepare(fp.load_transactions(spark, str(bad)), str(bad))


# ---- hdfs --------------------------------------------------------------------------------------


def test_cli_writes_to_hdfs(spark, hdfs):
    from sparkzoo import fs
    from sparkzoo.apps.fraud.__main__ import main

    output = f"{hdfs}/apps/fraud-{uuid.uuid4().hex[:8]}"
    assert main(["--output", output, *SMALL]) == 0
    _check_training_output(
        lambda n: json.loads(fs.read_bytes(fs.join(output, n))),
        lambda n: spark.read.parquet(fs.join(output, n)),
        lambda n: fs.exists(fs.join(output, n)),
    )
    fitted, prep = fp.load_model(fs.join(output, "model"))
    assert prep.layout == "transactions" and len(fitted.input_shapes) == 1
