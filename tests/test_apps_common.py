"""The scaffolding every app shares: its command line, the atomic output folder, metrics.json."""

from __future__ import annotations

import argparse
import json

import pytest

from sparkzoo.apps.common import (
    COMMON_FLAGS,
    StagedOutput,
    app_parser,
    positive_int,
    read_metrics,
    run_app,
    sample_rate,
)


def test_sample_rate_must_be_a_fraction():
    assert sample_rate("0.25") == 0.25
    for bad in ["0", "1.5", "-0.1", "half"]:
        with pytest.raises(argparse.ArgumentTypeError, match="--sample-rate"):
            sample_rate(bad)


def test_positive_int():
    assert positive_int("3") == 3
    for bad in ["0", "-1"]:
        with pytest.raises(argparse.ArgumentTypeError, match=f"{bad} must be >= 1"):
            positive_int(bad)
    for bad in ["2.5", "x"]:
        with pytest.raises(argparse.ArgumentTypeError, match="is not a whole number"):
            positive_int(bad)


def demo_parser():
    """A two-command app like the real ones: 'fit' (the default) and 'apply'."""
    parser = app_parser("demo", "A demo app.", default="fit")
    fit = parser.add_command("fit", "fit the demo model", "the data to fit")
    fit.add_argument("--epochs", type=positive_int, default=2)
    apply = parser.add_command("apply", "apply a demo model", None)
    apply.add_argument("--model", required=True)
    return parser


def test_parser_has_the_common_flags():
    args = demo_parser().parse_args(
        ["fit", "--output", "out", "--sample-rate", "0.1", "--master", "local[2]"]
    )
    assert (args.command, args.output, args.sample_rate, args.master, args.overwrite) == (
        "fit",
        "out",
        0.1,
        "local[2]",
        False,
    )
    assert (args.input, args.seed, args.epochs) == (None, 0, 2)
    with pytest.raises(SystemExit):
        demo_parser().parse_args(["--sample-rate", "0.1"])  # --output is required
    args = demo_parser().parse_args(["apply", "--model", "m", "--output", "o"])
    assert args.command == "apply" and not hasattr(args, "input")  # input_help=None: no --input


def test_the_default_command_runs_when_none_is_named(capsys):
    parser = demo_parser()
    assert parser.commands == ["fit", "apply"] and parser.default_command == "fit"
    assert parser.parse_args(["--output", "o", "--epochs", "3"]).epochs == 3
    with pytest.raises(SystemExit):
        parser.parse_args([])  # fit, without its --output
    assert "fit: error: the following arguments are required: --output" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        parser.parse_args(["aply", "--output", "o"])  # a misspelt command is not taken as fit
    assert "invalid choice: 'aply'" in capsys.readouterr().err


def test_help_lists_the_commands_and_the_common_flags(capsys):
    with pytest.raises(SystemExit) as exit_:
        demo_parser().parse_args(["--help"])
    assert exit_.value.code == 0
    text = capsys.readouterr().out
    assert "fit the demo model (the default)" in text and "apply a demo model" in text
    assert all(flag in text for flag in COMMON_FLAGS)
    assert "python -m sparkzoo.apps.demo fit --output DIR" in text.replace("\n", " ")


def test_run_app_exit_statuses_and_messages(tmp_path, capsys):
    calls = []

    def fit(args):
        calls.append(args)
        with StagedOutput(args.output, args.overwrite) as out:
            out.write_json("half.json", {})
            if args.epochs > 5:
                raise ValueError(f"--epochs {args.epochs} is too many for the demo")
            out.write_metrics("demo", args, {})
        return 0

    commands = {"fit": fit, "apply": lambda args: None}
    out = str(tmp_path / "out")
    assert run_app(demo_parser(), commands, ["--output", out]) == 0
    assert read_metrics(out)["args"]["command"] == "fit"
    applied = str(tmp_path / "applied")  # (the demo's apply writes nothing)
    assert run_app(demo_parser(), commands, ["apply", "--model", "m", "--output", applied]) == 0

    # bad input: status 2, the message on stderr, nothing new written
    assert run_app(demo_parser(), commands, ["--output", out]) == 2
    assert "already exists: choose another --output or pass --overwrite" in capsys.readouterr().err
    other = str(tmp_path / "other")
    assert run_app(demo_parser(), commands, ["--output", other, "--epochs", "9"]) == 2
    err = capsys.readouterr().err
    assert "python -m sparkzoo.apps.demo fit: error: --epochs 9 is too many" in err
    missing = str(tmp_path / "missing.csv")
    assert run_app(demo_parser(), commands, ["--input", missing, "--output", other]) == 2
    assert f"--input '{missing}' does not exist" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]
    assert len(calls) == 2  # the missing input and the existing output were refused up front

    # usage errors and --help: argparse's statuses, returned rather than raised
    assert run_app(demo_parser(), commands, ["--output", other, "--sample-rate", "0"]) == 2
    assert "--sample-rate 0 must be in (0, 1]" in capsys.readouterr().err
    assert run_app(demo_parser(), commands, ["--help"]) == 0


@pytest.mark.spark
def test_run_app_stops_only_the_spark_it_started(spark, tmp_path):
    from pyspark import SparkContext
    from pyspark.sql import SparkSession

    def fit(args):  # what an app's command does: take the running session, or start one
        # (createDataFrame makes its session the JVM's active one again)
        rows = SparkSession.builder.getOrCreate().createDataFrame([(1,), (2,)], "x int")
        return int(rows.count() != 2)

    commands = {"fit": fit, "apply": lambda args: None}
    # The JVM's "active session" is per thread: seen empty while this process's context ran,
    # it made an app stop the test session. A context running before the app is not its own.
    spark._jvm.SparkSession.clearActiveSession()
    assert SparkSession.getActiveSession() is None
    assert run_app(demo_parser(), commands, ["--output", str(tmp_path / "a")]) == 0
    assert SparkContext._active_spark_context is spark.sparkContext
    assert spark.range(2).count() == 2


def test_run_app_reports_the_apps_own_errors_and_raises_the_rest(tmp_path, capsys):
    class DemoError(Exception):
        pass

    def fit(args):
        raise DemoError("the demo data is bad")

    commands = {"fit": fit, "apply": lambda args: None}
    argv = ["--output", str(tmp_path / "o")]
    assert run_app(demo_parser(), commands, argv, errors=(DemoError,)) == 2
    assert "error: the demo data is bad" in capsys.readouterr().err
    with pytest.raises(DemoError):  # called with argv (a test, a notebook): a bug propagates
        run_app(demo_parser(), commands, argv)
    with pytest.raises(ValueError, match="commands"):
        run_app(demo_parser(), {"fit": fit}, argv)  # every command needs its function


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
