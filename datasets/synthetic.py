"""SYNTHETIC data generators (``sparkzoo.datasets.synthetic``), for the apps whose classic
data set cannot be had offline. Everything here is generated, deterministic given ``seed``,
and must be reported as synthetic wherever it is used (READMEs, model cards):

- :func:`detection_scenes` / :func:`detection_split`: real MNIST digits pasted onto crops of
  real photographs, with their boxes (no VOC/COCO images ship in any package);
- :func:`transactions`: PaySim-like card payments with fraud behaviours, optionally in the
  Kaggle credit-card schema (the Kaggle file does not ship; :func:`read_creditcard` reads it
  when a user has it);
- :func:`inject_anomalies`: labelled anomalies injected into a real series (NAB does not
  ship; :func:`read_nab` reads it).
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import cv2
import numpy as np
import pandas as pd
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

from sparkzoo import fs
from sparkzoo.datasets import loaders
from sparkzoo.datasets.readers import (
    CREDITCARD_COLUMNS,
    CREDITCARD_SCHEMA,
    box_table,
    to_spark,
)

if TYPE_CHECKING:
    from pyspark.sql import DataFrame as SparkDataFrame
    from pyspark.sql import SparkSession

# ---------------------------------------------------------------------------- detection scenes

INK_THRESHOLD = 0.3  # a pasted pixel whose opacity exceeds this is ink: it is in the box and mask
SCENES_SCHEMA = (
    "image string, image_index bigint, height bigint, width bigint, content binary, "
    "boxes array<array<double>>, labels array<bigint>"
)
# Ink colours: each digit takes the one farthest from the photo pixels it covers.
_PALETTE = np.array(
    [
        [0, 0, 0],
        [255, 255, 255],
        [230, 30, 30],
        [30, 200, 40],
        [30, 70, 235],
        [250, 220, 20],
        [20, 225, 235],
        [235, 40, 225],
    ],
    dtype=np.float32,
)
_SUBSETS = {"train": 0, "test": 1}


@dataclass
class Scenes:
    """SYNTHETIC detection scenes: real digits pasted on real photographs.

    - ``images``: ``(n, H, W, 3)`` uint8 RGB;
    - ``masks``: ``(n, H, W)`` uint8, 0 for background and ``k`` for the ink of the k-th
      object of the scene (1-based, the ``object`` column of ``boxes``);
    - ``boxes``: the box table of :mod:`sparkzoo.datasets.readers` (``image`` is e.g.
      ``"train-00007.png"``, ``class`` the digit as text, normalised ``y1, x1, y2, x2``,
      pixel ``ymin, xmin, ymax, xmax`` end-exclusive) plus ``image_index``, ``object`` and
      ``label`` (the digit, int64). Every box is the exact extent of its object's ink.
    """

    images: np.ndarray
    masks: np.ndarray
    boxes: pd.DataFrame
    subset: str

    def __len__(self) -> int:
        return len(self.images)

    def image_name(self, index: int) -> str:
        return f"{self.subset}-{index:05d}.png"

    def targets(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """``(boxes, labels)`` of scene ``index``: ``(k, 4)`` float32 normalised
        ``y1, x1, y2, x2`` and ``(k,)`` int64 digits, the arrays a detector trains on."""
        rows = self.boxes[self.boxes["image_index"] == index]
        coords = rows[["y1", "x1", "y2", "x2"]].to_numpy(np.float32).reshape(-1, 4)
        return coords, rows["label"].to_numpy(np.int64)

    def to_frame(self, spark: SparkSession | None = None) -> pd.DataFrame | SparkDataFrame:
        """One row per scene: ``image, image_index, height, width, content`` (PNG bytes, as
        Spark's ``binaryFile`` source gives files), ``boxes`` (list of normalised
        ``[y1, x1, y2, x2]``) and ``labels``. Spark: :data:`SCENES_SCHEMA`.

        Example::

            frame = detection_scenes(8).to_frame()
        """
        rows = []
        for index in range(len(self)):
            coords, labels = self.targets(index)
            rows.append(
                {
                    "image": self.image_name(index),
                    "image_index": index,
                    "height": self.images.shape[1],
                    "width": self.images.shape[2],
                    "content": _png(self.images[index]),
                    "boxes": coords.astype(np.float64).tolist(),
                    "labels": labels.tolist(),
                }
            )
        return to_spark(pd.DataFrame(rows), spark, SCENES_SCHEMA)

    def to_coco(self, directory: str) -> str:
        """Write the scenes as PNG files plus a COCO detection JSON (categories ``"0"`` to
        ``"9"`` with ids 1-10, ``bbox`` in pixels); each file is written atomically.
        Returns the JSON's path (``<directory>/annotations.json``); :func:`read_coco` reads
        it back into the same box table.

        Example::

            path = detection_scenes(8).to_coco("scenes/")
        """
        images_dir = os.path.join(directory, "images")
        fs.makedirs(images_dir)
        height, width = self.images.shape[1:3]
        images = []
        for index in range(len(self)):
            fs.write_bytes(
                os.path.join(images_dir, self.image_name(index)), _png(self.images[index])
            )
            images.append(
                {"id": index, "file_name": self.image_name(index), "height": height, "width": width}
            )
        annotations = [
            {
                "id": number,
                "image_id": int(row.image_index),
                "category_id": int(row.label) + 1,
                "bbox": [row.xmin, row.ymin, row.xmax - row.xmin, row.ymax - row.ymin],
                "area": int((self.masks[int(row.image_index)] == int(row.object)).sum()),
                "iscrowd": 0,
            }
            for number, row in enumerate(self.boxes.itertuples(index=False), start=1)
        ]
        categories = [{"id": d + 1, "name": str(d), "supercategory": "digit"} for d in range(10)]
        document = {
            "info": {"description": "SYNTHETIC sparkzoo detection scenes (MNIST on photos)"},
            "images": images,
            "annotations": annotations,
            "categories": categories,
        }
        path = os.path.join(directory, "annotations.json")
        fs.write_bytes(path, json.dumps(document).encode("utf-8"))
        return path


def _png(image: np.ndarray) -> bytes:
    ok, encoded = cv2.imencode(".png", cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    if not ok:
        raise ValueError("OpenCV could not encode a scene as PNG")
    return encoded.tobytes()


def _object_pool(objects: str, subset: str) -> tuple[np.ndarray, np.ndarray]:
    """Digit images (uint8, 0 background) and labels for one subset: MNIST's train or test
    part of :func:`mnist_split` (so test scenes never show a digit seen in training)."""
    if objects == "mnist":
        images, labels = loaders._mnist_arrays()
        train_rows, test_rows = loaders.mnist_split_rows()
        rows = train_rows if subset == "train" else test_rows
        return images[rows].reshape(-1, 28, 28), labels[rows]
    if objects == "digits":
        bunch = load_digits()
        rows = train_test_split(
            np.arange(len(bunch.target)), test_size=0.2, stratify=bunch.target, random_state=0
        )[_SUBSETS[subset]]
        images = np.round(bunch.images[rows] * (255.0 / 16.0)).astype(np.uint8)
        return images, bunch.target[rows].astype(np.int64)
    raise ValueError(f"objects must be 'mnist' or 'digits', not {objects!r}")


def _background_names(backgrounds: str | Sequence[str]) -> list[str]:
    if backgrounds == "skimage":
        return list(loaders.SKIMAGE_PHOTOS)
    if backgrounds == "all":
        return loaders.list_photos()["name"].tolist()
    if isinstance(backgrounds, str):
        backgrounds = [backgrounds]
    known = set(loaders.list_photos()["name"])
    unknown = [b for b in backgrounds if b not in known]
    if unknown or not backgrounds:
        raise ValueError(
            f"unknown background photo(s) {unknown}; use 'skimage', 'all' or names from "
            "list_photos()"
        )
    return list(backgrounds)


def _background(photo: np.ndarray, height: int, width: int, rng: np.random.Generator):
    """A random crop of ``photo`` with the scene's aspect ratio, resized to the scene."""
    ph, pw = photo.shape[:2]
    largest = min(ph, pw * height / width)
    crop_h = max(8, round(rng.uniform(0.35, 1.0) * largest))
    crop_w = max(8, min(pw, round(crop_h * width / height)))
    y0 = int(rng.integers(0, ph - crop_h + 1))
    x0 = int(rng.integers(0, pw - crop_w + 1))
    crop = photo[y0 : y0 + crop_h, x0 : x0 + crop_w]
    shrink = crop_h > height
    scene = cv2.resize(
        crop, (width, height), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR
    )
    if rng.random() < 0.5:
        scene = scene[:, ::-1]
    return scene.astype(np.float32)


