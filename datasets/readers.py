"""Readers for the public data formats users bring (``sparkzoo.datasets.readers``).

The full versions of the classic data sets cannot ship with sparkzoo (licences, size, no
network here), so each app reads the format a user downloads:

| reader | format | table it returns |
|---|---|---|
| :func:`read_movielens_ratings` | MovieLens ``u.data`` (tab), ``ratings.csv`` (ml-latest), ``ratings.dat`` (``::``) | ``user_id, item_id, rating, timestamp`` |
| :func:`read_creditcard` | Kaggle credit-card fraud CSV | ``Time, V1..V28, Amount, Class`` |
| :func:`read_nab` | NAB series CSV + ``combined_windows.json`` / ``combined_labels.json`` | ``timestamp, value, is_anomaly`` |
| :func:`read_voc` | Pascal VOC XML annotations | the box table (:data:`BOX_COLUMNS`) |
| :func:`read_coco` | COCO detection JSON | the box table (:data:`BOX_COLUMNS`) |
| :func:`read_image_folder` | a folder with one sub-folder per class | ``path, label, label_index`` |

Every reader returns a pandas DataFrame, or a Spark DataFrame with the same columns when given
``spark=`` (a SparkSession). A file that does not match its format raises ``ValueError`` naming
the file (and the line, column or element that was wrong).

Box table convention (shared with the detection scenes of :mod:`sparkzoo.datasets.synthetic`
and the detectors): ``y1, x1, y2, x2`` are normalised to ``[0, 1]`` by the image height and
width (the TensorFlow object-detection order); ``ymin, xmin, ymax, xmax`` are the same box in
pixels, 0-based with the end exclusive (COCO's ``x + w``; VOC's 1-based inclusive corners are
converted), clipped to the image.
"""

from __future__ import annotations

import json
import os
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from pyspark.sql import DataFrame as SparkDataFrame
    from pyspark.sql import SparkSession

RATINGS_COLUMNS = ("user_id", "item_id", "rating", "timestamp")
RATINGS_SCHEMA = "user_id bigint, item_id bigint, rating double, timestamp bigint"

CREDITCARD_COLUMNS = ("Time", *(f"V{i}" for i in range(1, 29)), "Amount", "Class")
CREDITCARD_SCHEMA = ", ".join([f"{c} double" for c in CREDITCARD_COLUMNS[:-1]] + ["Class bigint"])

NAB_SCHEMA = "timestamp timestamp, value double, is_anomaly boolean"

BOX_COLUMNS = (
    "image", "width", "height", "class",
    "y1", "x1", "y2", "x2",
    "ymin", "xmin", "ymax", "xmax",
    "difficult",
)  # fmt: skip
BOX_SCHEMA = (
    "image string, width bigint, height bigint, class string, "
    "y1 double, x1 double, y2 double, x2 double, "
    "ymin double, xmin double, ymax double, xmax double, difficult boolean"
)

IMAGE_FOLDER_SCHEMA = "path string, label string, label_index bigint"
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp")


def to_spark(
    frame: pd.DataFrame, spark: SparkSession | None, schema: str
) -> pd.DataFrame | SparkDataFrame:
    """``frame`` itself without a session, else a Spark DataFrame with the DDL ``schema``."""
    if spark is None:
        return frame
    return spark.createDataFrame(frame, schema=schema)


def _first_bad_row(raw: pd.Series, parsed: pd.Series) -> int | None:
    """Position of the first value present in ``raw`` that did not parse (``parsed`` is NaN)."""
    bad = np.flatnonzero(parsed.isna().to_numpy() & raw.notna().to_numpy())
    return int(bad[0]) if len(bad) else None


def _numeric(frame: pd.DataFrame, column: str, path: str, first_line: int) -> pd.Series:
    """``frame[column]`` as float64; a ValueError naming file, line and column if a value is
    not a number. ``first_line`` is the file line of the frame's first row."""
    raw = frame[column]
    parsed = pd.to_numeric(raw, errors="coerce")
    bad = _first_bad_row(raw, parsed)
    if bad is not None:
        raise ValueError(
            f"{path}, line {bad + first_line}: column {column!r} holds {raw.iloc[bad]!r}, "
            "not a number"
        )
    return parsed.astype(np.float64)


# ---------------------------------------------------------------------------- MovieLens


