"""pyproject.toml, the lock files in requirements/ and sparkzoo.extras agree with each other.

A lock is generated from pyproject.toml (`make lock`); these tests fail when someone changes
one without the other: a dependency missing from a lock, a locked version outside pyproject's
range, an entry without hashes, or an extra that sparkzoo.extras does not know.
"""

from __future__ import annotations

import re
import sys
import tomllib

import pytest
from packaging.markers import default_environment
from packaging.requirements import Requirement

from sparkzoo import extras

from conftest import REPO

sys.path.insert(0, str(REPO / "scripts"))
import lockfile

PROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
# Each lock: the Python it is for and the extras the set-up installs from it.
LOCKS = {
    "classic.lock": ("3.11", ("all", "cpu", "dev")),
    "current.lock": ("3.12", ("all", "cpu", "dev")),
}
# Dropped from the locks on purpose (requirements/overrides.txt): the full `tensorflow` wheel
# that tf_keras declares, which would overwrite tensorflow-cpu.
OVERRIDDEN = {"tensorflow"}


def _environment(python: str, extra: str = "") -> dict[str, str]:
    env = default_environment()
    env.update(
        python_version=python,
        python_full_version=f"{python}.0",
        sys_platform="linux",
        platform_system="Linux",
        platform_machine="x86_64",
        extra=extra,
    )
    return env


def _requirements(python: str, wanted: tuple[str, ...]) -> list[Requirement]:
    """sparkzoo's own requirements on that Python with these extras, self-references (`all`)
    followed."""
    found: list[Requirement] = []
    todo, seen = [""], set()
    todo += list(wanted)
    while todo:
        extra = todo.pop()
        if extra in seen:
            continue
        seen.add(extra)
        listed = PROJECT["dependencies"] if extra == "" else PROJECT["optional-dependencies"][extra]
        for text in listed:
            req = Requirement(text)
            if req.marker is not None and not req.marker.evaluate(_environment(python, extra)):
                continue
            if lockfile.canonical(req.name) == "sparkzoo":
                todo += sorted(req.extras)
            else:
                found.append(req)
    return found


@pytest.mark.parametrize("lock", sorted(LOCKS))
def test_lock_holds_every_requirement_within_pyprojects_range(lock: str):
    python, wanted = LOCKS[lock]
    entries = lockfile.entries(REPO / "requirements" / lock)
    problems = []
    for req in _requirements(python, wanted):
        name = lockfile.canonical(req.name)
        if name in OVERRIDDEN:
            continue
        if name not in entries:
            problems.append(f"{req} is not in {lock}")
        elif not req.specifier.contains(entries[name][0], prereleases=True):
            problems.append(f"{lock} has {name}=={entries[name][0]}, outside {req}")
    assert not problems, "run `make lock`:\n" + "\n".join(problems)


@pytest.mark.parametrize("lock", [*sorted(LOCKS), "data.lock"])
def test_every_lock_entry_is_pinned_with_hashes(lock: str):
    entries = lockfile.entries(REPO / "requirements" / lock)
    assert entries, f"{lock} has no entries"
    unhashed = [n for n, (_, text) in entries.items() if "--hash=sha256:" not in text]
    assert not unhashed, f"{lock}: no hashes for {unhashed}"
    for name in OVERRIDDEN:
        assert name not in entries, f"{lock} installs {name}, which overwrites tensorflow-cpu"


def test_classic_lock_keeps_numpy_1_with_a_pyarrow_that_imports_on_it():
    entries = lockfile.entries(REPO / "requirements" / "classic.lock")
    assert entries["numpy"][0].startswith("1.")
    assert int(entries["pyarrow"][0].split(".")[0]) < 26  # 26 refuses NumPy 1 at import
    assert entries["horovod"][0] == "0.28.1"
    assert entries["tensorflow-cpu"][0] == "2.15.1"


def test_data_lock_holds_what_requirements_data_in_names():
    named = {
        lockfile.canonical(Requirement(line).name): Requirement(line).specifier
        for line in (REPO / "requirements" / "data.in").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    entries = lockfile.entries(REPO / "requirements" / "data.lock")
    assert set(entries) == set(named)
    assert all(named[n].contains(entries[n][0]) for n in named)


def test_setup_scripts_install_the_locks_with_hashes():
    for script, lock in (("setup.sh", "classic.lock"), ("setup-current.sh", "current.lock")):
        text = (REPO / "scripts" / script).read_text()
        assert f"requirements/{lock}" in text
        assert "requirements/data.lock" in text
        # every pip install of a requirements file checks hashes
        for line in re.findall(r"pip install[^\n]*-r [^\n]*", text):
            assert "--require-hashes" in line, f"{script}: {line}"


def test_extras_table_matches_pyprojects_extras():
    optional = PROJECT["optional-dependencies"]
    unchecked = {"cpu", "gpu", "all", "dev"}  # TensorFlow itself, the union, the tools
    assert set(extras.EXTRAS) == set(optional) - unchecked
    for extra, needs in extras.EXTRAS.items():
        listed = {lockfile.canonical(Requirement(r).name) for r in optional[extra]}
        table = {lockfile.canonical(n.distribution) for n in needs}
        assert table == listed, f"[{extra}]: pyproject {sorted(listed)}, extras.py {sorted(table)}"
    # [all] is every extra a user may want
    (everything,) = optional["all"]
    assert set(Requirement(everything).extras) == set(extras.EXTRAS)


def test_core_never_installs_pyspark_horovod_or_tensorflow():
    core = {lockfile.canonical(Requirement(r).name) for r in PROJECT["dependencies"]}
    assert not core & {"pyspark", "horovod", "tensorflow", "tensorflow-cpu", "tf-keras", "mlflow"}
