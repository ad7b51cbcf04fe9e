"""Transfer learning by layer name, and weights fetched from a path, https:// or hdfs://.

The HTTPS tests run a real TLS server on 127.0.0.1 (Python's http.server with a certificate
made for the test) and stop it afterwards.
"""

from __future__ import annotations

import datetime
import hashlib
import ipaddress
import ssl
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from sparkzoo import models
from sparkzoo.models.hub import fetch
from sparkzoo.models.transfer import (
    cut,
    default_cut,
    freeze,
    layer_names,
    load_weights,
    new_head,
    unfreeze,
)

# ---- cut, freeze, new head ----------------------------------------------------------------


@pytest.fixture(scope="module")
def digits_32():
    """sklearn's real 8x8 digits, scaled to [0, 1] and enlarged to 32x32 (the VGG minimum)."""
    from sklearn.datasets import load_digits

    data = load_digits()
    images = np.kron(data.images[:64] / 16.0, np.ones((4, 4)))[..., None].astype("float32")
    return images, data.target[:64]


def tiny_vgg(**overrides) -> tf.keras.Model:
    tf.keras.utils.set_random_seed(0)
    config = {"input_shape": (32, 32, 1), "num_classes": 10, "depth": 11, "width": 0.0625}
    return models.get("vgg", **{**config, **overrides})


def test_cut_outputs_the_named_layer_and_shares_its_weights():
    base = tiny_vgg()
    features = cut(base, "stage3")
    assert features.output_shape == (None, 4, 4, base.get_layer("stage3").output_shape[-1])
    assert features.get_layer("stage1_conv1") is base.get_layer("stage1_conv1")
    x = np.random.default_rng(0).random((2, 32, 32, 1), dtype="float32")
    np.testing.assert_allclose(
        features(x), tf.keras.Model(base.inputs, base.get_layer("stage3").output)(x)
    )
    with pytest.raises(ValueError, match=r"vgg11 has no layer 'stage9'; its layers are: image, "):
        cut(base, "stage9")


def test_freeze_counts_the_layers_that_compute_the_named_one():
    base = tiny_vgg()
    # image -> stage1_conv1, stage1, stage2_conv1, stage2: four layers with weights or not.
    assert freeze(base, up_to="stage2") == 4
    assert [x.name for x in base.layers if not x.trainable] == [
        "stage1_conv1",
        "stage1",
        "stage2_conv1",
        "stage2",
    ]
    assert freeze(base, up_to="stage2") == 0  # already frozen
    assert unfreeze(base) == 4
    assert freeze(base, up_to="stage2", inclusive=False) == 3
    assert base.get_layer("stage2").trainable


def test_freeze_follows_the_graph_not_the_layer_order():
    # In an inception module the 1x1 branch does not feed the 3x3 branch: freezing up to
    # inception3a_3x3 leaves the parallel 1x1 and 5x5 branches trainable.
    net = models.get(
        "inception_v1", input_shape=(32, 32, 3), num_classes=3, width=0.0625, blocks=(1, 1, 1)
    )
    freeze(net, up_to="inception3a_3x3")
    assert not net.get_layer("inception3a_3x3").trainable
    assert not net.get_layer("inception3a_3x3_reduce").trainable
    assert not net.get_layer("stem_conv1").trainable
    assert net.get_layer("inception3a_1x1").trainable
    assert net.get_layer("inception3a_5x5_reduce").trainable


def test_new_head_trains_and_frozen_weights_stay_put(digits_32):
    images, labels = digits_32
    base = tiny_vgg(batch_norm=True)
    net = new_head(base, num_classes=2, freeze_to="stage3", hidden=(8,), dropout=0.1)
    # VGG's default cut is fc2 (already flat): no head_pool.
    assert layer_names(net)[-4:] == ["fc2", "head_fc1", "head_dropout", "head_predictions"]
    assert net.output_shape == (None, 2)
    frozen = [x for x in net.layers if x.name.startswith(("stage1", "stage2", "stage3"))]
    trained = [net.get_layer("stage4_conv1"), net.get_layer("head_predictions")]
    before_frozen = [w.copy() for x in frozen for w in x.get_weights()]
    before_trained = [w.copy() for x in trained for w in x.get_weights()]

    net.compile(tf.keras.optimizers.Adam(1e-2), "sparse_categorical_crossentropy")
    net.fit(images, (labels % 2), batch_size=32, epochs=1, verbose=0)

    after_frozen = [w for x in frozen for w in x.get_weights()]
    # Kernels and the batch norms' moving statistics alike are unchanged.
    assert len(before_frozen) > 10
    for a, b in zip(before_frozen, after_frozen, strict=True):
        np.testing.assert_array_equal(a, b)
    after_trained = [w for x in trained for w in x.get_weights()]
    assert all(not np.array_equal(a, b) for a, b in zip(before_trained, after_trained, strict=True))


