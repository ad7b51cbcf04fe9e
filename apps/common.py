"""What every app shares: its command line, its atomic output folder, ``metrics.json``, and
running its notebook headless.

Every app CLI takes the same four flags (``--master``, ``--input``, ``--output``,
``--sample-rate``) and writes everything it produces under ``--output`` through a
:class:`StagedOutput`: files go to a temporary sibling folder, which is renamed onto
``--output`` only when the whole run succeeded, so a failed run leaves nothing half-written.

Example (the skeleton of an app's ``__main__.py``)::

    parser = app_parser("fraud", "Fraud detection on transactions")
    args = parser.parse_args(argv)
    spark = start_spark(args, "fraud")
    with StagedOutput(args.output, overwrite=args.overwrite) as out:
        df = sample(spark.read.csv(args.input, header=True), args.sample_rate, args.seed)
        scored.write.parquet(out.path("scores"))
        out.write_metrics("fraud", args, {"auprc": 0.71})
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import platform
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn

from sparkzoo import fs
from sparkzoo.records import jsonable, loadavg

APPS_DIR = Path(__file__).resolve().parent


# ---- command line -----------------------------------------------------------------------------


def sample_rate(text: str) -> float:
    """argparse type for ``--sample-rate``: a fraction in (0, 1]."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--sample-rate {text!r} is not a number") from None
    if not 0.0 < value <= 1.0:
        raise argparse.ArgumentTypeError(f"--sample-rate {value} must be in (0, 1]")
    return value


def add_common_args(
    parser: argparse.ArgumentParser, input_help: str, output_required: bool = True
) -> argparse.ArgumentParser:
    """Add the flags every app takes: --master, --input, --output, --sample-rate, --seed,
    --overwrite."""
    parser.add_argument(
        "--master",
        default=None,
        help="Spark master URL (default: spark-submit's, else $SPARK_MASTER, else local[*])",
    )
    parser.add_argument("--input", default=None, help=input_help)
    parser.add_argument(
        "--output",
        required=output_required,
        help="folder to write results into: a local path or hdfs://host:port/path",
    )
    parser.add_argument(
        "--sample-rate",
        type=sample_rate,
        default=1.0,
        help="fraction of the input to use, for quick end-to-end runs (default 1.0)",
    )
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument(
        "--overwrite", action="store_true", help="replace --output if it already exists"
    )
    return parser


def app_parser(prog: str, description: str, input_help: str) -> argparse.ArgumentParser:
    """An ``argparse`` parser for ``python -m sparkzoo.apps.<prog>`` with the common flags."""
    parser = argparse.ArgumentParser(
        prog=f"python -m sparkzoo.apps.{prog}", description=description
    )
    return add_common_args(parser, input_help)


def start_spark(args: argparse.Namespace, app: str):
    """The SparkSession for an app run (``--master`` or what spark-submit chose)."""
    from sparkzoo.spark import init_spark

    return init_spark(args.master, app_name=f"sparkzoo-{app}")


def sample(df, rate: float, seed: int = 0):
    """``df`` itself at rate 1, else a Bernoulli sample of it (Spark or pandas)."""
    if rate >= 1.0:
        return df
    if hasattr(df, "rdd"):
        return df.sample(fraction=rate, seed=seed)
    return df.sample(frac=rate, random_state=seed)


def run_cli(main: Callable[[], int]) -> NoReturn:
    """Run an app's ``main()`` as a program (``python -m`` or ``spark-submit``) and exit with
    its code.

    Under ``spark-submit`` the driver JVM launched this Python process, and after a barrier
    stage (every training run) the JVM keeps Spark's non-daemon "Barrier task timer" thread:
    ``spark-submit`` would never return once the app has finished. So there the JVM is ended
    with the app's exit code (``System.exit`` still runs Spark's shutdown hooks).
    """
    try:
        code = main()
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except BaseException:
        import traceback

        traceback.print_exc()
        code = 1
    sys.stdout.flush()
    sys.stderr.flush()
    if os.environ.get("PYSPARK_GATEWAY_PORT"):  # set only when a JVM launched this process
        from pyspark import SparkContext

        gateway = SparkContext._gateway
        if gateway is not None:
            with contextlib.suppress(Exception):  # the JVM goes away mid-call, as asked
                gateway.jvm.java.lang.System.exit(code)
    sys.exit(code)


