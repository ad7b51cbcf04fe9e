"""Bring a Horovod Gloo ring up inside a Spark barrier stage.

Every task of a barrier stage becomes one Horovod rank (docs/trainer.md):

1. the tasks learn the world from :class:`pyspark.BarrierTaskContext` (their addresses);
2. :func:`plan_ranks` assigns Horovod ranks host by host, as ``horovodrun`` would;
3. the task that holds rank 0 starts Horovod's HTTP rendezvous server on its own address and
   shares the port with the others through an ``allGather`` (the launcher's goes through
   the driver relay: Spark's polls once a second);
4. each task sets the ``HOROVOD_*`` variables Gloo reads and calls ``hvd.init()``.

Use it from a function passed to ``mapInArrow(..., barrier=True)``::

    def train(batches):
        with horovod_ring() as ring:
            import horovod.tensorflow as hvd
            ...  # hvd.rank() == ring.rank
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import socket
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import psutil

from sparkzoo.trainer.gpus import task_gpu_env

# How long Gloo waits for its peers before giving up (Horovod's default is 30 s).
GLOO_TIMEOUT_SECONDS = 60
# A rank that waits this long for its peers to submit the same tensor warns, then shuts the
# ring down: a mismatch between ranks fails the stage instead of hanging it.
STALL_WARNING_SECONDS = 60
STALL_SHUTDOWN_SECONDS = 300


# What to do where Horovod is missing: only the classic stack has it (docs/trainer.md, "Two stacks, one API").
HOROVOD_MISSING = (
    "Horovod is not installed: it runs only on sparkzoo's classic stack (Python 3.11, "
    "TensorFlow 2.15, PySpark 3.5), which `make setup` creates in .venv/; on the current stack "
    '(.venv-current/) train with the TensorFlow engine instead (engine="tf")'
)


class HorovodMissingError(ImportError):
    """Horovod is needed but not installed (the current stack has no Horovod)."""


def require_horovod() -> None:
    """Raise :class:`HorovodMissingError`, naming the classic stack's set-up command, when
    Horovod cannot be imported here."""
    if importlib.util.find_spec("horovod") is None:
        raise HorovodMissingError(HOROVOD_MISSING)


@dataclass(frozen=True)
class RankInfo:
    """Where one task sits in the Horovod world."""

    rank: int
    size: int
    local_rank: int
    local_size: int
    cross_rank: int
    cross_size: int
    hostname: str


def task_host(address: str) -> str:
    """The host part of a Spark task address (``"10.0.0.5:41234"`` -> ``"10.0.0.5"``)."""
    host, _, _port = address.rpartition(":")
    return (host or address).strip("[]")


def plan_ranks(task_hosts: list[str]) -> list[RankInfo]:
    """Horovod's place for each task, given each task's host (index = partition id).

    Ranks are numbered host by host in order of first appearance, so tasks sharing a host get
    consecutive ranks and local ranks ``0..local_size-1``: the plan ``horovodrun`` makes from
    ``host1:n1,host2:n2``.
    """
    require_horovod()
    from horovod.runner.common.util.hosts import HostInfo, get_host_assignments

    if not task_hosts:
        raise ValueError("plan_ranks needs at least one task")
    hosts: list[str] = list(dict.fromkeys(task_hosts))
    slots = [HostInfo(h, task_hosts.count(h)) for h in hosts]
    assignment = {
        (s.hostname, s.local_rank): s for s in get_host_assignments(slots, len(task_hosts))
    }
    seen: dict[str, int] = {}
    plan = []
    for host in task_hosts:
        local_index = seen.get(host, 0)
        seen[host] = local_index + 1
        slot = assignment[(host, local_index)]
        plan.append(
            RankInfo(
                slot.rank,
                slot.size,
                slot.local_rank,
                slot.local_size,
                slot.cross_rank,
                slot.cross_size,
                host,
            )
        )
    return plan


def interface_for_address(address: str) -> str:
    """The network interface that holds ``address`` (Gloo binds its sockets to an interface)."""
    ip = socket.gethostbyname(address)
    for name, addrs in psutil.net_if_addrs().items():
        if any(a.address == ip for a in addrs):
            return name
    raise RuntimeError(
        f"no network interface holds {ip} (the Spark task address {address!r}); "
        "set spark.driver.host / SPARK_LOCAL_IP to an address of this machine"
    )


class RendezvousServer:
    """Horovod's Gloo rendezvous (an HTTP key-value store) bound to one address.

    Horovod's own ``RendezvousServer.start()`` listens on every interface; this one listens on
    the address the ranks reach rank 0 at, and on a port the OS picks.
    """

    def __init__(self, host: str, plan: list[RankInfo]):
        from horovod.runner.common.util.hosts import SlotInfo
        from horovod.runner.http.http_server import RendezvousHandler, RendezvousHTTPServer

        self._httpd = RendezvousHTTPServer((host, 0), RendezvousHandler, 0)
        self._httpd.init(
            [
                SlotInfo(
                    r.hostname,
                    r.rank,
                    r.local_rank,
                    r.cross_rank,
                    r.size,
                    r.local_size,
                    r.cross_size,
                )
                for r in plan
            ]
        )
        self.port: int = self._httpd.server_address[1]
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, daemon=True, name="horovod-rendezvous"
        )
        self._thread.start()

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)


def horovod_env(
    info: RankInfo, rendezvous_host: str, rendezvous_port: int, iface: str
) -> dict[str, str]:
    """The environment Horovod's Gloo controller reads in ``hvd.init()``."""
    return {
        "HOROVOD_CONTROLLER": "gloo",
        "HOROVOD_CPU_OPERATIONS": "gloo",
        "HOROVOD_GLOO_RENDEZVOUS_ADDR": rendezvous_host,
        "HOROVOD_GLOO_RENDEZVOUS_PORT": str(rendezvous_port),
        "HOROVOD_GLOO_IFACE": iface,
        "HOROVOD_GLOO_TIMEOUT_SECONDS": str(GLOO_TIMEOUT_SECONDS),
        "HOROVOD_STALL_CHECK_TIME_SECONDS": str(STALL_WARNING_SECONDS),
        "HOROVOD_STALL_SHUTDOWN_TIME_SECONDS": str(STALL_SHUTDOWN_SECONDS),
        "HOROVOD_HOSTNAME": info.hostname,
        "HOROVOD_RANK": str(info.rank),
        "HOROVOD_SIZE": str(info.size),
        "HOROVOD_LOCAL_RANK": str(info.local_rank),
        "HOROVOD_LOCAL_SIZE": str(info.local_size),
        "HOROVOD_CROSS_RANK": str(info.cross_rank),
        "HOROVOD_CROSS_SIZE": str(info.cross_size),
    }


