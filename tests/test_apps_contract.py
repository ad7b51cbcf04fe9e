"""The contract every app under apps/ keeps, tested for each app folder found on disk.

An app is a folder ``apps/<name>/`` with ``__init__.py`` and ``__main__.py``; a new one is
tested here without a test of its own. It also holds ``<name>.ipynb``, ``submit.sh`` and
``contract.json``: the app's default command, its own bad-input cases, and the small settings
its notebook and ``submit.sh`` run with here, with what their outputs must hold.

- ``python -m sparkzoo.apps.<name> --help`` exits 0, lists the subcommands and the common
  flags, and loads neither TensorFlow nor Spark nor the app's pipeline;
- bad input (a missing ``--input``, ``--sample-rate 0``, the app's own cases) exits 2 with a
  message naming it on stderr, and leaves nothing at ``--output`` or beside it;
- (slow) the notebook runs headless, and ``submit.sh`` runs the app under spark-submit.
"""

from __future__ import annotations

import importlib
import json
import operator
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from sparkzoo.apps.common import COMMON_FLAGS, AppParser

from conftest import REPO, run_submit

APPS = sorted(
    p.name
    for p in (REPO / "apps").iterdir()
    if (p / "__init__.py").is_file() and (p / "__main__.py").is_file()
)
# What --help must not load: it answers before any of the heavy stack is imported.
HEAVY = ("tensorflow", "keras", "pyspark", "horovod")


def contract(app: str) -> dict:
    return json.loads((REPO / "apps" / app / "contract.json").read_text())


def cli(app: str):
    return importlib.import_module(f"sparkzoo.apps.{app}.__main__")


def python_m(app: str, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", f"sparkzoo.apps.{app}", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=300,
    )


def left_behind(folder: Path, expected: set[str] = frozenset()) -> list[str]:
    """What is in ``folder`` beyond ``expected``: a failed run leaves no output, no staging."""
    return sorted(p.name for p in folder.iterdir() if p.name not in expected)


def test_apps_are_found():
    assert {
        "anomaly_detection",
        "fraud",
        "image_similarity",
        "object_detection",
        "recommendation",
    } <= set(APPS)


# ---- the folder and the command line ----------------------------------------------------------


@pytest.mark.parametrize("app", APPS)
def test_app_folder_holds_notebook_submit_script_and_contract(app):
    folder = REPO / "apps" / app
    assert (folder / f"{app}.ipynb").is_file()
    assert (folder / "submit.sh").stat().st_mode & stat.S_IXUSR, "submit.sh is not executable"
    assert {"default", "notebook", "submit"} <= set(contract(app))


@pytest.mark.parametrize("app", APPS)
def test_main_has_the_common_shape(app):
    module = cli(app)
    parser = module.build_parser()
    assert isinstance(parser, AppParser)
    assert parser.default_command == contract(app)["default"]
    # no command named: the default runs, with the common flags' defaults
    args = parser.parse_args(["--output", "out"])
    assert (args.command, args.output, args.sample_rate, args.seed) == (
        parser.default_command,
        "out",
        1.0,
        0,
    )
    assert (args.master, args.overwrite) == (None, False)
    assert callable(module.main)


