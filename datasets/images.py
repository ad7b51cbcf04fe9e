"""ImageSet: images from a folder or ``hdfs://`` URI as a Spark DataFrame, decoded by OpenCV.

Files are listed by Spark's ``binaryFile`` source (recursive, filtered by a glob), read by
Spark or by the Python workers (``fetch``), and decoded in Arrow batches on the executors
(``mapInArrow``), together with any preprocessing chain from
:mod:`sparkzoo.datasets.transforms`, in one pass. A file that cannot be decoded (or
transformed) never fails the job unless asked to: by ``on_error`` its row keeps an ``error``
naming the file (``"keep"``), is dropped and counted (``"drop"``), or fails the job (``"raise"``).

The ``image`` column is a struct with the fields of Spark's own image schema (``origin``,
``height``, ``width``, ``nChannels``, ``mode``, ``data``) plus ``layout``:

- ``data`` holds the pixels as bytes, row-major in ``layout`` order (``"HWC"``, or ``"CHW"``
  after ``ToTensor("CHW")``); ``mode`` is the OpenCV type code (``CV_8UC3`` = 16 for bytes,
  ``CV_32FC3`` = 21 for float32, ...), so the element type travels with the data;
- channels are RGB by default (``color="rgb"``; Spark's own image source keeps OpenCV's BGR,
  available with ``color="bgr"``), or one grey channel (``color="gray"``).

:meth:`ImageSet.to_arrays` gives instead a flat ``array<float>`` column. Either feeds
``KerasEstimator`` and ``KerasModel`` when every image has the model's input size (a 28 x 28 x 1
image feeds a ``(28, 28, 1)`` input); the ``image`` column travels to Python as bytes, faster.

Example::

    from sparkzoo.datasets.images import ImageSet
    from sparkzoo.datasets.transforms import CenterCrop, Resize

    images = ImageSet.read(spark, "hdfs://namenode:8020/photos", labels=True)
    images = images.transform(Resize(256).then(CenterCrop(224)))
    images.df.show()                  # path, label, label_id, image, error
    train = images.to_arrays()        # path, label, label_id, features (224*224*3 floats)
"""

from __future__ import annotations

import heapq
import math
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlparse

import cv2
import numpy as np
import pyarrow as pa
from pyspark.sql import functions as F
from pyspark.sql.types import (
    ArrayType,
    FloatType,
    IntegerType,
    StringType,
    StructField,
    StructType,
)

from sparkzoo import fs
from sparkzoo.arrow import list_array, spark_schema
from sparkzoo.datasets.transforms import (
    Transform,
    as_hwc,
    output_layout,
    row_rng,
    strip_file_scheme,
)
from sparkzoo.image_schema import mode_dtype, opencv_mode

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

# File names Spark's glob filter keeps by default (Hadoop globs are case-sensitive).
IMAGE_GLOB = "*.{jpg,jpeg,png,bmp,tif,tiff,webp,ppm,pgm,JPG,JPEG,PNG,BMP,TIF,TIFF,WEBP}"
ON_ERROR = ("keep", "drop", "raise")
COLORS = {"rgb": cv2.IMREAD_COLOR, "bgr": cv2.IMREAD_COLOR, "gray": cv2.IMREAD_GRAYSCALE}
_PIXEL_TYPES = (np.dtype(np.uint8), np.dtype(np.float32))  # what an ImageSet stores
# Output Arrow batches are cut at this many rows or bytes, whichever comes first, to bound the
# memory of a Python worker (Spark hands over input batches of up to 10,000 rows).
_CHUNK_ROWS = 64
# ImageSet.read's default partition size (see there). A Python worker holds up to a partition's
# encoded bytes at once (Spark's Arrow batches go up to 10,000 rows); 128 MB is also Spark's own
# default split size.
FILES_PER_PARTITION = 1024
BYTES_PER_PARTITION = 128 << 20
_CHUNK_BYTES = 64 << 20

_IMAGE_FIELDS = [
    pa.field("origin", pa.string()),
    pa.field("height", pa.int32()),
    pa.field("width", pa.int32()),
    pa.field("nChannels", pa.int32()),
    pa.field("mode", pa.int32()),
    pa.field("data", pa.binary()),
    pa.field("layout", pa.string()),
]


class ImageDecodeError(ValueError):
    """A file is not a readable image, or a preprocessing step failed on it; names the file."""


