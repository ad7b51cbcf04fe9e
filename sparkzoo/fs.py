"""One storage layer for the trainer's store, checkpoints, saved models and app outputs.

Paths are local paths, ``file://`` URIs or ``hdfs://host:port/path`` URIs; every function
takes any of them. Writes are atomic: :func:`write_bytes`, :func:`open` in ``"wb"`` mode and
:func:`put` / :func:`get` write to a temporary name beside the target and rename it into
place, so a reader never sees half a file and a crash leaves the old file intact.

HDFS is reached from Python through ``hdfs-native`` (imported on first use: this module stays
light enough for ``sparkzoo.models``); Spark DataFrames use Spark's own Hadoop client with the
same URIs. A NameNode that does not answer fails the call within seconds, with an error that
names the URI, instead of the client's minutes of retries.

Example::

    from sparkzoo import fs
    fs.write_bytes("hdfs://127.0.0.1:9000/runs/x/notes.txt", b"hello")
    fs.listdir("hdfs://127.0.0.1:9000/runs/x")      # ['notes.txt']
    fs.put("/tmp/model_dir", "hdfs://127.0.0.1:9000/models/m1")
"""

from __future__ import annotations

import atexit
import builtins
import contextlib
import os
import re
import shutil
import socket
import tempfile
import threading
import time
import uuid
from typing import IO, Any
from urllib.parse import urlparse

from sparkzoo import extras

# How long a NameNode may take to accept a connection before the call fails.
CONNECT_TIMEOUT_S = 5.0
# hdfs-native's own defaults retry a refused connection for about three minutes (15
# attempts with growing sleeps); two quick attempts ride out a blip and fail in about a second.
_HDFS_CLIENT_CONFIG = {
    "dfs.client.failover.max.attempts": "2",
    "dfs.client.failover.sleep.base.millis": "200",
    "dfs.client.failover.sleep.max.millis": "1000",
}
_HDFS_DEFAULT_PORT = 8020
_CHUNK = 4 << 20
_clients: dict[tuple[int, str], Any] = {}  # by (process, host:port): a forked child makes its own
_probes: dict[str, threading.Thread] = {}  # first calls to a NameNode still waiting, by host:port


def is_hdfs(uri: str) -> bool:
    """Whether ``uri`` names a file in HDFS (``hdfs://...``)."""
    return urlparse(uri).scheme == "hdfs"


def local_path(uri: str) -> str:
    """The local filesystem path of ``uri``; a clear error for a URI that is not local."""
    parsed = urlparse(uri)
    if parsed.scheme in ("", "file"):
        return os.path.abspath(os.path.expanduser(parsed.path if parsed.scheme else uri))
    if parsed.scheme == "hdfs":
        raise ValueError(f"{uri!r} is in HDFS, not a local path: use the sparkzoo.fs functions")
    raise ValueError(
        f"unsupported storage URI {uri!r}: sparkzoo.fs reads and writes local paths, "
        "file:// and hdfs:// URIs"
    )


def join(base: str, *parts: str) -> str:
    """``base`` and ``parts`` joined with ``/``: ``join("hdfs://h:1/a", "b")`` -> ``hdfs://h:1/a/b``."""
    return "/".join([base.rstrip("/"), *[p.strip("/") for p in parts]])


# ---- HDFS plumbing ----------------------------------------------------------------------------
def _first_line(exc: BaseException) -> str:
    text = str(exc)
    match = re.match(r'RPCError\("([^"]+)", "(.*)', text, re.S)  # hdfs-native's Java errors
    if match:
        text = f"{match.group(1).rsplit('.', 1)[-1]}: {match.group(2)}"
    return text.replace("\\n", "\n").replace("\\t", "\t").strip().splitlines()[0].rstrip('")')


def _unreachable(uri: str, address: str, why: object) -> ConnectionError:
    return ConnectionError(
        f"cannot reach the HDFS NameNode at {address} for {uri!r}: {why} "
        "(is HDFS running? `sparkzoo hdfs status` tells for the local one)"
    )


