"""A real HDFS on 127.0.0.1: Hadoop 2.7.3's NameNode and DataNode, from registry packages only.

The ``pyspark==2.4.8`` source distribution carries Hadoop 2.7.3's jars. The first ``start``
downloads it with this interpreter's pip, keeps the 33 jars a NameNode and a DataNode need in
a cache outside the repository (``~/.cache/sparkzoo/hadoop``), and deletes the rest. ``start``
then writes the configuration into the state directory, formats the NameNode (first start
only, so a restart keeps the data), launches both daemons on free loopback ports, waits until
the DataNode has registered and safe mode is off, and records the processes in
``<dir>/hdfs.json``. ``stop`` ends exactly those processes; ``status`` says whether it is up.

Example::

    from sparkzoo.services import hdfs
    info = hdfs.start()          # HdfsInfo(uri='hdfs://127.0.0.1:PORT', ...)
    ...                          # Spark: spark.read.parquet(info.uri + "/data"); sparkzoo.fs
    hdfs.stop()
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tarfile
import tempfile
import time
import urllib.request
from dataclasses import asdict, dataclass
from pathlib import Path

from sparkzoo.info import java_version

DEFAULT_DIR = Path.home() / ".cache" / "sparkzoo" / "hdfs"
JARS_DIR = Path.home() / ".cache" / "sparkzoo" / "hadoop"
SOURCE = "pyspark==2.4.8"  # its sdist holds deps/jars/ with Hadoop 2.7.3
HADOOP_VERSION = "2.7.3"

# The subset a NameNode and a DataNode need (about 30 MB of the sdist's 220). Without
# javax.ws.rs-api the daemons start, but listStatus fails.
JARS = (
    "hadoop-common-2.7.3.jar",
    "hadoop-hdfs-2.7.3.jar",
    "hadoop-auth-2.7.3.jar",
    "hadoop-annotations-2.7.3.jar",
    "commons-cli-1.2.jar",
    "commons-codec-1.10.jar",
    "commons-collections-3.2.2.jar",
    "commons-configuration-1.6.jar",
    "commons-io-2.4.jar",
    "commons-lang-2.6.jar",
    "commons-logging-1.1.3.jar",
    "commons-math3-3.4.1.jar",
    "commons-net-3.1.jar",
    "commons-beanutils-1.9.4.jar",
    "commons-digester-1.8.jar",
    "guava-14.0.1.jar",
    "protobuf-java-2.5.0.jar",
    "htrace-core-3.1.0-incubating.jar",
    "jetty-6.1.26.jar",
    "jetty-util-6.1.26.jar",
    "netty-3.9.9.Final.jar",
    "netty-all-4.1.47.Final.jar",
    "log4j-1.2.17.jar",
    "slf4j-api-1.7.16.jar",
    "slf4j-log4j12-1.7.16.jar",
    "leveldbjni-all-1.8.jar",
    "xercesImpl-2.9.1.jar",
    "xmlenc-0.52.jar",
    "jackson-core-asl-1.9.13.jar",
    "jackson-mapper-asl-1.9.13.jar",
    "javax.servlet-api-3.1.0.jar",
    "javax.ws.rs-api-2.0.1.jar",
    "jsr305-1.3.9.jar",
)

NAMENODE = "org.apache.hadoop.hdfs.server.namenode.NameNode"
DATANODE = "org.apache.hadoop.hdfs.server.datanode.DataNode"
# Small heaps and the serial collector: a test HDFS holds little, and shares small machines.
JVM_OPTIONS = ("-Xmx384m", "-XX:+UseSerialGC", "-Djava.net.preferIPv4Stack=true")


@dataclass
class HdfsInfo:
    uri: str  # hdfs://127.0.0.1:PORT, the NameNode
    web_ui: str  # the NameNode's HTTP server (/jmx answers health questions)
    pids: list[int]  # NameNode, DataNode
    dir: str


# ---- the jars ---------------------------------------------------------------------------------
def _complete(jars_dir: Path) -> bool:
    return all((jars_dir / name).is_file() for name in JARS)


def ensure_jars(jars_dir: Path = JARS_DIR, timeout: float = 1800) -> Path:
    """The directory holding Hadoop's jars; the first call downloads and extracts them.

    Example: ``ensure_jars()`` -> ``~/.cache/sparkzoo/hadoop`` with the 33 jars of ``JARS``.
    """
    jars_dir = Path(jars_dir)
    if _complete(jars_dir):
        return jars_dir
    jars_dir.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="sparkzoo-hadoop-", dir=jars_dir.parent) as tmp:
        print(
            f"[hdfs] first start: fetching Hadoop {HADOOP_VERSION} from the {SOURCE} source "
            "distribution (about 220 MB, once)",
            file=sys.stderr,
            flush=True,
        )
        # --no-build-isolation: pip prepares the sdist's metadata, and in an isolated build the
        # setup_requires of pyspark 2.4.8 pulls today's pypandoc, whose API its setup.py
        # predates; the setuptools of this environment reads it without pypandoc.
        command = [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--no-binary",
            ":all:",
            "--no-build-isolation",
            "--disable-pip-version-check",
            "-d",
            tmp,
            SOURCE,
        ]
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
        archives = list(Path(tmp).glob("pyspark-*.tar.gz"))
        if done.returncode != 0 or not archives:
            raise RuntimeError(
                f"could not download {SOURCE} (the source of Hadoop {HADOOP_VERSION}'s jars) "
                f"with {' '.join(command[:4])}: {(done.stderr or done.stdout)[-1500:]}"
            )
        staging = Path(tmp) / "jars"
        staging.mkdir()
        wanted = set(JARS)
        with tarfile.open(archives[0], "r:gz") as archive:
            for member in archive:
                name = member.name.rsplit("/", 1)[-1]
                if "/deps/jars/" in member.name and name in wanted and member.isfile():
                    source = archive.extractfile(member)
                    with source, open(staging / name, "wb") as target:
                        shutil.copyfileobj(source, target)
                    wanted.discard(name)
        if wanted:
            raise RuntimeError(f"{archives[0].name} lacks the jars {sorted(wanted)}")
        if not _complete(jars_dir):  # another process may have finished first
            if jars_dir.exists():  # an incomplete cache from an interrupted start
                shutil.rmtree(jars_dir, ignore_errors=True)
            with contextlib.suppress(OSError):
                staging.rename(jars_dir)
    if not _complete(jars_dir):
        raise RuntimeError(f"the jar cache {jars_dir} is incomplete; remove it and start again")
    return jars_dir


# ---- configuration ------------------------------------------------------------------------------
def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _port_free(port: int) -> bool:
    with socket.socket() as sock:
        # As the JVM's server sockets do: a port whose old connections linger in TIME_WAIT
        # after a stop is free for a new listener.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _site_xml(properties: dict[str, str]) -> str:
    rows = "".join(
        f"  <property><name>{k}</name><value>{v}</value></property>\n"
        for k, v in properties.items()
    )
    return f'<?xml version="1.0"?>\n<configuration>\n{rows}</configuration>\n'


def _ports(state_dir: Path) -> dict[str, int]:
    """The NameNode's ports: chosen once and kept, so a restarted HDFS has the same URI."""
    path = state_dir / "ports.json"
    ports = json.loads(path.read_text()) if path.exists() else {}
    for key in ("rpc", "http"):
        if not ports.get(key) or not _port_free(ports[key]):
            ports[key] = _free_port()
    path.write_text(json.dumps(ports))
    return ports