def _stored_mode(dtype: np.dtype, channels: int) -> int:
    """The ``mode`` of an image an ImageSet stores: uint8 or float32 pixels only."""
    if np.dtype(dtype) not in _PIXEL_TYPES:
        raise ValueError(f"images must be uint8 or float32, got {np.dtype(dtype)}")
    return opencv_mode(dtype, channels)


def decode_image(data: bytes | memoryview | np.ndarray, color: str = "rgb") -> np.ndarray:
    """Decode encoded image bytes (JPEG, PNG, ...) to an H x W x C ``uint8`` array.

    Raises :class:`ImageDecodeError` for empty or unreadable data. Example::

        image = decode_image(open("cat.jpg", "rb").read())   # RGB, (H, W, 3)
    """
    if color not in COLORS:
        raise ValueError(f"color must be one of {sorted(COLORS)}, got {color!r}")
    buffer = np.frombuffer(data, np.uint8) if not isinstance(data, np.ndarray) else data
    if buffer.size == 0:
        raise ImageDecodeError("empty file")
    image = cv2.imdecode(buffer, COLORS[color])
    if image is None:
        raise ImageDecodeError(f"not a readable image ({buffer.size} bytes)")
    if color == "rgb":
        image = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
    return as_hwc(image)


def image_to_struct(image: np.ndarray, origin: str, layout: str = "HWC") -> dict[str, Any]:
    """The ``image`` struct of one array (HWC, or CHW with ``layout="CHW"``), as a dict."""
    if layout == "CHW":
        channels, height, width = image.shape
    else:
        height, width, channels = as_hwc(image).shape
    return {
        "origin": origin,
        "height": height,
        "width": width,
        "nChannels": channels,
        "mode": _stored_mode(image.dtype, channels),
        "data": np.ascontiguousarray(image).tobytes(),
        "layout": layout,
    }


def struct_to_image(image: Any) -> np.ndarray:
    """The numpy array of an ``image`` struct (a Row or a dict), in its stored layout.

    Example::

        row = images.df.first()
        array = struct_to_image(row.image)     # (H, W, 3) uint8, or (3, H, W) after ToTensor
    """
    get = image.__getitem__
    channels, height, width = get("nChannels"), get("height"), get("width")
    layout = get("layout") if "layout" in _keys(image) else "HWC"
    shape = (channels, height, width) if layout == "CHW" else (height, width, channels)
    dtype = mode_dtype(get("mode"))
    if dtype is None:
        raise ValueError(f"image mode {get('mode')}: not decoded, or not an OpenCV type")
    return np.frombuffer(get("data"), dtype).reshape(shape)


def _keys(image: Any) -> Sequence[str]:
    return image.keys() if isinstance(image, dict) else image.__fields__


@dataclass(frozen=True)
class _Plan:
    """What the executors do to each file: decode, the chains in order, the output form."""

    color: str
    on_error: str
    steps: tuple[tuple[Transform, int], ...] = ()
    output: str = "struct"  # "struct": the image column; "array": a flat float array
    passthrough: tuple[str, ...] = ()  # input columns copied to the output (label, ...)
    array_col: str = "features"
    errors_only: bool = field(default=False)  # yield (path, error) of failures only
    read_files: bool = False  # no content column: the worker reads each path itself
    # Local files listed on the driver: the paths of each partition (the input rows are then
    # partition numbers), and the classes that number the labels.
    listing: tuple[tuple[str, ...], ...] | None = None
    classes: tuple[str, ...] = ()


def read_file(path: str) -> bytes:
    """The bytes of one file, read by the Python worker: a local path or ``file:`` URI
    directly, anything else (``hdfs://``) through :mod:`sparkzoo.fs`."""
    if "://" not in path or path.startswith("file:"):
        with open(strip_file_scheme(path), "rb") as handle:
            return handle.read()
    return fs.read_bytes(path)


def load_image(path: str, color: str = "rgb") -> np.ndarray:
    """One image file (local path, ``file:`` or ``hdfs://`` URI) decoded on the driver, with
    an error naming the file when it is missing or unreadable.

    Example::

        photo = load_image("hdfs://127.0.0.1:9000/photos/cat.jpg")     # (H, W, 3) uint8
    """
    if not fs.exists(strip_file_scheme(path)):
        raise FileNotFoundError(f"image {path} does not exist")
    try:
        return decode_image(read_file(path), color)
    except ImageDecodeError as err:
        raise ValueError(f"cannot read image {path}: {err}") from None


