"""Bring a TensorFlow ``MultiWorkerMirroredStrategy`` world up inside a Spark barrier stage.

Every task of the barrier stage becomes one TensorFlow worker (docs/trainer.md, "Two stacks, one API"):

1. the task picks a free port on its own Spark address;
2. the tasks ``allGather`` their ``rank, host:port, row count`` (rank = partition id);
3. each task builds its ``TF_CONFIG`` (the cluster of all workers + its own index) for the
   process that trains (:mod:`.tf_launcher` runs it as a fresh child of the task);
4. that process gets :func:`bind_env`: TensorFlow's gRPC server listens on every interface
   (``0.0.0.0:<port>`` is hard-coded in ``GrpcServer::Init``, with no authentication), so a
   small preloaded library turns that one ``bind()`` into a bind to the task's own address.
"""

from __future__ import annotations

import contextlib
import hashlib
import ipaddress
import json
import os
import socket
import subprocess
import sys
import tempfile
from dataclasses import dataclass

from sparkzoo.trainer.horovod_ring import RankInfo, task_host


@dataclass(frozen=True)
class WorkerInfo(RankInfo):
    """One task's place in the TensorFlow world: its :class:`RankInfo` (rank = TF_CONFIG
    index = partition id) plus every worker's ``host:port`` and partition row count."""

    endpoints: tuple[str, ...]
    rows: tuple[int, ...]
    port: int

    @property
    def tf_config(self) -> dict:
        return tf_config(list(self.endpoints), self.rank)


def tf_config(endpoints: list[str], index: int) -> dict:
    """``TF_CONFIG`` for worker ``index`` of a cluster of ``endpoints`` (``host:port``)."""
    if not 0 <= index < len(endpoints):
        raise ValueError(f"worker index {index} is outside a cluster of {len(endpoints)} workers")
    return {"cluster": {"worker": list(endpoints)}, "task": {"type": "worker", "index": index}}


def endpoint(host: str, port: int) -> str:
    """``host:port``, with an IPv6 literal in brackets as gRPC expects."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def plan_workers(hosts: list[str]) -> list[RankInfo]:
    """Each task's :class:`RankInfo`, given each task's host (index = partition id = rank).

    TensorFlow numbers workers by their ``TF_CONFIG`` index, which is the partition id; the
    local and cross ranks are Horovod's notions, kept so a training function reads the same
    fields under either engine (``local_size`` sizes the thread pools).
    """
    if not hosts:
        raise ValueError("plan_workers needs at least one task")
    order = list(dict.fromkeys(hosts))
    local_rank = [hosts[:i].count(h) for i, h in enumerate(hosts)]
    plan = []
    for rank, host in enumerate(hosts):
        same_local = [h for h in order if hosts.count(h) > local_rank[rank]]
        plan.append(
            RankInfo(
                rank=rank,
                size=len(hosts),
                local_rank=local_rank[rank],
                local_size=hosts.count(host),
                cross_rank=same_local.index(host),
                cross_size=len(same_local),
                hostname=host,
            )
        )
    return plan


def ip_address_of(host: str) -> str:
    """``host`` as an IP literal (the bind library and ``TF_CONFIG`` need the address itself)."""
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        return socket.gethostbyname(host)


def free_port(host: str) -> int:
    """A port the OS has free on ``host`` now (TensorFlow binds it a few seconds later)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with contextlib.closing(socket.socket(family, socket.SOCK_STREAM)) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def form_world(ctx, rows: int, all_gather=None) -> WorkerInfo:
    """This barrier task's :class:`WorkerInfo`; every task of the stage must call it.
    ``all_gather``: ``BarrierTaskContext.allGather``'s contract (default: Spark's own)."""
    hosts = [ip_address_of(task_host(t.address)) for t in ctx.getTaskInfos()]
    me = plan_workers(hosts)[ctx.partitionId()]
    port = free_port(me.hostname)
    gathered = [
        json.loads(m)
        for m in (all_gather or ctx.allGather)(
            json.dumps({"rank": me.rank, "endpoint": endpoint(me.hostname, port), "rows": rows})
        )
    ]
    gathered.sort(key=lambda m: m["rank"])
    return WorkerInfo(
        **vars(me),
        endpoints=tuple(m["endpoint"] for m in gathered),
        rows=tuple(m["rows"] for m in gathered),
        port=port,
    )