def _write_config(state_dir: Path, ports: dict[str, int]) -> Path:
    conf = state_dir / "conf"
    conf.mkdir(parents=True, exist_ok=True)
    # The Hadoop jars lack their webapps/ folders, which the daemons' HTTP servers look up on
    # the classpath; empty web applications are enough, and conf/ goes first on it.
    for app in ("hdfs", "datanode", "secondary", "static"):
        web_inf = conf / "webapps" / app / "WEB-INF"
        web_inf.mkdir(parents=True, exist_ok=True)
        (web_inf / "web.xml").write_text(
            '<web-app version="2.5" xmlns="http://java.sun.com/xml/ns/javaee"/>\n'
        )
    (conf / "core-site.xml").write_text(
        _site_xml(
            {
                "fs.defaultFS": f"hdfs://127.0.0.1:{ports['rpc']}",
                "hadoop.tmp.dir": str(state_dir / "tmp"),
            }
        )
    )
    (conf / "hdfs-site.xml").write_text(
        _site_xml(
            {
                "dfs.replication": "1",
                "dfs.namenode.name.dir": str(state_dir / "name"),
                "dfs.datanode.data.dir": str(state_dir / "data"),
                "dfs.namenode.rpc-address": f"127.0.0.1:{ports['rpc']}",
                "dfs.namenode.http-address": f"127.0.0.1:{ports['http']}",
                "dfs.namenode.secondary.http-address": "127.0.0.1:0",
                # The DataNode's ports may be any: it tells the NameNode which it got.
                "dfs.datanode.address": "127.0.0.1:0",
                "dfs.datanode.http.address": "127.0.0.1:0",
                "dfs.datanode.ipc.address": "127.0.0.1:0",
                "dfs.webhdfs.enabled": "false",
                "dfs.permissions.enabled": "false",
                "dfs.namenode.datanode.registration.ip-hostname-check": "false",
                # One DataNode: once it has reported its blocks there is nothing to wait for.
                "dfs.namenode.safemode.extension": "0",
                "dfs.heartbeat.interval": "1",
            }
        )
    )
    (conf / "log4j.properties").write_text(
        "log4j.rootLogger=INFO,console\n"
        "log4j.appender.console=org.apache.log4j.ConsoleAppender\n"
        "log4j.appender.console.layout=org.apache.log4j.PatternLayout\n"
        "log4j.appender.console.layout.ConversionPattern=%d{ISO8601} %p %c{2}: %m%n\n"
    )
    return conf