def _movielens_format(path: str) -> str:
    with open(path, encoding="utf-8", errors="replace") as handle:
        first = handle.readline().strip()
    if not first:
        raise ValueError(f"{path}: empty file, expected MovieLens ratings")
    if first.replace('"', "").lower().startswith("userid,movieid,rating,timestamp"):
        return "csv"
    if "::" in first:
        return "dat"
    if "\t" in first:
        return "tab"
    raise ValueError(
        f"{path}: not a MovieLens ratings file (expected u.data with tab-separated "
        "user/item/rating/timestamp, ratings.csv with the header "
        "userId,movieId,rating,timestamp, or ratings.dat with '::')"
    )


def _read_strings(path: str, what: str, **kwargs: Any) -> pd.DataFrame:
    """A delimited file as a frame of strings; a ValueError naming the file if it cannot be
    split into rows and columns."""
    try:
        return pd.read_csv(path, dtype=str, keep_default_na=False, **kwargs)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise ValueError(f"{path}: not {what}: {exc}") from exc


def _complete_numbers(
    raw: pd.DataFrame, columns: Sequence[str], integers: Sequence[str], path: str, first_line: int
) -> pd.DataFrame:
    """``raw[columns]`` as numbers; empty values, non-numbers and non-integers in
    ``integers`` raise ValueError naming file, line and column."""
    raw = raw.replace("", np.nan)
    out = pd.DataFrame({c: _numeric(raw, c, path, first_line) for c in columns})
    for column in columns:
        empty = np.flatnonzero(out[column].isna().to_numpy())
        if len(empty):
            raise ValueError(f"{path}, line {empty[0] + first_line}: column {column!r} is empty")
    for column in integers:
        values = out[column].to_numpy()
        fractional = np.flatnonzero(values != np.round(values))
        if len(fractional):
            raise ValueError(
                f"{path}, line {fractional[0] + first_line}: column {column!r} holds "
                f"{raw[column].iloc[fractional[0]]!r}, not an integer"
            )
        out[column] = out[column].astype(np.int64)
    return out


def read_movielens_ratings(
    path: str, spark: SparkSession | None = None
) -> pd.DataFrame | SparkDataFrame:
    """Ratings from a MovieLens file: ``u.data`` (ml-100k), ``ratings.csv`` (ml-latest,
    ml-25m...) or ``ratings.dat`` (ml-1m, ml-10m), told apart by their content.

    Returns the ratings schema of :func:`sparkzoo.datasets.movielens_100k`: ``user_id``
    (int64), ``item_id`` (int64; ``movieId`` in the CSV), ``rating`` (float64; half stars
    in ml-latest), ``timestamp`` (int64, Unix seconds), in file order. A line that does not
    fit raises ``ValueError`` naming the file, the line and the column.

    Example::

        ratings = read_movielens_ratings("ml-latest-small/ratings.csv")
    """
    fmt = _movielens_format(path)
    what = "a MovieLens ratings file"
    if fmt == "csv":
        raw = _read_strings(path, what)
        raw.columns = [c.strip() for c in raw.columns]
        raw = raw.rename(columns={"userId": "user_id", "movieId": "item_id"})
        first_line = 2
    else:
        sep = "\t" if fmt == "tab" else "::"
        raw = _read_strings(
            path, what, sep=sep, header=None, engine="python" if sep == "::" else "c"
        )
        if raw.shape[1] != 4:
            raise ValueError(
                f"{path}: expected 4 fields per line (user, item, rating, timestamp), "
                f"found {raw.shape[1]}"
            )
        raw.columns = list(RATINGS_COLUMNS)
        first_line = 1
    missing = [c for c in RATINGS_COLUMNS if c not in raw.columns]
    if missing:
        raise ValueError(f"{path}: missing column(s) {', '.join(missing)}")
    out = _complete_numbers(
        raw, RATINGS_COLUMNS, ("user_id", "item_id", "timestamp"), path, first_line
    )
    return to_spark(out, spark, RATINGS_SCHEMA)


# ---------------------------------------------------------------------------- credit card


def check_creditcard_columns(columns: Iterable[str], source: str = "frame") -> None:
    """Raise ``ValueError`` naming every column of the Kaggle credit-card schema
    (``Time, V1..V28, Amount, Class``) that ``columns`` lacks."""
    present = set(columns)
    missing = [c for c in CREDITCARD_COLUMNS if c not in present]
    if missing:
        raise ValueError(
            f"{source}: missing column(s) {', '.join(missing)} of the credit-card schema "
            "(Time, V1..V28, Amount, Class)"
        )


