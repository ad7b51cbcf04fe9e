"""What every app shares: its command line, its atomic output folder, ``metrics.json``, and
running its notebook headless.

Every app is ``python -m sparkzoo.apps.<app> [COMMAND] [flags]``: one subcommand per thing it
does, one of them the default, and the same common flags on each (``--master``, ``--input``,
``--output``, ``--sample-rate``, ``--seed``, ``--overwrite``). Its ``__main__.py`` has one
shape: ``build_parser()``, one function per subcommand, and ``main(argv=None) -> int``, which
hands both to :func:`run_app` (exit status 0, or 2 with the error on stderr for bad input).
The app's pipeline module (TensorFlow, Spark) is imported inside the command functions only,
so ``--help`` answers at once.

Everything a command produces goes under ``--output`` through a :class:`StagedOutput`: files
go to a temporary sibling folder, which is renamed onto ``--output`` only when the whole run
succeeded, so a failed run leaves nothing half-written. A ``stream`` command
(:func:`add_stream_args`, Spark Structured Streaming) is the exception: it appends to
``--output`` micro-batch by micro-batch, each written exactly once, its progress in
``--checkpoint`` (:func:`prepare_stream`, :func:`follow_stream`, ``sparkzoo.streaming``).

Example (an app's ``__main__.py``)::

    def build_parser() -> AppParser:
        parser = app_parser("fraud", "Fraud detection on transactions", default="train")
        train = parser.add_command("train", "train and evaluate", "transactions CSV")
        train.add_argument("--epochs", type=positive_int, default=8)
        return parser

    def train(args) -> int:
        from sparkzoo.apps.fraud import pipeline

        spark = start_spark(args, "fraud")
        with StagedOutput(args.output, overwrite=args.overwrite) as out:
            df = sample(pipeline.load(spark, args.input), args.sample_rate, args.seed)
            ...
            out.write_metrics("fraud", args, {"auprc": 0.71})
        return 0

    def main(argv: list[str] | None = None) -> int:
        return run_app(build_parser(), {"train": train}, argv)

    if __name__ == "__main__":
        sys.exit(main())
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
import traceback
import uuid
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

from sparkzoo import fs
from sparkzoo.records import jsonable, loadavg
from sparkzoo.streaming import watch

if TYPE_CHECKING:
    import pandas as pd
    from pyspark.sql import DataFrame


APPS_DIR = Path(__file__).resolve().parent


# ---- command line -----------------------------------------------------------------------------

Command = Callable[[argparse.Namespace], "int | None"]
COMMON_FLAGS = ("--master", "--input", "--output", "--sample-rate", "--seed", "--overwrite")


def sample_rate(text: str) -> float:
    """argparse type for ``--sample-rate``: a fraction in (0, 1]."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--sample-rate {text!r} is not a number") from None
    if not 0.0 < value <= 1.0:
        raise argparse.ArgumentTypeError(f"--sample-rate {text} must be in (0, 1]")
    return value


