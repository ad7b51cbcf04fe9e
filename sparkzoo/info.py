"""What ``sparkzoo info`` reports: the versions of the stack and anything missing or mis-built."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import platform
import re
import shutil
import subprocess
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

import sparkzoo
from sparkzoo import extras
from sparkzoo import stack as versions


@dataclass(frozen=True)
class Stack:
    """One of the two supported stacks (docs/trainer.md, "Two stacks, one API")."""

    name: str
    python: tuple[int, int]
    tensorflow: str  # version prefix
    pyspark: str  # version prefix
    java: frozenset[str]  # major versions Spark runs on
    setup: str  # how to (re)create it

    @property
    def fix(self) -> str:
        return f"run `{self.setup}` from the sparkzoo checkout"


CLASSIC = Stack("classic", (3, 11), "2.15.", "3.5.", frozenset({"8", "11", "17"}), "make setup")
CURRENT = Stack("current", (3, 12), "2.21.", "4.", frozenset({"17", "21"}), "make setup-current")
STACKS = (CLASSIC, CURRENT)
EXPECTED_HOROVOD = "0.28.1"
FIX_SETUP = CLASSIC.fix  # Horovod exists on the classic stack only
TF_ENGINE = "tf (MultiWorkerMirroredStrategy)"


def stack_for(version: tuple[int, int] | None = None) -> Stack | None:
    """The stack this Python version belongs to (3.11: classic, 3.12: current), else None."""
    version = version or sys.version_info[:2]
    return next((s for s in STACKS if s.python == version), None)


@dataclass
class Component:
    """One line of the report. ``problem`` is set when the component is missing or mis-built."""

    name: str
    version: str | None
    detail: str = ""
    problem: str = ""
    # shown as "not installed" rather than MISSING: this stack does not use it
    absent_ok: bool = False

    @property
    def ok(self) -> bool:
        return not self.problem


def _dist_version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def _tensorflow(stack: Stack) -> list[Component]:
    try:
        import tensorflow as tf
    except Exception as exc:  # ImportError, or a broken install raising anything
        return [
            Component(
                "TensorFlow",
                None,
                problem=f"cannot import tensorflow ({exc}); "
                f"install sparkzoo[cpu] or sparkzoo[gpu], or {stack.fix}",
            ),
            Component("Keras", None, problem="needs TensorFlow"),
        ]
    tf_comp = Component("TensorFlow", tf.__version__)
    if not tf.__version__.startswith(stack.tensorflow):
        why = " (Horovod 0.28.1 does not build against newer)" if stack is CLASSIC else ""
        tf_comp.problem = (
            f"sparkzoo's {stack.name} stack needs TensorFlow {stack.tensorflow}x{why}; {stack.fix}"
        )
    gpus = tf.config.list_physical_devices("GPU")
    names = ", ".join(gpu.name.replace("/physical_device:", "") for gpu in gpus)
    tf_comp.detail = f"{len(gpus)} GPU(s): {names}" if gpus else "CPU only"
    return [tf_comp, _keras(tf, stack)]


def _keras(tf, stack: Stack) -> Component:
    """The Keras behind ``tf.keras``: Keras 2 on both stacks (tf_keras on TensorFlow >= 2.16)."""
    module = tf.keras.__name__
    if module.startswith("tf_keras"):
        return Component("Keras", _dist_version("tf_keras"), "tf.keras = tf_keras, the Keras 2 API")
    comp = Component("Keras", _dist_version("keras"), "tf.keras")
    if stack is CURRENT:
        comp.problem = (
            f"tf.keras is {module}, not tf_keras: sparkzoo needs the Keras 2 API "
            "(tf_keras installed and TF_USE_LEGACY_KERAS=1 before TensorFlow first reads "
            f"tf.keras; importing sparkzoo first sets it); {stack.fix}"
        )
    return comp


def _horovod(stack: Stack) -> Component:
    version = _dist_version("horovod")
    if version is None and stack is CURRENT:
        return Component(
            "Horovod",
            None,
            f"not part of the current stack; the classic stack has it: {CLASSIC.setup}",
            absent_ok=True,
        )
    if version is None:
        return Component("Horovod", None, problem=f"not installed; {FIX_SETUP}")
    comp = Component("Horovod", version)
    frameworks = _horovod_frameworks()
    if "tensorflow" not in frameworks:
        comp.detail = f"frameworks: {', '.join(frameworks) or 'none'}"
        comp.problem = (
            "built without TensorFlow (install TensorFlow first, then rebuild Horovod "
            f"with HOROVOD_WITH_TENSORFLOW=1); {FIX_SETUP}"
        )
        return comp
    try:
        import horovod.tensorflow as hvd
    except Exception as exc:
        comp.problem = (
            f"its TensorFlow extension does not load ({exc}); it was probably built "
            f"against another TensorFlow; {FIX_SETUP}"
        )
        return comp
    controllers = [
        n for n, built in (("gloo", hvd.gloo_built()), ("mpi", hvd.mpi_built())) if built
    ]
    ops = [
        n
        for n, built in (
            ("gloo", hvd.gloo_built()),
            ("mpi", hvd.mpi_built()),
            ("nccl", hvd.nccl_built()),
            ("ccl", hvd.ccl_built()),
        )
        if built
    ]
    comp.detail = (
        f"frameworks: {', '.join(frameworks)}; controllers: {', '.join(controllers) or 'none'}; "
        f"tensor ops: {', '.join(ops) or 'none'}"
    )
    if "gloo" not in controllers:
        comp.problem = f"built without Gloo (rebuild with HOROVOD_WITH_GLOO=1); {FIX_SETUP}"
    elif version != EXPECTED_HOROVOD:
        comp.problem = f"sparkzoo is verified with Horovod {EXPECTED_HOROVOD}"
    return comp


def _horovod_frameworks() -> list[str]:
    """Frameworks whose Horovod extension library was built (found without importing them)."""
    spec = importlib.util.find_spec("horovod")
    root = Path(spec.submodule_search_locations[0]) if spec else None
    libraries = {
        "tensorflow": "tensorflow/mpi_lib.*",
        "pytorch": "torch/mpi_lib_v2.*",
        "mxnet": "mxnet/mpi_lib.*",
    }
    return [name for name, pattern in libraries.items() if root and any(root.glob(pattern))]


def java_version() -> tuple[str | None, str]:
    """(version, path) of the ``java`` Spark will use: ``$JAVA_HOME/bin/java`` or the one on PATH."""
    java_home = os.environ.get("JAVA_HOME")
    java = os.path.join(java_home, "bin", "java") if java_home else shutil.which("java")
    if not java or not os.path.exists(java):
        return None, ""
    out = subprocess.run([java, "-version"], capture_output=True, text=True, timeout=30)
    match = re.search(r'version "([^"]+)"', out.stderr + out.stdout)
    return (match.group(1) if match else "unknown"), java


def _engine(horovod: Component) -> Component:
    """The training engines this stack can run; ``engine="auto"`` takes the first."""
    engines = ["horovod", TF_ENGINE] if horovod.version and horovod.ok else [TF_ENGINE]
    detail = "the default" if len(engines) == 1 else f"the default; also {', '.join(engines[1:])}"
    return Component("Engine", engines[0], detail)


def _java(stack: Stack) -> Component:
    version, path = java_version()
    if version is None:
        return Component(
            "Java",
            None,
            problem="no java on PATH or in $JAVA_HOME: Spark needs Java 17 "
            "(Debian: apt-get install openjdk-17-jdk-headless)",
        )
    major = version.split(".")[0] if not version.startswith("1.") else version.split(".")[1]
    comp = Component("Java", version, path)
    if major not in stack.java:
        spark = "Spark 3.5" if stack is CLASSIC else "Spark 4"
        comp.problem = (
            f"{spark} runs on Java {' or '.join(sorted(stack.java, key=int))} "
            "(sparkzoo is tested on 17)"
        )
    return comp


def _package(
    name: str, dist: str, module: str, stack: Stack, extra: str | None = None
) -> Component:
    version = _dist_version(dist)
    if version is None and extra is not None:  # optional: name the extra that brings it
        return Component(name, None, f'pip install "sparkzoo[{extra}]"', absent_ok=True)
    if version is None:
        return Component(name, None, problem=f"{dist} is not installed; {stack.fix}")
    try:
        importlib.import_module(module)
    except Exception as exc:
        return Component(name, version, problem=f"installed but `import {module}` fails: {exc}")
    return Component(name, version)


def collect() -> list[Component]:
    """Every component of the stack, in the order ``sparkzoo info`` prints them."""
    stack = stack_for()
    python = Component("Python", platform.python_version(), sys.executable)
    if stack is None:
        python.problem = "sparkzoo runs on Python 3.11 (classic stack) or 3.12 (current stack)"
        stack = CURRENT if sys.version_info[:2] > CURRENT.python else CLASSIC
    python.detail += f"; {stack.name} stack"
    horovod = _horovod(stack)
    components = [
        Component("sparkzoo", sparkzoo.__version__, os.path.dirname(sparkzoo.__file__)),
        python,
        *_tensorflow(stack),
        horovod,
        _engine(horovod),
        _package("PySpark", "pyspark", "pyspark", stack),
        _java(stack),
        _package("MLflow", "mlflow-skinny", "mlflow", stack, extra="mlflow"),
        _package("OpenCV", "opencv-python-headless", "cv2", stack, extra="apps"),
        _package("NumPy", "numpy", "numpy", stack),
        _package("PyArrow", "pyarrow", "pyarrow", stack),
        _versions(),
        _extras(stack),
    ]
    pyspark = next(c for c in components if c.name == "PySpark")
    if pyspark.ok and not (pyspark.version or "").startswith(stack.pyspark):
        pyspark.problem = (
            f"sparkzoo's {stack.name} stack needs pyspark {stack.pyspark}x; {stack.fix}"
        )
    return components


def _versions() -> Component:
    """Whether the installed versions fit together (sparkzoo/stack.py), each misfit's fix."""
    found = versions.problems()
    if not found:
        return Component("Versions", "compatible", "TensorFlow, PySpark, Horovod, NumPy, pyarrow")
    return Component("Versions", "INCOMPATIBLE", problem="; ".join(found))


def _extras(stack: Stack) -> Component:
    """Which of sparkzoo's extras are installed (docs/install.md); Horovod only counts on the
    classic stack."""
    names = [n for n in extras.EXTRAS if not (n == "horovod" and stack is CURRENT)]
    have = [name for name in names if not extras.missing(name)]
    lack = [name for name in names if name not in have]
    detail = f"not installed: {', '.join(lack)}" if lack else "all installed"
    return Component("Extras", ", ".join(have) or "none", detail)


def format_report(components: list[Component]) -> str:
    width = max(len(c.name) for c in components) + 2
    lines = []
    for c in components:
        status = c.version or ("not installed" if c.absent_ok else "MISSING")
        line = f"{c.name:<{width}}{status}"
        if c.detail:
            line += f"  ({c.detail})"
        if c.problem:
            line += f"\n{'':<{width}}PROBLEM: {c.problem}"
        lines.append(line)
    bad = [c.name for c in components if not c.ok]
    lines.append("")
    lines.append(
        f"problems: {', '.join(bad)}" if bad else "all components present and built correctly"
    )
    return "\n".join(lines)


def as_dicts(components: list[Component]) -> list[dict]:
    return [asdict(c) | {"ok": c.ok} for c in components]
