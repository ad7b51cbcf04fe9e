"""``sparkzoo serve``: a zoo model, the object-detection pipeline or any MLflow model behind
MLflow's scoring server (``mlflow models serve --env-manager local``), on 127.0.0.1 by default.

- a zoo name (``lenet5.mnist``, any pretrained tag or family): saved as an MLflow pyfunc model
  with a signature (:func:`sparkzoo.trainer.pyfunc.save_zoo_model`) in a temporary folder;
- ``object_detection``: the detect -> crop -> embed pipeline as one pyfunc model
  (:mod:`sparkzoo.apps.object_detection.serving`);
- anything else is an MLflow model URI (``runs:/<id>/model``, ``models:/<name>/<version>``, a
  folder), served as it is.

Example::

    with ScoringServer(prepare("lenet5.mnist", tmp), port=5001) as server:
        server.wait_ready()
        requests.post(server.url + "/invocations", json={"dataframe_split": ...})
"""

from __future__ import annotations

import ctypes
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from mlflow.models import Model

from sparkzoo import models
from sparkzoo.apps.object_detection.serving import NAME as PIPELINE
from sparkzoo.apps.object_detection.serving import save_pipeline_model
from sparkzoo.trainer.pyfunc import save_zoo_model, zoo_pyfunc_model
from sparkzoo.trainer.tf_ring import free_port

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 5001
LOOPBACK = ("127.0.0.1", "localhost", "::1")


@dataclass(frozen=True)
class Prepared:
    """What to serve: the MLflow model URI; for a model saved here, its input columns in words
    and a request body for ``curl -d`` (shell text)."""

    uri: str
    inputs: str | None = None
    example: str | None = None


def is_model_uri(name: str) -> bool:
    """A URI or a path (``runs:/...``, ``models:/...``, ``./model``), not a zoo name."""
    return ":" in name or "/" in name or os.path.exists(name)


def prepare(name: str, folder: str) -> Prepared:
    """The model to serve for ``name``: a zoo name or ``object_detection`` saved as a pyfunc
    model under ``folder``; any other ``name`` is taken as an MLflow model URI. Raises
    :class:`~sparkzoo.models.UnknownModelError` (naming the closest names) for an unknown
    zoo name and ``ValueError`` for a packaged detector."""
    if name == PIPELINE:
        path = save_pipeline_model(os.path.join(folder, PIPELINE))
        body = _shell_body(["image"], ['"$(base64 -w0 IMAGE.png)"'])
        return Prepared(path, "image (an image file's bytes, base64)", body)
    if is_model_uri(name):
        return Prepared(name)
    python_model, _ = zoo_pyfunc_model(name)  # fails fast, naming the problem
    path = save_zoo_model(name, os.path.join(folder, name))
    card = models.card(name)
    return Prepared(
        path, _describe(python_model.features, card.input), _example_body(python_model.features)
    )


def _describe(features, card_input: dict) -> str:
    """The input columns in words: ``pixels (784 numbers per row: grey pixels 0-255, ...)``."""
    parts = []
    for f in features:
        raw = card_input.get(f.name, card_input) if len(features) > 1 else card_input
        kind = "integers" if f.integer else "numbers"
        what = f"{f.size} {kind} per row" if f.kind != "scalar" else f"one {kind[:-1]} per row"
        said = raw.get("raw") if isinstance(raw, dict) else None
        parts.append(f"{f.name} ({what}{': ' + said if said else ''})")
    return "; ".join(parts)


def _example_body(features) -> str:
    """A request body of zeros (ones for a scalar id) for ``curl -d``, as shell text."""
    values = [
        "1" if f.kind == "scalar" else f"$(python3 -c 'print([0] * {f.size})')" for f in features
    ]
    return _shell_body([f.name for f in features], values)


def _shell_body(columns: list[str], values: list[str]) -> str:
    """A one-row ``dataframe_split`` request body as one double-quoted shell word; ``values``
    are shell text (``$(...)`` expands)."""
    body = f'{{"dataframe_split": {{"columns": {json.dumps(columns)}, "data": [[{", ".join(values)}]]}}}}'
    return '"' + body.replace('"', '\\"') + '"'


