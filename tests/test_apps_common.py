"""The scaffolding every app shares: flags, the atomic output folder, metrics.json."""

from __future__ import annotations

import argparse
import json

import pytest

from sparkzoo.apps.common import StagedOutput, app_parser, read_metrics, sample_rate


def test_sample_rate_must_be_a_fraction():
    assert sample_rate("0.25") == 0.25
    for bad in ["0", "1.5", "-0.1", "half"]:
        with pytest.raises(argparse.ArgumentTypeError, match="--sample-rate"):
            sample_rate(bad)


def test_parser_has_the_common_flags():
    args = app_parser("demo", "demo app", "input").parse_args(
        ["--output", "out", "--sample-rate", "0.1", "--master", "local[2]"]
    )
    assert (args.output, args.sample_rate, args.master, args.overwrite) == (
        "out",
        0.1,
        "local[2]",
        False,
    )
    with pytest.raises(SystemExit):
        app_parser("demo", "demo app", "input").parse_args(["--sample-rate", "0.1"])


def test_staged_output_appears_whole_on_success(tmp_path):
    target = tmp_path / "run"
    with StagedOutput(str(target)) as out:
        out.write_json("table.json", {"a": 1})
        out.write_metrics("demo", {"x": 1}, {"score": 0.5})
        assert not target.exists()  # nothing visible until the run succeeded
    assert sorted(p.name for p in target.iterdir()) == ["metrics.json", "table.json"]
    assert read_metrics(str(target))["metrics"] == {"score": 0.5}
    assert list(tmp_path.iterdir()) == [target]  # no staging folder left behind


def test_staged_output_leaves_nothing_when_the_run_fails(tmp_path):
    target = tmp_path / "run"
    with pytest.raises(RuntimeError, match="boom"), StagedOutput(str(target)) as out:
        out.write_json("partial.json", {"a": 1})
        raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []


def test_existing_output_is_refused_unless_overwrite(tmp_path):
    target = tmp_path / "run"
    target.mkdir()
    (target / "old.txt").write_text("old")
    with pytest.raises(FileExistsError, match="--overwrite"), StagedOutput(str(target)):
        pass
    assert (target / "old.txt").exists()
    with StagedOutput(str(target), overwrite=True) as out:
        out.write_json("new.json", [1])
    assert [p.name for p in target.iterdir()] == ["new.json"]
    assert json.loads((target / "new.json").read_text()) == [1]
