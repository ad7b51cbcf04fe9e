"""``python -m sparkzoo.bench <name>``: run one benchmark; each prints its figures as JSON lines."""

from __future__ import annotations

import argparse
import importlib
import sys

BENCHMARKS = {
    "trainer": "sparkzoo.bench.trainer",
    "images": "sparkzoo.bench.images",
    "pipeline": "sparkzoo.bench.pipeline",
    "transform": "sparkzoo.bench.transform",
    "serving": "sparkzoo.bench.serving",
    "streaming": "sparkzoo.bench.streaming",
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sparkzoo.bench")
    parser.add_argument("name", choices=sorted(BENCHMARKS))
    args, rest = parser.parse_known_args(argv)
    return importlib.import_module(BENCHMARKS[args.name]).main(rest)


if __name__ == "__main__":
    sys.exit(main())