def read_creditcard(path: str, spark: SparkSession | None = None) -> pd.DataFrame | SparkDataFrame:
    """The Kaggle credit-card fraud CSV (``creditcard.csv``: ``Time, V1..V28, Amount,
    Class``; 284,807 rows in the full file, which users download themselves).

    Returns those 31 columns in that order (other columns are left out): ``Time``, ``V*``
    and ``Amount`` float64, ``Class`` int64 (1 = fraud). A missing column, a value that is
    not a number, or a ``Class`` other than 0/1 raises ``ValueError`` naming the file.

    Example::

        frame = read_creditcard("creditcard.csv")
        frame["Class"].mean()        # 0.00173 in the full file
    """
    raw = _read_strings(path, "a credit-card CSV")
    raw.columns = [c.strip() for c in raw.columns]
    check_creditcard_columns(raw.columns, path)
    out = _complete_numbers(raw, CREDITCARD_COLUMNS, (), path, 2)
    bad = np.flatnonzero(~out["Class"].isin([0.0, 1.0]).to_numpy())
    if len(bad):
        raise ValueError(
            f"{path}, line {bad[0] + 2}: Class is {raw['Class'].iloc[bad[0]]!r}, expected 0 or 1"
        )
    out["Class"] = out["Class"].astype(np.int64)
    return to_spark(out, spark, CREDITCARD_SCHEMA)


# ---------------------------------------------------------------------------- NAB


def _nab_labels_for(labels: dict, key: str | None, series_path: str, labels_path: str):
    if key is not None:
        if key not in labels:
            raise ValueError(f"{labels_path}: no entry {key!r}")
        return labels[key]
    name = os.path.basename(series_path)
    matches = [k for k in labels if os.path.basename(k) == name]
    if len(matches) != 1:
        found = "no entry" if not matches else f"{len(matches)} entries ({', '.join(matches)})"
        raise ValueError(
            f"{labels_path}: {found} for {name!r}; pass key='<folder>/{name}' to choose one"
        )
    return labels[matches[0]]


def _nab_flags(timestamps: pd.Series, entry: Any, labels_path: str) -> np.ndarray:
    """True where a timestamp is a labelled point (combined_labels.json) or falls inside a
    window (combined_windows.json, ends included)."""
    flags = np.zeros(len(timestamps), dtype=bool)
    if not isinstance(entry, list):
        raise ValueError(f"{labels_path}: an entry must be a list, found {type(entry).__name__}")
    values = timestamps.to_numpy()
    try:
        for item in entry:
            if isinstance(item, str):
                flags |= values == np.datetime64(pd.Timestamp(item))
            elif isinstance(item, list) and len(item) == 2:
                start, end = (np.datetime64(pd.Timestamp(t)) for t in item)
                flags |= (values >= start) & (values <= end)
            else:
                raise ValueError(f"unexpected label {item!r}")
    except (ValueError, TypeError) as exc:
        raise ValueError(
            f"{labels_path}: labels must be timestamps (combined_labels.json) or "
            f"[start, end] windows (combined_windows.json): {exc}"
        ) from exc
    return flags


