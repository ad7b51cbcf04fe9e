"""apps/object_detection: the detect -> crop -> embed pipeline, its subcommands and its CLI (its
--help, bad input, notebook and submit.sh: tests/test_apps_contract.py with its contract.json).

Inputs are the COMPOSED detection scenes (real MNIST digits on real photographs) that the
detector cards were measured on, and real scikit-image photos for the face detector.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from sparkzoo.apps.common import read_metrics
from sparkzoo.apps.object_detection import pipeline as p
from sparkzoo.apps.object_detection.__main__ import DETECTORS, build_parser, main

# ---- fast unit tests ----------------------------------------------------------------------------


def test_pixel_box_and_crop():
    assert p.pixel_box([0.1, 0.2, 0.5, 0.6], 100, 200) == (10, 40, 50, 120)
    # A degenerate box still covers one pixel inside the image.
    assert p.pixel_box([1.0, 1.0, 1.0, 1.0], 10, 10) == (9, 9, 10, 10)
    image = np.arange(100 * 200 * 3, dtype=np.int64).reshape(100, 200, 3)
    assert p.crop(image, [0.1, 0.2, 0.5, 0.6]).shape == (40, 80, 3)
    with pytest.raises(ValueError, match="non-finite"):
        p.pixel_box([0.1, np.nan, 0.5, 0.6], 10, 10)


@pytest.mark.parametrize("ink, paper", [(255, 90), (0, 200), ((250, 20, 20), (30, 120, 30))])
def test_crop_to_patch_is_white_ink_on_black_centred(ink, paper):
    image = np.empty((60, 60, 3), np.uint8)
    image[:] = paper
    image[20:40, 27:33] = ink  # a vertical bar, like a "1"
    patch = p.crop_to_patch(image, [20 / 60, 27 / 60, 40 / 60, 33 / 60])
    assert patch.shape == (28, 28) and patch.dtype == np.uint8
    assert patch.max() == 255
    assert patch[0].max() == 0 and patch[:, 0].max() == 0  # black border
    ys, xs = np.nonzero(patch > 128)
    assert abs(ys.mean() - 14) <= 1.5 and abs(xs.mean() - 14) <= 1.5
    assert ys.max() - ys.min() + 1 >= 18  # fitted into 20 x 20 like MNIST


def test_keep_mask():
    scores = np.array([0.2, 0.9, 0.5])
    assert p.keep_mask(scores, "top", 0.3).tolist() == [False, True, False]
    assert p.keep_mask(scores, "all", 0.3).tolist() == [False, True, True]
    assert p.keep_mask(scores, "top", 0.95).tolist() == [False, False, False]
    assert p.keep_mask(np.zeros(0), "top", 0.3).tolist() == []


def test_config_rejects_bad_values():
    with pytest.raises(ValueError, match="detector 'rcnn' unknown"):
        p.PipelineConfig(detector="rcnn")
    with pytest.raises(ValueError, match="keep must be"):
        p.PipelineConfig(keep="best")
    with pytest.raises(ValueError, match="score_threshold"):
        p.PipelineConfig(score_threshold=float("nan"))
    with pytest.raises(ValueError, match="code_model"):
        p.PipelineConfig(code_model="deepbit.cifar")
    assert p.PipelineConfig(score_threshold=0.5).min_score == 0.05
    assert p.PipelineConfig(detector="haar.face").min_score == 0.0


def _features(codes, vectors, classes):
    return pd.DataFrame(
        {
            "image_id": [f"im{i}" for i in range(len(codes))],
            "path": [f"/x/im{i}.png" for i in range(len(codes))],
            "object": 0,
            "box": [[0.1, 0.1, 0.5, 0.5]] * len(codes),
            "class": classes,
            "score": 0.9,
            "code": [np.packbits(np.array(c, np.uint8)).tobytes() for c in codes],
            "vector": list(np.asarray(vectors, np.float32)),
        }
    )


def test_search_ranks_by_hamming_and_cosine():
    codes = [[0] * 8, [1] + [0] * 7, [1] * 8]
    vectors = [[1, 0], [0.9, 0.1], [0, 1]]
    features = _features(codes, vectors, ["a", "a", "b"])
    query = {"code": np.packbits(np.array([1] * 8, np.uint8)).tobytes(), "vector": [0.1, 1.0]}
    top = p.search(features, query, "hamming", k=2)
    assert top["image_id"].tolist() == ["im2", "im1"]
    assert top["distance"].tolist() == [0, 7]
    assert top["rank"].tolist() == [1, 2]
    assert p.search(features, query, "cosine", k=1)["image_id"].tolist() == ["im2"]
    with pytest.raises(ValueError, match="metric must be"):
        p.search(features, query, "euclid")
    with pytest.raises(ValueError, match="has no vector"):
        p.search(features, {"code": query["code"], "vector": None}, "cosine")


def test_parse_defaults_to_run():
    parse = build_parser().parse_args
    args = parse(["--output", "out"])
    assert args.command == "run" and args.detector == "ssd_lite.scenes" and args.keep == "top"
    assert parse(["run", "--output", "o", "--code-model", "none"]).code_model is None
    assert parse(["search", "--output", "o", "--query", "q.png", "-k", "3"]).top_k == 3
    assert p.DETECTORS == DETECTORS  # the --detector choices


def test_scenes_ground_truth_and_map(tmp_path, monkeypatch):
    monkeypatch.setenv("SPARKZOO_APP_CACHE", str(tmp_path / "cache"))
    folder = p.default_input("ssd_lite.scenes", scenes=3)
    assert folder.startswith(str(tmp_path / "cache"))
    assert sorted(os.listdir(Path(folder) / "images")) == [
        "test-00000.png",
        "test-00001.png",
        "test-00002.png",
    ]
    assert p.default_input("ssd_lite.scenes", scenes=3) == folder  # reused, not rewritten
    truth = p.ground_truth(folder)
    assert sorted(truth) == ["test-00000", "test-00001", "test-00002"]
    boxes, classes = truth["test-00000"]
    assert boxes.shape == (len(classes), 4) and ((boxes >= 0) & (boxes <= 1)).all()
    # The ground truth scored as detections gives mAP 1; a shifted copy scores 0.
    rows = [
        {"image_id": k, "box": list(b), "score": 0.9, "class_id": int(c), "kept": True}
        for k, (bs, cs) in truth.items()
        for b, c in zip(bs, cs, strict=True)
    ]
    table = pd.DataFrame(rows).assign(error=None)
    assert p.detection_map(table, truth)["map50"] == pytest.approx(1.0)
    shifted = table.assign(box=[list(np.asarray(b) * 0 + [0.9, 0.9, 1.0, 1.0]) for b in table.box])
    assert p.detection_map(shifted, truth)["map50"] == 0.0
    assert p.true_classes(table, truth).tolist() == table["class_id"].tolist()
    assert p.ground_truth(str(tmp_path)) is None


# ---- models (TensorFlow): slow ---------------------------------------------------------------


@pytest.mark.slow
def test_process_images_detects_crops_and_embeds(tmp_path):
    from sparkzoo.datasets.synthetic import detection_scenes

    scenes = detection_scenes(4, image_size=96, seed=0, subset="test")
    config = p.PipelineConfig(keep="all", score_threshold=0.3)
    out = p.process_images(list(scenes.images), config)
    assert len(out) == 4
    truth = {f"s{i}": scenes.targets(i) for i in range(4)}
    kept = pd.DataFrame(
        [{**r, "image_id": f"s{i}"} for i, rows in enumerate(out) for r in rows if r["kept"]]
    )
    assert len(kept) >= 4
    assert all(len(c) == 4 for c in kept["code"]) and all(len(v) == 84 for v in kept["vector"])
    assert all(len(x) == 28 * 28 for x in kept["patch"])
    labels = p.true_classes(kept, truth)
    assert (labels >= 0).mean() > 0.7  # most kept boxes are real digits
    # The crops read as digits: LeNet's own last layer on the stored vectors.
    assert p.lenet_accuracy(kept, labels) > 0.7
    top = p.process_images([scenes.images[0]], p.PipelineConfig(keep="top"))[0]
    assert sum(r["kept"] for r in top) == 1
    assert max(top, key=lambda r: r["score"])["kept"]


def test_detect_batch_runs_without_spark_and_reports_a_bad_file():
    """The executor step as the inference layer runs it, on an Arrow batch, with no Spark."""
    import pyarrow as pa

    from sparkzoo.datasets.synthetic import detection_scenes
    from sparkzoo.trainer.inference import run_batches

    scene = detection_scenes(1, image_size=96, seed=0, subset="test").images[0]
    batch = pa.RecordBatch.from_pylist(
        [
            {"path": "/in/good-1.png", "content": p.png_bytes(scene)},
            {"path": "/in/broken.png", "content": b"not an image"},
        ]
    )
    config = p.PipelineConfig(keep="top")
    [out] = run_batches(
        iter([batch]),
        lambda: (*p.load_models(config), config),
        p.detect_batch,
        p.DETECTIONS_SCHEMA,
        key="test-detect-batch",
        read=p.decoded_images,
        keep_input=False,
    )
    rows = out.to_pandas()
    assert out.schema == p.DETECTIONS_SCHEMA
    bad = rows[rows["path"] == "/in/broken.png"]
    assert bad["object"].tolist() == [-1] and "broken.png" in bad["error"].iloc[0]
    good = rows[rows["image_id"] == "good-1"]
    assert good["error"].isna().all() and good["kept"].sum() == 1
    kept = good[good["kept"]].iloc[0]
    assert len(kept["code"]) == 4 and len(kept["vector"]) == 84 and len(kept["patch"]) == 784


# ---- Spark: the CLI end to end ------------------------------------------------------------------


def _scene_folder(root: Path, n: int) -> Path:
    folder = Path(p.materialise_scenes(str(root / "scenes"), n=n))
    # A byte-identical copy of one scene: the duplicate report must pair its objects.
    shutil.copy(folder / "images" / "test-00001.png", folder / "images" / "copy-00001.png")
    return folder


@pytest.fixture(scope="module")
def run_output(spark, tmp_path_factory):
    root = tmp_path_factory.mktemp("object_detection")
    folder = _scene_folder(root, 10)
    output = root / "run"
    args = ["--input", str(folder), "--output", str(output), "--keep", "all", "--previews", "3"]
    assert main([*args, "--partitions", "1"]) == 0
    return folder, output


def test_run_writes_features_metrics_and_previews(spark, run_output):
    _, output = run_output
    metrics = read_metrics(str(output))["metrics"]
    assert metrics["images"] == 11 and metrics["unreadable_images"] == 0
    assert 0.5 < metrics["map50"] <= 1.0  # the card's 0.795 on 200 scenes; 10 are noisy
    assert metrics["card_map50"] == pytest.approx(0.7954)
    assert metrics["kept_objects"] >= 11
    assert metrics["retrieval"]["queries"] > 0
    features = spark.read.parquet(str(output / "features"))
    assert set(features.columns) >= {"image_id", "path", "box", "score", "class", "code", "vector"}
    rows = features.toPandas()
    assert len(rows) == metrics["kept_objects"]
    boxes = np.stack(rows["box"].to_numpy())
    assert ((boxes >= 0) & (boxes <= 1)).all() and (boxes[:, 2] > boxes[:, 0]).all()
    assert (rows["score"] >= 0.3).all() and set(rows["class"]) <= set("0123456789")
    assert rows["code"].map(len).eq(4).all() and rows["vector"].map(len).eq(84).all()
    detections = spark.read.parquet(str(output / "detections"))
    assert detections.count() >= len(rows)
    assert len(list((output / "previews").glob("*.png"))) == 3
    assert (output / "previews.png").stat().st_size > 1000


def test_search_duplicates_and_visualise(spark, run_output, tmp_path):
    folder, output = run_output
    query = str(folder / "images" / "test-00001.png")
    for metric in ("hamming", "cosine"):
        out = tmp_path / f"search-{metric}"
        args = ["search", "--input", str(output), "--query", query, "--metric", metric]
        assert main([*args, "-k", "3", "--output", str(out)]) == 0
        found = read_metrics(str(out))["metrics"]
        assert found["results"] == 3 and found["distances"][0] == pytest.approx(0, abs=1e-6)
        assert (out / "results.png").exists() and (out / "results.json").exists()

    out = tmp_path / "dups"
    assert main(["duplicates", "--input", str(output), "--output", str(out)]) == 0
    pairs = spark.read.parquet(str(out / "pairs")).toPandas()
    exact = pairs[{"copy-00001", "test-00001"} == pairs[["a_image", "b_image"]].apply(set, axis=1)]
    assert len(exact) >= 1 and (exact["hamming"] == 0).any()
    assert (pairs["hamming"] <= 1).all() and (pairs["cosine"] <= 0.005).all()

    out = tmp_path / "vis"
    assert main(["visualise", "--input", str(output), "--images", "2", "--output", str(out)]) == 0
    assert len(list((out / "images").glob("*.png"))) == 2


def test_run_face_detector_on_real_photos(spark, tmp_path):
    folder = p.materialise_photos(str(tmp_path / "photos"), ["astronaut", "coffee"])
    out = tmp_path / "faces"
    args = ["--input", folder, "--output", str(out), "--detector", "haar.face"]
    assert main([*args, "--score-threshold", "0"]) == 0
    metrics = read_metrics(str(out))["metrics"]
    assert metrics["images"] == 2 and metrics["map50"] is None
    rows = spark.read.parquet(str(out / "features")).toPandas()
    assert rows["image_id"].tolist() == ["astronaut"] and rows["class"].tolist() == ["face"]
    y1, x1, _, _ = rows["box"].iloc[0]
    assert 0.05 < y1 < 0.2 and 0.3 < x1 < 0.4  # Eileen Collins' face, upper middle


def test_bad_input_fails_cleanly(spark, tmp_path, capsys):
    folder = _scene_folder(tmp_path, 2)
    (folder / "images" / "broken.png").write_bytes(b"not a png at all")
    out = tmp_path / "out"
    assert main(["--input", str(folder), "--output", str(out)]) == 2
    err = capsys.readouterr().err
    assert "could not be read" in err and "broken.png" in err
    assert not out.exists() and not list(tmp_path.glob("out.tmp-*"))
    assert main(["--input", str(folder), "--output", str(out), "--on-error", "skip"]) == 0
    assert read_metrics(str(out))["metrics"]["unreadable_images"] == 1
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["--input", str(empty), "--output", str(tmp_path / "o2")]) == 2
    assert "no image file" in capsys.readouterr().err
    assert not (tmp_path / "o2").exists()


@pytest.mark.hdfs
def test_run_reads_and_writes_hdfs(spark, hdfs, tmp_path):
    from sparkzoo import fs

    folder = p.materialise_scenes(str(tmp_path / "scenes"), n=4)
    fs.put(folder, f"{hdfs}/inputs/scenes")
    output = f"{hdfs}/apps/object_detection"
    args = ["--input", f"{hdfs}/inputs/scenes", "--output", output, "--previews", "1"]
    assert main([*args, "--overwrite"]) == 0
    metrics = read_metrics(output)["metrics"]
    assert metrics["images"] == 4 and metrics["map50"] is not None
    features = spark.read.parquet(f"{output}/features")
    assert features.count() == metrics["kept_objects"]
    assert features.first().path.startswith("hdfs://")
    assert fs.exists(f"{output}/previews.png")


# ---- stream: images landing in a folder (Structured Streaming) --------------------------------


def _land(scene: Path, inbox: Path, name: str | None = None) -> None:
    """An image file appears in ``inbox`` at once (copied beside it, then renamed in)."""
    staged = inbox.parent / f".{name or scene.name}"
    shutil.copy(scene, staged)
    os.rename(staged, inbox / (name or scene.name))


def _check_streamed(spark, out: str, files: set[str]) -> pd.DataFrame:
    """Every landed file is in detections/ once (its rows from one micro-batch, each object
    once), and features/ holds exactly the kept rows."""
    detections = spark.read.parquet(f"{out}/detections").toPandas()
    names = detections["path"].map(lambda x: x.rsplit("/", 1)[-1])
    assert set(names) == files
    assert detections.groupby("path")["batch"].nunique().eq(1).all()  # no image twice
    assert not detections.duplicated(["path", "object"]).any()
    features = spark.read.parquet(f"{out}/features").toPandas()
    kept = detections[detections["kept"] & detections["error"].isna()]
    assert sorted(zip(features["path"], features["object"], strict=True)) == sorted(
        zip(kept["path"], kept["object"], strict=True)
    )
    assert features["code"].map(len).eq(4).all() and features["vector"].map(len).eq(84).all()
    return detections


def test_stream_appends_landing_images_exactly_once_across_restarts(spark, tmp_path, capsys):
    from sparkzoo.apps.object_detection import streaming

    scenes = sorted(
        (Path(p.materialise_scenes(str(tmp_path / "scenes"), n=5)) / "images").iterdir()
    )
    inbox, out, checkpoint = tmp_path / "in", str(tmp_path / "out"), str(tmp_path / "checkpoint")
    inbox.mkdir()
    config = p.PipelineConfig(keep="all")
    # Files land while the query runs.
    query = streaming.start(spark, str(inbox), out, checkpoint, config, trigger_seconds=0.2)
    _land(scenes[0], inbox)
    _land(scenes[1], inbox)
    query.processAllAvailable()
    (tmp_path / ".broken.png").write_bytes(b"not a png at all")
    os.rename(tmp_path / ".broken.png", inbox / "broken.png")
    _land(scenes[2], inbox)
    query.processAllAvailable()
    query.stop()
    batches = sorted(os.listdir(f"{out}/detections"))
    assert batches[-1].startswith("batch=") and not [b for b in batches if "staging" in b]

    # Stopped between writing its output and committing to the checkpoint: the last
    # micro-batch is replayed on restart and must not be written twice (features/ of it
    # lost too, as if the stop came between the two tables).
    last = max(int(b.split("=")[1]) for b in batches)
    for name in (str(last), f".{last}.crc"):  # the commit and its Hadoop checksum file
        os.remove(f"{checkpoint}/commits/{name}")
    shutil.rmtree(f"{out}/features/batch={last}")

    # Started again with the same checkpoint, by the CLI; two more files landed meanwhile.
    _land(scenes[3], inbox)
    _land(scenes[4], inbox)
    args = ["stream", "--input", str(inbox), "--output", out, "--checkpoint", checkpoint]
    assert main([*args, "--keep", "all", "--available-now", "--max-files-per-trigger", "1"]) == 0
    printed = capsys.readouterr().out
    assert f"batch {last}: unreadable image" in printed  # the replay of the cut batch
    assert f"batch {last + 1}: 1 images in" in printed
    assert "2 images in 2 micro-batches (no more input)" in printed

    rows = _check_streamed(spark, out, {s.name for s in scenes} | {"broken.png"})
    bad = rows[rows["error"].notna()]
    assert bad["path"].str.endswith("broken.png").all() and bad["object"].tolist() == [-1]
    assert "ImageDecodeError" in bad["error"].iloc[0]
    assert (rows.loc[rows["error"].isna(), "image_id"].nunique(), rows["batch"].nunique()) == (5, 4)


def test_stream_refuses_bad_arguments_before_starting(tmp_path, capsys):
    image = tmp_path / "one.png"
    image.write_bytes(b"")
    out, checkpoint = tmp_path / "out", tmp_path / "ck"
    args = ["stream", "--output", str(out), "--checkpoint", str(checkpoint)]
    for extra, error in (
        ([], "--input (the folder files land in) is required"),
        (["--input", str(image)], f"--input {str(image)!r} is not a folder"),
        (["--input", str(tmp_path), "--sample-rate", "0.5"], "--sample-rate does not apply"),
        (["--input", str(tmp_path), "--trigger-seconds", "0"], "--trigger-seconds must be > 0"),
    ):
        assert main([*args, *extra]) == 2
        assert error in capsys.readouterr().err
    assert main(["stream", "--input", str(tmp_path), "--output", str(out)]) == 2
    assert "--checkpoint" in capsys.readouterr().err
    assert not out.exists() and not checkpoint.exists()
    # An output written with another checkpoint: a new query would skip its batch ids.
    (out / "detections" / "batch=0").mkdir(parents=True)
    assert main([*args, "--input", str(tmp_path)]) == 2
    assert "holds the output of a stream whose --checkpoint is not" in capsys.readouterr().err
    assert not checkpoint.exists()


@pytest.mark.hdfs
def test_stream_reads_and_writes_hdfs(spark, hdfs, tmp_path, capsys):
    from sparkzoo import fs

    scenes = sorted(
        (Path(p.materialise_scenes(str(tmp_path / "scenes"), n=3)) / "images").iterdir()
    )
    inbox, out = f"{hdfs}/inputs/stream", f"{hdfs}/apps/object_detection_stream"
    fs.delete(inbox)
    fs.makedirs(inbox)
    args = ["stream", "--input", inbox, "--output", out, "--checkpoint", f"{out}_checkpoint"]
    args += ["--available-now", "--overwrite"]
    fs.put(str(scenes[0]), f"{inbox}/{scenes[0].name}")
    assert main(args) == 0
    for scene in scenes[1:]:
        fs.put(str(scene), f"{inbox}/{scene.name}")
    assert main(args[:-1]) == 0  # the same checkpoint: only the two new images
    assert "2 images in 1 micro-batches" in capsys.readouterr().out
    rows = _check_streamed(spark, out, {s.name for s in scenes})
    assert rows["path"].str.startswith("hdfs://").all() and rows["error"].isna().all()
