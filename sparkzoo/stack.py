"""Do the installed TensorFlow, PySpark, Horovod, NumPy and pyarrow fit together?

sparkzoo installs none of TensorFlow, PySpark or Horovod itself (a user's cluster has them), so
it checks their versions before it uses them: :func:`check` runs when ``sparkzoo.models`` or
``sparkzoo.trainer`` is imported, and ``sparkzoo info`` lists the same problems. Each problem
names the command that fixes it, instead of a traceback from inside another library later
(``import pyarrow`` failing on NumPy 1, TensorFlow 2.15 crashing on NumPy 2). Only installed
versions are read (package metadata): nothing is imported, so the check costs milliseconds.

Example::

    from sparkzoo import stack
    stack.problems()   # ['pyarrow 26.0.1 needs NumPy >= 2 and NumPy 1.26.4 is installed: ...']
"""

from __future__ import annotations

import importlib.metadata
import os

from packaging.version import InvalidVersion, Version

# The distributions that provide the `tensorflow` module, the CPU-only one first.
TENSORFLOW_DISTRIBUTIONS = ("tensorflow-cpu", "tensorflow", "tensorflow-intel", "tensorflow-macos")
OLDEST_TENSORFLOW = Version("2.15")
OLDEST_PYSPARK = Version("3.5")
HOROVOD = Version("0.28.1")
# Set to 1 to import sparkzoo over a stack it refuses (at your own risk).
SKIP_VARIABLE = "SPARKZOO_SKIP_STACK_CHECK"


class StackError(ImportError):
    """The installed versions cannot work together; the message says how to fix each."""


def version(distribution: str) -> Version | None:
    """The installed version of ``distribution``, or None."""
    try:
        return Version(importlib.metadata.version(distribution))
    except (importlib.metadata.PackageNotFoundError, InvalidVersion):
        return None


def tensorflow_version() -> tuple[str, Version] | None:
    """``(distribution, version)`` of the installed TensorFlow, or None."""
    for name in TENSORFLOW_DISTRIBUTIONS:
        found = version(name)
        if found is not None:
            return name, found
    return None


def problems() -> list[str]:
    """Every incompatibility between the installed versions, each with its fix (empty: none)."""
    found: list[str] = []
    numpy = version("numpy")
    tf = tensorflow_version()
    if tf is not None:
        dist, tf_version = tf
        minor = f"{tf_version.major}.{tf_version.minor}"
        if tf_version < OLDEST_TENSORFLOW:
            found.append(
                f"{dist} {tf_version} is older than sparkzoo supports (2.15 or newer): "
                f'pip install "{dist}==2.15.1" (with Horovod) or "{dist}==2.21.*"'
            )
        elif tf_version.release[:2] < (2, 16) and numpy is not None and numpy.major >= 2:
            found.append(
                f"{dist} {tf_version} was built for NumPy 1 and NumPy {numpy} is installed: "
                'pip install "numpy<2"'
            )
        if tf_version.release[:2] >= (2, 16):
            tf_keras = version("tf-keras")
            if tf_keras is None:
                found.append(
                    f"{dist} {tf_version} makes tf.keras Keras 3; sparkzoo's models use the "
                    f'Keras 2 API of tf_keras, which is not installed: pip install "tf_keras=={minor}.*"'
                )
            elif tf_keras.release[:2] != tf_version.release[:2]:
                found.append(
                    f"tf_keras {tf_keras} does not match {dist} {tf_version}: "
                    f'pip install "tf_keras=={minor}.*"'
                )
    horovod = version("horovod")
    if horovod is not None and numpy is not None and numpy.major >= 2:
        found.append(
            f"Horovod {horovod} does not work with NumPy {numpy} (its last release predates "
            'NumPy 2): pip install "numpy<2"'
        )
    pyarrow = version("pyarrow")
    if pyarrow is not None and pyarrow.major >= 26 and numpy is not None and numpy.major < 2:
        found.append(
            f"pyarrow {pyarrow} needs NumPy >= 2 and NumPy {numpy} is installed: "
            'pip install "pyarrow<26"'
        )
    pyspark = version("pyspark")
    if pyspark is not None and pyspark < OLDEST_PYSPARK:
        found.append(
            f"PySpark {pyspark} is older than sparkzoo supports (barrier mapInArrow needs 3.5 "
            'or newer): use a Spark 3.5 or 4 cluster, or pip install "pyspark==3.5.*"'
        )
    return found


def check(what: str) -> None:
    """Raise :class:`StackError` listing :func:`problems`, and a TensorFlow that is not
    installed at all, before ``what`` is used. ``SPARKZOO_SKIP_STACK_CHECK=1`` turns the
    check off."""
    if os.environ.get(SKIP_VARIABLE) == "1":
        return
    found = problems()
    if tensorflow_version() is None:
        found.insert(
            0,
            "TensorFlow is not installed: use your cluster's, or "
            'pip install "sparkzoo[cpu]" (or "sparkzoo[gpu]")',
        )
    if found:
        lines = "\n".join(f"  - {p}" for p in found)
        raise StackError(
            f"{what} cannot run on the installed versions:\n{lines}\n"
            f"(`sparkzoo info` shows the whole stack; {SKIP_VARIABLE}=1 skips this check)"
        )