def _paste(
    scene: np.ndarray,
    mask: np.ndarray,
    digit: np.ndarray,
    object_number: int,
    scale: tuple[float, float],
    taken: list[tuple[int, int, int, int]],
    rng: np.random.Generator,
) -> tuple[int, int, int, int] | None:
    """Paste one digit where it overlaps no earlier one; its ink box, or None."""
    height, width = mask.shape
    opacity = digit.astype(np.float32) / 255.0
    ys, xs = np.nonzero(opacity > INK_THRESHOLD)
    if len(ys) == 0:
        return None
    glyph = opacity[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1]
    patch_h = max(6, round(rng.uniform(*scale) * height))
    patch_w = max(3, round(patch_h * glyph.shape[1] / glyph.shape[0]))
    if patch_h > height or patch_w > width:
        return None
    # Strengthened opacity keeps thin strokes solid after resizing.
    alpha = np.clip(cv2.resize(glyph, (patch_w, patch_h)) * 1.4, 0.0, 1.0)
    ink = alpha > INK_THRESHOLD
    if not ink.any():
        return None
    y = int(rng.integers(0, height - patch_h + 1))
    x = int(rng.integers(0, width - patch_w + 1))
    patch = (y, x, y + patch_h, x + patch_w)
    # Whole patches (faint edges included) stay apart, so no digit touches another's ink.
    if any(
        patch[0] < t[2] and t[0] < patch[2] and patch[1] < t[3] and t[1] < patch[3] for t in taken
    ):
        return None
    region = scene[y : y + patch_h, x : x + patch_w]
    under = region[ink]
    distances = np.linalg.norm(under[:, None, :] - _PALETTE[None, :, :], axis=2).mean(axis=0)
    colour = _PALETTE[int(np.argmax(distances))]
    region[...] = region * (1.0 - alpha[..., None]) + colour * alpha[..., None]
    mask[y : y + patch_h, x : x + patch_w][ink] = object_number
    taken.append(patch)
    iy, ix = np.nonzero(ink)
    return y + int(iy.min()), x + int(ix.min()), y + int(iy.max()) + 1, x + int(ix.max()) + 1