def read_nab(
    series_path: str,
    labels_path: str | None = None,
    key: str | None = None,
    spark: SparkSession | None = None,
) -> pd.DataFrame | SparkDataFrame:
    """A Numenta Anomaly Benchmark series (CSV ``timestamp,value``) with its labels.

    ``labels_path`` is NAB's ``labels/combined_windows.json`` (anomaly windows: rows inside
    a window, ends included, are anomalous) or ``labels/combined_labels.json`` (anomalous
    points); the entry is found by the series' file name, or by ``key`` (e.g.
    ``"realKnownCause/nyc_taxi.csv"``) when several folders hold that name. Without labels
    every row has ``is_anomaly`` False.

    Returns ``timestamp`` (datetime64), ``value`` (float64), ``is_anomaly`` (bool).

    Example::

        taxi = read_nab("data/realKnownCause/nyc_taxi.csv", "labels/combined_windows.json")
        taxi["is_anomaly"].sum()
    """
    raw = _read_strings(series_path, "a NAB series CSV")
    raw.columns = [c.strip() for c in raw.columns]
    missing = [c for c in ("timestamp", "value") if c not in raw.columns]
    if missing:
        raise ValueError(f"{series_path}: missing column(s) {', '.join(missing)}")
    timestamps = pd.to_datetime(raw["timestamp"], errors="coerce")
    bad = _first_bad_row(raw["timestamp"].replace("", np.nan), timestamps)
    if bad is None and timestamps.isna().any():
        bad = int(np.flatnonzero(timestamps.isna().to_numpy())[0])
    if bad is not None:
        raise ValueError(
            f"{series_path}, line {bad + 2}: timestamp {raw['timestamp'].iloc[bad]!r} "
            "is not a date-time"
        )
    values = _complete_numbers(raw, ("value",), (), series_path, 2)["value"]
    flags = np.zeros(len(raw), dtype=bool)
    if labels_path is not None:
        try:
            with open(labels_path, encoding="utf-8") as handle:
                labels = json.load(handle)
        except json.JSONDecodeError as exc:
            raise ValueError(f"{labels_path}: not valid JSON: {exc}") from exc
        if not isinstance(labels, dict):
            raise ValueError(f"{labels_path}: expected a JSON object of series -> labels")
        entry = _nab_labels_for(labels, key, series_path, labels_path)
        flags = _nab_flags(timestamps, entry, labels_path)
    # nanoseconds on every pandas: pandas 3 infers microseconds from strings
    out = pd.DataFrame(
        {"timestamp": timestamps.astype("datetime64[ns]"), "value": values, "is_anomaly": flags}
    )
    return to_spark(out, spark, NAB_SCHEMA)


# ---------------------------------------------------------------------------- boxes


_BOX_DTYPES = {
    "image": object, "width": np.int64, "height": np.int64, "class": object,
    "y1": np.float64, "x1": np.float64, "y2": np.float64, "x2": np.float64,
    "ymin": np.float64, "xmin": np.float64, "ymax": np.float64, "xmax": np.float64,
    "difficult": bool,
}  # fmt: skip
_BOX_INPUT = ("image", "width", "height", "class", "ymin", "xmin", "ymax", "xmax", "difficult")


def box_table(rows: Sequence[dict]) -> pd.DataFrame:
    """The common box table from dicts with ``image, width, height, class`` and the pixel
    corners ``ymin, xmin, ymax, xmax`` (0-based, end exclusive); clips the corners to the
    image and adds the normalised ``y1, x1, y2, x2``. ``difficult`` defaults to False.

    Example::

        box_table([{"image": "a.jpg", "width": 200, "height": 100, "class": "cat",
                    "ymin": 10, "xmin": 20, "ymax": 60, "xmax": 120}])   # y1 0.1, x1 0.1 ...
    """
    frame = pd.DataFrame(list(rows), columns=list(_BOX_INPUT))
    if frame.empty:
        return pd.DataFrame({c: pd.Series(dtype=_BOX_DTYPES[c]) for c in BOX_COLUMNS})
    frame["difficult"] = [bool(v) if pd.notna(v) else False for v in frame["difficult"]]
    height = frame["height"].astype(np.float64)
    width = frame["width"].astype(np.float64)
    for column, limit in (("ymin", height), ("ymax", height), ("xmin", width), ("xmax", width)):
        frame[column] = frame[column].astype(np.float64).clip(lower=0.0, upper=limit)
    frame["y1"] = frame["ymin"] / height
    frame["x1"] = frame["xmin"] / width
    frame["y2"] = frame["ymax"] / height
    frame["x2"] = frame["xmax"] / width
    return frame[list(BOX_COLUMNS)].astype(_BOX_DTYPES)


def _check_box(path: str, where: str, box: dict) -> None:
    if not (box["xmax"] > box["xmin"] and box["ymax"] > box["ymin"]):
        raise ValueError(
            f"{path}: {where} has an empty box "
            f"(xmin {box['xmin']}, ymin {box['ymin']}, xmax {box['xmax']}, ymax {box['ymax']})"
        )
    if box["width"] <= 0 or box["height"] <= 0:
        raise ValueError(f"{path}: {where} has image size {box['width']}x{box['height']}")


def _voc_text(node: ET.Element, tag: str, path: str, where: str) -> str:
    child = node.find(tag)
    if child is None or child.text is None or not child.text.strip():
        raise ValueError(f"{path}: {where} has no <{tag}>")
    return child.text.strip()