@contextlib.contextmanager
def _patched_environ(values: dict[str, str]) -> Iterator[None]:
    """Set ``values`` in ``os.environ`` and put the old ones back after (Python workers are reused)."""
    saved = {key: os.environ.get(key) for key in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, old in saved.items():
            if old is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = old


def _forget_traced_world_size() -> None:
    """Drop Horovod's cached gradient-allreduce ``tf.function``.

    Horovod caches it per process with ``size() > 1`` baked in when it was traced. A Python
    worker that trained in a one-rank ring and is reused by a two-rank ring would skip the
    allreduce while its peer waits for it: a hung ring.
    """
    import horovod.tensorflow as hvd

    cached = getattr(hvd, "_make_cached_allreduce_grads_fn", None)
    for cell in getattr(cached, "__closure__", None) or ():
        if isinstance(cell.cell_contents, dict):
            cell.cell_contents.clear()


AllGather = Callable[[str], list[str]]  # BarrierTaskContext.allGather's contract


@contextlib.contextmanager
def horovod_ring(all_gather: AllGather | None = None) -> Iterator[RankInfo]:
    """Initialise Horovod (TensorFlow, Gloo) in the current Spark barrier task.

    Yields this task's :class:`RankInfo`; on exit shuts Horovod down and, once every rank is
    done, stops the rendezvous server. Must run in every task of the barrier stage.
    ``all_gather`` shares the rendezvous port and the end of the ring between the tasks
    (default: Spark's ``BarrierTaskContext.allGather``, which costs up to a second a call; the
    launcher passes the driver relay's, :meth:`.relay.RelayClient.all_gather`).
    """
    from pyspark import BarrierTaskContext

    require_horovod()
    ctx = BarrierTaskContext.get()
    if ctx is None:
        raise RuntimeError(
            "horovod_ring() must run inside a Spark barrier task "
            "(mapInArrow(..., barrier=True) or rdd.barrier())"
        )
    hosts = [task_host(t.address) for t in ctx.getTaskInfos()]
    plan = plan_ranks(hosts)
    me = plan[ctx.partitionId()]

    server = RendezvousServer(me.hostname, plan) if me.rank == 0 else None
    all_gather = all_gather or ctx.allGather
    shared = all_gather(json.dumps({"port": server.port if server else None}))
    rank0 = next(i for i, r in enumerate(plan) if r.rank == 0)
    port = json.loads(shared[rank0])["port"]
    env = horovod_env(me, plan[rank0].hostname, port, interface_for_address(me.hostname))
    env |= task_gpu_env(ctx)  # before TensorFlow starts: this rank's GPUs only

    import horovod.tensorflow as hvd

    try:
        with _patched_environ(env):
            hvd.init()
            _forget_traced_world_size()
            try:
                yield me
            finally:
                hvd.shutdown()
        all_gather("left")  # every rank has left the ring: the rendezvous can go
    finally:
        if server is not None:
            server.stop()