def png_bytes(image: np.ndarray) -> bytes:
    """An RGB (or grey) ``uint8`` image encoded as PNG.

    Example::

        open("out.png", "wb").write(png_bytes(photo))
    """
    array = np.asarray(image)
    ok, data = cv2.imencode(
        ".png", cv2.cvtColor(array, cv2.COLOR_RGB2BGR) if array.ndim == 3 else array
    )
    if not ok:
        raise ValueError(f"OpenCV could not encode an image of shape {array.shape} as PNG")
    return data.tobytes()


def contact_sheet(images: Sequence[np.ndarray], columns: int = 4, size: int = 160) -> np.ndarray:
    """RGB ``uint8`` images resized to ``size`` pixels on their longer side and tiled,
    ``columns`` per row, on a white sheet.

    Example::

        png_bytes(contact_sheet([photo, crop, other], columns=3))
    """
    if not len(images):
        raise ValueError("contact_sheet needs at least one image")
    rows = math.ceil(len(images) / columns)
    sheet = np.full((rows * (size + 4), min(columns, len(images)) * (size + 4), 3), 255, np.uint8)
    for n, image in enumerate(images):
        scale = size / max(image.shape[:2])
        resized = cv2.resize(image, (round(image.shape[1] * scale), round(image.shape[0] * scale)))
        y, x = (n // columns) * (size + 4) + 2, (n % columns) * (size + 4) + 2
        sheet[y : y + resized.shape[0], x : x + resized.shape[1]] = resized
    return sheet


def _partition_count(files: int, total_bytes: int, slots: int) -> int:
    """About ``FILES_PER_PARTITION`` files or ``BYTES_PER_PARTITION`` bytes per partition,
    whichever makes more, rounded up to a multiple of the task slots (see ImageSet.read)."""
    wanted = max(
        math.ceil(files / FILES_PER_PARTITION), math.ceil(total_bytes / BYTES_PER_PARTITION), 1
    )
    return math.ceil(wanted / slots) * slots


def local_path(uri: str) -> str:
    """The local path of a ``file:`` URI as Spark lists it (``file:///a%20b/c.jpg`` gives
    ``/a b/c.jpg``); a plain path is returned as it is."""
    if not uri.startswith("file:"):
        return uri
    return unquote(urlparse(uri).path)


def balanced_partitions(
    paths: Sequence[str], sizes: Sequence[int], count: int
) -> tuple[tuple[str, ...], ...]:
    """``paths`` dealt into ``count`` partitions of about equal bytes (largest file first,
    each to the lightest partition), each partition in path order.

    Spark's own file splits are sorted by size, so merging them put all the largest images in
    one task (measured: one task of 2.3 s beside three of 0.6-1.0 s, 600 files each)."""
    loads = [(0, i) for i in range(count)]
    parts: list[list[str]] = [[] for _ in range(count)]
    for size, path in sorted(zip(sizes, paths, strict=True), key=lambda f: (-f[0], f[1])):
        load, i = heapq.heappop(loads)
        parts[i].append(path)
        heapq.heappush(loads, (load + size, i))
    return tuple(tuple(sorted(part)) for part in parts)


def _folder(path: str) -> str | None:
    """The name of the folder holding ``path`` (Spark's ``element_at(split(path, '/'), -2)``)."""
    parts = path.split("/")
    return parts[-2] if len(parts) >= 2 else None


def _listed_files(batches: Iterator[pa.RecordBatch], plan: _Plan) -> Iterator[pa.RecordBatch]:
    """Listing mode: each input row is a partition number; its files become one batch of
    ``path`` [``label``, ``label_id``], as the ``binaryFile`` source would give them."""
    ids = {name: i for i, name in enumerate(plan.classes)}
    for batch in batches:
        for part in batch.column("part").to_pylist():
            paths = list(plan.listing[part])
            arrays, names = [pa.array(paths, pa.string())], ["path"]
            if plan.passthrough:
                labels = [_folder(p) for p in paths]
                arrays += [
                    pa.array(labels, pa.string()),
                    pa.array(map(ids.get, labels), pa.int32()),
                ]
                names += ["label", "label_id"]
            yield pa.RecordBatch.from_arrays(arrays, names=names)


def _checked_on_error(on_error: str) -> str:
    if on_error not in ON_ERROR:
        raise ValueError(f"on_error must be one of {ON_ERROR}, got {on_error!r}")
    return on_error


def _checked_color(color: str) -> str:
    if color not in COLORS:
        raise ValueError(f"color must be one of {sorted(COLORS)}, got {color!r}")
    return color


def _process(data: memoryview, path: str, plan: _Plan) -> np.ndarray:
    image = decode_image(data, plan.color)
    for chain, seed in plan.steps:
        image = chain(image, row_rng(path, seed) if chain.random else None)
    return image


def _decode_partition(batches: Iterator[pa.RecordBatch], plan: _Plan) -> Iterator[pa.RecordBatch]:
    """The executor side: binaryFile rows in, decoded (and transformed) rows out."""
    # Spark already runs one Python worker per task slot; OpenCV's own thread pool on top of
    # that would oversubscribe the cores.
    cv2.setNumThreads(1)
    layout = output_layout(plan.steps[-1][0]) if plan.steps else "HWC"
    if plan.listing is not None:
        batches = _listed_files(batches, plan)
    for batch in batches:
        paths = batch.column("path").to_pylist()
        contents = None if plan.read_files else batch.column("content")
        rows: list[int] = []
        images: list[np.ndarray | None] = []
        errors: list[str | None] = []
        size = 0
        for i, path in enumerate(paths):
            try:
                if contents is None:
                    data = read_file(path)
                else:
                    buffer = contents[i].as_buffer()
                    data = memoryview(buffer) if buffer is not None else b""
                image = _process(data, path, plan)
                error = None
            except Exception as exc:
                message = f"{path}: {type(exc).__name__}: {exc}"
                if plan.on_error == "raise":
                    raise ImageDecodeError(f"cannot read image {message}") from exc
                image, error = None, message
            if plan.errors_only:
                if error is not None:
                    rows.append(i)
                    errors.append(error)
                continue
            if error is not None and plan.on_error == "drop":
                continue
            rows.append(i)
            images.append(image)
            errors.append(error)
            size += 0 if image is None else image.nbytes
            if len(rows) >= _CHUNK_ROWS or size >= _CHUNK_BYTES:
                yield _output_batch(batch, rows, images, errors, paths, plan, layout)
                rows, images, errors, size = [], [], [], 0
        if rows:
            yield _output_batch(batch, rows, images, errors, paths, plan, layout)


def _output_batch(batch, rows, images, errors, paths, plan: _Plan, layout) -> pa.RecordBatch:
    if plan.errors_only:
        return pa.RecordBatch.from_arrays(
            [pa.array([paths[i] for i in rows], pa.string()), pa.array(errors, pa.string())],
            names=["path", "error"],
        )
    taken = pa.array(rows, pa.int64())
    arrays = [batch.column("path").take(taken)]
    names = ["path"]
    for name in plan.passthrough:
        arrays.append(batch.column(name).take(taken))
        names.append(name)
    missing = np.array([image is None for image in images], bool)
    if plan.output == "array":
        arrays.append(list_array(images))
        names.append(plan.array_col)
    else:
        arrays.append(_image_structs(images, [paths[i] for i in rows], layout, missing))
        names.append("image")
    if plan.on_error == "keep":
        arrays.append(pa.array(errors, pa.string()))
        names.append("error")
    return pa.RecordBatch.from_arrays(arrays, names=names)


def _image_structs(
    images: list[np.ndarray | None], paths: list[str], layout: str, missing: np.ndarray
) -> pa.Array:
    """The ``image`` struct column, built field by field (null where an image is missing)."""
    shapes = [(0, 0, 0) if image is None else image.shape for image in images]
    if layout == "CHW":
        heights, widths, channels = (
            [s[1] for s in shapes],
            [s[2] for s in shapes],
            [s[0] for s in shapes],
        )
    else:
        heights, widths, channels = (
            [s[0] for s in shapes],
            [s[1] for s in shapes],
            [s[2] for s in shapes],
        )
    modes = [
        0 if image is None else _stored_mode(image.dtype, c)
        for image, c in zip(images, channels, strict=True)
    ]
    data = _binary_array(images, missing)
    fields = [
        pa.array(paths, pa.string()),
        pa.array(heights, pa.int32()),
        pa.array(widths, pa.int32()),
        pa.array(channels, pa.int32()),
        pa.array(modes, pa.int32()),
        data,
        pa.array([layout] * len(images), pa.string()),
    ]
    return pa.StructArray.from_arrays(
        fields, fields=_IMAGE_FIELDS, mask=pa.array(missing, pa.bool_()) if missing.any() else None
    )


def _binary_array(images: list[np.ndarray | None], missing: np.ndarray) -> pa.Array:
    """The images' bytes as an Arrow binary array, copied once into one buffer (the output
    batches are cut well below binary's 2 GB offset limit)."""
    sizes = np.array([0 if image is None else image.nbytes for image in images], np.int64)
    offsets = np.zeros(len(images) + 1, np.int32)
    np.cumsum(sizes, out=offsets[1:])
    present = [image.reshape(-1).view(np.uint8) for image in images if image is not None]
    values = np.concatenate(present) if present else np.zeros(0, np.uint8)
    validity = pa.array(~missing, pa.bool_()).buffers()[1] if missing.any() else None
    return pa.Array.from_buffers(
        pa.binary(), len(images), [validity, pa.py_buffer(offsets), pa.py_buffer(values)]
    )


class ImageSet:
    """Images as rows of a Spark DataFrame; lazy: nothing is decoded until an action runs.

    Build one with :meth:`read` (a folder or URI) or :meth:`from_binary` (a DataFrame of
    ``path``/``content``), add preprocessing with :meth:`transform`, take the rows as
    :attr:`df` (an ``image`` struct column) or :meth:`to_arrays` (a flat float array column).
    The decode and every chain run in one pass over each file.

    Example::

        images = ImageSet.read(spark, "/data/flowers", labels=True, on_error="drop")
        images.df.select("label", "image.height", "image.width").show()
        images.dropped_count()        # how many files were unreadable
    """

    def __init__(self, source: DataFrame, plan: _Plan, classes: list[str] | None = None):
        self._source = source
        self._plan = plan
        self.classes = classes

    # ---- construction ------------------------------------------------------------------------
    @classmethod
    def read(
        cls,
        spark: SparkSession,
        path: str | Sequence[str],
        glob: str = IMAGE_GLOB,
        recursive: bool = True,
        labels: bool = False,
        classes: Sequence[str] | None = None,
        color: str = "rgb",
        on_error: str = "keep",
        num_partitions: int | None = None,
        fetch: str = "auto",
    ) -> ImageSet:
        """Images under ``path`` (a local folder, ``file://`` or ``hdfs://`` URI, or a list).

        - ``glob``: file-name filter (Hadoop glob); ``recursive``: look in sub-folders.
        - ``labels``: add ``label`` (the name of the folder holding the file) and ``label_id``
          (its position in ``classes``; by default the sorted folder names found, which costs a
          listing of the files; a folder not in ``classes`` gets a null ``label_id``).
        - ``color``: ``"rgb"``, ``"bgr"`` (OpenCV's order) or ``"gray"``.
        - ``on_error``: ``"keep"`` (the row's ``image`` is null and ``error`` names the file and
          the problem), ``"drop"`` (the row is left out; :meth:`dropped_count` counts them) or
          ``"raise"`` (the job fails with an error naming the file).
        - ``num_partitions``: how many partitions (tasks) hold the files. By default about
          ``FILES_PER_PARTITION`` files or ``BYTES_PER_PARTITION`` bytes each, whichever makes
          more, rounded up to a multiple of the task slots: Spark's own file splitting makes
          small partitions (~30 small files) and every task costs a Python round trip, while a
          task's Arrow batches hold its files' bytes, so partitions must not grow without
          bound either. Local files read by the workers are dealt into partitions of about
          equal bytes (:func:`balanced_partitions`).
        - ``fetch``: who reads the files' bytes. ``"spark"``: Spark's ``binaryFile`` source, with
          the cluster's Hadoop client (any file system Spark reads); ``"python"``: the Python
          workers read each listed path themselves (local files, or ``hdfs://`` through
          :mod:`sparkzoo.fs`), which saves the JVM a copy of every file into Arrow (measured
          here: 0.6 s less CPU per 1,000 JPEGs); ``"auto"`` (default): ``"python"`` for local
          files, ``"spark"`` otherwise. Spark lists the files in every case; local files read
          by the workers need no Spark scan at all (the driver hands each task its paths).

        Raises ``FileNotFoundError`` when no file under ``path`` matches ``glob``.
        """
        if fetch not in ("auto", "spark", "python"):
            raise ValueError(f"fetch must be 'auto', 'spark' or 'python', got {fetch!r}")
        if num_partitions is not None and int(num_partitions) < 0:
            raise ValueError(
                f"num_partitions must be a number of partitions (0 or None: the default), "
                f"got {num_partitions!r}"
            )
        paths = [path] if isinstance(path, str) else list(path)
        reader = spark.read.format("binaryFile").option("pathGlobFilter", glob)
        if recursive:
            reader = reader.option("recursiveFileLookup", "true")
        source = reader.load(paths)
        files = source.inputFiles()  # the driver's listing: no job
        if not files:
            raise FileNotFoundError(f"no file matching {glob!r} under {', '.join(paths)}")
        local = all(f.startswith("file:") for f in files)
        local_files = [local_path(f) for f in files] if local else []
        if local:  # Spark lists them as URIs (file:///a%20b.jpg); its rows say file:/a b.jpg
            files = [f"file:{f}" for f in local_files]
        if labels and classes is None:
            classes = sorted({f.rsplit("/", 2)[-2] for f in files if f.count("/") >= 2})
        if fetch == "auto":
            fetch = "python" if local else "spark"
        slots = max(1, spark.sparkContext.defaultParallelism)
        if local:
            sizes = [os.path.getsize(f) for f in local_files]
            num_partitions = num_partitions or _partition_count(len(files), sum(sizes), slots)
        elif num_partitions is None:
            # Only the files' lengths are read here (the content column is not selected).
            total = source.agg(F.sum("length")).first()[0] or 0
            num_partitions = _partition_count(len(files), total, slots)
        if local and fetch == "python":
            listing = balanced_partitions(files, sizes, int(num_partitions))
            return cls._from_listing(spark, listing, labels, classes, color, on_error)
        return cls.from_binary(
            source.select("path", "content"),
            content_col=None if fetch == "python" else "content",
            labels=labels,
            classes=classes,
            color=color,
            on_error=on_error,
            num_partitions=num_partitions,
        )

    @classmethod
    def from_binary(
        cls,
        df: DataFrame,
        path_col: str = "path",
        content_col: str | None = "content",
        labels: bool | str = False,
        classes: Sequence[str] | None = None,
        color: str = "rgb",
        on_error: str = "keep",
        num_partitions: int | None = None,
    ) -> ImageSet:
        """An ImageSet over a DataFrame of file paths and encoded bytes (e.g. from
        ``binaryFile``, or images stored in a table). With ``content_col=None`` the Python
        workers read each path themselves (see ``fetch`` of :meth:`read`). ``labels`` may name
        a string column of ``df`` holding the class; ``True`` takes the folder name from the
        path. The other arguments are those of :meth:`read`."""
        _checked_on_error(on_error)
        _checked_color(color)
        needed = [path_col, *([content_col] if content_col else [])]
        for name in (*needed, *([labels] if isinstance(labels, str) else [])):
            if name not in df.columns:
                raise ValueError(f"column {name!r} is not in the DataFrame; it has {df.columns}")
        source = df.select(
            F.col(path_col).alias("path"),
            *([F.col(content_col).alias("content")] if content_col else []),
            *([F.col(labels).alias("label")] if isinstance(labels, str) else []),
        )
        passthrough: tuple[str, ...] = ()
        found: list[str] | None = None
        if labels:
            if not isinstance(labels, str):
                # The folder that holds the file names its class.
                source = source.withColumn("label", F.element_at(F.split("path", "/"), -2))
            if classes is None:
                rows = source.select("label").distinct().collect()
                classes = sorted(r.label for r in rows if r.label is not None)
            found = list(classes)
            pairs = [F.lit(v) for i, c in enumerate(found) for v in (c, i)]
            ids = F.create_map(*pairs) if pairs else F.create_map().cast("map<string,int>")
            source = source.withColumn("label_id", ids[F.col("label")].cast("int"))
            passthrough = ("label", "label_id")
        if num_partitions:
            current = source.rdd.getNumPartitions()
            if num_partitions < current:
                source = source.coalesce(int(num_partitions))  # merges splits, no shuffle
            elif num_partitions > current:
                source = source.repartition(int(num_partitions))
        plan = _Plan(
            color=color, on_error=on_error, passthrough=passthrough, read_files=not content_col
        )
        return cls(source, plan, found)

    @classmethod
    def _from_listing(
        cls,
        spark: SparkSession,
        listing: tuple[tuple[str, ...], ...],
        labels: bool,
        classes: Sequence[str] | None,
        color: str,
        on_error: str,
    ) -> ImageSet:
        """Local files the driver has listed and dealt into partitions, read by the Python
        workers: each task gets its paths from the plan, and no Spark scan stats every file
        again (about 0.2 ms of JVM CPU a file, measured here by a scan that did nothing else;
        decoding and resizing a photo costs about 1.4 ms)."""
        plan = _Plan(
            color=_checked_color(color),
            on_error=_checked_on_error(on_error),
            passthrough=("label", "label_id") if labels else (),
            read_files=True,
            listing=listing,
            classes=tuple(classes or ()) if labels else (),
        )
        parts = spark.range(0, len(listing), 1, len(listing))
        source = parts.select(F.col("id").cast("int").alias("part"))
        return cls(source, plan, list(classes) if labels else None)

    # ---- preprocessing -----------------------------------------------------------------------
    def transform(self, chain: Transform, seed: int = 0) -> ImageSet:
        """A new ImageSet with ``chain`` applied to every image after what is there already.

        Random steps draw from ``row_rng(path, seed)``, so each row's result equals
        ``chain(image, row_rng(path, seed))`` computed locally on the same file.
        """
        if not isinstance(chain, Transform):
            raise TypeError(f"transform takes a Transform chain, got {type(chain).__name__}")
        if self._plan.steps and self._plan.steps[-1][0].final:
            raise ValueError("the images are already tensors (ToTensor ran): transform before it")
        return ImageSet(
            self._source,
            replace(self._plan, steps=(*self._plan.steps, (chain, int(seed)))),
            self.classes,
        )

    # ---- output ------------------------------------------------------------------------------
    def _schema(self, plan: _Plan):
        if plan.errors_only:
            return StructType(
                [StructField("path", StringType()), StructField("error", StringType())]
            )
        if plan.listing is None:
            fields = [self._source.schema["path"]]
            fields += [self._source.schema[name] for name in plan.passthrough]
        else:
            fields = [StructField("path", StringType())]
            if plan.passthrough:
                fields += [
                    StructField("label", StringType()),
                    StructField("label_id", IntegerType()),
                ]
        if plan.output == "array":
            fields.append(StructField(plan.array_col, ArrayType(FloatType())))
        else:
            image = spark_schema(pa.schema(_IMAGE_FIELDS))  # declared once, in Arrow
            fields.append(StructField("image", image))
        if plan.on_error == "keep":
            fields.append(StructField("error", StringType()))
        return StructType(fields)

    def _run(self, plan: _Plan):
        def decode(batches):
            return _decode_partition(batches, plan)

        return self._source.mapInArrow(decode, self._schema(plan))

    @property
    def df(self) -> DataFrame:
        """The images: ``path``, [``label``, ``label_id``], ``image`` (struct), [``error``]."""
        return self._run(self._plan)

    def to_arrays(self, col: str = "features") -> DataFrame:
        """The images as a flat ``array<float>`` column ``col`` (values in the stored layout)
        instead of the ``image`` struct: a fixed-length feature column ``KerasEstimator``
        takes when every image has the same size (resize them first)."""
        return self._run(replace(self._plan, output="array", array_col=col))

    def errors(self) -> DataFrame:
        """The files that fail (to decode or to transform): a DataFrame of ``path``, ``error``.

        This decodes every file again (one pass of its own)."""
        return self._run(replace(self._plan, errors_only=True, on_error="keep"))

    def dropped_count(self) -> int:
        """How many files fail, i.e. how many rows ``on_error="drop"`` leaves out (one pass)."""
        return self.errors().count()


__all__ = [
    "IMAGE_GLOB",
    "ImageDecodeError",
    "ImageSet",
    "balanced_partitions",
    "contact_sheet",
    "decode_image",
    "image_to_struct",
    "load_image",
    "local_path",
    "opencv_mode",
    "png_bytes",
    "read_file",
    "struct_to_image",
]