def _hdfs(uri: str, label: str | None = None) -> tuple[Any, str]:
    """The ``hdfs-native`` client for ``uri``'s NameNode (one per process) and its path.

    Errors name ``label`` (the URI a caller asked for) or else ``uri``.
    """
    parsed = urlparse(uri)
    named = label or uri
    key = (os.getpid(), parsed.netloc)
    if key not in _clients:
        if parsed.hostname:
            # hdfs-native has no connect timeout of its own: a NameNode host that drops
            # packets would hold the call for minutes. A logical HA name (no port, not
            # resolvable) is left to hdfs-native and the Hadoop configuration.
            port = parsed.port or _HDFS_DEFAULT_PORT
            address = f"{parsed.hostname}:{port}"
            try:
                with socket.create_connection((parsed.hostname, port), CONNECT_TIMEOUT_S):
                    pass
            except socket.gaierror:
                if parsed.port:
                    raise _unreachable(named, address, "unknown host") from None
            except OSError as exc:
                raise _unreachable(named, address, exc.strerror or exc) from None
        Client = extras.import_module("hdfs_native", "hdfs", f"reading {named}").Client
        url = f"hdfs://{parsed.netloc}" if parsed.netloc else None  # None: fs.defaultFS
        client = Client(url, _HDFS_CLIENT_CONFIG)
        _first_answer(client, named, parsed.netloc or "fs.defaultFS")
        _clients[key] = client
    return _clients[key], parsed.path or "/"


def _first_answer(client: Any, uri: str, address: str) -> None:
    """Wait at most ``2 * CONNECT_TIMEOUT_S`` for the NameNode's first answer.

    Whatever accepts connections on the port (a NameNode still starting, a hung one, another
    server, a proxy) may never answer an HDFS call, and hdfs-native would wait forever. The
    call runs in a daemon thread (hdfs-native releases the GIL while it waits), so a silent
    peer costs this process one idle thread rather than a hang.
    """
    waiting = _probes.get(address)
    if waiting is not None and waiting.is_alive():
        raise _unreachable(uri, address, "an earlier call there still waits for its answer")
    outcome: list[BaseException | None] = []

    def ask() -> None:
        try:
            client.get_file_info("/")
            outcome.append(None)
        except BaseException as exc:
            outcome.append(exc)

    thread = threading.Thread(target=ask, name="sparkzoo-hdfs-probe", daemon=True)
    _probes[address] = thread
    thread.start()
    thread.join(2 * CONNECT_TIMEOUT_S)
    if not outcome:
        raise _unreachable(uri, address, f"no answer within {2 * CONNECT_TIMEOUT_S:.0f} s")
    del _probes[address]
    if outcome[0] is not None:
        raise _unreachable(uri, address, _first_line(outcome[0])) from outcome[0]


@atexit.register
def _wait_for_probes(timeout: float = 3.0) -> None:
    # A probe thread that comes back from hdfs-native while the interpreter shuts down aborts
    # the process (CPython ends it by unwinding through Rust frames): give the ones still
    # waiting a moment to finish first, which they do once their peer closes the connection.
    deadline = time.monotonic() + timeout
    for thread in list(_probes.values()):
        thread.join(max(0.0, deadline - time.monotonic()))


class _HdfsErrors:
    """Re-raises hdfs-native's errors as OSErrors that name the URI; drops a client whose
    NameNode went away, so the next call probes the connection again."""

    def __init__(self, uri: str):
        self.uri = uri

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind, exc, tb) -> bool:
        if exc is None or not isinstance(exc, (OSError, RuntimeError)):
            return False
        if isinstance(exc, ConnectionError) and self.uri in str(exc):
            return False  # ours already
        message = _first_line(exc)
        if isinstance(exc, FileNotFoundError):
            raise FileNotFoundError(f"{self.uri!r} does not exist") from exc
        if isinstance(exc, FileExistsError):
            raise FileExistsError(f"HDFS refused {self.uri!r}: {message}") from exc
        if isinstance(exc, OSError) and re.search(
            r"connection (refused|reset|aborted)|broken pipe|listener disconnected", message, re.I
        ):
            parsed = urlparse(self.uri)
            _clients.pop((os.getpid(), parsed.netloc), None)
            raise _unreachable(self.uri, parsed.netloc, message) from exc
        raise OSError(f"HDFS failed on {self.uri!r}: {message}") from exc


