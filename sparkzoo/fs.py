"""One storage layer for the trainer's store, checkpoints, saved models and app outputs.

Paths are local paths or ``file://`` URIs. Writes are atomic: :func:`write_bytes` writes to a
temporary name beside the target and renames it into place, so a reader never sees half a
file and a crash leaves the old file intact.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from urllib.parse import urlparse


def local_path(uri: str) -> str:
    """The local filesystem path of ``uri``; a clear error for a scheme this layer lacks."""
    parsed = urlparse(uri)
    if parsed.scheme in ("", "file"):
        return os.path.abspath(os.path.expanduser(parsed.path if parsed.scheme else uri))
    raise ValueError(
        f"unsupported storage URI {uri!r}: this version of sparkzoo.fs reads and "
        "writes local paths and file:// URIs only"
    )


def join(base: str, *parts: str) -> str:
    return "/".join([base.rstrip("/"), *[p.strip("/") for p in parts]])


def exists(uri: str) -> bool:
    return os.path.exists(local_path(uri))


def makedirs(uri: str) -> None:
    os.makedirs(local_path(uri), exist_ok=True)


def listdir(uri: str) -> list[str]:
    path = local_path(uri)
    return sorted(os.listdir(path)) if os.path.isdir(path) else []


def read_bytes(uri: str) -> bytes:
    with open(local_path(uri), "rb") as handle:
        return handle.read()


def write_bytes(uri: str, data: bytes) -> None:
    """Write ``data`` to ``uri`` atomically (temporary name, then rename)."""
    path = local_path(uri)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    temp = f"{path}.tmp-{uuid.uuid4().hex}"
    try:
        with open(temp, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, path)
    finally:
        if os.path.exists(temp):
            os.remove(temp)


def delete(uri: str) -> None:
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