# ---- processes --------------------------------------------------------------------------------
def _java() -> str:
    version, path = java_version()
    if version is None:
        raise RuntimeError(
            "Java was not found (no java on PATH or in $JAVA_HOME): the local HDFS runs "
            f"Hadoop {HADOOP_VERSION}'s NameNode and DataNode, which need Java 8 or newer "
            "(Debian: apt-get install openjdk-17-jdk-headless)"
        )
    return path


def _alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie child of ours does not: it is reaped here)."""
    try:
        reaped, _ = os.waitpid(pid, os.WNOHANG)
        if reaped == pid:
            return False
    except ChildProcessError:
        pass  # not our child: started by another process (the CLI)
    except OSError:
        return False
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    with contextlib.suppress(OSError):
        if Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1].startswith("Z"):
            return False
    return True


def _ours(pid: int, state_dir: Path) -> bool:
    """Whether ``pid`` is still a daemon of this HDFS, and not a process that reused its PID."""
    if not _alive(pid):
        return False
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
    except OSError:
        return True  # no /proc (macOS): trust the record
    return str(state_dir / "conf") in cmdline


def _launch(java: str, classpath: str, main_class: str, log: Path) -> int:
    with open(log, "ab") as handle:
        process = subprocess.Popen(
            [java, *JVM_OPTIONS, f"-Dhadoop.log.dir={log.parent}", "-cp", classpath, main_class],
            stdout=handle,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # its own process group: stop() signals exactly that
        )
    return process.pid


def _jmx(web_ui: str, query: str) -> dict:
    try:
        with urllib.request.urlopen(f"{web_ui}/jmx?qry={query}", timeout=2) as response:
            beans = json.load(response).get("beans", [])
    except (OSError, ValueError):
        return {}
    return beans[0] if beans else {}


def live_datanodes(web_ui: str) -> int:
    """DataNodes registered with the NameNode (0 when it does not answer)."""
    state = _jmx(web_ui, "Hadoop:service=NameNode,name=FSNamesystemState")
    return int(state.get("NumLiveDataNodes", 0))


def _ready(web_ui: str) -> bool:
    if live_datanodes(web_ui) < 1:
        return False
    info = _jmx(web_ui, "Hadoop:service=NameNode,name=NameNodeInfo")
    return bool(info) and not info.get("Safemode")  # "" once safe mode is off


def _state_file(state_dir: Path) -> Path:
    return state_dir / "hdfs.json"


def status(state_dir: Path = DEFAULT_DIR) -> HdfsInfo | None:
    """The running HDFS recorded in ``state_dir``, or None."""
    state_dir = Path(state_dir)
    path = _state_file(state_dir)
    if not path.exists():
        return None
    info = HdfsInfo(**json.loads(path.read_text()))
    return info if all(_ours(pid, state_dir) for pid in info.pids) else None


def _log_tail(state_dir: Path, name: str, lines: int = 15) -> str:
    with contextlib.suppress(OSError):
        return "\n".join((state_dir / name).read_text(errors="replace").splitlines()[-lines:])
    return ""


def start(
    state_dir: Path = DEFAULT_DIR, jars_dir: Path = JARS_DIR, timeout: float = 120
) -> HdfsInfo:
    """Start a NameNode and a DataNode on 127.0.0.1; return once the DataNode has registered.

    Data lives in ``state_dir`` (formatted on the first start only); an HDFS already running
    there is returned as it is. Raises ``RuntimeError`` without Java, or when it does not come
    up within ``timeout`` seconds (naming the logs).
    """
    state_dir = Path(state_dir).absolute()
    running = status(state_dir)
    if running is not None:
        return running
    java = _java()  # before the download: a machine without Java learns it at once
    if _state_file(state_dir).exists():
        stop(state_dir)  # a half-dead HDFS from before: end what is left of it
    jars = ensure_jars(jars_dir)
    state_dir.mkdir(parents=True, exist_ok=True)
    ports = _ports(state_dir)
    conf = _write_config(state_dir, ports)
    classpath = f"{conf}{os.pathsep}{jars}/*"
    uri, web_ui = f"hdfs://127.0.0.1:{ports['rpc']}", f"http://127.0.0.1:{ports['http']}"

    if not (state_dir / "name" / "current" / "VERSION").exists():
        formatted = subprocess.run(
            [
                java,
                *JVM_OPTIONS,
                "-cp",
                classpath,
                NAMENODE,
                "-format",
                "-force",
                "-nonInteractive",
            ],
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        (state_dir / "format.log").write_text(formatted.stdout + formatted.stderr)
        if formatted.returncode != 0:
            raise RuntimeError(
                f"formatting the NameNode failed; see {state_dir / 'format.log'}:\n"
                + _log_tail(state_dir, "format.log")
            )

    pids = [_launch(java, classpath, NAMENODE, state_dir / "namenode.log")]
    pids.append(_launch(java, classpath, DATANODE, state_dir / "datanode.log"))
    info = HdfsInfo(uri, web_ui, pids, str(state_dir))
    _state_file(state_dir).write_text(json.dumps(asdict(info), indent=2))
    deadline = time.monotonic() + timeout
    while not _ready(web_ui):
        dead = [
            name
            for name, pid in zip(("namenode", "datanode"), pids, strict=True)
            if not _alive(pid)
        ]
        if dead or time.monotonic() > deadline:
            stop(state_dir)
            why = f"the {dead[0]} exited" if dead else f"not up within {timeout:.0f} s"
            log = f"{dead[0] if dead else 'namenode'}.log"
            raise RuntimeError(
                f"HDFS did not start ({why}); see {state_dir / log}:\n" + _log_tail(state_dir, log)
            )
        time.sleep(0.5)
    return info


def stop(state_dir: Path = DEFAULT_DIR, timeout: float = 20) -> bool:
    """End the processes recorded in ``state_dir`` (only those). True if any were running."""
    state_dir = Path(state_dir).absolute()
    path = _state_file(state_dir)
    if not path.exists():
        return False
    pids = json.loads(path.read_text())["pids"]
    running = [pid for pid in pids if _ours(pid, state_dir)]
    for pid in running:
        with contextlib.suppress(OSError):
            os.killpg(pid, signal.SIGTERM)  # each was started in its own session: its group
    deadline = time.monotonic() + timeout
    while any(_alive(pid) for pid in running) and time.monotonic() < deadline:
        time.sleep(0.2)
    for pid in running:
        if _alive(pid):
            with contextlib.suppress(OSError):
                os.killpg(pid, signal.SIGKILL)
            time.sleep(0.2)
            _alive(pid)  # reaps it if it is our child
    path.unlink()
    return bool(running)