def _hdfs_info(uri: str):
    client, path = _hdfs(uri)
    with _HdfsErrors(uri):
        try:
            return client.get_file_info(path)
        except FileNotFoundError:
            return None


# ---- the API --------------------------------------------------------------------------------
def exists(uri: str) -> bool:
    """Whether a file or directory is at ``uri``."""
    if is_hdfs(uri):
        return _hdfs_info(uri) is not None
    return os.path.exists(local_path(uri))


def isdir(uri: str) -> bool:
    """Whether ``uri`` is a directory."""
    if is_hdfs(uri):
        info = _hdfs_info(uri)
        return bool(info and info.isdir)
    return os.path.isdir(local_path(uri))


def makedirs(uri: str) -> None:
    """Create directory ``uri`` and its parents; nothing to do when it exists."""
    if is_hdfs(uri):
        client, path = _hdfs(uri)
        with _HdfsErrors(uri):
            client.mkdirs(path, create_parent=True)
        return
    os.makedirs(local_path(uri), exist_ok=True)


def listdir(uri: str) -> list[str]:
    """The sorted names in directory ``uri``; ``[]`` when it is missing or not a directory."""
    if is_hdfs(uri):
        if not isdir(uri):
            return []
        client, path = _hdfs(uri)
        with _HdfsErrors(uri):
            statuses = list(client.list_status(path))
        return sorted(status.path.rstrip("/").rsplit("/", 1)[-1] for status in statuses)
    path = local_path(uri)
    return sorted(os.listdir(path)) if os.path.isdir(path) else []


def read_bytes(uri: str) -> bytes:
    """The whole content of file ``uri``."""
    with open(uri, "rb") as handle:
        return handle.read()


def write_bytes(uri: str, data: bytes) -> None:
    """Write ``data`` to ``uri`` atomically (temporary name, then rename), replacing any file."""
    with open(uri, "wb") as handle:
        handle.write(data)


def delete(uri: str) -> None:
    """Remove file or directory ``uri`` with everything below it; nothing if it is missing."""
    if is_hdfs(uri):
        client, path = _hdfs(uri)
        with _HdfsErrors(uri):
            client.delete(path, recursive=True)
        return
    path = local_path(uri)
    if os.path.isdir(path):
        shutil.rmtree(path)
    elif os.path.exists(path):
        os.remove(path)


def check_writable(uri: str) -> None:
    """Create ``uri`` as a directory and prove a file can be written there, or raise ``OSError``
    naming it."""
    try:
        makedirs(uri)
        probe = join(uri, f".write-test-{uuid.uuid4().hex}")
        write_bytes(probe, b"ok")
        delete(probe)
    except OSError as exc:
        raise OSError(f"cannot write to the store {uri!r}: {exc.strerror or exc}") from exc


def local_temp_dir(prefix: str = "sparkzoo-") -> str:
    return tempfile.mkdtemp(prefix=prefix)


def _rename(source: str, target: str) -> None:
    """Move ``source`` onto ``target`` (same filesystem), replacing a file there."""
    if is_hdfs(target):
        client, path = _hdfs(target)
        with _HdfsErrors(target):
            client.rename(_hdfs(source)[1], path, overwrite=True)
    else:
        os.replace(local_path(source), local_path(target))


def _create(uri: str, label: str | None = None) -> Any:
    """A plain (not atomic) writer for a new file at ``uri``, creating its parents; errors
    name ``label`` or else ``uri``."""
    if is_hdfs(uri):
        WriteOptions = extras.import_module("hdfs_native", "hdfs", f"writing {uri}").WriteOptions
        client, path = _hdfs(uri, label)
        with _HdfsErrors(label or uri):
            return client.create(path, WriteOptions(overwrite=True, create_parent=True))
    path = local_path(uri)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    return builtins.open(path, "wb")


