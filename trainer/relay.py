"""Messages from Horovod ranks (Spark tasks) to the driver, as they happen.

The driver runs a :class:`MessageRelay`, a small TCP server on the driver's Spark address;
each rank connects with a :class:`RelayClient` and sends one JSON object per line: its output
(so ``print`` in a rank shows on the driver, prefixed ``[rank]<stdout>:`` as ``horovodrun``
does), per-epoch metrics, and the traceback of a failure.
"""

from __future__ import annotations

import contextlib
import io
import json
import secrets
import socket
import socketserver
import sys
import threading
from collections.abc import Callable, Iterator
from typing import Any

from sparkzoo.records import jsonable

Message = dict[str, Any]


class MessageRelay:
    """Receives rank messages on ``host`` (a port the OS picks) and hands each to ``on_message``.

    ``on_message`` runs on the server's connection threads; messages from one rank arrive in
    order. Every message is also kept in :attr:`messages`.
    """

    def __init__(self, host: str, on_message: Callable[[Message], None] | None = None):
        self.token = secrets.token_hex(16)
        self.messages: list[Message] = []
        self._lock = threading.Lock()
        self._on_message = on_message
        relay = self

        class _Handler(socketserver.StreamRequestHandler):
            def handle(self):
                for raw in self.rfile:
                    try:
                        message = json.loads(raw)
                    except ValueError:
                        return  # not one of ours
                    if message.pop("token", None) != relay.token:
                        return
                    relay._deliver(message)

        self._server = socketserver.ThreadingTCPServer((host, 0), _Handler)
        self._server.daemon_threads = True
        self.address: tuple[str, int, str] = (host, self._server.server_address[1], self.token)
        self._thread = threading.Thread(
            target=self._server.serve_forever, daemon=True, name="sparkzoo-relay"
        )
        self._thread.start()

    def _deliver(self, message: Message) -> None:
        with self._lock:
            self.messages.append(message)
            if self._on_message is not None:
                self._on_message(message)

    def of_kind(self, kind: str) -> list[Message]:
        with self._lock:
            return [m for m in self.messages if m.get("kind") == kind]

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


class RelayClient:
    """A rank's connection to the driver's :class:`MessageRelay` (thread-safe)."""

    def __init__(self, address: tuple[str, int, str], rank: int, connect_timeout: float = 30):
        host, port, self._token = address
        self.rank = rank
        try:
            self._sock = socket.create_connection((host, port), timeout=connect_timeout)
        except OSError as exc:
            raise ConnectionError(
                f"rank {rank} cannot reach the driver at {host}:{port} ({exc}); executors must "
                "be able to connect to spark.driver.host"
            ) from exc
        self._sock.settimeout(None)
        self._lock = threading.Lock()

    def send(self, kind: str, **payload: Any) -> None:
        line = json.dumps(
            {"kind": kind, "rank": self.rank, "token": self._token, **payload}, default=jsonable
        )
        with self._lock:
            self._sock.sendall(line.encode() + b"\n")

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._sock.close()

    def __enter__(self) -> RelayClient:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class _LineForwarder(io.TextIOBase):
    """A text stream that sends each complete line to the driver."""

    def __init__(self, client: RelayClient, stream: str):
        self._client, self._stream = client, stream
        self._pending = ""

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        self._pending += text
        *lines, self._pending = self._pending.split("\n")
        for line in lines:
            self._client.send("output", stream=self._stream, line=line)
        return len(text)

    def close_pending(self) -> None:
        if self._pending:
            self._client.send("output", stream=self._stream, line=self._pending)
            self._pending = ""


@contextlib.contextmanager
def forwarded_output(client: RelayClient) -> Iterator[None]:
    """Send this task's ``sys.stdout`` / ``sys.stderr`` to the driver, line by line.

    Only the driver shows them then (in local mode the executor's console is the driver's).
    """
    streams = {"stdout": sys.stdout, "stderr": sys.stderr}
    forwarders = {name: _LineForwarder(client, name) for name in streams}
    sys.stdout, sys.stderr = forwarders["stdout"], forwarders["stderr"]
    try:
        yield
    finally:
        sys.stdout, sys.stderr = streams["stdout"], streams["stderr"]
        for forwarder in forwarders.values():
            forwarder.close_pending()


def print_output(message: Message) -> None:
    """Show a rank's output line on the driver as ``[rank]<stream>: line``, and a
    :func:`log_to_driver` message as ``[rank] message``."""
    kind = message.get("kind")
    if kind == "log":
        print(f"[{message['rank']}] {message['line']}", flush=True)
    elif kind == "output":
        target = sys.stderr if message["stream"] == "stderr" else sys.stdout
        print(
            f"[{message['rank']}]<{message['stream']}>: {message['line']}", file=target, flush=True
        )


# The relay client of the rank running in this process (set while a rank function runs).
_current_client: RelayClient | None = None


@contextlib.contextmanager
def current_client(client: RelayClient) -> Iterator[None]:
    """Make ``client`` the channel of :func:`log_to_driver` while a rank function runs."""
    global _current_client
    previous, _current_client = _current_client, client
    try:
        yield
    finally:
        _current_client = previous


def log_to_driver(message: str) -> None:
    """Show ``message`` on the driver, whatever ``driver_log_verbosity`` says (Databricks'
    ``sparkdl.horovod.log_to_driver``). Outside a rank it is printed here."""
    if _current_client is None:
        print(message, flush=True)
    else:
        _current_client.send("log", line=str(message))