def positive_int(text: str) -> int:
    """argparse type for counts that must be at least 1 (argparse names the flag)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text} must be >= 1")
    return value


def add_common_args(
    parser: argparse.ArgumentParser, input_help: str | None, output_required: bool = True
) -> argparse.ArgumentParser:
    """Add the flags every app command takes, as their own help section: --master, --input
    (described by ``input_help``; left out when it is None), --output, --sample-rate, --seed,
    --overwrite."""
    group = parser.add_argument_group("common flags (every sparkzoo app takes them)")
    group.add_argument(
        "--master",
        default=None,
        metavar="URL",
        help="Spark master URL (default: spark-submit's, else $SPARK_MASTER, else local[*])",
    )
    if input_help is not None:
        group.add_argument("--input", default=None, metavar="PATH", help=input_help)
    group.add_argument(
        "--output",
        required=output_required,
        metavar="PATH",
        help="folder to write the results into, a local path or hdfs://host:port/path; it "
        "appears only when the run succeeded",
    )
    group.add_argument(
        "--sample-rate",
        type=sample_rate,
        default=1.0,
        metavar="FRACTION",
        help="share of the input to use, for a quick end-to-end run (default 1.0: all of it)",
    )
    group.add_argument(
        "--seed", type=int, default=0, metavar="N", help="random seed of the run (default 0)"
    )
    group.add_argument(
        "--overwrite", action="store_true", help="replace --output if it already exists"
    )
    return parser


class AppParser(argparse.ArgumentParser):
    """The parser of ``python -m sparkzoo.apps.<app>``: one subcommand per thing the app
    does (:meth:`add_command`), each with the common flags, and a default subcommand that runs
    when the command line names none (``fraud --output o`` is ``fraud train --output o``).

    Its ``--help`` lists the subcommands and the common flags.
    """

    def __init__(self, app: str, description: str, default: str):
        super().__init__(
            prog=f"python -m sparkzoo.apps.{app}",
            description=description,
            epilog=f"With no COMMAND, {default} is run: `python -m sparkzoo.apps.{app} "
            f"--output DIR` is `python -m sparkzoo.apps.{app} {default} --output DIR`. "
            f"`python -m sparkzoo.apps.{app} COMMAND --help` lists a command's own flags.",
        )
        self.default_command = default
        self._commands = self.add_subparsers(
            title="commands",
            dest="command",
            metavar="COMMAND",
            required=True,
            parser_class=argparse.ArgumentParser,
        )

    @property
    def commands(self) -> list[str]:
        """The subcommands' names (aliases included), in the order they were added."""
        return list(self._commands.choices)

    def add_command(
        self,
        name: str,
        help: str,
        input_help: str | None,
        description: str | None = None,
    ) -> argparse.ArgumentParser:
        """Subcommand ``name`` with the common flags; add its own flags to what it returns.

        ``help`` is the one line shown in the app's ``--help``, ``description`` (default:
        ``help``) heads the command's own ``--help``; ``input_help`` says what ``--input`` is
        for this command (None: the command takes no ``--input``).
        """
        listed = f"{help} (the default)" if name == self.default_command else help
        command = self._commands.add_parser(name, help=listed, description=description or help)
        return add_common_args(command, input_help)

    def parse_known_args(self, args=None, namespace=None):
        args = list(sys.argv[1:] if args is None else args)
        if not args or (args[0].startswith("-") and args[0] not in ("-h", "--help")):
            args.insert(0, self.default_command)
        return super().parse_known_args(args, namespace)

    def format_help(self) -> str:
        # argparse's own layout, with the common flags between the commands and the epilog
        formatter = self._get_formatter()
        formatter.add_usage(self.usage, self._actions, self._mutually_exclusive_groups)
        formatter.add_text(self.description)
        for group in self._action_groups:
            formatter.start_section(group.title)
            formatter.add_text(group.description)
            formatter.add_arguments(group._group_actions)
            formatter.end_section()
        common = add_common_args(
            argparse.ArgumentParser(add_help=False),
            "what the command reads (see COMMAND --help)",
        )
        for group in common._action_groups[2:]:
            formatter.start_section(group.title)
            formatter.add_arguments(group._group_actions)
            formatter.end_section()
        formatter.add_text(self.epilog)
        return formatter.format_help()


def app_parser(app: str, description: str, default: str) -> AppParser:
    """The parser of ``python -m sparkzoo.apps.<app>``; add its subcommands with
    :meth:`AppParser.add_command`. ``default`` is the subcommand that runs when none is named."""
    return AppParser(app, description, default)


def check_paths(args: argparse.Namespace) -> None:
    """Refuse, before any work, an ``--input`` that does not exist (local or HDFS; other URIs
    are left to Spark) and an existing ``--output`` without ``--overwrite``."""
    source = getattr(args, "input", None)
    if source and urlparse(source).scheme in ("", "file", "hdfs") and not fs.exists(source):
        raise FileNotFoundError(f"--input {source!r} does not exist")
    output = getattr(args, "output", None)
    if output and not getattr(args, "appends", False):  # a stream appends to its output
        refuse_existing(output, getattr(args, "overwrite", False))


def refuse_existing(output: str, overwrite: bool) -> None:
    """FileExistsError when ``output`` exists and ``overwrite`` is not set."""
    if not overwrite and fs.exists(output):
        raise FileExistsError(
            f"output {output!r} already exists: choose another --output or pass --overwrite"
        )


