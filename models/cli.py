"""``sparkzoo models list`` and ``sparkzoo models card``, and the model-zoo table of docs/zoo.md.

The ``sparkzoo`` command wires this in with :func:`add_arguments` and :func:`run`::

    models = sub.add_parser("models", help="the model zoo: list names, show cards")
    add_arguments(models); models.set_defaults(func=run)

Example::

    python -m sparkzoo.models.cli list "resnet*"
    python -m sparkzoo.models.cli card lenet5.mnist --json
    python -m sparkzoo.models.cli --markdown          # the table in docs/zoo.md
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence

from sparkzoo.models import registry

COLUMNS = ("name", "kind", "task", "data", "metric", "size")


def _size(num_bytes: int | None) -> str:
    if not num_bytes:
        return "-"
    if num_bytes < 1000:
        return f"{num_bytes} B"
    if num_bytes < 1_000_000:
        return f"{num_bytes / 1e3:.1f} KB"
    return f"{num_bytes / 1e6:.1f} MB"


def _metric(metrics: dict) -> str:
    # The card's first metric is its headline (recipes write it first).
    if not metrics:
        return "-"
    key, value = next(iter(metrics.items()))
    return f"{key} {value:.4g}" if isinstance(value, float) else f"{key} {value}"


def row(card: registry.ModelCard) -> dict:
    """A card's summary: name, kind, task, data, headline metric (its first), file size."""
    return {
        "name": card.name,
        "kind": card.kind,
        "task": card.task,
        "data": card.data.get("name", "-") if card.data else "-",
        "metric": _metric(card.metrics),
        "size": _size(card.file_size),
    }


def rows(pattern: str | None = None, pretrained: bool | None = None) -> list[dict]:
    """One summary row per registered name (see :func:`registry.list` for the filters)."""
    return [row(registry.card(name)) for name in registry.list(pattern, pretrained=pretrained)]


def format_table(table: Sequence[dict], columns: Sequence[str] = COLUMNS) -> str:
    """Rows as an aligned plain-text table with a header."""
    widths = {c: max([len(c), *(len(str(r[c])) for r in table)]) for c in columns}
    lines = ["  ".join(c.ljust(widths[c]) for c in columns).rstrip()]
    lines += ["  ".join(str(r[c]).ljust(widths[c]) for c in columns).rstrip() for r in table]
    return "\n".join(lines)


def markdown_table() -> str:
    """The model-zoo table of docs/zoo.md (name, task, data, metric, size), made from the cards.

    Example::

        print(markdown_table())
        # | name | task | data | metric | size |
        # |---|---|---|---|---|
        # | `lenet5` | image-classification | - | - | - |
    """
    columns = ("name", "task", "data", "metric", "size")
    lines = [
        "| " + " | ".join(columns) + " |",
        "|" + "---|" * len(columns),
    ]
    for row in rows():
        cells = [f"`{row['name']}`", *(str(row[c]).replace("|", "\\|") for c in columns[1:])]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``list`` and ``card`` subcommands (and ``--markdown``) to ``parser``."""
    parser.add_argument(
        "--markdown",
        action="store_true",
        help="print the model-zoo table (markdown, as in docs/zoo.md) and exit",
    )
    sub = parser.add_subparsers(dest="models_command", metavar="{list,card}")
    listing = sub.add_parser("list", help="registered names: families, pretrained tags, packaged")
    listing.add_argument("pattern", nargs="?", help='a shell glob, e.g. "resnet*" or "*.mnist"')
    listing.add_argument(
        "--pretrained", action="store_true", help="only names that come with weights"
    )
    listing.add_argument("--json", action="store_true", help="machine-readable output")
    card = sub.add_parser("card", help="the model card of one name")
    card.add_argument("name")
    card.add_argument("--json", action="store_true", help="machine-readable output")


def run(args: argparse.Namespace) -> int:
    """Run the subcommand parsed by :func:`add_arguments`; return the exit status."""
    if args.markdown:
        print(markdown_table())
        return 0
    if args.models_command == "list":
        table = rows(args.pattern, pretrained=True if args.pretrained else None)
        if args.json:
            print(json.dumps(table, indent=2))
        elif table:
            print(format_table(table))
        else:
            what = "pretrained model" if args.pretrained else "model"
            where = f" matches {args.pattern!r}" if args.pattern else " is registered"
            print(f"no {what}{where}", file=sys.stderr)
            return 1
        return 0
    if args.models_command == "card":
        try:
            card = registry.card(args.name)
        except registry.UnknownModelError as err:
            print(f"error: {err}", file=sys.stderr)
            return 2
        print(json.dumps(card.to_dict(), indent=2) if args.json else card.to_text())
        return 0
    print("usage: sparkzoo models {list,card} ... (or --markdown)", file=sys.stderr)
    return 2


def main(argv: Sequence[str] | None = None) -> int:
    """``sparkzoo models ...`` as a function: ``main(["list", "--json"])``."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's C++ start-up chatter
    parser = argparse.ArgumentParser(
        prog="sparkzoo models", description="The sparkzoo model zoo: names and model cards."
    )
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
