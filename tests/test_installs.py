"""A stack whose versions cannot work together, or a missing extra, is named with its fix
(sparkzoo/stack.py, sparkzoo/extras.py), never left to a traceback from inside a library."""

from __future__ import annotations

import pytest
from packaging.version import Version

from sparkzoo import extras, info, stack
from sparkzoo.extras import MissingExtraError, Need

from conftest import run_python


def _installed(monkeypatch, **versions: str | None) -> None:
    """Pretend these distributions are installed at these versions (None: not installed)."""
    table = {name.replace("_", "-"): v for name, v in versions.items()}
    monkeypatch.setattr(
        stack, "version", lambda dist: Version(table[dist]) if table.get(dist) else None
    )


def test_pyarrow_26_on_numpy_1_is_named_with_its_fix(monkeypatch):
    _installed(monkeypatch, numpy="1.26.4", pyarrow="26.0.1", tensorflow_cpu="2.15.1")
    (problem,) = stack.problems()
    assert "pyarrow 26.0.1 needs NumPy >= 2" in problem
    assert 'pip install "pyarrow<26"' in problem


def test_numpy_2_under_horovod_and_tensorflow_2_15_is_named(monkeypatch):
    _installed(monkeypatch, numpy="2.1.0", horovod="0.28.1", tensorflow_cpu="2.15.1")
    problems = stack.problems()
    assert len(problems) == 2
    assert all('pip install "numpy<2"' in p for p in problems)
    assert any(p.startswith("Horovod 0.28.1") for p in problems)
    assert any(p.startswith("tensorflow-cpu 2.15.1 was built for NumPy 1") for p in problems)


def test_tensorflow_2_16_plus_without_a_matching_tf_keras_is_named(monkeypatch):
    _installed(monkeypatch, numpy="2.1.0", tensorflow="2.21.0")
    (problem,) = stack.problems()
    assert 'pip install "tf_keras==2.21.*"' in problem
    _installed(monkeypatch, numpy="2.1.0", tensorflow="2.21.0", tf_keras="2.20.1")
    (problem,) = stack.problems()
    assert "tf_keras 2.20.1 does not match tensorflow 2.21.0" in problem


def test_old_pyspark_is_named(monkeypatch):
    _installed(monkeypatch, numpy="1.26.4", pyspark="3.4.1", tensorflow_cpu="2.15.1")
    (problem,) = stack.problems()
    assert "PySpark 3.4.1" in problem and "3.5" in problem


def test_a_compatible_stack_has_no_problems(monkeypatch):
    _installed(
        monkeypatch, numpy="1.26.4", pyarrow="25.0.1", tensorflow_cpu="2.15.1",
        horovod="0.28.1", pyspark="3.5.9",
    )  # fmt: skip
    assert stack.problems() == []
    _installed(
        monkeypatch, numpy="2.4.6", pyarrow="26.0.1", tensorflow_cpu="2.21.0",
        tf_keras="2.21.0", pyspark="4.3.0",
    )  # fmt: skip
    assert stack.problems() == []


def test_check_raises_an_import_error_listing_every_fix(monkeypatch):
    _installed(monkeypatch, numpy="1.26.4", pyarrow="26.0.1", tensorflow_cpu="2.15.1")
    monkeypatch.delenv(stack.SKIP_VARIABLE, raising=False)
    with pytest.raises(ImportError, match=r'(?s)sparkzoo.trainer cannot run .*pyarrow<26"'):
        stack.check("sparkzoo.trainer")
    monkeypatch.setenv(stack.SKIP_VARIABLE, "1")
    stack.check("sparkzoo.trainer")  # skipped on request


def test_check_names_a_missing_tensorflow(monkeypatch):
    _installed(monkeypatch, numpy="2.4.6")
    monkeypatch.delenv(stack.SKIP_VARIABLE, raising=False)
    with pytest.raises(stack.StackError, match=r'TensorFlow is not installed.*"sparkzoo\[cpu\]"'):
        stack.check("sparkzoo.models")


def test_info_reports_incompatible_versions(monkeypatch):
    _installed(monkeypatch, numpy="1.26.4", pyarrow="26.0.1", tensorflow_cpu="2.15.1")
    component = info._versions()
    assert component.version == "INCOMPATIBLE"
    assert 'pip install "pyarrow<26"' in component.problem


def test_a_missing_extra_is_named_with_the_pip_command(monkeypatch):
    lacking = Need("no-such-distribution", "no_such_module_sparkzoo")
    monkeypatch.setitem(extras.EXTRAS, "apps", (*extras.EXTRAS["apps"], lacking))
    with pytest.raises(MissingExtraError) as err:
        extras.require("apps", "sparkzoo.apps")
    message = str(err.value)
    assert 'pip install "sparkzoo[apps]"' in message
    assert "no-such-distribution is not installed" in message
    assert isinstance(err.value, ImportError)
    with pytest.raises(ValueError, match="no extra 'nope'"):
        extras.require("nope", "x")


def test_import_module_names_the_extra_only_for_the_missing_module_itself():
    with pytest.raises(MissingExtraError, match=r'pip install "sparkzoo\[openvino\]"'):
        extras.import_module("no_such_module_sparkzoo", "openvino")
    assert extras.import_module("json", "apps").__name__ == "json"


def test_an_installed_extra_has_nothing_missing():
    # the repository's own venvs install [all] from the lock
    assert all(not extras.missing(name) for name in extras.EXTRAS if name != "horovod")


def test_estimator_import_without_pyspark_names_the_spark_extra(tmp_path):
    # A meta-path finder hides pyspark, as on a machine without it.
    code = (
        "import sys\n"
        "class Hide:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name == 'pyspark' or name.startswith('pyspark.'):\n"
        "            raise ModuleNotFoundError(name=name)\n"
        "sys.meta_path.insert(0, Hide())\n"
        "from sparkzoo.trainer import KerasEstimator\n"
    )
    result = run_python(code, cwd=tmp_path)
    assert result.returncode != 0
    assert 'pip install "sparkzoo[spark]"' in result.stderr, result.stderr[-2000:]
