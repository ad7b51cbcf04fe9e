"""One registry for every model family, every pretrained tag and every packaged detector.

Names are ``family`` (an architecture, random initialisation) or ``family.tag`` (that
architecture with weights we trained and ship, described by a card), as in timm and
torchvision. Family modules register their builders with :func:`register`; pretrained tags
are the cards found in ``sparkzoo/models/pretrained/*.json`` (written by the recipes in
``sparkzoo.models.recipes``); packaged detectors from other libraries (OpenCV's Haar cascades,
MTCNN) register a loader with :func:`register_packaged`.

Example::

    from sparkzoo import models
    models.list("resnet*")                    # ['resnet18', 'resnet50']
    net = models.get("resnet18", input_shape=(64, 64, 3), num_classes=5)
    lenet = models.get("lenet5.mnist")        # shipped weights, sha256-checked
    models.card("lenet5.mnist").metrics       # {'accuracy': 0.97..., ...}
"""

from __future__ import annotations

import builtins
import difflib
import fnmatch
import hashlib
import inspect
import json
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from sparkzoo import keras2 as keras
from sparkzoo import stack

PRETRAINED_DIR = Path(__file__).resolve().parent / "pretrained"

# Example-batch makers: (config, batch size, rng) -> (inputs, targets), used by the tests that
# fit every family for a step and by anyone who wants a shape-correct batch.
ExampleFn = Callable[[dict, int, np.random.Generator], tuple[Any, Any]]


class UnknownModelError(KeyError):
    """No family, tag or packaged model of that name; the message lists the closest names."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


class WeightsError(RuntimeError):
    """Weights that cannot be used: wrong sha256, a truncated file, or the wrong architecture."""


@dataclass(frozen=True)
class Family:
    """An architecture: its builder, what it is for, and a tiny configuration for tests."""

    name: str
    build: Callable[..., Any]
    task: str
    summary: str
    tiny: dict
    example: ExampleFn | None = None
    loss: Any = None  # a Keras loss, or a callable(config) -> loss for config-dependent losses
    metrics: tuple = ()

    @property
    def defaults(self) -> dict:
        """The builder's keyword arguments and their defaults."""
        return {
            p.name: p.default
            for p in inspect.signature(self.build).parameters.values()
            if p.default is not inspect.Parameter.empty
        }

    def loss_for(self, config: dict) -> Any:
        if callable(self.loss) and not _is_keras_loss(self.loss):
            return self.loss({**self.defaults, **config})
        return self.loss


def _is_keras_loss(obj: Any) -> bool:
    return isinstance(obj, keras.losses.Loss)


@dataclass(frozen=True)
class ModelCard:
    """What a name is: for a tag, where its weights came from and how well they do.

    Fields follow torchvision's weight ``meta`` and timm's ``PretrainedCfg``: the input the
    model expects, the preprocessing to apply (call :func:`preprocessor`, never re-type it),
    label names, parameter count, weights file, size and sha256, the data (name, licence,
    split), metrics on held-out data (with baselines measured in the same run), and the
    command that reproduces the weights.
    """

    name: str
    family: str
    task: str
    summary: str = ""
    config: dict = field(default_factory=dict)
    input: dict = field(default_factory=dict)
    preprocessing: dict = field(default_factory=dict)
    labels: list | None = None
    params: int | None = None
    file: str | None = None
    file_size: int | None = None
    sha256: str | None = None
    data: dict = field(default_factory=dict)
    metrics: dict = field(default_factory=dict)
    baselines: dict = field(default_factory=dict)
    recipe: str | None = None
    notes: str = ""
    kind: str = "family"  # "family" | "pretrained" | "packaged"

    def to_dict(self) -> dict:
        return asdict(self)

    def to_text(self) -> str:
        """A human-readable card, as ``sparkzoo models card NAME`` prints it."""
        lines = [f"{self.name}  ({self.kind}; family {self.family}; task {self.task})"]
        if self.summary:
            lines.append(f"  {self.summary}")
        for key in ("input", "preprocessing", "config", "data", "metrics", "baselines"):
            value = getattr(self, key)
            if value:
                lines.append(f"  {key}: {json.dumps(value, sort_keys=True)}")
        if self.labels:
            lines.append(f"  labels: {', '.join(map(str, self.labels))}")
        for key in ("params", "file", "file_size", "sha256", "recipe"):
            value = getattr(self, key)
            if value is not None:
                lines.append(
                    f"  {key}: {value:,}" if isinstance(value, int) else f"  {key}: {value}"
                )
        if self.notes:
            lines.append(f"  notes: {self.notes}")
        return "\n".join(lines)


_FAMILIES: dict[str, Family] = {}
_PACKAGED: dict[str, tuple[Callable[[], Any], ModelCard]] = {}


