"""The package layout of the design card and the dependency rule."""

from __future__ import annotations

import ast
import json
import tomllib

from conftest import REPO, run_python

FOLDERS = {
    "sparkzoo": "sparkzoo",
    "models": "sparkzoo.models",
    "trainer": "sparkzoo.trainer",
    "datasets": "sparkzoo.datasets",
    "apps": "sparkzoo.apps",
    "bench": "sparkzoo.bench",
}


def _packages_on_disk() -> set[str]:
    found = set()
    for folder, namespace in FOLDERS.items():
        for init in (REPO / folder).rglob("__init__.py"):
            rel = init.parent.relative_to(REPO / folder).parts
            found.add(".".join((namespace, *rel)))
    return found


def test_every_package_folder_is_installed():
    config = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
    assert set(config["packages"]) == _packages_on_disk()
    for namespace, folder in config["package-dir"].items():
        assert FOLDERS[folder] == namespace


def test_apps_of_the_design_card_exist():
    apps = {p.name for p in (REPO / "apps").iterdir() if (p / "__init__.py").exists()}
    assert {
        "object_detection",
        "anomaly_detection",
        "fraud",
        "recommendation",
        "image_similarity",
    } <= apps


def test_importing_models_pulls_in_neither_pyspark_nor_horovod():
    code = (
        "import sys, json, sparkzoo.models\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in "
        "('pyspark', 'horovod'))))"
    )
    result = run_python(code, cwd=REPO.parent)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.strip().splitlines()[-1]) == []


def test_models_source_never_imports_pyspark_or_horovod():
    offenders = []
    for path in (REPO / "models").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = (
                [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else [node.module or ""]
                if isinstance(node, ast.ImportFrom)
                else []
            )
            offenders += [
                f"{path.relative_to(REPO)}: {n}"
                for n in names
                if n.split(".")[0] in ("pyspark", "horovod")
            ]
    assert offenders == []


def test_importing_sparkzoo_is_cheap():
    code = (
        "import sys, sparkzoo\n"
        "print(','.join(m for m in ('tensorflow', 'pyspark', 'horovod') if m in sys.modules))"
    )
    result = run_python(code, cwd=REPO.parent)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == ""
