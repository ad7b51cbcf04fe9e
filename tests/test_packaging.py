"""The wheel and the editable install both import every sparkzoo.* package."""

from __future__ import annotations

import json
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

from conftest import REPO, run_python

PACKAGES = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]
_WHERE = (
    "import importlib, json\n"
    f"print(json.dumps({{p: importlib.import_module(p).__file__ for p in {PACKAGES!r}}}))"
)


def _imported_from(result: subprocess.CompletedProcess) -> dict[str, str]:
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_editable_install_maps_folders_into_the_namespace(tmp_path: Path):
    files = _imported_from(run_python(_WHERE, cwd=tmp_path))  # cwd away from the checkout
    assert Path(files["sparkzoo.models"]) == REPO / "models" / "__init__.py"
    assert Path(files["sparkzoo.apps.fraud"]) == REPO / "apps" / "fraud" / "__init__.py"
    assert all(Path(f).is_relative_to(REPO) for f in files.values())


@pytest.mark.slow
def test_wheel_installs_and_imports_every_package(tmp_path: Path):
    wheels = tmp_path / "wheels"
    built = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(wheels),
            str(REPO),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert built.returncode == 0, built.stderr[-3000:]
    (wheel,) = wheels.glob("sparkzoo-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "sparkzoo/models/__init__.py" in names
    assert not any(n.startswith(("models/", "datasets/", "tests/")) for n in names)

    site = tmp_path / "site"
    installed = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--no-deps",
            "-q",
            "--target",
            str(site),
            str(wheel),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert installed.returncode == 0, installed.stderr[-3000:]
    files = _imported_from(run_python(_WHERE, cwd=tmp_path, env={"PYTHONPATH": str(site)}))
    assert all(Path(f).is_relative_to(site) for f in files.values()), files