def detection_scenes(
    n: int,
    image_size: int | tuple[int, int] = 128,
    seed: int = 0,
    subset: str = "train",
    objects: str = "mnist",
    backgrounds: str | Sequence[str] = "skimage",
    max_objects: int = 4,
    scale: tuple[float, float] = (0.2, 0.45),
) -> Scenes:
    """SYNTHETIC object-detection scenes: real handwritten digits (the objects; class = the
    digit) pasted at random positions and sizes onto random crops of real photographs.

    Each scene is a crop of one photograph (``backgrounds``: ``"skimage"`` the 16
    scikit-image photographs, ``"all"`` adds scikit-learn's and imgaug's, or a list of
    :func:`list_photos` names), resized to ``image_size`` (an int, or ``(height, width)``)
    and flipped at random, with 1 to ``max_objects`` digits whose height is ``scale`` (a
    fraction of the scene height). A digit's ink takes the palette colour farthest from the
    photo pixels it covers, so it stays visible; digits never overlap; each box is the
    exact extent of its digit's ink (opacity above :data:`INK_THRESHOLD`).

    ``subset`` chooses the digits: ``"train"`` scenes use only the train part of
    :func:`mnist_split` and ``"test"`` scenes only its test part (``objects="digits"``:
    a fixed 80/20 split of scikit-learn's 8x8 digits); the two draw from separate random
    streams of ``seed``. The same arguments always give the same scenes.

    Example::

        scenes = detection_scenes(100, image_size=128, seed=0)
        boxes, labels = scenes.targets(0)     # normalised y1, x1, y2, x2 and the digits
    """
    if subset not in _SUBSETS:
        raise ValueError(f"subset must be 'train' or 'test', not {subset!r}")
    if n < 0:
        raise ValueError(f"n must be >= 0, not {n}")
    height, width = (image_size, image_size) if isinstance(image_size, int) else image_size
    if min(height, width) < 32:
        raise ValueError(f"image_size must be at least 32 pixels, not {image_size}")
    if not 0.0 < scale[0] <= scale[1] <= 1.0:
        raise ValueError(f"scale must satisfy 0 < low <= high <= 1, not {scale}")
    if max_objects < 1:
        raise ValueError(f"max_objects must be >= 1, not {max_objects}")
    digits, labels = _object_pool(objects, subset)
    photos = [loaders.photo(name) for name in _background_names(backgrounds)]
    rng = np.random.default_rng([seed, _SUBSETS[subset]])
    images = np.zeros((n, height, width, 3), dtype=np.uint8)
    masks = np.zeros((n, height, width), dtype=np.uint8)
    rows = []
    for index in range(n):
        scene = _background(photos[int(rng.integers(len(photos)))], height, width, rng)
        wanted = int(rng.integers(1, max_objects + 1))
        taken: list[tuple[int, int, int, int]] = []
        placed = 0
        for _ in range(wanted * 25):  # bounded retries: a crowded scene keeps fewer digits
            if placed == wanted:
                break
            pick = int(rng.integers(len(labels)))
            box = _paste(scene, masks[index], digits[pick], placed + 1, scale, taken, rng)
            if box is None:
                continue
            placed += 1
            rows.append(
                {
                    "image": f"{subset}-{index:05d}.png",
                    "width": width,
                    "height": height,
                    "class": str(int(labels[pick])),
                    "ymin": box[0],
                    "xmin": box[1],
                    "ymax": box[2],
                    "xmax": box[3],
                    "image_index": index,
                    "object": placed,
                    "label": int(labels[pick]),
                }
            )
        images[index] = np.clip(np.round(scene), 0, 255).astype(np.uint8)
    extra = pd.DataFrame(rows, columns=["image_index", "object", "label"]).astype(np.int64)
    boxes = pd.concat([box_table(rows), extra], axis=1)
    return Scenes(images=images, masks=masks, boxes=boxes, subset=subset)