def run_app(
    parser: AppParser,
    commands: Mapping[str, Command],
    argv: Sequence[str] | None = None,
    errors: tuple[type[BaseException], ...] = (),
) -> int:
    """Parse ``argv`` (None: the program's arguments) and run the named command,
    ``commands[name](args)``; return the exit status.

    - 0 when the command succeeded (it returns None or 0), its own status otherwise;
    - 2 on a usage error (argparse prints it) and on bad input: a ``ValueError``, an
      ``OSError`` (a missing or existing file, an unreachable HDFS) or one of ``errors``,
      printed as ``<prog> <command>: error: <message>`` on stderr. ``--input`` must exist and
      ``--output`` must not (unless ``--overwrite``) before the command starts; the command
      writes through :class:`StagedOutput`, so a failed run leaves nothing at ``--output``.

    A SparkSession the command started is stopped at the end; one that was running before
    (a notebook, the tests) is left running.

    With ``argv=None`` this is the program itself (``python -m`` or ``spark-submit``): an
    unexpected exception is printed and gives status 1, and under ``spark-submit`` the driver
    JVM is ended with the status. After a barrier stage (every training run) the JVM keeps
    Spark's non-daemon "Barrier task timer" thread, so ``spark-submit`` would otherwise never
    return (``System.exit`` still runs Spark's shutdown hooks).
    """
    if set(commands) != set(parser.commands):
        raise ValueError(f"commands {sorted(commands)} != the parser's {sorted(parser.commands)}")
    program = argv is None
    try:
        code = _run_command(parser, commands, argv, errors)
    except SystemExit as exc:  # a command that calls sys.exit
        if not program:
            raise
        code = _exit_status(exc)
    except BaseException:
        if not program:
            raise
        traceback.print_exc()
        code = 1
    if program:
        sys.stdout.flush()
        sys.stderr.flush()
        _end_spark_submit(code)
    return code


def _run_command(
    parser: AppParser,
    commands: Mapping[str, Command],
    argv: Sequence[str] | None,
    errors: tuple[type[BaseException], ...],
) -> int:
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, or a usage error argparse has printed
        return _exit_status(exc)
    # The app owns Spark only if this process had no SparkContext before it: a notebook's or a
    # test session's stays up. (The JVM's "active session" is per thread and was seen empty
    # while a context existed, so it cannot decide this.)
    owned = _spark_context() is None
    try:
        check_paths(args)
        code = commands[args.command](args)
    except (ValueError, OSError, *errors) as exc:
        print(f"{parser.prog} {args.command}: error: {exc}", file=sys.stderr)
        return 2
    finally:
        if owned and _spark_context() is not None:
            _stop_spark()
    return 0 if code is None else int(code)


def _exit_status(exc: SystemExit) -> int:
    if exc.code is None or isinstance(exc.code, int):
        return exc.code or 0
    print(exc.code, file=sys.stderr)  # sys.exit("message"), as Python itself does
    return 1


def _spark_context():
    """This process's SparkContext, or None (without importing pyspark when nothing has)."""
    if "pyspark" not in sys.modules:
        return None
    from pyspark import SparkContext

    return SparkContext._active_spark_context


def _stop_spark() -> None:
    """Stop the SparkSession of this process's running SparkContext (``getOrCreate`` returns
    that session; it creates nothing while a context runs)."""
    from pyspark.sql import SparkSession

    SparkSession.builder.getOrCreate().stop()


def _end_spark_submit(code: int) -> None:
    """Under ``spark-submit`` (the driver JVM launched this Python process), end the JVM with
    ``code``."""
    if not os.environ.get("PYSPARK_GATEWAY_PORT"):  # set only when a JVM launched this process
        return
    from pyspark import SparkContext

    gateway = SparkContext._gateway
    if gateway is not None:
        with contextlib.suppress(Exception):  # the JVM goes away mid-call, as asked
            gateway.jvm.java.lang.System.exit(code)