def register(
    name: str,
    *,
    task: str,
    tiny: dict,
    example: ExampleFn | None = None,
    loss: Any = None,
    metrics: tuple = (),
    summary: str | None = None,
) -> Callable:
    """Decorator: register a builder ``fn(**config) -> keras.Model`` as family ``name``.

    ``tiny`` is a configuration small enough to build and fit in a fraction of a second;
    ``example`` makes a matching batch; ``loss`` is what the family trains with (a Keras loss,
    or a callable of the configuration for config-dependent losses such as SSD's).

    Example::

        @register("lenet5", task="image-classification", tiny={"input_shape": (12, 12, 1)},
                  example=image_classification_example, loss="sparse_categorical_crossentropy")
        def lenet5(input_shape=(28, 28, 1), num_classes=10): ...
    """
    if "." in name:
        raise ValueError(f"family names have no dots ({name!r}); tags are 'family.tag'")

    def decorate(fn: Callable) -> Callable:
        if name in _FAMILIES and _FAMILIES[name].build is not fn:
            raise ValueError(f"model family {name!r} is registered twice")
        doc = inspect.getdoc(fn) or ""
        _FAMILIES[name] = Family(
            name=name,
            build=fn,
            task=task,
            summary=summary or doc.split("\n\n")[0].replace("\n", " "),
            tiny=dict(tiny),
            example=example,
            loss=loss,
            metrics=tuple(metrics),
        )
        return fn

    return decorate


def register_packaged(name: str, loader: Callable[[], Any], card: ModelCard) -> None:
    """Register a ready-made model from another package (``haar.face``, ``mtcnn.face``)."""
    _PACKAGED[name] = (loader, card)


def _ensure_loaded() -> None:
    # Family modules register themselves on import; importing the zoo's modules here (and
    # not in sparkzoo/models/__init__) keeps `import sparkzoo.models` free of TensorFlow.
    if "sparkzoo.models._families" not in sys.modules:
        # Before TensorFlow loads: a mix of versions that cannot work is refused with its fix.
        stack.check("sparkzoo.models")
    from sparkzoo.models import _families  # noqa: F401


def _pretrained_cards() -> dict[str, ModelCard]:
    cards = {}
    for path in sorted(PRETRAINED_DIR.glob("*.json")):
        data = json.loads(path.read_text())
        cards[data["name"]] = ModelCard(**{**data, "kind": "pretrained"})
    return cards


def families() -> dict[str, Family]:
    _ensure_loaded()
    return dict(_FAMILIES)


def family(name: str) -> Family:
    _ensure_loaded()
    if name not in _FAMILIES:
        raise _unknown(name)
    return _FAMILIES[name]


def list(pattern: str | None = None, pretrained: bool | None = None) -> builtins.list[str]:
    """Every registered name, sorted; ``pattern`` is a shell glob (``"ssd*"``, ``"*.mnist"``).

    ``pretrained=True`` keeps the names that come with weights (tags and packaged detectors),
    ``False`` the bare families, ``None`` both.
    """
    _ensure_loaded()
    names: set[str] = set()
    if pretrained in (None, False):
        names |= set(_FAMILIES)
    if pretrained in (None, True):
        names |= set(_pretrained_cards()) | set(_PACKAGED)
    if pattern:
        names = {n for n in names if fnmatch.fnmatchcase(n, pattern)}
    return sorted(names)


def _unknown(name: str) -> UnknownModelError:
    known = list()
    close = difflib.get_close_matches(name, known, n=5, cutoff=0.4)
    family_part = name.split(".")[0]
    close += [n for n in known if n.split(".")[0] == family_part and n not in close]
    hint = f"; closest: {', '.join(close[:6])}" if close else ""
    return UnknownModelError(
        f"unknown model {name!r}{hint} (sparkzoo models list shows all {len(known)})"
    )


def card(name: str) -> ModelCard:
    """The card of a family, a pretrained tag or a packaged model."""
    _ensure_loaded()
    cards = _pretrained_cards()
    if name in cards:
        return cards[name]
    if name in _PACKAGED:
        return _PACKAGED[name][1]
    if name in _FAMILIES:
        fam = _FAMILIES[name]
        tags = [t for t in cards if t.split(".")[0] == name]
        notes = f"pretrained: {', '.join(tags)}" if tags else "no pretrained weights"
        return ModelCard(
            name=name,
            family=name,
            task=fam.task,
            summary=fam.summary,
            config=_jsonable(fam.defaults),
            notes=notes,
        )
    raise _unknown(name)