def detection_split(
    n_train: int = 800, n_test: int = 200, seed: int = 0, **kwargs
) -> tuple[Scenes, Scenes]:
    """The fixed SYNTHETIC train/test scenes: ``detection_scenes(n_train, subset="train")``
    and ``detection_scenes(n_test, subset="test")`` with the same ``seed`` and ``kwargs``.
    Their digits come from disjoint parts of MNIST; their photographs are shared (different
    random crops).

    Example::

        train, test = detection_split(800, 200, image_size=128)
    """
    return (
        detection_scenes(n_train, seed=seed, subset="train", **kwargs),
        detection_scenes(n_test, seed=seed, subset="test", **kwargs),
    )


# ---------------------------------------------------------------------------- transactions

TRANSACTIONS_SCHEMA = (
    "transaction_id bigint, timestamp timestamp, step bigint, customer_id string, "
    "merchant_id string, merchant_category string, type string, amount double, "
    "is_fraud bigint, fraud_pattern string"
)
FRAUD_PATTERNS = ("account_takeover", "card_testing", "unusual")
TRANSACTIONS_START = pd.Timestamp("2024-01-01")  # a Monday: day-of-week features line up

# name, share of merchants, share of a customer's visits, median amount (EUR), type
_CATEGORIES = (
    ("grocery", 0.20, 0.25, 35.0, "PAYMENT"),
    ("restaurant", 0.15, 0.18, 28.0, "PAYMENT"),
    ("fuel", 0.08, 0.08, 50.0, "PAYMENT"),
    ("transport", 0.07, 0.10, 12.0, "PAYMENT"),
    ("online_retail", 0.12, 0.10, 60.0, "DEBIT"),
    ("digital_goods", 0.07, 0.06, 9.0, "DEBIT"),
    ("utilities", 0.06, 0.04, 75.0, "DEBIT"),
    ("electronics", 0.05, 0.02, 220.0, "PAYMENT"),
    ("jewellery", 0.03, 0.005, 350.0, "PAYMENT"),
    ("travel", 0.05, 0.02, 280.0, "DEBIT"),
    ("atm", 0.07, 0.10, 100.0, "CASH_OUT"),
    ("money_transfer", 0.05, 0.035, 150.0, "TRANSFER"),
)
_CATEGORY_NAMES = tuple(c[0] for c in _CATEGORIES)
_TYPES = ("PAYMENT", "DEBIT", "CASH_OUT", "TRANSFER")
_FAVOURITES = 16  # at most this many regular merchants per customer


class _Merchants:
    def __init__(self, n: int, rng: np.random.Generator):
        shares = np.array([c[1] for c in _CATEGORIES])
        # Every category exists at least once; the rest follow the shares.
        self.category = np.concatenate(
            [
                np.arange(len(_CATEGORIES)),
                rng.choice(len(_CATEGORIES), n - len(_CATEGORIES), p=shares / shares.sum()),
            ]
        )
        self.popularity = rng.lognormal(0.0, 1.0, n)
        self.price = rng.lognormal(0.0, 0.3, n)
        visits = np.array([c[2] for c in _CATEGORIES])
        counts = np.bincount(self.category, minlength=len(_CATEGORIES))
        weight = self.popularity * visits[self.category] / counts[self.category]
        self.weight = weight / weight.sum()

    def of(self, names: Sequence[str]) -> np.ndarray:
        wanted = [_CATEGORY_NAMES.index(n) for n in names]
        return np.flatnonzero(np.isin(self.category, wanted))


def _favourites(n_customers: int, merchants: _Merchants, rng: np.random.Generator):
    """Each customer's regular merchants, sampled without replacement by weight (Gumbel
    top-k, in chunks to bound memory), and how many of the 16 slots each one uses."""
    k = min(_FAVOURITES, len(merchants.weight))
    favourites = np.empty((n_customers, k), dtype=np.int64)
    log_weight = np.log(merchants.weight)
    for start in range(0, n_customers, 1024):
        stop = min(n_customers, start + 1024)
        keys = log_weight + rng.gumbel(size=(stop - start, len(log_weight)))
        favourites[start:stop] = np.argsort(-keys, axis=1)[:, :k]
    used = rng.integers(min(6, k), k + 1, n_customers)
    return favourites, used


