"""The ``sparkzoo`` command line. Each subcommand is a function ``cmd_<name>(args) -> int``."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from sparkzoo.extras import MissingExtraError, require
from sparkzoo.info import as_dicts, collect, format_report
from sparkzoo.models import UnknownModelError
from sparkzoo.models import cli as models_cli
from sparkzoo.services import cluster, hdfs
from sparkzoo.services.cluster import DEFAULT_DIR
from sparkzoo.services.hdfs import DEFAULT_DIR as HDFS_DIR
from sparkzoo.stack import StackError


def cmd_info(args: argparse.Namespace) -> int:
    """Print the versions of the stack; exit 1 when something is missing or mis-built."""
    components = collect()
    print(json.dumps(as_dicts(components), indent=2) if args.json else format_report(components))
    return 0 if all(c.ok for c in components) else 1


def cmd_check(args: argparse.Namespace) -> int:
    """Start Spark, bring a Horovod ring up in a barrier stage and allreduce a tensor."""
    from sparkzoo.spark import init_spark
    from sparkzoo.trainer.horovod_ring import HorovodMissingError, require_horovod
    from sparkzoo.trainer.selftest import allreduce_check

    try:
        require_horovod()  # before Spark starts: the current stack has no Horovod
    except HorovodMissingError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    spark = init_spark(args.master, app_name="sparkzoo-check")
    print(
        f"Spark {spark.version} on {spark.sparkContext.master}: "
        f"{args.np} barrier tasks -> Horovod ring (Gloo) -> allreduce(sum)"
    )
    try:
        result = allreduce_check(spark, args.np)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    finally:
        spark.stop()
    for row in sorted(result.ranks, key=lambda r: r["rank"]):
        print(
            f"  rank {row['rank']}/{row['size']} (local rank {row['local_rank']} on "
            f"{row['hostname']}): allreduced {row['allreduced']}"
        )
    print(f"expected {result.expected}: {'OK' if result.ok else 'WRONG'}")
    return 0 if result.ok else 1


def cmd_demo(args: argparse.Namespace) -> int:
    """LeNet-5 on real MNIST digits, trained from a Spark DataFrame by Horovod workers."""
    from sparkzoo.apps import quickstart

    argv = ["--workers", str(args.workers), "--epochs", str(args.epochs)]
    if args.master:
        argv += ["--master", args.master]
    return quickstart.main(argv)


def cmd_serve(args: argparse.Namespace) -> int:
    """A zoo model, the object-detection pipeline or an MLflow model behind MLflow's scoring
    server, until Ctrl-C or SIGTERM."""
    require("serve", "sparkzoo serve")
    from sparkzoo import serving

    try:
        return serving.serve(args.model, args.host, args.port)
    except (UnknownModelError, ValueError, OSError, RuntimeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


def cmd_cluster(args: argparse.Namespace) -> int:
    """Start, stop or report a Spark standalone cluster on 127.0.0.1."""
    state_dir = Path(args.dir)
    if args.action == "start":
        info = cluster.start(args.workers, args.cores, args.memory, state_dir)
        print(
            f"Spark standalone cluster up: {info.url} ({info.workers} workers x {info.cores} "
            f"cores, {info.memory}); web UI {info.web_ui}"
        )
        print(f"  use it: SPARK_MASTER={info.url} or init_spark({info.url!r})")
        return 0
    if args.action == "stop":
        print("stopped" if cluster.stop(state_dir) else f"no cluster recorded in {state_dir}")
        return 0
    info = cluster.status(state_dir)
    print(
        f"up: {info.url}, {info.workers} workers, web UI {info.web_ui}" if info else "not running"
    )
    return 0 if info else 3


def cmd_hdfs(args: argparse.Namespace) -> int:
    """Start, stop or report the local HDFS (a NameNode and a DataNode on 127.0.0.1)."""
    state_dir = Path(args.dir)
    if args.action == "start":
        try:
            info = hdfs.start(state_dir)
        except RuntimeError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        print(f"HDFS up: {info.uri} (NameNode + 1 DataNode, data in {info.dir})")
        print(f"  use it: store={info.uri + '/runs'!r}, spark.read.parquet('{info.uri}/...')")
        print(f"  stop it: sparkzoo hdfs stop --dir {info.dir}")
        return 0
    if args.action == "stop":
        print("stopped" if hdfs.stop(state_dir) else f"no HDFS recorded in {state_dir}")
        return 0
    info = hdfs.status(state_dir)
    if info is None:
        print("not running")
        return 3
    datanodes = hdfs.live_datanodes(info.web_ui)
    print(f"up: {info.uri}, {datanodes} live DataNode(s), data in {info.dir}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sparkzoo",
        description="Deep learning on Apache Spark: check that the stack works, run the LeNet-5 "
        "demo, start a Spark cluster or an HDFS on this machine, browse the model zoo, serve a "
        "model over REST.",
        epilog="Start with `sparkzoo info`, then `sparkzoo demo`. `sparkzoo COMMAND --help` shows "
        "a command's options. The apps run as `python -m sparkzoo.apps.NAME`, the benchmarks as "
        "`python -m sparkzoo.bench NAME`. Documentation: README.md and docs/ in the repository.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    info = sub.add_parser("info", help="show the stack's versions and what is missing or broken")
    info.add_argument("--json", action="store_true", help="machine-readable output")
    info.set_defaults(func=cmd_info)

    check = sub.add_parser("check", help="test that Spark tasks form a Horovod ring and allreduce")
    check.add_argument("--np", type=int, default=2, help="number of Horovod ranks (default 2)")
    check.add_argument(
        "--master", default=None, help="Spark master (default: $SPARK_MASTER or local[*])"
    )
    check.set_defaults(func=cmd_check)

    demo = sub.add_parser("demo", help="train LeNet-5 on MNIST digits on Spark, show its accuracy")
    demo.add_argument("--workers", type=int, default=2, help="Horovod ranks (default 2)")
    demo.add_argument("--epochs", type=int, default=20, help="epochs (default 20)")
    demo.add_argument(
        "--master", default=None, help="Spark master (default: $SPARK_MASTER or local[*])"
    )
    demo.set_defaults(func=cmd_demo)

    cluster = sub.add_parser("cluster", help="start, stop or show a Spark cluster on 127.0.0.1")
    cluster.add_argument("action", choices=["start", "stop", "status"])
    cluster.add_argument("--workers", type=int, default=2)
    cluster.add_argument("--cores", type=int, default=1, help="cores per worker")
    cluster.add_argument("--memory", default="1g", help="memory per worker (e.g. 1g, 1500m)")
    cluster.add_argument(
        "--dir", default=str(DEFAULT_DIR), help="state and logs (default %(default)s)"
    )
    cluster.set_defaults(func=cmd_cluster)

    hdfs = sub.add_parser("hdfs", help="start, stop or show an HDFS on 127.0.0.1")
    hdfs.add_argument("action", choices=["start", "stop", "status"])
    hdfs.add_argument(
        "--dir", default=str(HDFS_DIR), help="data, state and logs (default %(default)s)"
    )
    hdfs.set_defaults(func=cmd_hdfs)

    serve = sub.add_parser(
        "serve",
        help="serve a zoo model, the object-detection pipeline or an MLflow model over REST",
        description="Start MLflow's scoring server (mlflow models serve --env-manager local) "
        "for MODEL: a zoo name (lenet5.mnist, any tag or family: saved as an MLflow pyfunc "
        "model with a signature first), object_detection (the detect -> crop -> embed "
        "pipeline), or an MLflow model URI (runs:/ID/model, models:/NAME/VERSION, a folder). "
        "POST to /invocations; Ctrl-C or SIGTERM stops it.",
    )
    serve.add_argument("model", help="zoo name, object_detection, or MLflow model URI")
    serve.add_argument("--host", default="127.0.0.1", help="interface (default %(default)s)")
    serve.add_argument("--port", type=int, default=5001, help="port (default %(default)s)")
    serve.set_defaults(func=cmd_serve)

    zoo = sub.add_parser("models", help="list the zoo's models and weights, show model cards")
    models_cli.add_arguments(zoo)
    zoo.set_defaults(func=models_cli.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's C++ start-up chatter
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (StackError, MissingExtraError) as exc:  # what to install or fix, not a traceback
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
