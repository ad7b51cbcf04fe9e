"""Fetch weights files from a local path, ``hdfs://`` or ``https://`` into a local cache.

Policy (why each rule exists):

- a local path (or ``file://`` URI) is used in place, never copied; its sha256 is checked
  when one is given;
- ``https://`` is fetched with certificate verification (``context`` or ``cafile`` for a
  private CA); a sha256 is optional because TLS already authenticates the server, but give
  one: it is what lets the cache be reused without fetching again;
- ``http://`` is refused unless a sha256 is given, because nothing else would detect a
  tampered file;
- ``hdfs://`` is read through :func:`sparkzoo.fs.read_bytes`;
- a remote file is written to a temporary file in the cache directory, its size and sha256
  checked, and only then renamed into place: a wrong sha256 or a truncated download raises
  :class:`sparkzoo.models.WeightsError` (naming the URI, the expected and the actual sha256)
  and leaves nothing in the cache.

Cached files are named ``<sha256>-<file name>`` when a sha256 is given (a later fetch with
the same sha256 is served from the cache after re-checking the file), else
``url-<hash of the URI>-<file name>`` (fetched again every time, since nothing says whether
the remote file changed).

Example::

    from sparkzoo.models.hub import fetch
    path = fetch("https://example.org/weights/resnet18.weights.h5", sha256="9f2c...")
"""

from __future__ import annotations

import hashlib
import http.client
import os
import ssl
import tempfile
import urllib.error
import urllib.request
from pathlib import Path
from typing import BinaryIO
from urllib.parse import unquote, urlparse

from sparkzoo import fs
from sparkzoo.models.registry import WeightsError, sha256_of

DEFAULT_CACHE_DIR = Path("~/.cache/sparkzoo/weights")
CHUNK = 1 << 20


def default_cache_dir() -> Path:
    """``$SPARKZOO_WEIGHTS_CACHE`` if set, else ``~/.cache/sparkzoo/weights``."""
    return Path(os.environ.get("SPARKZOO_WEIGHTS_CACHE", DEFAULT_CACHE_DIR)).expanduser()


def _file_name(uri: str) -> str:
    name = os.path.basename(unquote(urlparse(uri).path.rstrip("/")))
    if not name or name in (".", ".."):
        raise ValueError(f"cannot tell a file name from {uri!r}")
    return name


def _cache_path(cache_dir: Path, uri: str, sha256: str | None) -> Path:
    if sha256:
        return cache_dir / f"{sha256}-{_file_name(uri)}"
    uri_hash = hashlib.sha256(uri.encode()).hexdigest()[:16]
    return cache_dir / f"url-{uri_hash}-{_file_name(uri)}"


def _check_sha256(sha256: str | None) -> str | None:
    if sha256 is None:
        return None
    value = sha256.strip().lower()
    if len(value) != 64 or any(c not in "0123456789abcdef" for c in value):
        raise ValueError(f"sha256 must be 64 hex digits, got {sha256!r}")
    return value


def fetch(
    uri: str | Path,
    sha256: str | None = None,
    cache_dir: str | Path | None = None,
    *,
    context: ssl.SSLContext | None = None,
    cafile: str | Path | None = None,
    timeout: float = 60.0,
) -> Path:
    """A local path holding the bytes of ``uri``, checked against ``sha256`` when given.

    ``uri`` is a local path, ``file://``, ``hdfs://``, ``https://`` (or ``http://`` with a
    sha256) URI. ``context`` / ``cafile`` verify an HTTPS server with a private CA;
    ``cache_dir`` defaults to :func:`default_cache_dir`.

    Example::

        fetch("weights/lenet5.weights.h5")                           # used in place
        fetch("hdfs://namenode:9000/zoo/ncf.weights.h5", sha256=h)   # copied to the cache
    """
    uri = str(uri)
    sha256 = _check_sha256(sha256)
    scheme = urlparse(uri).scheme.lower()
    if scheme in ("", "file"):
        path = Path(unquote(urlparse(uri).path) if scheme else uri).expanduser()
        if not path.is_file():
            raise WeightsError(f"weights file {uri} does not exist")
        if sha256:
            actual = sha256_of(path)
            if actual != sha256:
                raise WeightsError(_mismatch(uri, sha256, actual))
        return path
    if scheme not in ("https", "http", "hdfs"):
        raise ValueError(
            f"cannot fetch {uri!r}: supported are local paths, file://, hdfs:// and https:// "
            "(http:// only with a sha256)"
        )
    if scheme == "http" and not sha256:
        raise WeightsError(
            f"refusing to fetch {uri} over plain http without a sha256: nothing would detect "
            "a tampered or truncated file (use https://, or pass sha256=)"
        )
    cache = Path(cache_dir).expanduser() if cache_dir else default_cache_dir()
    target = _cache_path(cache, uri, sha256)
    if sha256 and target.is_file():
        if sha256_of(target) == sha256:
            return target
        target.unlink()  # damaged since it was cached: fetch it again
    cache.mkdir(parents=True, exist_ok=True)
    fd, temp_name = tempfile.mkstemp(dir=cache, prefix=f".{target.name}.", suffix=".part")
    temp = Path(temp_name)
    try:
        with os.fdopen(fd, "wb") as handle:
            if scheme == "hdfs":
                actual, received, length = _copy_hdfs(uri, handle)
            else:
                actual, received, length = _download(uri, handle, context, cafile, timeout)
            handle.flush()
            os.fsync(handle.fileno())
        problems = []
        if length is not None and received != length:
            problems.append(f"truncated: {received} of {length} bytes arrived")
        if sha256 and actual != sha256:
            problems.append(f"sha256 {actual}, expected {sha256}")
        if problems:
            raise WeightsError(f"weights {uri}: {'; '.join(problems)}; nothing was cached")
        os.replace(temp, target)
    finally:
        temp.unlink(missing_ok=True)
    return target


def _mismatch(uri: str, expected: str, actual: str) -> str:
    return (
        f"weights {uri} have sha256 {actual}, expected {expected} "
        "(a truncated, corrupted or different file); nothing was cached"
    )


def _copy_hdfs(uri: str, out: BinaryIO) -> tuple[str, int, int | None]:
    data = fs.read_bytes(uri)
    out.write(data)
    return hashlib.sha256(data).hexdigest(), len(data), None


def _download(
    uri: str,
    out: BinaryIO,
    context: ssl.SSLContext | None,
    cafile: str | Path | None,
    timeout: float,
) -> tuple[str, int, int | None]:
    """Stream ``uri`` into ``out``; return the sha256 and size of what arrived, and the size
    the server announced (Content-Length, when it sent one)."""
    if urlparse(uri).scheme == "https" and context is None:
        context = ssl.create_default_context(cafile=str(cafile) if cafile else None)
    digest = hashlib.sha256()
    received = 0
    length = None
    try:
        with urllib.request.urlopen(uri, timeout=timeout, context=context) as response:
            if response.headers.get("Content-Length") is not None:
                length = int(response.headers["Content-Length"])
            try:
                while block := response.read(CHUNK):
                    digest.update(block)
                    out.write(block)
                    received += len(block)
            except http.client.IncompleteRead as err:  # the server closed early
                digest.update(err.partial)
                out.write(err.partial)
                received += len(err.partial)
    except (urllib.error.URLError, OSError, http.client.HTTPException) as err:
        raise WeightsError(f"cannot fetch {uri}: {err}") from err
    return digest.hexdigest(), received, length