def _voc_number(node: ET.Element, tag: str, path: str, where: str) -> float:
    text = _voc_text(node, tag, path, where)
    try:
        return float(text)
    except ValueError:
        raise ValueError(f"{path}: {where} <{tag}> is {text!r}, not a number") from None


def _voc_files(paths: str | Sequence[str]) -> list[str]:
    if isinstance(paths, str | os.PathLike):
        paths = [str(paths)]
    files: list[str] = []
    for path in paths:
        if os.path.isdir(path):
            files += sorted(
                os.path.join(path, f) for f in os.listdir(path) if f.lower().endswith(".xml")
            )
        elif os.path.exists(path):
            files.append(str(path))
        else:
            raise FileNotFoundError(f"{path}: no such VOC annotation file or folder")
    if not files:
        raise ValueError(f"no .xml annotation files in {', '.join(map(str, paths))}")
    return files


def read_voc(
    paths: str | Sequence[str], spark: SparkSession | None = None
) -> pd.DataFrame | SparkDataFrame:
    """Boxes from Pascal VOC XML annotations: one file, a folder of them (``Annotations/``)
    or a list of either.

    Returns the box table (:data:`BOX_COLUMNS`): ``image`` is the ``<filename>``; VOC's
    1-based inclusive corners become 0-based end-exclusive pixels (``xmin - 1``, ``xmax``);
    ``difficult`` is VOC's flag. Malformed XML or a missing element raises ``ValueError``
    naming the file and the object.

    Example::

        boxes = read_voc("VOCdevkit/VOC2012/Annotations")
        boxes.groupby("class").size()
    """
    rows = []
    for path in _voc_files(paths):
        try:
            root = ET.parse(path).getroot()
        except ET.ParseError as exc:
            raise ValueError(f"{path}: malformed VOC XML: {exc}") from exc
        if root.tag != "annotation":
            raise ValueError(f"{path}: root element is <{root.tag}>, expected <annotation>")
        image = _voc_text(root, "filename", path, "<annotation>")
        size = root.find("size")
        if size is None:
            raise ValueError(f"{path}: <annotation> has no <size>")
        width = int(_voc_number(size, "width", path, "<size>"))
        height = int(_voc_number(size, "height", path, "<size>"))
        for number, obj in enumerate(root.findall("object"), start=1):
            where = f"object {number}"
            name = _voc_text(obj, "name", path, where)
            bndbox = obj.find("bndbox")
            if bndbox is None:
                raise ValueError(f"{path}: {where} ({name}) has no <bndbox>")
            difficult = obj.find("difficult")
            box = {
                "image": image,
                "width": width,
                "height": height,
                "class": name,
                "xmin": _voc_number(bndbox, "xmin", path, where) - 1.0,
                "ymin": _voc_number(bndbox, "ymin", path, where) - 1.0,
                "xmax": _voc_number(bndbox, "xmax", path, where),
                "ymax": _voc_number(bndbox, "ymax", path, where),
                "difficult": difficult is not None and (difficult.text or "0").strip() == "1",
            }
            _check_box(path, f"{where} ({name})", box)
            rows.append(box)
    return to_spark(box_table(rows), spark, BOX_SCHEMA)


