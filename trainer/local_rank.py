"""One rank of a local Horovod ring (``HorovodRunner(np=-N)``), in its child process of the
driver: :func:`rank_main` is what :func:`sparkzoo.trainer.local_ring.run_local_ranks` starts.

Only the children import this module, so its imports are what a rank needs and no more (no
pyspark): every rank's start-up pays for them.
"""

from __future__ import annotations

import contextlib
import json
import os
import traceback

import cloudpickle
import horovod.tensorflow as hvd

from sparkzoo.trainer.relay import RelayClient, current_client, forwarded_output
from sparkzoo.trainer.tf_child import die_with_parent


def rank_main(job: str, result: str, relay_address: str, parent_pid: str) -> int:
    """One rank, in a child process of the driver."""
    die_with_parent(int(parent_pid))
    rank = int(os.environ["HOROVOD_RANK"])
    host, port, token = json.loads(relay_address)
    with RelayClient((host, port, token), rank) as client:
        try:
            with open(job, "rb") as handle:
                fn, kwargs = cloudpickle.loads(handle.read())
            with forwarded_output(client), current_client(client):
                hvd.init()
                value = fn(**kwargs)
            if rank == 0:
                with open(result, "wb") as handle:
                    handle.write(cloudpickle.dumps(value))
        except BaseException as exc:
            client.send(
                "error", error=f"{type(exc).__name__}: {exc}", traceback=traceback.format_exc()
            )
            return 1
        finally:
            with contextlib.suppress(Exception):
                hvd.shutdown()
    return 0
