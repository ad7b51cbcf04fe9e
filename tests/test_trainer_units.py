"""Trainer pieces that need neither Spark nor Horovod: feed, checkpoints, storage, relay."""

from __future__ import annotations

import json
import os
import socket
import sys
import time

import numpy as np
import pyarrow as pa
import pytest

from sparkzoo import fs
from sparkzoo.image_schema import mode_dtype, opencv_mode
from sparkzoo.trainer.checkpoint import CheckpointStore
from sparkzoo.trainer.columns import (
    ColumnError,
    ColumnSpec,
    batch_to_arrays,
    check_shapes,
    fit_to_shapes,
)
from sparkzoo.trainer.feed import PartitionBuffer, batch_indices, steps_for
from sparkzoo.trainer.launcher import RankFailedError, _failure_from
from sparkzoo.trainer.relay import MessageRelay, RelayClient, forwarded_output


# ---- feed -----------------------------------------------------------------------------------
def _chunks(seed: int = 0):
    rng = np.random.default_rng(seed)
    return [
        [rng.normal(size=(n, 3)).astype(np.float32), rng.integers(0, 5, n)] for n in (7, 0, 5, 9)
    ]


def test_buffer_in_memory_keeps_rows_in_order():
    buffer = PartitionBuffer(budget_bytes=1 << 20)
    for chunk in _chunks():
        buffer.append(chunk)
    x, y = buffer.arrays()
    assert not buffer.spilled and buffer.rows == 21
    assert not isinstance(x, np.memmap)
    np.testing.assert_array_equal(x, np.concatenate([c[0] for c in _chunks()]))
    np.testing.assert_array_equal(y, np.concatenate([c[1] for c in _chunks()]))


def test_buffer_past_its_budget_spills_to_disk_and_reads_back_the_same(tmp_path):
    buffer = PartitionBuffer(budget_bytes=100, spill_dir=str(tmp_path))
    for chunk in _chunks():
        buffer.append(chunk)
    x, y = buffer.arrays()
    assert buffer.spilled and isinstance(x, np.memmap) and x.shape == (21, 3)
    np.testing.assert_array_equal(x, np.concatenate([c[0] for c in _chunks()]))
    np.testing.assert_array_equal(y, np.concatenate([c[1] for c in _chunks()]))
    assert os.listdir(tmp_path)
    buffer.close()
    assert os.listdir(tmp_path) == []


def test_batches_are_full_and_each_pass_covers_every_row():
    batches = batch_indices(10, 4, shuffle=True, seed=1)
    first_pass = [next(batches) for _ in range(3)]  # 4 + 4 + (2 + 2 wrapped)
    assert all(len(b) == 4 for b in first_pass)
    assert set(np.concatenate(first_pass)[:10]) == set(range(10))


def test_a_partition_smaller_than_half_a_batch_still_fills_every_batch():
    for shuffle in (True, False):
        batches = batch_indices(7, 16, shuffle=shuffle, seed=0)
        batch = next(batches)
        assert len(batch) == 16 and set(batch) == set(range(7))


def test_batches_are_reproducible_by_seed():
    a, b = batch_indices(50, 8, True, 3), batch_indices(50, 8, True, 3)
    assert all(np.array_equal(next(a), next(b)) for _ in range(10))


def test_steps_cover_the_data_once_across_ranks():
    assert steps_for(1000, 32, 2) == 16
    assert steps_for(1, 32, 2) == 1


# ---- columns --------------------------------------------------------------------------------
def test_scalar_columns_concatenate_into_one_input():
    xs = fit_to_shapes([np.arange(3.0), np.arange(3.0) * 10], [(2,)], "feature", ["a", "b"])
    np.testing.assert_array_equal(xs[0], [[0, 0], [1, 10], [2, 20]])


def test_flat_array_is_reshaped_to_an_image_input():
    (x,) = fit_to_shapes([np.zeros((5, 784))], [(28, 28, 1)], "feature", ["pixels"])
    assert x.shape == (5, 28, 28, 1)


def test_class_id_label_against_softmax_output_stays_a_vector():
    (y,) = fit_to_shapes([np.arange(4).reshape(4, 1)], [(10,)], "label", ["label"])
    assert y.shape == (4,)


def test_wrong_width_is_reported_with_the_column():
    with pytest.raises(
        ColumnError, match=r"'pixels' has 100 values per row .* shape \(28, 28, 1\)"
    ):
        check_shapes([ColumnSpec("pixels", "array", 100, False)], [(28, 28, 1)], "feature")