class AtomicWriter:
    """A binary writer that lands at ``uri`` only when closed without an error.

    Data goes to ``<uri>.tmp-<random>``; ``close()`` renames it over ``uri``. Leaving a ``with``
    block by an exception, or ``abort()``, removes the temporary file and leaves ``uri`` as it
    was. Made by ``fs.open(uri, "wb")``.
    """

    def __init__(self, uri: str):
        self.uri = uri
        self._temp = f"{uri}.tmp-{uuid.uuid4().hex}"
        self._handle = _create(self._temp, label=uri)
        self.closed = False

    def writable(self) -> bool:
        return True

    def write(self, data: bytes) -> int:
        if is_hdfs(self.uri):
            with _HdfsErrors(self.uri):
                self._handle.write(data)
        else:
            self._handle.write(data)
        return len(data)

    def flush(self) -> None:
        """Nothing reaches ``uri`` before ``close()``; here for file-like callers."""

    def close(self) -> None:
        """Finish the temporary file and rename it over ``uri``."""
        if self.closed:
            return
        self.closed = True
        try:
            if is_hdfs(self.uri):
                with _HdfsErrors(self.uri):
                    self._handle.close()
            else:
                self._handle.flush()
                os.fsync(self._handle.fileno())
                self._handle.close()
            _rename(self._temp, self.uri)
        except BaseException:
            self._discard()
            raise

    def abort(self) -> None:
        """Drop what was written; ``uri`` keeps its old content (or stays absent)."""
        if not self.closed:
            self.closed = True
            self._discard()

    def _discard(self) -> None:
        with contextlib.suppress(Exception):  # the temporary file goes anyway
            self._handle.close()
        with contextlib.suppress(OSError):  # an unreachable HDFS: no rename happened either
            delete(self._temp)

    def __enter__(self) -> AtomicWriter:
        return self

    def __exit__(self, kind, exc, tb) -> None:
        if exc is None:
            self.close()
        else:
            self.abort()


def open(uri: str, mode: str = "rb") -> IO[bytes] | AtomicWriter:
    """A binary file at ``uri``: ``"rb"`` reads (seekable), ``"wb"`` writes atomically.

    Example: ``with fs.open("hdfs://127.0.0.1:9000/part-0.bin", "wb") as f: f.write(data)``.
    """
    if mode == "rb":
        if is_hdfs(uri):
            client, path = _hdfs(uri)
            with _HdfsErrors(uri):
                return client.read(path)
        return builtins.open(local_path(uri), "rb")
    if mode == "wb":
        return AtomicWriter(uri)
    raise ValueError(f"fs.open({uri!r}, {mode!r}): mode must be 'rb' or 'wb'")


def _copy_tree(source: str, target: str) -> None:
    """Copy file or directory ``source`` to ``target`` (not atomic; ``target`` is new)."""
    if isdir(source):
        makedirs(target)
        for name in listdir(source):
            _copy_tree(join(source, name), join(target, name))
        return
    if not exists(source):
        raise FileNotFoundError(f"{source!r} does not exist")
    writer = _create(target)
    try:
        with open(source, "rb") as reader:
            while chunk := reader.read(_CHUNK):
                if is_hdfs(target):
                    with _HdfsErrors(target):
                        writer.write(chunk)
                else:
                    writer.write(chunk)
    finally:
        if is_hdfs(target):
            with _HdfsErrors(target):
                writer.close()
        else:
            writer.close()


def _copy_into_place(source: str, target: str, overwrite: bool) -> None:
    if exists(target) and not overwrite:
        raise FileExistsError(f"{target!r} exists; remove it or pass overwrite=True")
    temp = f"{target.rstrip('/')}.tmp-{uuid.uuid4().hex}"
    try:
        _copy_tree(source, temp)
        # A directory cannot be renamed over another: the old one goes only once the new copy
        # is complete, so a failed copy leaves it untouched.
        if overwrite and isdir(target):
            delete(target)
        _rename(temp, target)
    finally:
        if exists(temp):
            delete(temp)


def put(local: str, uri: str, overwrite: bool = False) -> None:
    """Copy local file or directory ``local`` to ``uri`` (any storage), atomically: it is
    copied to a temporary name beside ``uri``, then renamed into place.

    Example: ``fs.put("model_dir", "hdfs://127.0.0.1:9000/models/m1")``.
    """
    local_path(local)  # refuses a remote source by name
    _copy_into_place(local, uri, overwrite)


def get(uri: str, local: str, overwrite: bool = False) -> None:
    """Copy file or directory ``uri`` (any storage) to the local path ``local``, atomically.

    Example: ``fs.get("hdfs://127.0.0.1:9000/models/m1", "/tmp/m1")``.
    """
    local_path(local)
    _copy_into_place(uri, local, overwrite)
