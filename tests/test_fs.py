"""sparkzoo.fs on local paths, and its errors for HDFS URIs that cannot be reached (fast)."""

from __future__ import annotations

import os
import socket
import threading
import time

import pytest

from sparkzoo import fs

from conftest import run_python


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_round_trip_overwrite_listdir_delete(tmp_path):
    base = str(tmp_path / "store")
    target = fs.join(base, "a", "b.bin")
    fs.write_bytes(target, b"first")
    fs.write_bytes(target, b"second")
    assert fs.read_bytes(target) == b"second"
    assert fs.listdir(fs.join(base, "a")) == ["b.bin"]  # no temporary file left beside it
    assert fs.exists(target) and fs.isdir(fs.join(base, "a")) and not fs.isdir(target)
    assert fs.listdir(fs.join(base, "missing")) == [] and fs.listdir(target) == []
    fs.makedirs(fs.join(base, "a"))  # exists already: nothing to do
    fs.delete(base)
    assert not fs.exists(base)
    fs.delete(base)  # missing: nothing to do


def test_file_uri_is_a_local_path(tmp_path):
    fs.write_bytes(f"file://{tmp_path}/x.txt", b"x")
    assert (tmp_path / "x.txt").read_bytes() == b"x"
    assert fs.local_path(f"file://{tmp_path}/x.txt") == str(tmp_path / "x.txt")


def test_open_for_writing_is_atomic(tmp_path):
    target = str(tmp_path / "out.bin")
    fs.write_bytes(target, b"old")
    with pytest.raises(KeyError), fs.open(target, "wb") as handle:
        handle.write(b"half of the new")
        raise KeyError("the writer failed")
    assert fs.read_bytes(target) == b"old" and os.listdir(tmp_path) == ["out.bin"]
    writer = fs.open(target, "wb")
    writer.write(b"new")
    assert fs.read_bytes(target) == b"old"  # nothing lands before close()
    writer.close()
    with fs.open(target, "rb") as handle:
        handle.seek(1)
        assert handle.read() == b"ew"
    writer = fs.open(str(tmp_path / "never.bin"), "wb")
    writer.write(b"x")
    writer.abort()
    assert os.listdir(tmp_path) == ["out.bin"]


def test_open_refuses_text_modes(tmp_path):
    with pytest.raises(ValueError, match=r"mode must be 'rb' or 'wb'"):
        fs.open(str(tmp_path / "x"), "w")


def test_put_and_get_copy_trees_into_place(tmp_path):
    source = tmp_path / "model"
    (source / "sub").mkdir(parents=True)
    (source / "a.bin").write_bytes(b"a" * 10)
    (source / "sub" / "b.json").write_text("{}")
    fs.put(str(source), str(tmp_path / "saved"))
    fs.get(str(tmp_path / "saved"), str(tmp_path / "back"))
    assert (tmp_path / "back" / "a.bin").read_bytes() == b"a" * 10
    assert (tmp_path / "back" / "sub" / "b.json").read_text() == "{}"
    assert sorted(os.listdir(tmp_path)) == ["back", "model", "saved"]
    with pytest.raises(FileExistsError, match=r"saved' exists"):
        fs.put(str(source), str(tmp_path / "saved"))
    (source / "a.bin").write_bytes(b"changed")
    fs.put(str(source / "a.bin"), str(tmp_path / "saved"), overwrite=True)
    assert (tmp_path / "saved").read_bytes() == b"changed"
    with pytest.raises(FileNotFoundError, match="nothing-here"):
        fs.put(str(tmp_path / "nothing-here"), str(tmp_path / "x"))


def test_hdfs_uris_are_not_local_paths():
    with pytest.raises(ValueError, match=r"'hdfs://127.0.0.1:9/x' is in HDFS, not a local path"):
        fs.local_path("hdfs://127.0.0.1:9/x")
    with pytest.raises(ValueError, match="not a local path"):
        fs.put("hdfs://127.0.0.1:9/x", "/tmp/y")
    assert fs.join("hdfs://127.0.0.1:9/a/", "/b", "c") == "hdfs://127.0.0.1:9/a/b/c"


def test_unreachable_namenode_fails_at_once_naming_the_uri():
    uri = f"hdfs://127.0.0.1:{_closed_port()}/runs/x"
    started = time.monotonic()
    with pytest.raises(ConnectionError, match=f"cannot reach the HDFS NameNode .* for '{uri}'"):
        fs.exists(uri)
    with pytest.raises(OSError, match=f"cannot write to the store '{uri}'"):
        fs.check_writable(uri)
    assert time.monotonic() - started < 3


def test_a_silent_peer_fails_within_the_timeout(monkeypatch):
    """Something accepts connections on the port but never answers an HDFS call."""
    monkeypatch.setattr(fs, "CONNECT_TIMEOUT_S", 0.5)
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    accepted = []
    threading.Thread(target=lambda: accepted.append(server.accept()), daemon=True).start()
    uri = f"hdfs://127.0.0.1:{server.getsockname()[1]}/x"
    started = time.monotonic()
    try:
        with pytest.raises(ConnectionError, match=r"no answer within 1 s"):
            fs.read_bytes(uri)
        assert time.monotonic() - started < 3
        with pytest.raises(ConnectionError, match=r"an earlier call there still waits"):
            fs.exists(uri)  # no second thread piles up behind the first
    finally:
        for connection, _ in accepted:
            connection.close()
        server.close()
    # Once the peer hangs up, the waiting thread ends (and cannot outlive the interpreter).
    deadline = time.monotonic() + 10
    while any(t.name == "sparkzoo-hdfs-probe" for t in threading.enumerate()):
        assert time.monotonic() < deadline, "the probe thread outlived its peer"
        time.sleep(0.1)


def test_importing_fs_stays_light():
    out = run_python(
        "import sys, sparkzoo.fs\n"
        "print(sorted(m for m in ('hdfs_native', 'pyspark', 'tensorflow') if m in sys.modules))"
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