def _image_batch(images, origins=None, layout="HWC"):
    """An Arrow batch with one ``image`` column of Spark image structs (None: a null image)."""
    from sparkzoo.datasets.images import image_to_struct

    origins = origins or [f"img{i}.png" for i in range(len(images))]
    structs = [
        None if image is None else image_to_struct(image, origin, layout)
        for image, origin in zip(images, origins, strict=True)
    ]
    return pa.RecordBatch.from_pydict({"image": structs})


def test_image_structs_become_their_pixels_in_stored_order():
    import skimage.data

    photo = skimage.data.astronaut()  # a real RGB photograph
    crops = [photo[i * 10 : i * 10 + 6, 20:28] for i in range(4)]  # 6 x 8 x 3 each
    spec = ColumnSpec("image", "image", 6 * 8 * 3, False)
    (x,) = batch_to_arrays(_image_batch(crops), [spec])
    assert x.dtype == np.float32 and x.shape == (4, 144)
    np.testing.assert_array_equal(x, np.stack([c.reshape(-1) for c in crops]))
    # float32 pixels in CHW order (after ToTensor("CHW")), and a slice of a batch
    tensors = [(c.transpose(2, 0, 1) / 255).astype(np.float32) for c in crops]
    batch = _image_batch(tensors, layout="CHW").slice(1, 2)
    (x,) = batch_to_arrays(batch, [spec])
    np.testing.assert_array_equal(x, np.stack([t.reshape(-1) for t in tensors[1:3]]))


def test_a_null_an_odd_sized_or_mixed_type_image_is_named():
    import skimage.data

    photo = skimage.data.astronaut()
    spec = ColumnSpec("image", "image", 6 * 8 * 3, False)
    good = photo[:6, :8]
    with pytest.raises(ColumnError, match=r"'image' has 1 null image\(s\), the first at row 1"):
        batch_to_arrays(_image_batch([good, None]), [spec])
    with pytest.raises(
        ColumnError,
        match=r"1 image\(s\) do not have 144 values, the first at row 1 \('b.png'\)"
        r": height, width, channels \(7, 8, 3\)",
    ):
        batch_to_arrays(_image_batch([good, photo[:7, :8]], ["a.png", "b.png"]), [spec])
    undecoded = _image_batch([good, good], ["a.png", "b.png"]).to_pydict()["image"]
    undecoded[1].update(height=-1, width=-1, nChannels=-1, mode=-1, data=b"")  # as Spark keeps it
    with pytest.raises(ColumnError, match=r"1 image\(s\) that were not decoded \(mode -1\), the "):
        batch_to_arrays(pa.RecordBatch.from_pydict({"image": undecoded}), [spec])
    with pytest.raises(ColumnError, match=r"image mode 21 at row 1 \('b.png'\) \(first mode 16\)"):
        mixed = [good, good.astype(np.float32)]
        batch_to_arrays(_image_batch(mixed, ["a.png", "b.png"]), [spec])


# ---- checkpoints and storage ----------------------------------------------------------------
def test_checkpoint_roundtrip_keeps_the_newest_two(tmp_path):
    store = CheckpointStore(str(tmp_path / "run"))
    assert store.load() is None
    for epoch in (1, 2, 3):
        store.save(epoch, [np.full((2, 2), epoch)], [np.array(epoch * 10)], {"loss": [1.0] * epoch})
    saved = store.load()
    assert saved.epoch == 3 and saved.history == {"loss": [1.0] * 3}
    np.testing.assert_array_equal(saved.model_weights[0], np.full((2, 2), 3))
    assert saved.optimizer_weights[0] == 30
    assert sorted(os.listdir(tmp_path / "run" / "checkpoints")) == [
        "epoch-00002.npz",
        "epoch-00003.npz",
        "latest.json",
    ]


def test_atomic_write_leaves_no_partial_file_when_writing_fails(tmp_path, monkeypatch):
    target = tmp_path / "a.bin"
    fs.write_bytes(str(target), b"old")

    def broken_replace(src, dst):
        raise OSError("disk gone")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(OSError, match="disk gone"):
        fs.write_bytes(str(target), b"new")
    assert target.read_bytes() == b"old"
    assert os.listdir(tmp_path) == ["a.bin"]