def add_stream_args(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add the flags of a ``stream`` command (Spark Structured Streaming): --checkpoint,
    --trigger-seconds, --max-files-per-trigger, --available-now. A stream appends to its
    --output across restarts, so an existing --output is taken, not refused (--overwrite
    starts afresh: it deletes --output and --checkpoint first)."""
    group = parser.add_argument_group("streaming")
    group.add_argument(
        "--checkpoint",
        required=True,
        metavar="PATH",
        help="the query's checkpoint folder (local or hdfs://): start again with the same one "
        "and the stream resumes where it stopped, every input once",
    )
    group.add_argument(
        "--trigger-seconds",
        type=float,
        default=2.0,
        metavar="S",
        help="start a micro-batch every S seconds when new files have landed (default 2)",
    )
    group.add_argument(
        "--max-files-per-trigger",
        type=positive_int,
        default=None,
        metavar="N",
        help="at most N new files per micro-batch (default: all that have landed)",
    )
    group.add_argument(
        "--available-now",
        action="store_true",
        help="process the files there now (in micro-batches of --max-files-per-trigger), then stop",
    )
    parser.set_defaults(appends=True)
    return parser


def prepare_stream(args: argparse.Namespace) -> None:
    """Check a ``stream`` command's paths before Spark starts: --input is a folder, --sample-
    rate is 1, a non-empty --output goes with an existing --checkpoint; with --overwrite,
    delete --output and --checkpoint."""
    if not args.input:
        raise ValueError("--input (the folder files land in) is required")
    if urlparse(args.input).scheme in ("", "file", "hdfs") and not fs.isdir(args.input):
        raise NotADirectoryError(f"--input {args.input!r} is not a folder")
    if args.sample_rate != 1.0:
        raise ValueError("--sample-rate does not apply to a stream: every file that lands is read")
    if not args.trigger_seconds > 0:
        raise ValueError(f"--trigger-seconds must be > 0, not {args.trigger_seconds}")
    if args.overwrite:
        fs.delete(args.output)
        fs.delete(args.checkpoint)
    elif fs.listdir(args.output) and not fs.exists(args.checkpoint):
        # A new query numbers its micro-batches from 0 again; it would take what is there
        # for its own output and skip writing it.
        raise FileExistsError(
            f"--output {args.output!r} holds the output of a stream whose --checkpoint is not "
            f"{args.checkpoint!r}: give that checkpoint to resume it, another --output, or "
            "--overwrite to start afresh"
        )


def stream_options(args: argparse.Namespace) -> dict[str, Any]:
    """The trigger settings of a ``stream`` command, as keyword arguments of the apps'
    ``streaming.start``: ``trigger_seconds``, ``max_files_per_trigger``, ``available_now``."""
    return {
        "trigger_seconds": args.trigger_seconds,
        "max_files_per_trigger": args.max_files_per_trigger,
        "available_now": args.available_now,
    }


def follow_stream(
    query, args: argparse.Namespace, unit: str, say: Callable[[str], None] = print
) -> dict:
    """Progress per micro-batch of a ``stream`` command's query until it is stopped (SIGTERM,
    Ctrl-C) or has read what is there (``--available-now``), then a summary line; returns
    ``{"batches", "rows", "signalled"}`` of this run."""
    if args.available_now:
        say("processing the files there now, then stopping")
    else:
        say("waiting for files; SIGTERM or Ctrl-C stops")
    done = watch([query], unit, say)
    why = "stopped by a signal" if done["signalled"] else "no more input"
    say(f"{done['rows']} {unit} in {done['batches']} micro-batches ({why}). Output: {args.output}")
    return done


def start_spark(args: argparse.Namespace, app: str):
    """The SparkSession for an app run (``--master`` or what spark-submit chose)."""
    from sparkzoo.spark import init_spark

    return init_spark(args.master, app_name=f"sparkzoo-{app}")


def sample(df: DataFrame | pd.DataFrame, rate: float, seed: int = 0) -> DataFrame | pd.DataFrame:
    """``df`` itself at rate 1, else a Bernoulli sample of it (Spark or pandas)."""
    if rate >= 1.0:
        return df
    if hasattr(df, "rdd"):
        return df.sample(fraction=rate, seed=seed)
    return df.sample(frac=rate, random_state=seed)


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
        refuse_existing(self.output, self.overwrite)
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