def test_new_head_cuts_where_the_classifier_starts():
    resnet = models.get("resnet18", input_shape=(32, 32, 3), width=0.0625, blocks=(1, 1, 1, 1))
    assert default_cut(resnet) == "pool"
    assert default_cut(tiny_vgg()) == "fc2"  # VGG's dense layers are features too
    lenet = models.get("lenet5", input_shape=(16, 16, 1))
    assert default_cut(lenet) == "fc2"
    head = new_head(resnet, num_classes=5, cut_at="stage4")  # spatial: pooled again
    assert "head_pool" in layer_names(head) and head.output_shape == (None, 5)
    assert head.get_layer("stage4") is resnet.get_layer("stage4")
    assert "stage5" not in layer_names(head)


# ---- weights from a path, https:// and hdfs:// -------------------------------------------


@dataclass
class WeightsServer:
    """A real HTTP(S) server on 127.0.0.1 serving ``files``; ``requests`` counts GETs."""

    url: str
    files: dict[str, bytes]
    cafile: Path | None = None
    requests: list[str] = field(default_factory=list)


def _make_handler(server: WeightsServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            server.requests.append(self.path)
            name = self.path.lstrip("/")
            truncated = name.startswith("truncated/")
            body = server.files.get(name.removeprefix("truncated/"))
            if body is None:
                self.send_error(404)
                return
            self.send_response(200)
            # A truncated transfer: announce the full size, send half, hang up.
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body[: len(body) // 2] if truncated else body)
            self.close_connection = True

        def log_message(self, *args) -> None:
            pass

    return Handler


def _self_signed_certificate(folder: Path) -> tuple[Path, Path]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


def _serve(files: dict[str, bytes], tls_folder: Path | None) -> Iterator[WeightsServer]:
    server = WeightsServer(url="", files=files)
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _make_handler(server))
    scheme = "http"
    if tls_folder is not None:
        cert, key = _self_signed_certificate(tls_folder)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert, key)
        httpd.socket = context.wrap_socket(httpd.socket, server_side=True)
        server.cafile, scheme = cert, "https"
    server.url = f"{scheme}://127.0.0.1:{httpd.server_address[1]}"
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=10)


@pytest.fixture(scope="module")
def weights_file(tmp_path_factory) -> tuple[Path, tf.keras.Model]:
    """The weights of a small LeNet-5, saved by Keras, and the model they came from."""
    tf.keras.utils.set_random_seed(1)
    model = models.get("lenet5", input_shape=(16, 16, 1), num_classes=3)
    path = tmp_path_factory.mktemp("weights") / "lenet5.weights.h5"
    model.save_weights(path)
    return path, model


@pytest.fixture(scope="module")
def https_server(tmp_path_factory, weights_file) -> Iterator[WeightsServer]:
    files = {"lenet5.weights.h5": weights_file[0].read_bytes(), "notes.txt": b"x" * 5000}
    yield from _serve(files, tls_folder=tmp_path_factory.mktemp("tls"))


@pytest.fixture(scope="module")
def http_server() -> Iterator[WeightsServer]:
    yield from _serve({"notes.txt": b"plain http " * 100}, tls_folder=None)


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_local_weights_are_used_in_place_and_checked(weights_file, tmp_path):
    path, source = weights_file
    assert fetch(path, sha256=sha(path.read_bytes()), cache_dir=tmp_path) == path
    assert fetch(f"file://{path}", cache_dir=tmp_path) == path
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(models.WeightsError, match=r"expected 0{64}"):
        fetch(path, sha256="0" * 64)
    with pytest.raises(models.WeightsError, match="does not exist"):
        fetch(tmp_path / "missing.h5")
    with pytest.raises(ValueError, match="64 hex digits"):
        fetch(path, sha256="abc")
    with pytest.raises(ValueError, match="supported are local paths"):
        fetch("ftp://127.0.0.1/lenet5.h5")

    target = models.get("lenet5", input_shape=(16, 16, 1), num_classes=3)
    load_weights(target, path, sha256=sha(path.read_bytes()))
    for a, b in zip(target.get_weights(), source.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)


