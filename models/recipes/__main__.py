"""Train the shipped weights: ``python -m sparkzoo.models.recipes TAG [TAG ...]``.

Each recipe trains through the distributed trainer (``KerasEstimator`` on Spark, Horovod
ranks as barrier tasks) on real data that ships inside packages, measures the model on its
held-out split next to a baseline, and writes ``<tag>.weights.h5`` + ``<tag>.json`` (the card)
into the package's ``pretrained`` folder. ``--list`` shows the recipes.
"""

from __future__ import annotations

import argparse
import ast
import importlib
import importlib.util
import sys
from pathlib import Path

from sparkzoo.models.recipes import RECIPES
from sparkzoo.models.recipes.common import Stopwatch, publish, recipe_arguments
from sparkzoo.spark import init_spark


def _summary(module: str) -> str:
    """The first line of a recipe's docstring, read from its source: listing the recipes
    imports none of them (each brings TensorFlow, Spark and the trainer)."""
    source = Path(importlib.util.find_spec(module).origin).read_text()
    return (ast.get_docstring(ast.parse(source), clean=False) or "").strip().splitlines()[0]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m sparkzoo.models.recipes", description=__doc__.splitlines()[0]
    )
    parser.add_argument("tags", nargs="*", help=f"recipes to run: {', '.join(RECIPES)}")
    parser.add_argument("--list", action="store_true", help="list the recipes and exit")
    recipe_arguments(parser)
    args = parser.parse_args(argv)
    if args.list or not args.tags:
        for tag, module in RECIPES.items():
            print(f"{tag:28s} {_summary(module)}")
        return 0
    unknown = [t for t in args.tags if t not in RECIPES]
    if unknown:
        parser.error(f"unknown recipe(s) {unknown}; known: {', '.join(RECIPES)}")

    spark = init_spark(args.master, app_name="sparkzoo-recipes")
    try:
        for tag in args.tags:
            recipe = importlib.import_module(RECIPES[tag])
            clock = Stopwatch()
            print(f"== {tag}: {recipe.__doc__.strip().splitlines()[0]}", flush=True)
            trained = recipe.train(spark, args)
            command = f"python -m sparkzoo.models.recipes {tag}"
            card_path = publish(tag, recipe.FAMILY, trained, args.output_dir, command)
            print(f"== {tag}: {trained.metrics} in {clock}; card {card_path}", flush=True)
    finally:
        spark.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