class ScoringServer:
    """MLflow's scoring server for ``uri`` as a child process (``mlflow models serve
    --env-manager local``); it ends with this process. ``port`` 0: a free port. ``log``: where
    its output goes (default: this process's stdout and stderr)."""

    def __init__(
        self,
        uri: str,
        host: str = DEFAULT_HOST,
        port: int = DEFAULT_PORT,
        log: IO | None = None,
    ):
        if not 0 <= port < 65536:
            raise ValueError(f"--port must be 0..65535, got {port}")
        port = port or free_port(host)
        self.uri, self.host, self.port = uri, host, port
        self.url = f"http://{'[' + host + ']' if ':' in host else host}:{port}"
        self._log = log
        self.process: subprocess.Popen | None = None

    def start(self) -> ScoringServer:
        _refuse_a_busy_port(self.host, self.port)
        bin_dir = str(Path(sys.executable).parent)
        command = [sys.executable, "-m", "mlflow", "models", "serve", "-m", self.uri,
                   "--env-manager", "local", "-h", self.host, "-p", str(self.port)]  # fmt: skip
        self.process = subprocess.Popen(
            command,
            # MLflow starts `uvicorn` by name: this environment's scripts must be on PATH.
            env={**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"},
            stdout=self._log,
            stderr=subprocess.STDOUT if self._log else None,
            # Its own session: Ctrl-C reaches this process, which stops the server in order.
            start_new_session=True,
            preexec_fn=_die_with_parent,
        )
        return self

    def wait_ready(self, timeout: float = 180) -> None:
        """Block until ``/ping`` answers; raise ``RuntimeError`` when the server exits or
        ``timeout`` seconds pass first."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                urllib.request.urlopen(f"{self.url}/ping", timeout=2).close()
                return
            except (OSError, urllib.error.URLError):
                if self.process is None or self.process.poll() is not None:
                    code = None if self.process is None else self.process.returncode
                    raise RuntimeError(
                        f"the scoring server for {self.uri} exited (status {code}) before it "
                        "answered; its output says why"
                    ) from None
                if time.monotonic() > deadline:
                    raise RuntimeError(
                        f"the scoring server did not answer within {timeout} s"
                    ) from None
                time.sleep(0.5)

    def stop(self, timeout: float = 30) -> int | None:
        """Stop the server (SIGTERM; SIGKILL after ``timeout`` s) and wait until its port is
        closed; returns its exit status."""
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        # MLflow's CLI is gone; uvicorn (its child, sent SIGTERM as its parent died) closes
        # the port as it finishes its requests.
        deadline = time.monotonic() + timeout
        while _port_open(self.host, self.port) and time.monotonic() < deadline:
            time.sleep(0.2)
        return self.process.returncode

    def __enter__(self) -> ScoringServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def _refuse_a_busy_port(host: str, port: int) -> None:
    if port and _port_open(host, port):
        raise OSError(f"port {port} on {host} is in use; choose another --port")


def _port_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def _die_with_parent() -> None:
    """In the child, before exec: SIGTERM when this process dies (Linux), so a server never
    outlives ``sparkzoo serve``."""
    if sys.platform.startswith("linux"):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM, 0, 0, 0)


class _Stop(Exception):
    """SIGTERM arrived."""


def _raise_stop(signum, frame) -> None:
    raise _Stop()


def serve(name: str, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT) -> int:
    """``sparkzoo serve``: prepare ``name``, start the server, print how to call it, block until
    Ctrl-C or SIGTERM, stop the server. Returns the exit status."""
    if host not in LOOPBACK:
        print(f"warning: --host {host} makes the model reachable from other machines; MLflow's "
              "scoring server has no authentication", file=sys.stderr)  # fmt: skip
    _refuse_a_busy_port(host, port)  # before the model is built and saved
    with tempfile.TemporaryDirectory(prefix="sparkzoo-serve-") as folder:
        prepared = prepare(name, folder)
        server = ScoringServer(prepared.uri, host, port)
        previous = signal.signal(signal.SIGTERM, _raise_stop)
        try:
            server.start()
            server.wait_ready()
            _print_usage(name, prepared, server.url)
            return server.process.wait() and 1
        except (KeyboardInterrupt, _Stop):
            print(f"stopping the scoring server of {name}", file=sys.stderr, flush=True)
            return 0
        finally:
            server.stop()
            signal.signal(signal.SIGTERM, previous)


def _print_usage(name: str, prepared: Prepared, url: str) -> None:
    print(f"serving {name} at {url} (MLflow scoring server; Ctrl-C stops it)", flush=True)
    body = prepared.example or '\'{"dataframe_split": {"columns": [...], "data": [[...]]}}\''
    print(
        f"  input columns: {prepared.inputs or _input_schema(prepared.uri)}\n"
        f"  curl -s {url}/invocations -H 'Content-Type: application/json' -d {body}",
        flush=True,
    )


def _input_schema(uri: str) -> str:
    signature = Model.load(uri).signature
    return "?" if signature is None else ", ".join(map(str, signature.inputs.inputs))