def test_unwritable_store_is_named(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(OSError, match=r"cannot write to the store .*file/run"):
        fs.check_writable(str(blocker / "run"))


def test_unsupported_scheme_is_refused():
    with pytest.raises(ValueError, match="unsupported storage URI 's3://b/x'"):
        fs.exists("s3://b/x")


# ---- relay ----------------------------------------------------------------------------------
def _wait_for(predicate, timeout=5.0):
    deadline = time.monotonic() + timeout
    while not predicate() and time.monotonic() < deadline:
        time.sleep(0.02)
    return predicate()


def test_relay_delivers_messages_and_output_lines_in_order():
    relay = MessageRelay("127.0.0.1")
    try:
        with RelayClient(relay.address, rank=1) as client:
            client.send("epoch", epoch=1, metrics={"loss": np.float32(0.5)})
            with forwarded_output(client):
                print("line one")
                sys.stdout.write("part")
                sys.stdout.write("ial\n")
                print("to stderr", file=sys.stderr)
        assert _wait_for(lambda: len(relay.messages) == 4)
        epoch, *lines = relay.messages
        assert epoch == {"kind": "epoch", "rank": 1, "epoch": 1, "metrics": {"loss": 0.5}}
        assert [(m["stream"], m["line"]) for m in lines] == [
            ("stdout", "line one"),
            ("stdout", "partial"),
            ("stderr", "to stderr"),
        ]
    finally:
        relay.close()


def test_relay_ignores_a_client_without_the_token():
    relay = MessageRelay("127.0.0.1")
    try:
        host, port, _ = relay.address
        with socket.create_connection((host, port)) as sock:
            sock.sendall(json.dumps({"kind": "epoch", "token": "wrong"}).encode() + b"\n")
        with RelayClient(relay.address, rank=0) as client:
            client.send("hello")
        assert _wait_for(lambda: len(relay.messages) >= 1)
        time.sleep(0.2)
        assert [m["kind"] for m in relay.messages] == ["hello"]
    finally:
        relay.close()


def test_relay_all_gather_answers_every_task_in_index_order_once_all_are_in():
    from concurrent.futures import ThreadPoolExecutor

    relay = MessageRelay("127.0.0.1")
    try:
        clients = [RelayClient(relay.address, rank=None) for _ in range(3)]

        def task(i):
            generation = clients[i].join("stage-7", i)
            first = clients[i].all_gather(f"7.{generation}:0", i, 3, f"port-{i}")
            clients[i].send("output", line=f"from {i}")  # messages still flow between calls
            second = clients[i].all_gather(f"7.{generation}:1", i, 3, {"rows": 10 * i})
            return generation, first, second

        with ThreadPoolExecutor(3) as pool:
            results = list(pool.map(task, [2, 0, 1]))  # the last task's arrival answers all
        for generation, first, second in results:
            assert generation == 0
            assert first == ["port-0", "port-1", "port-2"]
            assert second == [{"rows": 0}, {"rows": 10}, {"rows": 20}]
        assert _wait_for(lambda: len(relay.of_kind("output")) == 3)
        # a barrier stage retried whole: each partition's second run is the stage's attempt 1
        assert [clients[i].join("stage-7", i) for i in range(3)] == [1, 1, 1]
        # a task whose peers never come is told so, naming the exchange
        with pytest.raises(TimeoutError, match=r"all_gather '7.1:0': 1 of 3 tasks"):
            clients[0].all_gather("7.1:0", 0, 3, "alone", timeout=0.2)
        for client in clients:
            client.close()
    finally:
        relay.close()


def test_client_names_an_unreachable_driver():
    relay = MessageRelay("127.0.0.1")
    address = relay.address
    relay.close()
    with pytest.raises(ConnectionError, match="rank 3 cannot reach the driver"):
        RelayClient(address, rank=3, connect_timeout=2)


class _Relay:
    def __init__(self, messages):
        self.messages = messages

    def of_kind(self, kind):
        return [m for m in self.messages if m["kind"] == kind]


def test_failure_names_the_rank_that_raised_not_its_peer():
    relay = _Relay(
        [
            {"kind": "error", "rank": 0, "error": "HorovodInternalError: Gloo connection closed"},
            {
                "kind": "error",
                "rank": 1,
                "error": "ValueError: bad batch",
                "traceback": "Traceback...",
            },
        ]
    )
    failure = _failure_from(RuntimeError("stage failed"), relay, wait_s=0)
    assert isinstance(failure, RankFailedError) and failure.rank == 1
    assert "ValueError: bad batch" in str(failure) and "Traceback..." in str(failure)


def test_failure_of_a_killed_rank_comes_from_sparks_task_id():
    relay = _Relay(
        [
            {"kind": "hello", "rank": 0, "partition": 1},
            {"kind": "hello", "rank": 1, "partition": 0},
            {"kind": "error", "rank": 0, "error": "UnknownError: Horovod has been shut down"},
        ]
    )
    spark_error = (
        "Job aborted: Stage failed because barrier task ResultTask(7, 0) finished "
        "unsuccessfully.\norg.apache.spark.SparkException: Python worker exited unexpectedly (crashed)"
    )
    failure = _failure_from(RuntimeError(spark_error), relay, wait_s=0)
    assert failure.rank == 1 and "died" in failure.reason


# ---- optimizer set-up -----------------------------------------------------------------------
def _plan(**overrides):
    from sparkzoo.trainer.rank_training import TrainingPlan

    fields = dict(
        model_source=b"",
        optimizer={"class_name": "SGD", "config": {"learning_rate": 0.1}},
        loss="mse",
        metrics=[],
        features=[],
        labels=[],
        input_shapes=[],
        output_shapes=[],
        batch_size=8,
        epochs=1,
        train_rows=8,
        val_rows=0,
        run_dir="unused",
    )
    return TrainingPlan(**(fields | overrides))


def test_learning_rate_scales_linearly_with_workers_and_clipping_is_set():
    import tensorflow as tf

    from sparkzoo.trainer.rank_training import _make_optimizer

    optimizer = _make_optimizer(_plan(gradient_clipnorm=1.5), size=4)
    assert float(tf.keras.backend.get_value(optimizer.learning_rate)) == pytest.approx(0.4)
    assert optimizer.get_config()["clipnorm"] == 1.5
    unscaled = _make_optimizer(_plan(scale_lr=False, optimizer="adam"), size=4)
    assert float(tf.keras.backend.get_value(unscaled.learning_rate)) == pytest.approx(0.001)


def test_tracking_does_not_export_its_uri_to_later_processes(tmp_path, monkeypatch):
    # MLflow's set_tracking_uri exports $MLFLOW_TRACKING_URI; a run must not leave it behind,
    # or every later run and child process (e.g. `sparkzoo demo` in another folder) would
    # write to this run's store.
    from sparkzoo.trainer.tracking import RunTracker

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    uri = f"sqlite:///{tmp_path}/mlruns/mlflow.db"
    os.makedirs(tmp_path / "mlruns")
    tracker = RunTracker(uri, "units", "no-leak", {"a": 1})
    tracker.end()
    assert "MLFLOW_TRACKING_URI" not in os.environ
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "sqlite:///elsewhere.db")
    RunTracker(uri, "units", "kept", {}).end()
    assert os.environ["MLFLOW_TRACKING_URI"] == "sqlite:///elsewhere.db"


