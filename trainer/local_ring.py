"""A Horovod ring of N processes on the driver: ``HorovodRunner(np=-N)``.

Databricks' contract for a negative ``np``: run the job as ``-np`` local processes, with all
their output on the driver, to debug before going to the cluster. The driver starts Horovod's
Gloo rendezvous and a message relay on 127.0.0.1 and N child processes of the same Python
(:func:`sparkzoo.trainer.local_rank.rank_main`); each child is a Horovod rank that runs the
cloudpickled function and reports its output, errors and (rank 0) its result. A child dies
with the driver (``PR_SET_PDEATHSIG``), and when one rank fails the others are ended, so a
failure never leaves a hung ring or an orphan behind.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from typing import Any

import cloudpickle

from sparkzoo.trainer.horovod_ring import (
    RendezvousServer,
    horovod_env,
    interface_for_address,
    plan_ranks,
)
from sparkzoo.trainer.launcher import RankFailedError, reported_failure
from sparkzoo.trainer.relay import Message, MessageRelay

LOOPBACK = "127.0.0.1"
# After one rank fails, how long its peers get to notice and report before they are ended.
PEER_GRACE_SECONDS = 10.0


def run_local_ranks(
    num_ranks: int,
    fn: Callable[..., Any],
    kwargs: dict[str, Any],
    on_message: Callable[[Message], None] | None = None,
) -> Any:
    """Run ``fn(**kwargs)`` as ``num_ranks`` Horovod ranks in child processes of the driver and
    return rank 0's value; a failing rank raises :class:`RankFailedError` naming it."""
    if num_ranks < 1:
        raise ValueError(f"the number of ranks must be >= 1, got {num_ranks}")
    plan = plan_ranks([LOOPBACK] * num_ranks)
    server = RendezvousServer(LOOPBACK, plan)
    relay = MessageRelay(LOOPBACK, on_message)
    try:
        with tempfile.TemporaryDirectory(prefix="sparkzoo-local-ranks-") as temp:
            job = os.path.join(temp, "job.pkl")
            result = os.path.join(temp, "result.pkl")
            with open(job, "wb") as handle:
                handle.write(cloudpickle.dumps((fn, kwargs)))
            iface = interface_for_address(LOOPBACK)
            # The children import what the driver can import (the script's and notebook's
            # folders included), so functions pickled by reference load there too.
            path = os.pathsep.join(p for p in sys.path if p)
            entry = "import sys; from sparkzoo.trainer.local_rank import rank_main; "
            entry += "sys.exit(rank_main(*sys.argv[1:]))"
            command = [sys.executable, "-c", entry, job, result, json.dumps(relay.address)]
            children = [
                subprocess.Popen(
                    [*command, str(os.getpid())],
                    env=os.environ
                    | horovod_env(info, LOOPBACK, server.port, iface)
                    | {"PYTHONPATH": path},
                )
                for info in plan
            ]
            failed = _wait(children)
            if failed is not None:
                rank, code = failed
                error = reported_failure(relay)
                if error is None:
                    how = f"killed by signal {-code}" if code < 0 else f"exit status {code}"
                    error = RankFailedError(rank, f"its process ended ({how})")
                raise error
            with open(result, "rb") as handle:
                return cloudpickle.loads(handle.read())
    finally:
        relay.close()
        server.stop()


def _wait(children: list[subprocess.Popen]) -> tuple[int, int] | None:
    """Wait for every child; on the first failure give the rest a grace period, then end
    them. Returns ``(rank, exit code)`` of the first rank that failed, or None."""
    failed: tuple[int, int] | None = None
    deadline = None
    while True:
        codes = [child.poll() for child in children]
        if failed is None:
            failed = next(((r, c) for r, c in enumerate(codes) if c not in (None, 0)), None)
            if failed is not None:
                deadline = time.monotonic() + PEER_GRACE_SECONDS
        if all(code is not None for code in codes):
            return failed
        if deadline is not None and time.monotonic() > deadline:
            for child in children:
                if child.poll() is None:
                    child.kill()
        time.sleep(0.05)