def read_coco(path: str, spark: SparkSession | None = None) -> pd.DataFrame | SparkDataFrame:
    """Boxes from a COCO detection JSON (``instances_*.json``: ``images``, ``annotations``
    with ``bbox = [x, y, width, height]`` in pixels, ``categories``).

    Returns the box table (:data:`BOX_COLUMNS`): ``image`` is the image's ``file_name``,
    ``class`` the category name, ``difficult`` COCO's ``iscrowd``. Images without
    annotations have no rows. Malformed JSON, an annotation naming an unknown image or
    category, or a bad ``bbox`` raises ``ValueError`` naming the file.

    Example::

        boxes = read_coco("annotations/instances_val2017.json")
    """
    try:
        with open(path, encoding="utf-8") as handle:
            data = json.load(handle)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: malformed COCO JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a JSON object with images, annotations, categories")
    missing = [k for k in ("images", "annotations", "categories") if k not in data]
    if missing:
        raise ValueError(f"{path}: missing key(s) {', '.join(missing)}")
    try:
        images = {im["id"]: im for im in data["images"]}
        categories = {c["id"]: c["name"] for c in data["categories"]}
    except (KeyError, TypeError) as exc:
        raise ValueError(f"{path}: an image or category lacks {exc}") from exc
    rows = []
    for number, ann in enumerate(data["annotations"]):
        where = f"annotation {ann.get('id', number)}" if isinstance(ann, dict) else ""
        if not isinstance(ann, dict) or "image_id" not in ann or "bbox" not in ann:
            raise ValueError(f"{path}: annotation {number} lacks image_id or bbox")
        image = images.get(ann["image_id"])
        if image is None:
            raise ValueError(f"{path}: {where} names unknown image_id {ann['image_id']!r}")
        category = categories.get(ann.get("category_id"))
        if category is None:
            raise ValueError(
                f"{path}: {where} names unknown category_id {ann.get('category_id')!r}"
            )
        bbox = ann["bbox"]
        if not (isinstance(bbox, list) and len(bbox) == 4):
            raise ValueError(f"{path}: {where} bbox is {bbox!r}, expected [x, y, width, height]")
        try:
            x, y, w, h = (float(v) for v in bbox)
            width, height = int(image["width"]), int(image["height"])
            file_name = str(image["file_name"])
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"{path}: {where}: bad bbox or image entry ({exc})") from exc
        box = {
            "image": file_name,
            "width": width,
            "height": height,
            "class": category,
            "xmin": x,
            "ymin": y,
            "xmax": x + w,
            "ymax": y + h,
            "difficult": bool(ann.get("iscrowd", 0)),
        }
        _check_box(path, where, box)
        rows.append(box)
    return to_spark(box_table(rows), spark, BOX_SCHEMA)


# ---------------------------------------------------------------------------- image folder


def read_image_folder(
    root: str,
    extensions: Sequence[str] = IMAGE_EXTENSIONS,
    spark: SparkSession | None = None,
) -> pd.DataFrame | SparkDataFrame:
    """The images of a folder with one sub-folder per class (the layout of Keras'
    ``image_dataset_from_directory`` and torchvision's ``ImageFolder``).

    Returns ``path`` (absolute), ``label`` (the sub-folder name) and ``label_index`` (the
    position of the label among the sorted class names), sorted by label then path. Files
    are found at any depth below a class folder; names are matched on ``extensions``
    (case-insensitive); hidden files and folders are skipped. Images are not decoded here.
    A missing root, a root without class folders, or a class folder without images raises
    ``ValueError`` naming it.

    Example::

        table = read_image_folder("flowers/")      # flowers/roses/1.jpg, flowers/tulips/...
        classes = sorted(table["label"].unique())
    """
    if not os.path.isdir(root):
        raise ValueError(f"{root}: not a folder")
    suffixes = tuple(e.lower() for e in extensions)
    classes = sorted(
        d
        for d in os.listdir(root)
        if not d.startswith(".") and os.path.isdir(os.path.join(root, d))
    )
    if not classes:
        raise ValueError(f"{root}: no class sub-folders (expected {root}/<class>/<image>)")
    rows = []
    empty = []
    for index, label in enumerate(classes):
        found = []
        for folder, subdirs, files in os.walk(os.path.join(root, label)):
            subdirs[:] = sorted(d for d in subdirs if not d.startswith("."))
            found += [
                os.path.abspath(os.path.join(folder, f))
                for f in files
                if not f.startswith(".") and f.lower().endswith(suffixes)
            ]
        if not found:
            empty.append(os.path.join(root, label))
        rows += [(path, label, index) for path in sorted(found)]
    if empty:
        raise ValueError(
            f"class folder(s) without images ({', '.join(suffixes)}): {', '.join(empty)}"
        )
    frame = pd.DataFrame(rows, columns=["path", "label", "label_index"])
    frame["label_index"] = frame["label_index"].astype(np.int64)
    return to_spark(frame, spark, IMAGE_FOLDER_SCHEMA)


__all__ = [
    "BOX_COLUMNS",
    "BOX_SCHEMA",
    "CREDITCARD_COLUMNS",
    "CREDITCARD_SCHEMA",
    "IMAGE_EXTENSIONS",
    "IMAGE_FOLDER_SCHEMA",
    "NAB_SCHEMA",
    "RATINGS_COLUMNS",
    "RATINGS_SCHEMA",
    "box_table",
    "check_creditcard_columns",
    "read_coco",
    "read_creditcard",
    "read_image_folder",
    "read_movielens_ratings",
    "read_nab",
    "read_voc",
    "to_spark",
]