def test_opencv_modes_name_their_element_type_and_channels():
    assert opencv_mode(np.uint8, 3) == 16 and opencv_mode(np.float32, 1) == 5  # CV_8UC3, CV_32F
    for dtype in (
        np.uint8,
        np.int8,
        np.uint16,
        np.int16,
        np.int32,
        np.float32,
        np.float64,
        np.float16,
    ):
        for channels in (1, 3, 4):
            assert mode_dtype(opencv_mode(dtype, channels)) == np.dtype(dtype)
    assert mode_dtype(-1) is None  # Spark's image source: a file it could not decode
    with pytest.raises(ValueError, match="OpenCV has no image type of int64"):
        opencv_mode(np.int64, 3)


# ---- a compiled model keeps its compile (Orca's and Keras' users pass one) ----------------------
def _compiled_mlp(optimizer):
    from sparkzoo import keras2 as keras

    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2, activation="softmax")])
    model.compile(
        optimizer=optimizer,
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
        loss_weights=[0.5],
    )
    return model


def test_a_compiled_model_trains_with_its_own_loss_optimizer_and_metrics():
    from sparkzoo import keras2 as keras
    from sparkzoo.trainer import KerasEstimator

    model = _compiled_mlp(keras.optimizers.Adam(0.01))
    settings = KerasEstimator(model=model)._compile_settings(model)
    assert settings["loss"] == "sparse_categorical_crossentropy"
    assert isinstance(settings["optimizer"], keras.optimizers.Adam)
    assert float(settings["optimizer"].learning_rate) == pytest.approx(0.01)  # not "adam"'s 1e-3
    assert settings["metrics"] == ["accuracy"]
    assert settings["loss_weights"] == [0.5]


def test_params_set_over_a_compiled_model_win_with_a_warning_naming_them():
    from sparkzoo import keras2 as keras
    from sparkzoo.trainer import KerasEstimator

    model = _compiled_mlp(keras.optimizers.Adam(0.01))
    estimator = KerasEstimator(model=model, loss="mse", optimizer="sgd")
    with pytest.warns(UserWarning, match=r"loss, optimizer replace .*Adam\(learning_rate=0.01\)"):
        settings = estimator._compile_settings(model)
    assert settings["loss"] == "mse" and settings["optimizer"] == "sgd"
    assert settings["metrics"] == ["accuracy"]  # not set: the model's own


def test_an_uncompiled_model_takes_the_params_defaults():
    from sparkzoo import keras2 as keras
    from sparkzoo.trainer import KerasEstimator

    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    settings = KerasEstimator(model=model, loss="mse")._compile_settings(model)
    assert settings == {"loss": "mse", "optimizer": "adam", "metrics": [], "loss_weights": None}