def _normal_activity(n_customers, days, merchants, rng):
    rate = rng.gamma(2.0, 1.0, n_customers)  # transactions per day, mean 2
    spend = rng.lognormal(0.0, 0.5, n_customers)
    preferred_hour = rng.normal(14.0, 2.0, n_customers)
    favourites, used = _favourites(n_customers, merchants, rng)
    counts = rng.poisson(rate * days)
    customer = np.repeat(np.arange(n_customers), counts)
    total = len(customer)
    day = rng.integers(0, days, total)
    hour = (preferred_hour[customer] + rng.normal(0.0, 3.0, total)) % 24.0
    seconds = day * 86400 + np.floor(hour * 3600.0).astype(np.int64)
    # Low ranks are the most regular merchants; 8% of visits go anywhere else.
    rank = np.floor(used[customer] * rng.random(total) ** 2).astype(np.int64)
    merchant = favourites[customer, rank]
    explore = rng.random(total) < 0.08
    merchant[explore] = rng.choice(len(merchants.weight), int(explore.sum()), p=merchants.weight)
    median = np.array([c[3] for c in _CATEGORIES])[merchants.category[merchant]]
    amount = median * merchants.price[merchant] * spend[customer] * rng.lognormal(0.0, 0.5, total)
    # Honest customers splurge too (about twice a month: big purchases or transfers at new
    # merchants, some late at night), so no single fraud signal separates the classes.
    big = merchants.of(["electronics", "jewellery", "travel", "money_transfer"])
    splurges = rng.poisson(days / 15.0, n_customers)
    s_customer = np.repeat(np.arange(n_customers), splurges)
    count = len(s_customer)
    s_merchant = rng.choice(big, count, p=merchants.weight[big] / merchants.weight[big].sum())
    s_hour = np.where(rng.random(count) < 0.15, rng.uniform(0, 7, count), rng.uniform(7, 24, count))
    s_seconds = rng.integers(0, days, count) * 86400 + np.floor(s_hour * 3600).astype(np.int64)
    s_median = np.array([c[3] for c in _CATEGORIES])[merchants.category[s_merchant]]
    s_amount = s_median * merchants.price[s_merchant] * spend[s_customer] * rng.uniform(2, 8, count)
    return (
        np.concatenate([customer, s_customer]),
        np.concatenate([seconds, s_seconds]),
        np.concatenate([merchant, s_merchant]),
        np.concatenate([amount, s_amount]),
        spend,
        favourites,
    )


def _stranger(candidates: np.ndarray, regulars: np.ndarray, rng: np.random.Generator) -> int:
    """A merchant among ``candidates`` the customer does not use regularly, if any."""
    fresh = np.setdiff1d(candidates, regulars)
    return int(rng.choice(fresh if len(fresh) else candidates))


def _fraud_episode(pattern, victim, days, spend, favourites, merchants, rng):
    """One fraud episode of ``victim``: lists of (seconds, merchant, amount)."""
    regulars = favourites[victim]
    day = int(rng.integers(1, days))
    events = []
    if pattern == "account_takeover":
        # Stolen credentials: a burst of transfers and cash-outs to new payees, often at night.
        hour = rng.uniform(0.0, 6.0) if rng.random() < 0.6 else rng.uniform(0.0, 24.0)
        t = day * 86400 + hour * 3600.0
        for _ in range(int(rng.integers(2, 7))):
            merchant = _stranger(merchants.of(["money_transfer", "atm"]), regulars, rng)
            events.append((t, merchant, spend[victim] * rng.uniform(300.0, 2500.0)))
            t += rng.exponential(8 * 60.0)
    elif pattern == "card_testing":
        # A stolen card checked with tiny payments at one merchant, then used for big ones.
        t = day * 86400 + rng.uniform(0.0, 24.0) * 3600.0
        tester = _stranger(merchants.of(["digital_goods", "online_retail"]), regulars, rng)
        for _ in range(int(rng.integers(3, 9))):
            events.append((t, tester, rng.uniform(0.5, 3.0)))
            t += rng.exponential(90.0)
        for _ in range(int(rng.integers(1, 3))):
            t += rng.exponential(20 * 60.0)
            merchant = _stranger(merchants.of(["electronics", "jewellery"]), regulars, rng)
            median = _CATEGORIES[merchants.category[merchant]][3]
            events.append((t, merchant, median * merchants.price[merchant] * rng.uniform(3.0, 8.0)))
    else:
        # One purchase unlike the customer: odd merchant, small hours, several times the usual.
        t = day * 86400 + rng.uniform(1.0, 5.0) * 3600.0
        merchant = _stranger(
            merchants.of(["jewellery", "electronics", "travel", "money_transfer"]), regulars, rng
        )
        median = _CATEGORIES[merchants.category[merchant]][3]
        events.append((t, merchant, spend[victim] * median * rng.uniform(4.0, 12.0)))
    return events