def get(name: str, pretrained: bool | None = None, **overrides: Any) -> Any:
    """Build a model by name.

    - ``family``: the architecture with random weights; ``overrides`` are builder arguments.
    - ``family.tag`` (or ``family`` with ``pretrained=True``, which takes the family's first
      tag): the architecture of the card with its shipped weights, checked against the card's
      sha256. Overrides that change no weight shape (``dropout``...) are allowed; to change
      the classes, use :func:`sparkzoo.models.transfer.new_head`.
    - a packaged name (``haar.face``): the ready-made detector.
    """
    _ensure_loaded()
    if name in _PACKAGED:
        return _PACKAGED[name][0]()
    cards = _pretrained_cards()
    if name in _FAMILIES and pretrained:
        tags = sorted(t for t in cards if t.split(".")[0] == name)
        if not tags:
            raise UnknownModelError(f"model family {name!r} has no pretrained weights")
        name = tags[0]
    if name in cards:
        if pretrained is False:
            raise ValueError(f"{name!r} names pretrained weights; use {name.split('.')[0]!r}")
        return _build_pretrained(cards[name], overrides)
    if name in _FAMILIES:
        return _FAMILIES[name].build(**overrides)
    raise _unknown(name)


def _build_pretrained(card_: ModelCard, overrides: dict) -> Any:
    fam = family(card_.family)
    model = fam.build(**{**_from_json(card_.config), **overrides})
    load_verified_weights(model, PRETRAINED_DIR / card_.file, card_.sha256)
    return model


def sha256_of(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def load_verified_weights(model: Any, path: str | Path, sha256: str | None) -> Any:
    """Load Keras weights from a local file after checking its sha256 (when one is given)."""
    path = Path(path)
    if not path.exists():
        raise WeightsError(f"weights file {path} does not exist")
    if sha256:
        actual = sha256_of(path)
        if actual != sha256:
            raise WeightsError(
                f"weights file {path} has sha256 {actual}, expected {sha256} "
                "(a truncated or different file)"
            )
    try:
        model.load_weights(str(path))
    except (ValueError, OSError) as err:
        raise WeightsError(f"cannot load weights {path} into {model.name}: {err}") from err
    return model


def preprocessor(name: str) -> Callable[[np.ndarray], np.ndarray]:
    """The card's preprocessing as a function of a batch (or one image) of raw values."""
    model_card = card(name)
    expected = tuple(model_card.input.get("shape", ()))
    return lambda batch: apply_preprocessing(model_card.preprocessing, batch, expected, name)


def apply_preprocessing(
    spec: dict, batch: Any, expected_shape: tuple = (), name: str = "model"
) -> np.ndarray:
    """Apply a card's preprocessing ``spec`` to a batch of raw values.

    Keys: ``scale`` (multiply), ``mean``/``std`` (per channel, after scaling). A batch whose
    trailing shape is not ``expected_shape`` raises an error naming both shapes.
    """
    x = np.asarray(batch, dtype="float32")
    expected = tuple(expected_shape)
    if expected and x.shape[-len(expected) :] != expected:
        if x.ndim == len(expected) - 1 and x.shape == expected[:-1] and expected[-1] == 1:
            x = x[..., None]  # one grey image without its channel axis
        else:
            raise ValueError(
                f"{name} expects input of shape (batch, {', '.join(map(str, expected))}), "
                f"got {x.shape}"
            )
    if "scale" in spec:
        x = x * np.float32(spec["scale"])
    if "mean" in spec:
        x = x - np.asarray(spec["mean"], dtype="float32")
    if "std" in spec:
        x = x / np.asarray(spec["std"], dtype="float32")
    return x


def check_input(model: Any, x: Any) -> None:
    """Raise a ValueError naming the expected and actual shape when ``x`` does not fit ``model``."""
    inputs = x if isinstance(x, (builtins.list, tuple)) else [x]
    specs = model.inputs
    if len(inputs) != len(specs):
        raise ValueError(f"{model.name} takes {len(specs)} inputs, got {len(inputs)}")
    for value, spec in zip(inputs, specs, strict=True):
        want = tuple(spec.shape[1:])
        have = tuple(np.shape(value)[1:])
        if len(want) != len(have) or any(
            w is not None and w != h for w, h in zip(want, have, strict=True)
        ):
            raise ValueError(
                f"{model.name} input {spec.name!r} expects shape (batch, "
                f"{', '.join('any' if w is None else str(w) for w in want)}), got {np.shape(value)}"
            )


def _jsonable(config: dict) -> dict:
    return {k: builtins.list(v) if isinstance(v, tuple) else v for k, v in config.items()}


def _from_json(config: dict) -> dict:
    # JSON has no tuples; builders take shapes as tuples.
    return {
        k: tuple(v) if isinstance(v, builtins.list) and k.endswith("shape") else v
        for k, v in config.items()
    }


# ---- example batches shared by families -------------------------------------------------


def image_classification_example(config: dict, n: int, rng: np.random.Generator):
    shape = tuple(config.get("input_shape", (32, 32, 3)))
    classes = config.get("num_classes", 10)
    return rng.random((n, *shape), dtype="float32"), rng.integers(0, classes, n)