def test_https_weights_are_verified_cached_and_loaded(https_server, weights_file, tmp_path):
    path, source = weights_file
    digest = sha(path.read_bytes())
    url = f"{https_server.url}/lenet5.weights.h5"
    target = models.get("lenet5", input_shape=(16, 16, 1), num_classes=3)
    load_weights(target, url, sha256=digest, cache_dir=tmp_path, cafile=https_server.cafile)
    for a, b in zip(target.get_weights(), source.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    assert [p.name for p in tmp_path.iterdir()] == [f"{digest}-lenet5.weights.h5"]

    # A second fetch with the same sha256 is served from the cache: no request.
    served = len(https_server.requests)
    context = ssl.create_default_context(cafile=str(https_server.cafile))
    cached = fetch(url, sha256=digest, cache_dir=tmp_path, context=context)
    assert cached == tmp_path / f"{digest}-lenet5.weights.h5"
    assert len(https_server.requests) == served


def test_https_with_a_wrong_sha256_raises_and_caches_nothing(https_server, tmp_path):
    url = f"{https_server.url}/notes.txt"
    wrong = "f" * 64
    with pytest.raises(models.WeightsError) as err:
        fetch(url, sha256=wrong, cache_dir=tmp_path, cafile=https_server.cafile)
    message = str(err.value)
    assert url in message and f"expected {wrong}" in message
    assert f"sha256 {sha(b'x' * 5000)}" in message
    assert list(tmp_path.iterdir()) == []


def test_a_truncated_download_raises_and_caches_nothing(https_server, tmp_path):
    url = f"{https_server.url}/truncated/notes.txt"
    with pytest.raises(models.WeightsError, match=r"truncated: 2500 of 5000 bytes") as err:
        fetch(url, sha256=sha(b"x" * 5000), cache_dir=tmp_path, cafile=https_server.cafile)
    assert f"sha256 {sha(b'x' * 2500)}" in str(err.value)
    with pytest.raises(models.WeightsError, match="truncated"):
        fetch(url, cache_dir=tmp_path, cafile=https_server.cafile)  # no sha256 either
    assert list(tmp_path.iterdir()) == []


def test_https_without_sha256_is_fetched_every_time(https_server, tmp_path):
    url = f"{https_server.url}/notes.txt"
    served = len(https_server.requests)
    first = fetch(url, cache_dir=tmp_path, cafile=https_server.cafile)
    second = fetch(url, cache_dir=tmp_path, cafile=https_server.cafile)
    assert first == second and first.name.startswith("url-") and first.name.endswith("notes.txt")
    assert first.read_bytes() == b"x" * 5000
    assert len(https_server.requests) == served + 2


def test_an_untrusted_https_certificate_is_refused(https_server, tmp_path):
    with pytest.raises(models.WeightsError, match="CERTIFICATE_VERIFY_FAILED"):
        fetch(f"{https_server.url}/notes.txt", cache_dir=tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_plain_http_needs_a_sha256(http_server, tmp_path):
    url = f"{http_server.url}/notes.txt"
    with pytest.raises(models.WeightsError, match=r"refusing to fetch .* without a sha256"):
        fetch(url, cache_dir=tmp_path)
    assert http_server.requests == []
    digest = sha(b"plain http " * 100)
    assert fetch(url, sha256=digest, cache_dir=tmp_path).read_bytes() == b"plain http " * 100


def test_hdfs_weights_are_verified_and_cached(hdfs, weights_file, tmp_path):
    from sparkzoo import fs

    path, source = weights_file
    data = path.read_bytes()
    uri = f"{hdfs}/zoo-tests/lenet5.weights.h5"
    fs.write_bytes(uri, data)
    with pytest.raises(models.WeightsError, match=f"weights {uri}: sha256 {sha(data)}"):
        fetch(uri, sha256="0" * 64, cache_dir=tmp_path)
    assert list(tmp_path.iterdir()) == []
    target = models.get("lenet5", input_shape=(16, 16, 1), num_classes=3)
    load_weights(target, uri, sha256=sha(data), cache_dir=tmp_path)
    for a, b in zip(target.get_weights(), source.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    assert [p.name for p in tmp_path.iterdir()] == [f"{sha(data)}-lenet5.weights.h5"]