def _creditcard_view(
    frame: pd.DataFrame, seconds: np.ndarray, customer: np.ndarray
) -> pd.DataFrame:
    """``frame`` in the Kaggle credit-card schema: Time, V1..V28 (a fixed rotation of
    standardised per-transaction features that look only at the customer's past), Amount,
    Class."""
    amount = frame["amount"].to_numpy()
    order = np.lexsort((seconds, customer))
    c, t, a = customer[order], seconds[order].astype(np.float64), amount[order]
    first = np.r_[True, c[1:] != c[:-1]]
    gap_hours = np.where(first, 24.0 * 30, np.diff(t, prepend=0.0) / 3600.0)
    group_start = np.maximum.accumulate(np.where(first, np.arange(len(c)), 0))
    seen = np.arange(len(c)) - group_start
    past_sum = np.cumsum(a) - a - np.r_[0.0, np.cumsum(a)][group_start]
    past_mean = np.where(seen > 0, past_sum / np.maximum(seen, 1), a)
    # Customers' clocks never overlap under this key, so one sorted search counts each
    # customer's transactions in the trailing hour and day.
    key = c.astype(np.float64) * 1e9 + t
    position = np.arange(len(key))
    last_hour = position - np.searchsorted(key, key - 3600.0, side="left")
    last_day = position - np.searchsorted(key, key - 86400.0, side="left")
    merchants = frame["merchant_id"].to_numpy()[order]
    new_merchant = ~pd.Series(list(zip(c, merchants, strict=True))).duplicated().to_numpy()
    hour = (t % 86400.0) / 3600.0
    weekday = (t // 86400.0) % 7
    features = [
        np.log1p(a),
        np.log(a / past_mean),
        np.log1p(gap_hours),
        np.log1p(last_hour),
        np.log1p(last_day),
        new_merchant.astype(np.float64),
        np.sin(2 * np.pi * hour / 24),
        np.cos(2 * np.pi * hour / 24),
        np.sin(2 * np.pi * weekday / 7),
        np.cos(2 * np.pi * weekday / 7),
    ]
    types = frame["type"].to_numpy()[order]
    categories = frame["merchant_category"].to_numpy()[order]
    features += [(types == name).astype(np.float64) for name in _TYPES]
    features += [(categories == name).astype(np.float64) for name in _CATEGORY_NAMES]
    z = np.stack(features, axis=1)
    std = z.std(axis=0)
    z = (z - z.mean(axis=0)) / np.where(std > 0, std, 1.0)
    # A fixed rotation (seeded once, the same for every data set) hides what the features
    # are, as Kaggle's PCA does; 26 features span 28 orthonormal directions.
    rotation, _ = np.linalg.qr(np.random.default_rng(2013).normal(size=(28, 28)))
    v = z @ rotation[: z.shape[1], :]
    out = pd.DataFrame(v, columns=[f"V{i}" for i in range(1, 29)])
    out.insert(0, "Time", t - seconds.min())
    out["Amount"] = a
    out["Class"] = frame["is_fraud"].to_numpy()[order].astype(np.int64)
    out = out.sort_values("Time", kind="stable").reset_index(drop=True)
    return out[list(CREDITCARD_COLUMNS)]


def transactions(
    n_customers: int = 1000,
    n_merchants: int = 200,
    days: int = 30,
    fraud_rate: float = 0.01,
    seed: int = 0,
    schema: str = "transactions",
    spark: SparkSession | None = None,
) -> pd.DataFrame | SparkDataFrame:
    """SYNTHETIC card payments with labelled fraud, in the spirit of PaySim (a simulator,
    not real data; the real Kaggle credit-card file is read by :func:`read_creditcard`).

    Normal behaviour: each customer pays about 2 times a day (gamma-distributed rate)
    around a preferred hour, mostly at 6-16 regular merchants, amounts log-normal around
    the category's typical price times the customer's spending level; about twice a month
    a customer also splurges (2-8 times the usual amount at a new electronics, jewellery,
    travel or transfer merchant, 15% of them at night), so honest outliers exist. Merchant categories
    set the transaction type (PAYMENT, DEBIT, CASH_OUT at ATMs, TRANSFER). Fraud
    behaviours (episodes of the three are equally likely) make up about ``fraud_rate`` of
    all transactions:

    - ``account_takeover``: a burst of 2-6 large transfers/cash-outs to new payees within
      minutes, mostly at night;
    - ``card_testing``: 3-8 payments of 0.50-3.00 at one new digital merchant, then 1-2
      large electronics/jewellery purchases;
    - ``unusual``: one purchase at an unusual merchant, between 1 and 5 am, 4-12 times the
      customer's usual amount.

    ``schema="transactions"`` returns ``transaction_id, timestamp, step`` (hours since
    the start, as PaySim), ``customer_id, merchant_id, merchant_category, type, amount,
    is_fraud`` (0/1), ``fraud_pattern`` ("" for normal) in time order. ``schema=
    "creditcard"`` returns the Kaggle layout ``Time`` (seconds since the first
    transaction), ``V1..V28`` (a fixed rotation of standardised features engineered from
    each customer's past: amount, amount against the customer's mean, time since the last
    transaction, transactions in the last hour and day, new merchant, hour and weekday,
    type and category), ``Amount``, ``Class``. Same seed, same data.

    Example::

        frame = transactions(n_customers=500, days=30, fraud_rate=0.01, seed=0)
        kaggle_like = transactions(schema="creditcard")
    """
    if n_customers < 1:
        raise ValueError(f"n_customers must be >= 1, not {n_customers}")
    if n_merchants < len(_CATEGORIES):
        raise ValueError(f"n_merchants must be >= {len(_CATEGORIES)} (one per category)")
    if days < 2:
        raise ValueError(f"days must be >= 2, not {days}")
    if not 0.0 <= fraud_rate < 0.5:
        raise ValueError(f"fraud_rate must be in [0, 0.5), not {fraud_rate}")
    if schema not in ("transactions", "creditcard"):
        raise ValueError(f"schema must be 'transactions' or 'creditcard', not {schema!r}")
    rng = np.random.default_rng(seed)
    merchants = _Merchants(n_merchants, rng)
    customer, seconds, merchant, amount, spend, favourites = _normal_activity(
        n_customers, days, merchants, rng
    )
    pattern = np.zeros(len(customer), dtype=np.int64)  # 0 normal, k = FRAUD_PATTERNS[k-1]
    target = round(fraud_rate * len(customer) / (1.0 - fraud_rate))
    victims = np.unique(customer)
    fraud: list[tuple] = []
    while len(fraud) < target:
        kind = int(rng.integers(len(FRAUD_PATTERNS)))
        victim = int(rng.choice(victims))
        episode = _fraud_episode(
            FRAUD_PATTERNS[kind], victim, days, spend, favourites, merchants, rng
        )
        fraud += [(victim, t, m, a, kind + 1) for t, m, a in episode]
    if fraud:
        f_customer, f_seconds, f_merchant, f_amount, f_pattern = (
            np.array(x) for x in zip(*fraud, strict=True)
        )
        customer = np.concatenate([customer, f_customer.astype(np.int64)])
        end = days * 86400 - 1
        seconds = np.concatenate([seconds, np.minimum(f_seconds, end).astype(np.int64)])
        merchant = np.concatenate([merchant, f_merchant.astype(np.int64)])
        amount = np.concatenate([amount, f_amount])
        pattern = np.concatenate([pattern, f_pattern.astype(np.int64)])
    order = np.lexsort((customer, seconds))
    customer, seconds, merchant = customer[order], seconds[order], merchant[order]
    amount = np.maximum(np.round(amount[order], 2), 0.5)
    pattern = pattern[order]
    category = merchants.category[merchant]
    frame = pd.DataFrame(
        {
            "transaction_id": np.arange(len(customer), dtype=np.int64),
            "timestamp": TRANSACTIONS_START + pd.to_timedelta(seconds, unit="s"),
            "step": seconds // 3600,
            "customer_id": [f"C{c:07d}" for c in customer],
            "merchant_id": [f"M{m:06d}" for m in merchant],
            "merchant_category": np.array(_CATEGORY_NAMES)[category],
            "type": np.array([c[4] for c in _CATEGORIES])[category],
            "amount": amount,
            "is_fraud": (pattern > 0).astype(np.int64),
            "fraud_pattern": np.array(("", *FRAUD_PATTERNS))[pattern],
        }
    )
    if schema == "creditcard":
        return to_spark(_creditcard_view(frame, seconds, customer), spark, CREDITCARD_SCHEMA)
    return to_spark(frame, spark, TRANSACTIONS_SCHEMA)


# ---------------------------------------------------------------------------- anomalies

ANOMALY_KINDS = ("spike", "level_shift", "noise")


def _typical_step(values: np.ndarray) -> float:
    """The standard deviation of the first differences; of the values if those are flat;
    1.0 for a constant series."""
    for spread in (np.diff(values), values):
        finite = spread[np.isfinite(spread)]
        if len(finite) > 1 and finite.std() > 0:
            return float(finite.std())
    return 1.0


def inject_anomalies(
    series: pd.Series | pd.DataFrame | np.ndarray,
    n: int = 5,
    kinds: Sequence[str] = ANOMALY_KINDS,
    seed: int = 0,
    magnitude: float = 1.0,
) -> tuple[pd.Series | pd.DataFrame | np.ndarray, pd.DataFrame]:
    """Inject ``n`` SYNTHETIC labelled anomalies into a (real) series; returns
    ``(series, labels)``.

    ``series`` is a pandas Series, a 1-D array, or a frame with a ``value`` column (e.g.
    :func:`time_series`); the result has the same type and index, with values changed only
    inside the anomalies. ``labels`` is aligned to it: ``is_anomaly`` (bool), ``kind``
    ("" outside anomalies) and ``event`` (int64, -1 outside).

    Kinds cycle through ``kinds``, sizes are multiples of the series' typical step
    ``s`` (the standard deviation of its first differences), times ``magnitude``:

    - ``spike``: one point moved by 6-10 ``s``, up or down;
    - ``level_shift``: a segment (0.5-2.5% of the series, at least 3 points) moved by
      4-8 ``s``;
    - ``noise``: a segment of that length with Gaussian noise of 3-5 ``s`` added.

    Anomalies never overlap or touch, avoid the first 5% of the series (models need
    history) and points that are NaN. Same seed, same anomalies.

    Example::

        series, labels = inject_anomalies(time_series("taylor"), n=10, seed=0)
        labels["is_anomaly"].sum()
    """
    unknown = [k for k in kinds if k not in ANOMALY_KINDS]
    if unknown or not kinds:
        raise ValueError(f"unknown anomaly kind(s) {unknown}; choose from {ANOMALY_KINDS}")
    if isinstance(series, pd.DataFrame):
        if "value" not in series.columns:
            raise ValueError("a frame passed to inject_anomalies needs a 'value' column")
        values = series["value"].to_numpy(np.float64).copy()
        index = series.index
    elif isinstance(series, pd.Series):
        values = series.to_numpy(np.float64).copy()
        index = series.index
    else:
        values = np.asarray(series, dtype=np.float64).copy()
        if values.ndim != 1:
            raise ValueError(f"series must be 1-D, not shape {values.shape}")
        index = pd.RangeIndex(len(values))
    length = len(values)
    step = magnitude * _typical_step(values)
    short, long = max(3, length // 200), max(4, length // 40)
    rng = np.random.default_rng(seed)
    kind = np.full(length, "", dtype=object)
    event = np.full(length, -1, dtype=np.int64)
    blocked = np.isnan(values)
    blocked[: max(1, length // 20)] = True
    for number in range(n):
        name = kinds[number % len(kinds)]
        width = 1 if name == "spike" else int(rng.integers(short, long + 1))
        for _ in range(200):
            start = int(rng.integers(0, max(1, length - width + 1)))
            lo, hi = max(0, start - 1), min(length, start + width + 1)  # keep a gap
            if start + width <= length and not blocked[lo:hi].any():
                break
        else:
            raise ValueError(
                f"cannot place {n} anomalies in a series of {length} points; ask for fewer"
            )
        segment = slice(start, start + width)
        sign = rng.choice((-1.0, 1.0))
        if name == "spike":
            values[segment] += sign * rng.uniform(6.0, 10.0) * step
        elif name == "level_shift":
            values[segment] += sign * rng.uniform(4.0, 8.0) * step
        else:
            values[segment] += rng.normal(0.0, rng.uniform(3.0, 5.0) * step, width)
        blocked[segment] = True
        kind[segment] = name
        event[segment] = number
    labels = pd.DataFrame({"is_anomaly": event >= 0, "kind": kind, "event": event}, index=index)
    if isinstance(series, pd.DataFrame):
        out = series.copy()
        out["value"] = values
        return out, labels
    if isinstance(series, pd.Series):
        return pd.Series(values, index=index, name=series.name), labels
    return values, labels


__all__ = [
    "ANOMALY_KINDS",
    "FRAUD_PATTERNS",
    "INK_THRESHOLD",
    "SCENES_SCHEMA",
    "TRANSACTIONS_SCHEMA",
    "Scenes",
    "detection_scenes",
    "detection_split",
    "inject_anomalies",
    "transactions",
]
