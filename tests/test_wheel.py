"""`pip install sparkzoo` as a user with a Spark cluster does it: the wheel, in a fresh venv on
this stack's Python, beside only this stack's TensorFlow, every version taken from this stack's
lock (docs/install.md).

- the core install is lean (a bounded number of packages, no PySpark, Horovod, TensorFlow or
  MLflow) and compiles nothing (``--only-binary=:all:``);
- with TensorFlow added, the shipped ``lenet5.mnist`` scores its card's accuracy;
- an app imported without ``[apps]`` names the extra to install;
- with ``[spark]`` added, ``KerasEstimator(engine="tf")`` fits 2 ranks on ``local[2]`` and the
  fitted model transforms.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from sparkzoo import models
from sparkzoo.models.recipes import lenet5_mnist

from conftest import REPO

pytestmark = pytest.mark.slow

LOCK = REPO / "requirements" / ("classic.lock" if sys.version_info < (3, 12) else "current.lock")
# Packages that `pip install sparkzoo` adds to a bare venv: numpy, pandas (and its
# python-dateutil, pytz, tzdata, six), pyarrow, cloudpickle, packaging, psutil and sparkzoo.
# Before the extras, the same command installed 167.
CORE_PACKAGE_BOUND = 13
# Published as source only, and pure Python: pip turns it into a wheel without a compiler
# (test_spark_extra_fits_two_tf_ranks_and_transforms checks that the result is pure Python).
SOURCE_ONLY = ("--no-binary=pyspark",)
NEVER_IN_CORE = {"pyspark", "horovod", "tensorflow", "tensorflow-cpu", "tf-keras", "mlflow"}


@dataclass
class Venv:
    root: Path
    constraints: Path
    wheel: Path
    core_packages: list[str]

    @property
    def python(self) -> str:
        return str(self.root / "bin" / "python")

    def pip(self, *args: str) -> None:
        done = subprocess.run(
            [self.python, "-m", "pip", "--disable-pip-version-check", "install", "-q",
             "--only-binary=:all:", *SOURCE_ONLY, "-c", str(self.constraints), *args],
            capture_output=True, text=True, timeout=900,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr[-3000:]

    def run(self, code: str, cwd: Path, timeout: int = 600) -> subprocess.CompletedProcess:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}
        env["TF_CPP_MIN_LOG_LEVEL"] = "2"
        return subprocess.run(
            [self.python, "-c", textwrap.dedent(code)],
            cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout,
        )  # fmt: skip

    def packages(self) -> list[str]:
        listed = subprocess.run(
            [self.python, "-m", "pip", "list", "--format=json", "--disable-pip-version-check"],
            capture_output=True, text=True, check=True,
        )  # fmt: skip
        names = [p["name"].lower().replace("_", "-") for p in json.loads(listed.stdout)]
        return sorted(set(names) - {"pip", "setuptools", "wheel"})


def _pins(lock: Path) -> str:
    """The lock's `name==version` lines, as a pip constraints file (no hashes)."""
    return "".join(
        line.split(" ")[0] + "\n" for line in lock.read_text().splitlines() if "==" in line[:80]
        and not line.startswith((" ", "#"))
    )  # fmt: skip


@pytest.fixture(scope="module")
def venv(tmp_path_factory) -> Venv:
    """A fresh venv holding the core install only; TensorFlow and [spark] are added by the
    fixtures below (the core's package list is taken before)."""
    root = tmp_path_factory.mktemp("wheel")
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
         "-w", str(root / "dist"), str(REPO)],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert built.returncode == 0, built.stderr[-3000:]
    (wheel,) = (root / "dist").glob("sparkzoo-*.whl")
    constraints = root / "constraints.txt"
    constraints.write_text(_pins(LOCK))
    base = getattr(sys, "_base_executable", sys.executable)
    subprocess.run([base, "-m", "venv", str(root / "venv")], check=True, timeout=300)
    env = Venv(root / "venv", constraints, wheel, [])
    env.pip(str(wheel))
    env.core_packages = env.packages()
    return env


