"""Chainable image preprocessing that runs the same on a numpy image and on a Spark column.

A transform takes an image as a numpy array in height x width x channels (HWC) layout, ``uint8``
or ``float32`` (a 2-D grey image is treated as one channel), and returns a new one. Transforms
compose with :class:`Compose` or ``.then()``; the chain is called on one image locally, or given
to :meth:`sparkzoo.datasets.images.ImageSet.transform`, which runs the same code on every row
of a Spark DataFrame.

Random transforms draw from a ``numpy.random.Generator``. Spark derives one generator per row
from the row's path and a seed with :func:`row_rng`, so the same file gives the same result
locally and through Spark::

    from sparkzoo.datasets.transforms import (CenterCrop, ChannelNormalize, Compose,
        HorizontalFlip, Resize, ToTensor, row_rng)

    chain = Compose([Resize(256), CenterCrop(224), HorizontalFlip()]).then(
        ChannelNormalize(mean=(124, 116, 104), std=(58, 57, 57))).then(ToTensor("CHW"))
    tensor = chain(image, row_rng("/data/cats/1.jpg", seed=0))   # (3, 224, 224) float32
    imageset.transform(chain, seed=0)                             # the same, row by row

Nothing here imports pyspark: the module is usable wherever numpy and OpenCV are.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence

import cv2
import numpy as np

_INTERPOLATION = {
    "nearest": cv2.INTER_NEAREST,
    "linear": cv2.INTER_LINEAR,
    "cubic": cv2.INTER_CUBIC,
    "area": cv2.INTER_AREA,
}


def strip_file_scheme(path: str) -> str:
    """``path`` without a ``file:`` scheme: the key of its random draws, and where it is read.

    Spark's ``binaryFile`` source names a local file ``file:/dir/a.jpg``; a local caller
    usually has ``/dir/a.jpg``. Both give ``/dir/a.jpg``; other schemes (``hdfs://``) keep
    their full URI.
    """
    # Spark writes local paths unencoded (``file:/a b.jpg``), so strip the scheme, not parse.
    if path.startswith("file://"):
        return path[len("file://") :]
    if path.startswith("file:"):
        return path[len("file:") :]
    return path


def row_rng(path: str, seed: int = 0) -> np.random.Generator:
    """The random generator Spark uses for the row of file ``path`` under ``seed``.

    Example::

        chain(image, row_rng("/photos/cat.jpg", seed=3))  # same as ImageSet...transform(chain, 3)
    """
    digest = hashlib.sha256(f"{int(seed)}\0{strip_file_scheme(str(path))}".encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:8], "little"))


def as_hwc(image: np.ndarray) -> np.ndarray:
    """``image`` with an explicit channel axis (a 2-D grey image becomes H x W x 1)."""
    image = np.asarray(image)
    if image.ndim == 2:
        return image[:, :, None]
    if image.ndim != 3:
        raise ValueError(f"expected an image of shape (H, W) or (H, W, C), got {image.shape}")
    return image


def _generator(rng: np.random.Generator | int | None, op: Transform) -> np.random.Generator:
    if isinstance(rng, np.random.Generator):
        return rng
    if rng is None:
        raise ValueError(
            f"{op!r} is random: pass a numpy Generator or a seed, "
            "e.g. chain(image, row_rng(path, seed))"
        )
    return np.random.default_rng(int(rng))


def _pair(size: int | Sequence[int], name: str) -> tuple[int, int]:
    height, width = (size, size) if isinstance(size, int | np.integer) else tuple(size)
    if height <= 0 or width <= 0:
        raise ValueError(f"{name} size must be positive, got {(height, width)}")
    return int(height), int(width)


def _restore_dtype(values: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """Float results back to the input's type: uint8 images are clipped and rounded."""
    if dtype == np.uint8:
        return np.clip(np.rint(values), 0, 255).astype(np.uint8)
    return values.astype(dtype, copy=False)


class Transform:
    """One preprocessing step. Subclasses implement :meth:`apply`; ``random`` ones use ``rng``."""

    random: bool = False
    # A step that changes the layout away from HWC (ToTensor) must end its chain.
    final: bool = False

    def apply(self, image: np.ndarray, rng: np.random.Generator | None) -> np.ndarray:
        raise NotImplementedError

    def __call__(
        self, image: np.ndarray, rng: np.random.Generator | int | None = None
    ) -> np.ndarray:
        """Run on one image (H x W [x C]); ``rng`` (a Generator or a seed) for random steps."""
        generator = _generator(rng, self) if self.random else None
        return self.apply(as_hwc(image), generator)

    def then(self, other: Transform) -> Compose:
        """This step followed by ``other``: ``Resize(256).then(CenterCrop(224))``."""
        return Compose([self, other])

    def __repr__(self) -> str:
        fields = ", ".join(f"{k}={v!r}" for k, v in vars(self).items() if not k.startswith("_"))
        return f"{type(self).__name__}({fields})"


class Compose(Transform):
    """Several steps run in order, one random generator shared by all of them.

    Example::

        chain = Compose([Resize((300, 300)), HorizontalFlip(p=0.5)])
        out = chain(image, rng=np.random.default_rng(0))
    """

    def __init__(self, steps: Iterable[Transform]):
        flat: list[Transform] = []
        for step in steps:
            if not isinstance(step, Transform):
                raise TypeError(f"Compose takes Transform steps, got {type(step).__name__}")
            flat.extend(step.steps if isinstance(step, Compose) else [step])
        for step in flat[:-1]:
            if step.final:
                raise ValueError(f"{step!r} changes the layout and must be the last step")
        self.steps = flat
        self.random = any(s.random for s in flat)
        self.final = bool(flat) and flat[-1].final

    def apply(self, image: np.ndarray, rng: np.random.Generator | None) -> np.ndarray:
        for step in self.steps:
            image = step.apply(image, rng if step.random else None)
        return image

    def then(self, other: Transform) -> Compose:
        return Compose([*self.steps, other])

    def __repr__(self) -> str:
        return f"Compose({self.steps!r})"


class Resize(Transform):
    """Resize to ``(height, width)``, or with an int, make the shorter side that long.

    Example: ``Resize((224, 224))``, ``Resize(256)`` (aspect ratio kept).
    """

    def __init__(self, size: int | Sequence[int], interpolation: str = "linear"):
        if interpolation not in _INTERPOLATION:
            raise ValueError(
                f"interpolation must be one of {sorted(_INTERPOLATION)}, got {interpolation!r}"
            )
        self.size = size if isinstance(size, int) else _pair(size, "Resize")
        if isinstance(size, int) and size <= 0:
            raise ValueError(f"Resize size must be positive, got {size}")
        self.interpolation = interpolation

    def apply(self, image, rng):
        height, width = image.shape[:2]
        if isinstance(self.size, int):
            ratio = self.size / min(height, width)
            target = (max(1, round(height * ratio)), max(1, round(width * ratio)))
        else:
            target = self.size
        out = cv2.resize(
            image, (target[1], target[0]), interpolation=_INTERPOLATION[self.interpolation]
        )
        return as_hwc(out)


def _check_fits(op: Transform, image: np.ndarray, height: int, width: int) -> None:
    if image.shape[0] < height or image.shape[1] < width:
        raise ValueError(
            f"{op!r} needs an image of at least {height}x{width}, "
            f"got {image.shape[0]}x{image.shape[1]}"
        )


class CenterCrop(Transform):
    """Cut the central ``(height, width)`` region. Example: ``CenterCrop(224)``."""

    def __init__(self, size: int | Sequence[int]):
        self.size = _pair(size, "CenterCrop")

    def apply(self, image, rng):
        height, width = self.size
        _check_fits(self, image, height, width)
        top = (image.shape[0] - height) // 2
        left = (image.shape[1] - width) // 2
        return image[top : top + height, left : left + width].copy()


class RandomCrop(Transform):
    """Cut a ``(height, width)`` region at a random place. Example: ``RandomCrop(224)``."""

    random = True

    def __init__(self, size: int | Sequence[int]):
        self.size = _pair(size, "RandomCrop")

    def apply(self, image, rng):
        height, width = self.size
        _check_fits(self, image, height, width)
        top = int(rng.integers(0, image.shape[0] - height + 1))
        left = int(rng.integers(0, image.shape[1] - width + 1))
        return image[top : top + height, left : left + width].copy()


class Expand(Transform):
    """Zoom out (SSD's "expand"): with probability ``p``, place the image at a random spot of a
    canvas ``r`` times larger (``r`` uniform in ``[1, max_ratio]``) filled with ``fill``.

    The default fill is the ImageNet mean pixel in RGB order, as SSD uses. Example:
    ``Expand(max_ratio=4.0, p=0.5)``.
    """

    random = True

    def __init__(
        self,
        max_ratio: float = 4.0,
        fill: float | Sequence[float] = (124.0, 116.0, 104.0),
        p: float = 0.5,
    ):
        if max_ratio < 1:
            raise ValueError(f"Expand max_ratio must be >= 1, got {max_ratio}")
        if not 0 <= p <= 1:
            raise ValueError(f"Expand p must be in [0, 1], got {p}")
        self.max_ratio = float(max_ratio)
        self.fill = fill
        self.p = float(p)

    def apply(self, image, rng):
        if rng.random() >= self.p:
            return image
        ratio = float(rng.uniform(1.0, self.max_ratio))
        height, width, channels = image.shape
        out_h, out_w = int(height * ratio), int(width * ratio)
        top = int(rng.integers(0, out_h - height + 1))
        left = int(rng.integers(0, out_w - width + 1))
        fill = np.asarray(self.fill, np.float32).ravel()
        if fill.size not in (1, channels):
            raise ValueError(
                f"{self!r}: fill has {fill.size} values, the image {channels} channels"
            )
        canvas = np.empty((out_h, out_w, channels), image.dtype)
        canvas[...] = _restore_dtype(np.broadcast_to(fill, (channels,)), image.dtype)
        canvas[top : top + height, left : left + width] = image
        return canvas


class HorizontalFlip(Transform):
    """Mirror left-right with probability ``p``. Example: ``HorizontalFlip(p=0.5)``."""

    random = True

    def __init__(self, p: float = 0.5):
        if not 0 <= p <= 1:
            raise ValueError(f"HorizontalFlip p must be in [0, 1], got {p}")
        self.p = float(p)

    def apply(self, image, rng):
        return image[:, ::-1].copy() if rng.random() < self.p else image


class ColorJitter(Transform):
    """Random brightness, contrast and saturation, each a factor drawn from
    ``[max(0, 1 - x), 1 + x]`` and applied in that order (saturation needs 3 channels).

    ``uint8`` images stay ``uint8`` (clipped to 0..255). Example: ``ColorJitter(0.3, 0.3, 0.3)``.
    """

    random = True

    def __init__(self, brightness: float = 0.0, contrast: float = 0.0, saturation: float = 0.0):
        for name, value in (
            ("brightness", brightness),
            ("contrast", contrast),
            ("saturation", saturation),
        ):
            if value < 0:
                raise ValueError(f"ColorJitter {name} must be >= 0, got {value}")
        self.brightness = float(brightness)
        self.contrast = float(contrast)
        self.saturation = float(saturation)

    def _factor(self, rng: np.random.Generator, amount: float) -> float:
        return float(rng.uniform(max(0.0, 1.0 - amount), 1.0 + amount))

    def apply(self, image, rng):
        dtype = image.dtype
        values = image.astype(np.float32)
        if self.brightness:
            values *= self._factor(rng, self.brightness)
        if self.contrast:
            factor = self._factor(rng, self.contrast)
            mean = _grey(values).mean()
            values = (values - mean) * factor + mean
        if self.saturation and values.shape[2] == 3:
            factor = self._factor(rng, self.saturation)
            grey = _grey(values)[:, :, None]
            values = (values - grey) * factor + grey
        if dtype == np.uint8:
            return _restore_dtype(values, dtype)
        return values.astype(dtype, copy=False)


def _grey(values: np.ndarray) -> np.ndarray:
    """Luma (ITU-R 601 weights, RGB order) of an H x W x C float image."""
    if values.shape[2] != 3:
        return values.mean(axis=2)
    return values @ np.array([0.299, 0.587, 0.114], np.float32)


class ChannelNormalize(Transform):
    """``(image - mean) / std`` per channel, as float32.

    Example: ``ChannelNormalize(mean=(124, 116, 104), std=(58, 57, 57))``.
    """

    def __init__(self, mean: float | Sequence[float], std: float | Sequence[float] = 1.0):
        self.mean = tuple(np.atleast_1d(np.asarray(mean, np.float64)).tolist())
        self.std = tuple(np.atleast_1d(np.asarray(std, np.float64)).tolist())
        if any(s == 0 for s in self.std):
            raise ValueError(f"ChannelNormalize std must be non-zero, got {self.std}")

    def apply(self, image, rng):
        channels = image.shape[2]
        for name, values in (("mean", self.mean), ("std", self.std)):
            if len(values) not in (1, channels):
                raise ValueError(
                    f"{self!r}: {name} has {len(values)} values, the image {channels} channels"
                )
        mean = np.asarray(self.mean, np.float32)
        std = np.asarray(self.std, np.float32)
        return (image.astype(np.float32) - mean) / std


class ToTensor(Transform):
    """Float32 in the layout a model takes: ``"CHW"`` (channels first) or ``"HWC"``;
    ``scale`` multiplies the values (``1/255`` maps bytes to 0..1). Must be the last step.

    Example: ``ToTensor("CHW", scale=1 / 255)``.
    """

    final = True

    def __init__(self, layout: str = "CHW", scale: float | None = None):
        if layout not in ("CHW", "HWC"):
            raise ValueError(f"ToTensor layout must be 'CHW' or 'HWC', got {layout!r}")
        self.layout = layout
        self.scale = scale

    def apply(self, image, rng):
        out = image.astype(np.float32)
        if self.scale is not None:
            out *= np.float32(self.scale)
        if self.layout == "CHW":
            out = np.ascontiguousarray(out.transpose(2, 0, 1))
        return out


def output_layout(chain: Transform | None) -> str:
    """The layout a chain's output is in: ``"CHW"`` after ``ToTensor("CHW")``, else ``"HWC"``."""
    steps = chain.steps if isinstance(chain, Compose) else [chain] if chain else []
    if steps and isinstance(steps[-1], ToTensor):
        return steps[-1].layout
    return "HWC"


__all__ = [
    "CenterCrop",
    "ChannelNormalize",
    "ColorJitter",
    "Compose",
    "Expand",
    "HorizontalFlip",
    "RandomCrop",
    "Resize",
    "ToTensor",
    "Transform",
    "as_hwc",
    "output_layout",
    "row_rng",
    "strip_file_scheme",
]
