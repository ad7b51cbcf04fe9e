"""Messages from Horovod ranks (Spark tasks) to the driver, as they happen.

The driver runs a :class:`MessageRelay`, a small TCP server on the driver's Spark address;
each rank connects with a :class:`RelayClient` and sends one JSON object per line: its output
(so ``print`` in a rank shows on the driver, prefixed ``[rank]<stdout>:`` as ``horovodrun``
does), per-epoch metrics, and the traceback of a failure.

The relay is also how the tasks of a barrier stage share what forming a ring needs (the
rendezvous port, each task's address): :meth:`RelayClient.all_gather`, an ``allGather``
answered the moment the last task's value arrives. Spark's own
``BarrierTaskContext.allGather`` (and ``barrier``) polls for completion once a second, so
every call cost the tasks up to a second.
"""

from __future__ import annotations

import contextlib
import io
import itertools
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

GATHER_TIMEOUT_S = 600.0  # how long a task waits in all_gather for the others


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
        self._gathered: dict[str, dict[int, Any]] = {}
        self._joins: dict[tuple[str, int], int] = {}  # (stage, partition) -> runs so far
        self._gather_done = threading.Condition()
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
                    if message.get("kind") in ("all_gather", "join"):
                        reply = (
                            relay._all_gather(message)
                            if message["kind"] == "all_gather"
                            else relay._join(message)
                        )
                        self.wfile.write(json.dumps(reply).encode() + b"\n")
                        self.wfile.flush()
                        continue
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

    def _join(self, message: Message) -> dict[str, Any]:
        """How many times this partition of this stage ran before: a barrier stage is retried
        whole, so the n-th run of every partition belongs to the stage's n-th attempt."""
        key = (str(message["stage"]), int(message["index"]))
        with self._gather_done:
            generation = self._joins.get(key, 0)
            self._joins[key] = generation + 1
        return {"generation": generation}

    def _all_gather(self, message: Message) -> dict[str, Any]:
        """Keep one task's value; once all ``size`` tasks' values are in, every waiting task
        gets them all, in index order (``{"values": [...]}``, else ``{"error": ...}``)."""
        key, size = message["key"], int(message["size"])
        with self._gather_done:
            values = self._gathered.setdefault(key, {})
            values[int(message["index"])] = message["value"]
            self._gather_done.notify_all()
            complete = self._gather_done.wait_for(
                lambda: len(values) >= size, timeout=message.get("timeout", GATHER_TIMEOUT_S)
            )
        if not complete:
            return {"error": f"all_gather {key!r}: {len(values)} of {size} tasks arrived in time"}
        return {"values": [values[i] for i in range(size)]}

    def of_kind(self, kind: str) -> list[Message]:
        with self._lock:
            return [m for m in self.messages if m.get("kind") == kind]

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


class RelayClient:
    """A rank's connection to the driver's :class:`MessageRelay` (thread-safe)."""

    def __init__(
        self, address: tuple[str, int, str], rank: int | None, connect_timeout: float = 30
    ):
        host, port, self._token = address
        self.rank = rank  # None until the task knows it (set it then)
        try:
            self._sock = socket.create_connection((host, port), timeout=connect_timeout)
        except OSError as exc:
            raise ConnectionError(
                f"rank {rank} cannot reach the driver at {host}:{port} ({exc}); executors must "
                "be able to connect to spark.driver.host"
            ) from exc
        self._sock.settimeout(None)
        self._replies = self._sock.makefile("rb")
        self._lock = threading.Lock()

    def send(self, kind: str, **payload: Any) -> None:
        line = json.dumps(
            {"kind": kind, "rank": self.rank, "token": self._token, **payload}, default=jsonable
        )
        with self._lock:
            self._sock.sendall(line.encode() + b"\n")

    def all_gather(
        self, key: str, index: int, size: int, value: Any, timeout: float = GATHER_TIMEOUT_S
    ) -> list[Any]:
        """Every task's ``value`` for ``key``, in ``index`` order, once all ``size`` tasks of
        the stage have called this (``BarrierTaskContext.allGather`` without its once-a-second
        polling). ``key`` names one exchange of one stage attempt.

        Example::

            ports = client.all_gather(f"rendezvous:{ctx.stageAttemptNumber()}",
                                      ctx.partitionId(), len(ctx.getTaskInfos()), my_port)
        """
        request = {"key": key, "index": index, "size": size, "value": value, "timeout": timeout}
        return self._request("all_gather", request)["values"]

    def join(self, stage: str, index: int) -> int:
        """How many times partition ``index`` of ``stage`` ran before this run (0 at first):
        the stage attempt this task belongs to, as far as the relay has seen."""
        return self._request("join", {"stage": stage, "index": index})["generation"]

    def _request(self, kind: str, payload: dict[str, Any]) -> dict[str, Any]:
        line = json.dumps({"kind": kind, "token": self._token, **payload}, default=jsonable)
        with self._lock:
            self._sock.sendall(line.encode() + b"\n")
            raw = self._replies.readline()
        if not raw:
            raise ConnectionError(f"the driver closed the relay during {kind} {payload}")
        reply = json.loads(raw)
        if "error" in reply:
            raise TimeoutError(reply["error"])
        return reply

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._replies.close()
            self._sock.close()

    def __enter__(self) -> RelayClient:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def relay_all_gather(client: RelayClient, ctx: Any) -> Callable[[str], list[str]]:
    """``BarrierTaskContext.allGather``'s contract for the tasks of ``ctx``'s stage attempt,
    through the driver relay (:meth:`RelayClient.all_gather`): answered as soon as the last
    task's message is in, where Spark's own polls once a second."""
    size = len(ctx.getTaskInfos())
    stage = f"{ctx.stageId()}.{client.join(str(ctx.stageId()), ctx.partitionId())}"
    calls = itertools.count()  # the n-th call of every task is one exchange

    def all_gather(message: str) -> list[str]:
        return client.all_gather(f"{stage}:{next(calls)}", ctx.partitionId(), size, message)

    return all_gather


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