@pytest.mark.parametrize("app", APPS)
def test_help_lists_commands_and_common_flags_without_loading_tensorflow(app):
    code = (
        "import json, runpy, sys\n"
        f"sys.argv = ['python -m sparkzoo.apps.{app}', '--help']\n"
        "try:\n"
        f"    runpy.run_module('sparkzoo.apps.{app}', run_name='__main__', alter_sys=True)\n"
        "    status = None\n"
        "except SystemExit as exc:\n"
        "    status = exc.code\n"
        f"heavy = sorted(m for m in sys.modules if m.split('.')[0] in {HEAVY!r}\n"
        f"               or m == 'sparkzoo.apps.{app}.pipeline')\n"
        "print(json.dumps({'status': status, 'heavy': heavy}))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]
    text, _, last = result.stdout.rstrip().rpartition("\n")
    report = json.loads(last)
    assert report == {"status": 0, "heavy": []}, report
    parser = cli(app).build_parser()
    for name in parser.commands:
        assert name in text, f"--help does not list the command {name}"
    for flag in COMMON_FLAGS:
        assert flag in text, f"--help does not list the common flag {flag}"


@pytest.mark.parametrize("app", APPS)
def test_every_command_has_help_and_the_common_flags(app, capsys):
    module = cli(app)
    for name in module.build_parser().commands:
        assert module.main([name, "--help"]) == 0
        text = capsys.readouterr().out
        assert f"python -m sparkzoo.apps.{app} {name}" in text
        for flag in set(COMMON_FLAGS) - {"--input"}:
            assert flag in text, f"{name} --help does not list {flag}"


# ---- bad input: status 2, the problem named, nothing written ----------------------------------


@pytest.mark.parametrize("app", APPS)
def test_missing_input_exits_2_naming_it(app, tmp_path):
    missing = tmp_path / "no-such-input.csv"
    result = python_m(app, "--input", str(missing), "--output", str(tmp_path / "out"))
    assert result.returncode == 2, result.stderr[-3000:]
    assert f"--input '{missing}' does not exist" in result.stderr
    assert "Traceback" not in result.stderr
    assert left_behind(tmp_path) == []


@pytest.mark.parametrize("app", APPS)
def test_bad_sample_rate_exits_2_naming_it(app, tmp_path):
    result = python_m(app, "--sample-rate", "0", "--output", str(tmp_path / "out"))
    assert result.returncode == 2, result.stderr[-3000:]
    assert "--sample-rate 0 must be in (0, 1]" in result.stderr
    assert left_behind(tmp_path) == []


@pytest.mark.parametrize("app", APPS)
def test_existing_output_is_refused_before_any_work(app, tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    (out / "old.txt").write_text("old")
    assert cli(app).main(["--output", str(out)]) == 2
    assert f"output '{out}' already exists" in capsys.readouterr().err
    assert left_behind(tmp_path) == ["out"] and left_behind(out) == ["old.txt"]


def _cases() -> list:
    return [
        pytest.param(app, case, id=f"{app}-{i}")
        for app in APPS
        for i, case in enumerate(contract(app).get("bad_input", []))
    ]


@pytest.mark.parametrize(("app", "case"), _cases())
def test_the_apps_own_bad_input_exits_2_naming_it(app, case, tmp_path, capsys):
    """The cases in contract.json: each fails before Spark starts."""
    for name, text in case.get("files", {}).items():
        (tmp_path / name).write_text(text)
    args = [a.replace("{tmp}", str(tmp_path)) for a in case["args"]]
    assert cli(app).main([*args, "--output", str(tmp_path / "out")]) == 2
    assert case["error"] in capsys.readouterr().err
    assert left_behind(tmp_path, set(case.get("files", {}))) == []


# ---- slow: the notebook and spark-submit ------------------------------------------------------

_OPS = {
    "==": operator.eq,
    "!=": operator.ne,
    ">": operator.gt,
    ">=": operator.ge,
    "<": operator.lt,
    "<=": operator.le,
    "keys": lambda value, keys: set(value) == set(keys),
    "len": lambda value, n: len(value) == n,
}


def check_outputs(output: Path, spec: dict) -> None:
    """The checks of contract.json on an output folder: ``expect`` maps a JSON file to
    ``[dotted.path, op, value]`` checks, or a Parquet folder to ``["rows", op, value]``;
    ``folders`` must exist."""
    for name in spec.get("folders", []):
        assert (output / name).is_dir(), f"no {name}/ in {output}"
    for name, checks in spec.get("expect", {}).items():
        target = output / name
        if name.endswith(".json"):
            document = json.loads(target.read_text())
        else:
            import pandas as pd

            document = {"rows": len(pd.read_parquet(target))}
        for path, op, expected in checks:
            value = document
            for key in path.split("."):
                value = value[key]
            assert _OPS[op](value, expected), f"{name}: {path} = {value!r}, not {op} {expected!r}"


def _outputs(notebook) -> list[dict]:
    return [o for cell in notebook.cells for o in cell.get("outputs", [])]


@pytest.mark.slow
@pytest.mark.parametrize("app", APPS)
def test_notebook_runs(app, tmp_path):
    from sparkzoo.apps.common import run_notebook

    spec = contract(app)["notebook"]
    output = tmp_path / "nb"
    env = {"SPARKZOO_MASTER": "local[2]", "SPARKZOO_OUTPUT": str(output), **spec["env"]}
    notebook = run_notebook(app, env=env, timeout=spec.get("timeout", 900))
    outputs = _outputs(notebook)
    text = "".join(o.get("text", "") for o in outputs)
    for shown in spec.get("shows", []):
        assert shown in text, f"the notebook never prints {shown!r}"
    if spec.get("plot"):
        assert any("image/png" in o.get("data", {}) for o in outputs), "the notebook shows no plot"
    check_outputs(output, spec)


@pytest.mark.slow
@pytest.mark.parametrize("app", APPS)
def test_submit_script_runs(app, tmp_path):
    spec = contract(app)["submit"]
    made = {}
    for name, step in spec.get("prepare", {}).items():
        module, function = step["call"].split(":")
        made[name] = getattr(importlib.import_module(module), function)(
            str(tmp_path / name), **step.get("kwargs", {})
        )
    args = list(spec["args"])
    for name, path in made.items():
        args = [a.replace(f"{{{name}}}", str(path)) for a in args]
    output = tmp_path / "submitted"
    run_submit(app, output, *args)  # asserts spark-submit succeeded
    check_outputs(output, spec)
