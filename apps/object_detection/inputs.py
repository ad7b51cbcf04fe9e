"""The object-detection app's default inputs, written once and reused, and their ground truth.

- :func:`materialise_scenes`: the COMPOSED detection scenes (real MNIST digits pasted on real
  scikit-image photographs, synthetic placement) as PNG files plus COCO ``annotations.json``;
- :func:`materialise_photos`: real photographs, for the face detectors;
- :func:`default_input`: one of them in a cache folder, written atomically the first time;
- :func:`ground_truth`: the boxes and classes of a folder's ``annotations.json``.

Example::

    folder = default_input("ssd_lite.scenes", scenes=50)
    truth = ground_truth(folder)
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Sequence

import numpy as np

from sparkzoo import fs
from sparkzoo.datasets.images import png_bytes
from sparkzoo.datasets.loaders import photo
from sparkzoo.datasets.readers import read_coco
from sparkzoo.datasets.synthetic import detection_scenes

FACE_DETECTORS = ("haar.face", "mtcnn.face")
FACE_PHOTOS = ("astronaut", "coffee", "chelsea", "camera", "rocket", "page")


def image_id(path: str) -> str:
    """The id of an image: its file name without the extension."""
    return os.path.splitext(path.rstrip("/").rsplit("/", 1)[-1])[0]


def materialise_scenes(
    folder: str, n: int = 200, subset: str = "test", seed: int = 0, image_size: int = 96
) -> str:
    """Write the COMPOSED detection scenes (real MNIST digits on real photographs,
    ``detection_split``'s held-out scenes with the detector cards' seed and size) under
    ``folder``: ``images/*.png`` and COCO ``annotations.json``. Returns ``folder``.

    Example::

        materialise_scenes("/data/scenes", n=200)       # the cards' 200 held-out scenes
    """
    detection_scenes(n, image_size=image_size, seed=seed, subset=subset).to_coco(folder)
    return folder


def materialise_photos(folder: str, names: Sequence[str] = FACE_PHOTOS) -> str:
    """Write real photographs (``sparkzoo.datasets.photo``: scikit-image's) as PNGs."""
    fs.makedirs(folder)
    for name in names:
        fs.write_bytes(fs.join(folder, f"{name}.png"), png_bytes(photo(name)))
    return folder


def cache_dir() -> str:
    """Where the default inputs are materialised: ``$SPARKZOO_APP_CACHE`` or
    ``~/.cache/sparkzoo/apps``, then ``object_detection``."""
    base = os.environ.get("SPARKZOO_APP_CACHE") or os.path.expanduser("~/.cache/sparkzoo/apps")
    return os.path.join(base, "object_detection")


def default_input(detector: str, scenes: int = 200) -> str:
    """The packaged real input for ``detector``, written once to :func:`cache_dir` and reused
    (atomically: a half-written folder is never taken for a finished one): the first
    ``scenes`` COMPOSED held-out scenes for the digit detectors, the real photos for the
    face detectors.

    Example::

        default_input("ssd_lite.scenes")     # ~/.cache/sparkzoo/apps/object_detection/...
    """
    if detector in FACE_DETECTORS:
        name, make = "photos", lambda d: materialise_photos(d)
    else:
        name, make = f"scenes-test-{scenes}", lambda d: materialise_scenes(d, n=scenes)
    target = os.path.join(cache_dir(), name)
    if os.path.isdir(target):
        return target
    os.makedirs(cache_dir(), exist_ok=True)
    staging = tempfile.mkdtemp(prefix=f".{name}-", dir=cache_dir())
    try:
        make(staging)
        os.rename(staging, target)
    except OSError:
        if not os.path.isdir(target):
            raise
    finally:
        if os.path.isdir(staging):
            shutil.rmtree(staging)  # another process finished first, or the write failed
    return target


def ground_truth(folder: str) -> dict[str, tuple[np.ndarray, np.ndarray]] | None:
    """``{image id: (boxes (k, 4) normalised, class ids (k,))}`` from ``folder``'s COCO
    ``annotations.json`` (local or hdfs://), or None when there is none. Class ids are the
    digits (COCO category names)."""
    path = fs.join(folder, "annotations.json")
    if not fs.exists(path):
        return None
    with tempfile.TemporaryDirectory() as tmp:
        local = os.path.join(tmp, "annotations.json")
        with open(local, "wb") as handle:
            handle.write(fs.read_bytes(path))
        table = read_coco(local)
        document = json.loads(fs.read_bytes(path))
    truth: dict[str, tuple[np.ndarray, np.ndarray]] = {
        image_id(im["file_name"]): (np.zeros((0, 4), np.float32), np.zeros(0, np.int64))
        for im in document["images"]
    }
    for name, rows in table.groupby("image"):
        boxes = rows[["y1", "x1", "y2", "x2"]].to_numpy(np.float32)
        truth[image_id(name)] = (boxes, rows["class"].astype(int).to_numpy(np.int64))
    return truth


__all__ = [
    "FACE_DETECTORS",
    "FACE_PHOTOS",
    "cache_dir",
    "default_input",
    "ground_truth",
    "image_id",
    "materialise_photos",
    "materialise_scenes",
]
