"""Serving (docs/serving.md): zoo models and the object-detection pipeline as MLflow pyfunc
models, and ``sparkzoo serve`` running MLflow's real scoring server on 127.0.0.1.

Two server starts in all (``lenet5.mnist`` and ``object_detection``), each stopped by SIGTERM
as a user's Ctrl-C or a supervisor would; everything else scores in-process.
"""

from __future__ import annotations

import base64
import json
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow.exceptions import MlflowException

from sparkzoo import models
from sparkzoo.apps.object_detection import pipeline as p
from sparkzoo.apps.object_detection.serving import save_pipeline_model
from sparkzoo.cli import main as sparkzoo_main
from sparkzoo.datasets.images import png_bytes
from sparkzoo.datasets.loaders import mnist, mnist_split_rows
from sparkzoo.datasets.synthetic import detection_scenes
from sparkzoo.models.registry import PRETRAINED_DIR, preprocessor
from sparkzoo.trainer.pyfunc import save_zoo_model, zoo_pyfunc_model
from sparkzoo.trainer.tf_ring import free_port

pytestmark = pytest.mark.slow


# ---- a real scoring server ---------------------------------------------------------------------


class Served:
    """``sparkzoo serve MODEL`` as a child process, its URL and its output."""

    def __init__(self, model: str, log_path):
        self.port = free_port("127.0.0.1")
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        self.log = open(log_path, "w")  # noqa: SIM115 (closed in stop)
        self.process = subprocess.Popen(
            [sys.executable, "-m", "sparkzoo", "serve", model, "--port", str(self.port)],
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        # Ready when `sparkzoo serve` has printed how to call it, as a user would wait: that
        # comes after its own /ping succeeds, so a /ping from here alone would race the print.
        deadline = time.monotonic() + 240
        while "curl -s" not in self.output():
            assert self.process.poll() is None, self.output()[-3000:]
            assert time.monotonic() < deadline, "the scoring server did not start"
            time.sleep(0.5)
        urllib.request.urlopen(f"{self.url}/ping", timeout=2).close()

    def post(self, body, content_type: str = "application/json") -> tuple[int, dict]:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        request = urllib.request.Request(
            f"{self.url}/invocations", data=data, headers={"Content-Type": content_type}
        )
        try:
            with urllib.request.urlopen(request, timeout=120) as answer:
                return answer.status, json.loads(answer.read())
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read())

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.terminate()  # SIGTERM: `sparkzoo serve` stops its server, then exits
            try:
                self.process.wait(60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.log.close()
        return self.process.returncode

    def output(self) -> str:
        if not self.log.closed:
            self.log.flush()
        return self.log_path.read_text()


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex(("127.0.0.1", port)) == 0


@pytest.fixture(scope="module")
def lenet_server(tmp_path_factory):
    served = Served("lenet5.mnist", tmp_path_factory.mktemp("serve") / "lenet.log")
    yield served
    served.stop()


def _held_out_digits(n: int) -> tuple[np.ndarray, np.ndarray]:
    """``n`` real held-out MNIST digits as raw 0-255 pixels ``(n, 784)`` and their labels."""
    frame = mnist(normalize=False)
    rows = mnist_split_rows()[1][:n]
    return np.stack(frame["pixels"].to_numpy()[rows]).astype(np.float64), frame["label"][rows]


def test_rest_answers_what_the_model_answers_in_process(lenet_server):
    pixels, labels = _held_out_digits(32)
    body = {"dataframe_split": {"columns": ["pixels"], "data": [[row.tolist()] for row in pixels]}}
    status, answer = lenet_server.post(body)
    assert status == 200, answer
    rows = answer["predictions"]
    net = models.get("lenet5.mnist")
    x = preprocessor("lenet5.mnist")(pixels.reshape(-1, 28, 28, 1))
    expected = np.asarray(net(x, training=False))
    np.testing.assert_allclose([r["scores"] for r in rows], expected, rtol=1e-4, atol=1e-6)
    assert [r["prediction"] for r in rows] == list(np.argmax(expected, axis=1).astype(float))
    assert np.mean(np.argmax(expected, axis=1) == labels) > 0.9  # real digits, read right
    printed = lenet_server.output()
    assert f"serving lenet5.mnist at {lenet_server.url}" in printed and "curl -s" in printed


@pytest.mark.parametrize(
    ("body", "content_type", "names"),
    [
        (b'{"dataframe_split": {"columns": ["pixels"], "data": [[[0, 1', "application/json",
         "valid JSON"),
        (b"[1, 2]", "application/json", "dataframe_split"),
        ({"dataframe_split": {"columns": ["digits"], "data": [[[0.0] * 784]]}},
         "application/json", "pixels"),
        ({"dataframe_split": {"columns": ["pixels"], "data": [[[0.0] * 783]]}},
         "application/json", "784 values"),
        ({"dataframe_split": {"columns": ["pixels"], "data": [[["a"] * 784]]}},
         "application/json", "pixels"),
    ],
    ids=["malformed-json", "a-list", "wrong-column", "wrong-length", "not-numbers"],
)  # fmt: skip
def test_a_bad_request_gets_400_naming_what_is_wrong(lenet_server, body, content_type, names):
    status, answer = lenet_server.post(body, content_type)
    assert status == 400, answer
    assert names in answer["message"] and "stack_trace" not in answer


def test_sigterm_stops_the_server_and_frees_its_port(lenet_server):
    # Last of the module's lenet tests: it ends the server the others used.
    assert lenet_server.stop() == 0
    assert "stopping the scoring server of lenet5.mnist" in lenet_server.output()
    assert not _listening(lenet_server.port)


# ---- the object-detection pipeline --------------------------------------------------------------


@pytest.fixture(scope="module")
def scenes():
    """Two COMPOSED held-out scenes (real MNIST digits on real photographs) as PNG bytes."""
    images = detection_scenes(2, image_size=96, seed=0, subset="test").images
    return list(images), [png_bytes(image) for image in images]


def test_pipeline_model_in_process_matches_the_pipeline(tmp_path, scenes):
    images, files = scenes
    model = mlflow.pyfunc.load_model(save_pipeline_model(str(tmp_path / "od")))
    out = model.predict(pd.DataFrame({"image": [*files, b"not an image"]}))
    assert list(out.columns) == ["boxes", "scores", "classes", "codes", "vectors", "error"]
    expected = p.process_images(images, p.PipelineConfig(keep="all"))
    for row, rows in zip(out.to_dict("records"), expected, strict=False):
        kept = [r for r in rows if r["kept"]]
        assert row["error"] is None and kept
        np.testing.assert_allclose(row["boxes"], [r["box"] for r in kept], rtol=1e-5)
        assert row["classes"] == [r["class"] for r in kept]
        assert row["codes"] == [r["code"].hex() for r in kept]
        assert np.shape(row["vectors"]) == (len(kept), 84)
    assert "not a readable image" in out["error"].iloc[2] and out["boxes"].iloc[2] == []
    top = model.predict(pd.DataFrame({"image": files}), params={"keep": "top"})
    assert [len(b) for b in top["boxes"]] == [1, 1]
    with pytest.raises(MlflowException, match="'image'"):
        model.predict(pd.DataFrame({"picture": files}))
    with pytest.raises(MlflowException, match="score_threshold"):
        model.predict(pd.DataFrame({"image": files}), params={"score_threshold": -1.0})


def test_pipeline_over_rest(tmp_path, scenes):
    _, files = scenes
    served = Served("object_detection", tmp_path / "od.log")
    try:
        encoded = [base64.b64encode(f).decode() for f in files]
        encoded.append(base64.b64encode(b"not an image").decode())
        body = {"dataframe_split": {"columns": ["image"], "data": [[e] for e in encoded]}}
        status, answer = served.post(body)
        assert status == 200, answer
        rows = answer["predictions"]
        assert [len(r["boxes"]) > 0 for r in rows] == [True, True, False]
        assert len(rows[0]["codes"][0]) == 8 and len(rows[0]["vectors"][0]) == 84
        assert "not a readable image" in rows[2]["error"]
        status, answer = served.post({**body, "params": {"keep": "top"}})
        assert status == 200 and [len(r["boxes"]) for r in answer["predictions"][:2]] == [1, 1]
        status, answer = served.post({"dataframe_split": {"columns": ["img"], "data": [["x"]]}})
        assert status == 400 and "image" in answer["message"]
        status, answer = served.post({"dataframe_split": {"columns": ["image"], "data": [[5]]}})
        assert status == 400 and "image" in answer["message"]
    finally:
        assert served.stop() == 0
    assert not _listening(served.port)


# ---- every zoo model as a pyfunc model --------------------------------------------------------


def _example(python_model, rng) -> pd.DataFrame:
    """Four rows of raw values within the card's ranges, one column per feature."""
    columns = {}
    for spec, pre in zip(python_model.features, python_model.preprocessing, strict=True):
        low = (pre or {}).get("min", 0)
        high = (pre or {}).get("max", 255 if spec.name == "pixels" else 9)
        values = rng.integers(low, high + 1, (4, spec.size))
        columns[spec.name] = list(values) if spec.kind == "array" else values[:, 0]
    return pd.DataFrame(columns)


@pytest.mark.parametrize("name", sorted(path.stem for path in PRETRAINED_DIR.glob("*.json")))
def test_every_pretrained_tag_is_a_pyfunc_model(name):
    python_model, net = zoo_pyfunc_model(name)
    python_model.keras_model = net
    frame = _example(python_model, np.random.default_rng(0))
    out = python_model.predict(None, frame)
    first = out[python_model.output_cols[0]] if isinstance(out, pd.DataFrame) else out
    assert len(first) == 4
    schema = python_model.signature().inputs.input_names()
    assert schema == [f.name for f in python_model.features]
    empty = python_model.predict(None, frame.iloc[:0])
    assert len(empty) == 0 and (not isinstance(out, pd.DataFrame) or list(empty) == list(out))


def test_a_family_serves_with_random_weights_or_is_refused_naming_why():
    python_model, net = zoo_pyfunc_model("siamese")  # two image inputs keep their names
    python_model.keras_model = net
    assert [f.name for f in python_model.features] == ["a", "b"]
    size = python_model.features[0].size
    out = python_model.predict(None, pd.DataFrame({"a": [np.zeros(size)], "b": [np.ones(size)]}))
    assert np.shape(out) == (1,)
    with pytest.raises(ValueError, match="varying shape"):
        zoo_pyfunc_model("seq2seq")  # its default takes sequences of any length


def test_zoo_model_saved_applies_the_card_preprocessing_and_checks_ids(tmp_path):
    model = mlflow.pyfunc.load_model(save_zoo_model("ncf.ml100k", str(tmp_path / "ncf")))
    users, items = np.array([1, 943]), np.array([1, 1682])
    out = model.predict(pd.DataFrame({"user_id": users, "item_id": items}))
    net = models.get("ncf.ml100k")
    expected = np.asarray(net([users[:, None] - 1, items[:, None] - 1], training=False))[:, 0]
    np.testing.assert_allclose(np.asarray(out), expected, rtol=1e-5)
    with pytest.raises(MlflowException, match=r"user_id.*944"):
        model.predict(pd.DataFrame({"user_id": [944], "item_id": [1]}))


def test_serve_refuses_an_unknown_name_or_a_busy_port_before_starting(capsys):
    assert sparkzoo_main(["serve", "lenet5.mnst"]) == 2
    assert "lenet5.mnist" in capsys.readouterr().err  # the closest names
    assert sparkzoo_main(["serve", "haar.face"]) == 2
    assert "packaged" in capsys.readouterr().err
    with socket.create_server(("127.0.0.1", 0)) as busy:
        port = str(busy.getsockname()[1])
        assert sparkzoo_main(["serve", "lenet5.mnist", "--port", port]) == 2
    assert f"port {port} on 127.0.0.1 is in use" in capsys.readouterr().err