# ---- binding TensorFlow's gRPC server to the task's address ---------------------------------
_BIND_SHIM_C = r"""
/* Preloaded into a TensorFlow worker: a bind() to the wildcard address on port
 * $SPARKZOO_BIND_PORT becomes a bind() to $SPARKZOO_BIND_HOST (an IPv4 or IPv6 literal);
 * every other bind() passes through untouched. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <dlfcn.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

typedef int (*bind_fn)(int, const struct sockaddr *, socklen_t);

int bind(int fd, const struct sockaddr *addr, socklen_t len) {
  static bind_fn real_bind = NULL;
  if (real_bind == NULL) real_bind = (bind_fn)dlsym(RTLD_NEXT, "bind");
  const char *host = getenv("SPARKZOO_BIND_HOST");
  const char *port_text = getenv("SPARKZOO_BIND_PORT");
  if (addr == NULL || host == NULL || port_text == NULL) return real_bind(fd, addr, len);
  in_port_t port = htons((in_port_t)atoi(port_text));
  struct in_addr v4;
  struct in6_addr v6;
  int host_is_v4 = inet_pton(AF_INET, host, &v4) == 1;
  int host_is_v6 = !host_is_v4 && inet_pton(AF_INET6, host, &v6) == 1;

  if (addr->sa_family == AF_INET && len >= sizeof(struct sockaddr_in) && host_is_v4) {
    const struct sockaddr_in *in = (const struct sockaddr_in *)addr;
    if (in->sin_port == port && in->sin_addr.s_addr == htonl(INADDR_ANY)) {
      struct sockaddr_in bound = *in;
      bound.sin_addr = v4;
      return real_bind(fd, (const struct sockaddr *)&bound, sizeof bound);
    }
  } else if (addr->sa_family == AF_INET6 && len >= sizeof(struct sockaddr_in6)) {
    const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)addr;
    if (in6->sin6_port == port && IN6_IS_ADDR_UNSPECIFIED(&in6->sin6_addr)
        && (host_is_v4 || host_is_v6)) {
      struct sockaddr_in6 bound = *in6;
      if (host_is_v4) { /* gRPC's dual-stack socket: the IPv4-mapped form of the address */
        memset(&bound.sin6_addr, 0, sizeof bound.sin6_addr);
        bound.sin6_addr.s6_addr[10] = 0xff;
        bound.sin6_addr.s6_addr[11] = 0xff;
        memcpy(&bound.sin6_addr.s6_addr[12], &v4, 4);
      } else {
        bound.sin6_addr = v6;
      }
      return real_bind(fd, (const struct sockaddr *)&bound, sizeof bound);
    }
  }
  return real_bind(fd, addr, len);
}
"""


def _cache_dir() -> str:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "sparkzoo")


def bind_library(cache_dir: str | None = None) -> str:
    """The path of the compiled bind library (built once per machine with ``$CC`` or ``cc``).

    Raises ``RuntimeError`` saying why when it cannot be built (not Linux, no C compiler).
    """
    if not sys.platform.startswith("linux"):
        raise RuntimeError(f"binding to one address needs LD_PRELOAD (Linux), not {sys.platform}")
    digest = hashlib.sha256(_BIND_SHIM_C.encode()).hexdigest()[:16]
    for directory in (cache_dir or _cache_dir(), tempfile.gettempdir()):
        library = os.path.join(directory, f"bind-address-{digest}.so")
        if os.path.exists(library):
            return library
        try:
            os.makedirs(directory, mode=0o700, exist_ok=True)
            with tempfile.TemporaryDirectory(dir=directory) as build:
                source = os.path.join(build, "bind_address.c")
                with open(source, "w") as handle:
                    handle.write(_BIND_SHIM_C)
                built = os.path.join(build, "bind_address.so")
                compiler = os.environ.get("CC", "cc")
                subprocess.run(
                    [compiler, "-shared", "-fPIC", "-O2", "-o", built, source, "-ldl"],
                    check=True,
                    capture_output=True,
                    text=True,
                    timeout=60,
                )
                os.replace(built, library)  # atomic: a concurrent task sees all of it or none
            return library
        except FileNotFoundError as exc:
            raise RuntimeError(
                f"no C compiler ({exc.filename}) to build the bind library"
            ) from None
        except subprocess.CalledProcessError as exc:
            raise RuntimeError(f"building the bind library failed: {exc.stderr.strip()}") from None
        except OSError:
            continue  # an unwritable cache directory: try the next one
    raise RuntimeError("no writable directory to build the bind library in")


def bind_env(host: str, port: int, library: str) -> dict[str, str]:
    """Environment for a process whose TensorFlow server must listen on ``host:port`` only."""
    preload = " ".join(filter(None, [library, os.environ.get("LD_PRELOAD", "")]))
    return {"LD_PRELOAD": preload, "SPARKZOO_BIND_HOST": host, "SPARKZOO_BIND_PORT": str(port)}