# ---- atomic output folder ---------------------------------------------------------------------


class StagedOutput:
    """A results folder that appears complete or not at all.

    Inside the ``with`` block, write under :meth:`path` (Spark ``df.write`` or
    :func:`sparkzoo.fs` calls), :meth:`write_json`, :meth:`write_bytes` or
    :meth:`save_figure`; they land in ``<output>.tmp-<id>`` beside ``output`` (same
    filesystem, local or HDFS). On a clean exit the staging folder is renamed onto ``output``;
    on an exception it is deleted and ``output`` is left as it was.

    An existing ``output`` is refused up front (before any work) unless ``overwrite``.
    """

    def __init__(self, output: str, overwrite: bool = False):
        if not output:
            raise ValueError("an output folder is required (--output PATH or hdfs://...)")
        self.output = output.rstrip("/") or output
        self.overwrite = overwrite
        self.stage = f"{self.output}.tmp-{uuid.uuid4().hex[:12]}"
        self.started = time.time()

    def __enter__(self) -> StagedOutput:
        if fs.exists(self.output) and not self.overwrite:
            raise FileExistsError(
                f"output {self.output!r} already exists: choose another --output or pass "
                "--overwrite"
            )
        try:
            fs.makedirs(self.stage)
        except OSError as exc:
            raise OSError(f"cannot create the output folder beside {self.output!r}: {exc}") from exc
        return self

    def __exit__(self, kind, exc, tb) -> None:
        if exc is not None:
            if fs.exists(self.stage):
                fs.delete(self.stage)
            return
        if fs.exists(self.output):
            fs.delete(self.output)  # --overwrite: a folder cannot be renamed over another
        fs._rename(self.stage, self.output)

    def path(self, name: str) -> str:
        """Where ``name`` goes in the staging folder (a URI Spark and sparkzoo.fs accept)."""
        return fs.join(self.stage, name)

    def final_path(self, name: str) -> str:
        """Where ``name`` will be once the run has succeeded."""
        return fs.join(self.output, name)

    def write_bytes(self, name: str, data: bytes) -> str:
        fs.write_bytes(self.path(name), data)
        return self.final_path(name)

    def write_json(self, name: str, obj: Any) -> str:
        return self.write_bytes(name, json.dumps(obj, indent=2, default=jsonable).encode())

    def save_figure(self, name: str, figure) -> str:
        """Save a matplotlib figure as PNG (works for hdfs:// outputs too)."""
        buffer = io.BytesIO()
        figure.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
        return self.write_bytes(name, buffer.getvalue())

    def write_metrics(
        self, app: str, args: argparse.Namespace | dict | None, metrics: dict[str, Any]
    ) -> dict[str, Any]:
        """Write ``metrics.json``: the app, its arguments, the figures, time and machine."""
        record = {
            "app": app,
            "args": vars(args) if isinstance(args, argparse.Namespace) else (args or {}),
            "metrics": metrics,
            "seconds": round(time.time() - self.started, 2),
            "loadavg": loadavg(),
            "python": platform.python_version(),
        }
        self.write_json("metrics.json", record)
        return record


def read_metrics(output: str) -> dict[str, Any]:
    """The ``metrics.json`` an app wrote into ``output``."""
    return json.loads(fs.read_bytes(fs.join(output, "metrics.json")))


# ---- notebooks --------------------------------------------------------------------------------


def run_notebook(
    name: str, env: dict[str, str] | None = None, timeout: int = 900, save_to: str | None = None
):
    """Execute ``apps/<name>/<name>.ipynb`` headless in a fresh kernel, in its own folder.

    ``env`` is added to the kernel's environment (the notebooks read ``SPARKZOO_*``
    variables for sample sizes and output folders). Returns the executed notebook; a failing
    cell raises ``nbclient.exceptions.CellExecutionError`` naming the cell.
    """
    import nbformat
    from nbclient import NotebookClient

    path = APPS_DIR / name / f"{name}.ipynb"
    notebook = nbformat.read(path, as_version=4)
    saved = dict(os.environ)
    os.environ.update(env or {})
    try:
        NotebookClient(
            notebook,
            timeout=timeout,
            kernel_name="python3",
            resources={"metadata": {"path": str(path.parent)}},
        ).execute()
    finally:
        os.environ.clear()
        os.environ.update(saved)
    if save_to:
        nbformat.write(notebook, save_to)
    return notebook