@pytest.fixture(scope="module")
def with_tensorflow(venv: Venv) -> Venv:
    """The venv plus this stack's TensorFlow from the lock (and tf_keras, without the full
    `tensorflow` wheel it declares), as a cluster has it."""
    pins = dict(line.split("==") for line in _pins(LOCK).split())
    venv.pip(f"tensorflow-cpu=={pins['tensorflow-cpu']}")
    if "tf-keras" in pins:
        venv.pip("--no-deps", f"tf-keras=={pins['tf-keras']}")
    return venv


def test_core_install_is_lean_and_needs_no_compiler(venv: Venv):
    # --only-binary=:all: in Venv.pip: an sdist (a compile) would have failed the install
    assert "sparkzoo" in venv.core_packages
    assert not NEVER_IN_CORE & set(venv.core_packages), venv.core_packages
    assert len(venv.core_packages) <= CORE_PACKAGE_BOUND, venv.core_packages


def test_zoo_model_without_tensorflow_names_what_to_install(venv: Venv, tmp_path: Path):
    if "tensorflow-cpu" in venv.packages():
        pytest.skip("TensorFlow was installed into the shared venv by an earlier test")
    result = venv.run("from sparkzoo import models; models.get('lenet5.mnist')", tmp_path)
    assert result.returncode != 0
    assert "TensorFlow is not installed" in result.stderr, result.stderr[-2000:]
    assert 'pip install "sparkzoo[cpu]"' in result.stderr


def test_pretrained_lenet_scores_its_card_accuracy(with_tensorflow: Venv, tmp_path: Path):
    card = models.card("lenet5.mnist")
    check = card.metrics["check"]
    _, _, x_test, y_test = lenet5_mnist.held_out_split()
    np.savez(tmp_path / "held_out.npz", x=x_test[: check["limit"]], y=y_test[: check["limit"]])
    result = with_tensorflow.run(
        """
        import numpy as np
        from sparkzoo import models
        data = np.load("held_out.npz")
        net = models.get("lenet5.mnist", pretrained=True)
        x = models.preprocessor("lenet5.mnist")(data["x"])
        print(float((net.predict(x, verbose=0).argmax(axis=1) == data["y"]).mean()))
        """,
        tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    accuracy = float(result.stdout.split()[-1])
    assert accuracy == pytest.approx(check["value"], abs=check["tolerance"])


def test_app_without_the_apps_extra_names_it(with_tensorflow: Venv, tmp_path: Path):
    result = with_tensorflow.run("import sparkzoo.apps.fraud", tmp_path)
    assert result.returncode != 0
    assert 'pip install "sparkzoo[apps]"' in result.stderr, result.stderr[-2000:]
    assert "ModuleNotFoundError" not in result.stderr


def test_spark_extra_fits_two_tf_ranks_and_transforms(with_tensorflow: Venv, tmp_path: Path):
    with_tensorflow.pip(f"sparkzoo[spark] @ {with_tensorflow.wheel.as_uri()}")
    assert "mlflow" not in with_tensorflow.packages()  # [spark] alone: no MLflow
    purelib = with_tensorflow.run(
        "import importlib.metadata as m; print(m.distribution('pyspark').read_text('WHEEL'))",
        with_tensorflow.root,
    )
    assert "Root-Is-Purelib: true" in purelib.stdout, purelib.stdout  # nothing compiled
    result = with_tensorflow.run(
        """
        import numpy as np
        from sparkzoo import init_spark, keras2 as keras
        from sparkzoo.trainer import KerasEstimator

        spark = init_spark("local[2]", app_name="wheel-test")
        rng = np.random.default_rng(0)
        x = rng.normal(size=(256, 4))
        y = (x[:, 0] + x[:, 1] > 0).astype(float)
        df = spark.createDataFrame([(r.tolist(), float(t)) for r, t in zip(x, y)], ["x", "y"])
        model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
        est = KerasEstimator(
            model=model, loss="mse", optimizer="sgd", feature_cols=["x"], label_cols=["y"],
            batch_size=32, epochs=2, num_workers=2, engine="tf", verbose=0,
        )
        fitted = est.fit(df)
        rows = fitted.transform(df).collect()
        print("rows", len(rows))
        spark.stop()
        """,
        tmp_path,
        timeout=900,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    assert "rows 256" in result.stdout
