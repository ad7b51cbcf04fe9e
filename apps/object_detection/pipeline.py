"""The JD.com pipeline: images -> detect -> crop -> embed -> Parquet, and what reads it back.

Steps (each a plain function, so the Spark job, the notebook, the benchmark's bare loop and
the tests run the same code):

1. :func:`read_images`: the image files under a local folder or ``hdfs://`` URI, sampled
   and spread over the task slots (an :class:`~sparkzoo.datasets.images.ImageSet` works too).
2. :func:`detect_frame`: one step of ``sparkzoo.trainer.inference.map_batches``. Each Python
   worker decodes the files (OpenCV, ``datasets.images.decode_image``), loads the detector
   and the embedders once (:func:`load_models`, in the inference layer's per-worker cache)
   and runs :func:`detect_batch` (:func:`process_images`) on every Arrow batch: the zoo detector (``ssd_lite.scenes``,
   ``yolo.scenes``, or the packaged ``haar.face``/``mtcnn.face``; resize + the card's
   preprocessing inside ``Detector.prepare``), the kept objects (the top one, or all above a
   score), their crops from the ORIGINAL image, and each crop's embeddings: a ``deepbit``
   binary code and a CNN float vector (LeNet-5's 84-wide penultimate layer).
3. One row per detection: :data:`DETECTIONS_SCHEMA` (image id and path, normalised box
   ``y1, x1, y2, x2``, score, class, ``kept``, ``code``, ``vector``, ``patch``).

Then :func:`detection_map` (VOC mAP@0.5 against COCO ground truth), :func:`retrieval_quality`,
:func:`search` (Hamming or cosine, ``sparkzoo.datasets.index``), ``duplicate_pairs`` (the
byte-band join of ``sparkzoo.datasets.index``) and :func:`draw_rows`.

The default input is COMPOSED (:mod:`~sparkzoo.apps.object_detection.inputs`, whose functions
this module re-exports for the notebook and the CLI): the held-out detection scenes (real
MNIST digits pasted on real scikit-image photographs, synthetic placement) as PNG files plus
COCO ``annotations.json``, or the real photos for the face detectors.

Example::

    from sparkzoo.apps.object_detection import pipeline as p

    folder = p.materialise_scenes("scenes", n=50)
    images, count = p.read_images(spark, folder)
    rows = p.detect_frame(images, p.PipelineConfig(detector="ssd_lite.scenes"))
    rows.write.parquet("out/detections")
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import cv2
import numpy as np
import pandas as pd
import pyarrow as pa

from sparkzoo import keras2 as keras
from sparkzoo.apps.common import sample
from sparkzoo.apps.object_detection.inputs import (
    FACE_DETECTORS,
    FACE_PHOTOS,
    cache_dir,
    default_input,
    ground_truth,
    image_id,
    materialise_photos,
    materialise_scenes,
)
from sparkzoo.datasets.images import (
    IMAGE_GLOB,
    ImageSet,
    contact_sheet,
    decode_image,
    load_image,
    png_bytes,
    read_file,
    struct_to_image,
)
from sparkzoo.datasets.index import duplicate_pairs, nearest, nearest_rows
from sparkzoo.datasets.loaders import mnist, mnist_split_rows
from sparkzoo.datasets.synthetic import detection_scenes
from sparkzoo.models.deepbit import pca_sign_hash
from sparkzoo.models.detection import (
    Detections,
    iou,
    load_detector,
    mean_average_precision,
)
from sparkzoo.models.detection.draw import draw_rows
from sparkzoo.models.registry import apply_preprocessing, card, preprocessor
from sparkzoo.models.registry import get as zoo_model
from sparkzoo.models.retrieval import cosine_distance, hamming_distance, leave_one_out_map
from sparkzoo.trainer.backends import (
    BACKENDS,
    INT8,
    OpenVinoModel,
    check_backend,
    compile_model,
    quantize_graph,
)
from sparkzoo.trainer.inference import map_batches, worker_model

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession


DETECTORS = ("ssd_lite.scenes", "yolo.scenes", "haar.face", "mtcnn.face")
CODE_MODELS = ("deepbit.mnist",)
VECTOR_MODELS = ("lenet5.mnist",)
VECTOR_LAYER = "fc2"  # LeNet-5's 84-wide penultimate layer
CALIBRATION_ROWS = 300  # per model, for backend "openvino-int8" (NNCF's default)
# VOC evaluation keeps low-scoring boxes (as the detector cards' map50 does): the Spark job
# writes every box at or above this score and flags the kept ones.
EVAL_SCORE_THRESHOLD = 0.05
PATCH = 28  # the embedders' input: 28 x 28 grey, white on black (MNIST's convention)

# One row per detection (or per unreadable image, with ``object = -1`` and its ``error``).
DETECTIONS_SCHEMA = pa.schema(
    [
        ("image_id", pa.string()),
        ("path", pa.string()),
        ("height", pa.int32()),
        ("width", pa.int32()),
        ("object", pa.int32()),
        ("box", pa.list_(pa.float32())),
        ("score", pa.float32()),
        ("class_id", pa.int32()),
        ("class", pa.string()),
        ("kept", pa.bool_()),
        ("code", pa.binary()),
        ("vector", pa.list_(pa.float32())),
        ("patch", pa.binary()),
        ("error", pa.string()),
    ]
)


# ---- configuration and the per-worker models -------------------------------------------------


@dataclass(frozen=True)
class PipelineConfig:
    """What runs on each image (pickled to the executors).

    ``keep``: ``"top"`` keeps the highest-scoring object of each image (if it scores at least
    ``score_threshold``), ``"all"`` every object at or above ``score_threshold``.
    ``code_model``/``vector_model``: zoo tags of the embedders, or None to skip one.
    ``threads``: TensorFlow threads per Python worker (Spark runs one worker per task slot).
    ``backend``: ``"tensorflow"``, ``"openvino"`` to run the detector and the embedders
    compiled by OpenVINO (``sparkzoo.trainer.backends``), or ``"openvino-int8"`` to run them
    quantised to 8-bit integers, each calibrated on :func:`calibration_inputs` (the packaged
    face detectors keep their own engines).

    Example::

        PipelineConfig(detector="yolo.scenes", keep="all", score_threshold=0.5)
    """

    detector: str = "ssd_lite.scenes"
    keep: str = "top"
    score_threshold: float = 0.3
    code_model: str | None = "deepbit.mnist"
    vector_model: str | None = "lenet5.mnist"
    batch_size: int = 32
    threads: int = 1
    backend: str = "tensorflow"

    def __post_init__(self) -> None:
        if self.detector not in DETECTORS:
            raise ValueError(f"detector {self.detector!r} unknown; choose one of {DETECTORS}")
        if self.keep not in ("top", "all"):
            raise ValueError(f"keep must be 'top' or 'all', not {self.keep!r}")
        if not math.isfinite(self.score_threshold) or self.score_threshold < 0:
            raise ValueError(f"score_threshold must be a number >= 0, not {self.score_threshold}")
        if self.code_model not in (None, *CODE_MODELS):
            raise ValueError(f"code_model {self.code_model!r} unknown; choose {CODE_MODELS}")
        if self.vector_model not in (None, *VECTOR_MODELS):
            raise ValueError(f"vector_model {self.vector_model!r} unknown; choose {VECTOR_MODELS}")
        if self.batch_size < 1 or self.threads < 1:
            raise ValueError("batch_size and threads must be >= 1")
        check_backend(self.backend, (*BACKENDS, INT8))

    @property
    def min_score(self) -> float:
        """The lowest score the detector returns: the VOC evaluation threshold for the zoo
        detectors (they score in [0, 1]); the packaged face detectors use their own filter."""
        if self.detector in FACE_DETECTORS:
            return 0.0
        return min(self.score_threshold, EVAL_SCORE_THRESHOLD)


def load_models(config: PipelineConfig) -> tuple[Any, Any, Any]:
    """(detector, code model, vector model) for ``config``, loaded now (a model switched off
    in ``config`` is None). On the executors :func:`worker_models` caches them.

    Example::

        detector, coder, vectoriser = load_models(PipelineConfig())
    """
    cv2.setNumThreads(1)  # Spark already runs one Python worker per task slot
    if config.detector in FACE_DETECTORS:
        detector = load_detector(config.detector)
    else:
        detector = load_detector(
            config.detector, score_threshold=config.min_score, batch_size=config.batch_size
        )
        detector.model = _engine(detector.model, config.detector, config)
    coder = zoo_model(config.code_model) if config.code_model else None
    if coder is not None:
        coder = _engine(coder, config.code_model, config)
    vectoriser = None
    if config.vector_model:
        net = zoo_model(config.vector_model)
        vectoriser = keras.Model(net.input, net.get_layer(VECTOR_LAYER).output)
        vectoriser = _engine(vectoriser, config.vector_model, config)
    return detector, coder, vectoriser


def _engine(model: Any, tag: str, config: PipelineConfig) -> Any:
    """Zoo model ``tag`` (or a part of it taking the same input) on ``config.backend``."""
    if config.backend != INT8:
        return compile_model(model, config.backend, config.threads)
    graph = quantize_graph(model, [calibration_inputs(tag)])
    return OpenVinoModel(model, config.threads, graph=graph)


def calibration_inputs(tag: str, rows: int = CALIBRATION_ROWS) -> np.ndarray:
    """What zoo model ``tag`` is calibrated on for 8 bits (``backend="openvino-int8"``):
    ``rows`` of the kind of data it was trained on, preprocessed as its card says. Composed
    training scenes (``subset="train"``) for the scene detectors; training digits of
    ``mnist_split`` for the digit embedders, whose inputs are MNIST-style patches. Fixed rows,
    so every Python worker quantises a model the same way.

    Example::

        calibration_inputs("ssd_lite.scenes").shape       # (300, 96, 96, 3), scaled
    """
    shape = tuple(card(tag).input["shape"])
    if tag in DETECTORS:
        raw = np.stack(detection_scenes(rows, image_size=shape[:2], seed=0).images)
    else:
        train_rows, _ = mnist_split_rows()
        digits = mnist(normalize=False)["pixels"].iloc[train_rows[:rows]]
        raw = np.stack(digits.to_numpy()).reshape(-1, *shape)
    return preprocessor(tag)(raw.astype(np.float32))


def worker_models(config: PipelineConfig) -> tuple[Any, Any, Any]:
    """:func:`load_models`, once per Python worker (``sparkzoo.trainer.inference``'s cache,
    TensorFlow sized to ``config.threads``)."""
    return worker_model(_model_key(config), lambda: load_models(config), config.threads)


def _model_key(config: PipelineConfig) -> str:
    parts = (config.detector, config.min_score, config.batch_size, config.code_model)
    parts = (*parts, config.vector_model, config.backend)
    return "object_detection:" + ":".join(map(str, parts))


# ---- crops ----------------------------------------------------------------------------------


def pixel_box(box: Sequence[float], height: int, width: int) -> tuple[int, int, int, int]:
    """A normalised (y1, x1, y2, x2) box as pixel rows/columns (end-exclusive, at least one
    pixel), inside the image.

    Example::

        pixel_box([0.1, 0.2, 0.5, 0.6], 100, 200)     # (10, 40, 50, 120)
    """
    y1, x1, y2, x2 = (float(v) for v in box)
    if not all(math.isfinite(v) for v in (y1, x1, y2, x2)):
        raise ValueError(f"box {list(box)} holds a non-finite value")
    top = min(max(0, round(y1 * height)), height - 1)
    left = min(max(0, round(x1 * width)), width - 1)
    bottom = min(height, max(top + 1, round(y2 * height)))
    right = min(width, max(left + 1, round(x2 * width)))
    return top, left, bottom, right


def crop(image: np.ndarray, box: Sequence[float]) -> np.ndarray:
    """The pixels of ``box`` (normalised) cut from ``image`` at its own resolution."""
    top, left, bottom, right = pixel_box(box, *image.shape[:2])
    return image[top:bottom, left:right]


def crop_to_patch(image: np.ndarray, box: Sequence[float], margin: float = 0.15) -> np.ndarray:
    """The object in ``box`` of the ORIGINAL ``image`` as a 28 x 28 uint8 MNIST-style patch:
    ink white on black, fitted into 20 x 20 and centred by its mass.

    "Ink" is how far each pixel's colour lies from the background colour, the median of a
    ``margin`` ring around the box (minus the ring's own 90th-percentile spread, so photo
    texture stays dark); this holds for dark, light or coloured objects. On the ground-truth
    boxes of 100 held-out scenes LeNet-5 reads 95 % of these patches right (273 digits).

    Example::

        patch = crop_to_patch(scene, [0.1, 0.2, 0.5, 0.45])     # (28, 28) uint8
    """
    image = np.asarray(image)
    if image.ndim == 2:
        image = np.stack([image] * 3, axis=-1)
    height, width = image.shape[:2]
    top, left, bottom, right = pixel_box(box, height, width)
    pad_y = max(1, round((bottom - top) * margin))
    pad_x = max(1, round((right - left) * margin))
    y0, x0 = max(0, top - pad_y), max(0, left - pad_x)
    y1, x1 = min(height, bottom + pad_y), min(width, right + pad_x)
    region = image[y0:y1, x0:x1, :3].astype(np.float32)
    inner = np.zeros(region.shape[:2], bool)
    inner[top - y0 : bottom - y0, left - x0 : right - x0] = True
    ring = region[~inner] if (~inner).any() else region.reshape(-1, 3)
    background = np.median(ring, axis=0)
    spread = np.percentile(np.linalg.norm(ring - background, axis=1), 90)
    distance = np.linalg.norm(region - background, axis=2)[
        top - y0 : bottom - y0, left - x0 : right - x0
    ]
    ink = np.clip(distance - spread, 0, None)
    peak = float(np.percentile(ink, 99))
    if peak <= 0:  # a busy ring (texture, a neighbour) hides the object: keep it unfloored
        ink, peak = distance, float(np.percentile(distance, 99))
    ink = ink / peak * 255.0 if peak > 0 else ink
    scale = 20.0 / max(ink.shape)
    rows, cols = max(1, round(ink.shape[0] * scale)), max(1, round(ink.shape[1] * scale))
    small = cv2.resize(np.clip(ink, 0, 255), (cols, rows), interpolation=cv2.INTER_AREA)
    patch = np.zeros((PATCH, PATCH), np.float32)
    oy, ox = (PATCH - rows) // 2, (PATCH - cols) // 2
    patch[oy : oy + rows, ox : ox + cols] = small
    mass = patch.sum()
    if mass > 0:  # MNIST centres each digit by its centre of mass
        grid = np.arange(PATCH, dtype=np.float32)
        cy = (grid[:, None] * patch).sum() / mass
        cx = (grid[None, :] * patch).sum() / mass
        shift = np.float32([[1, 0, PATCH / 2 - cx], [0, 1, PATCH / 2 - cy]])
        patch = cv2.warpAffine(patch, shift, (PATCH, PATCH))
    return np.clip(np.round(patch), 0, 255).astype(np.uint8)


def keep_mask(scores: np.ndarray, keep: str, score_threshold: float) -> np.ndarray:
    """Which detections to keep: the top one or all scoring >= ``score_threshold``.

    Example::

        keep_mask(np.array([0.2, 0.9, 0.5]), "top", 0.3)     # [False, True, False]
    """
    scores = np.asarray(scores, np.float32)
    mask = scores >= score_threshold
    if keep == "top" and mask.any():
        top = int(np.argmax(scores))
        mask = np.zeros(len(scores), bool)
        mask[top] = True
    return mask


def embed(patches: np.ndarray, coder: Any, vectoriser: Any) -> tuple[Any, Any]:
    """Packed binary codes ``(n, bits / 8)`` uint8 and float vectors ``(n, d)`` of 28 x 28
    uint8 patches (either None when its model is None), through the card preprocessing.

    Example::

        codes, vectors = embed(patches, models.get("deepbit.mnist"), None)
    """
    codes = vectors = None
    if len(patches) == 0:
        return codes, vectors
    x = apply_preprocessing({"scale": 1 / 255}, patches[..., None], (PATCH, PATCH, 1))
    if coder is not None:
        bits = np.asarray(coder(x, training=False)) > 0.5  # deepbit.binary_codes' rule
        codes = np.packbits(bits.astype(np.uint8), axis=1)
    if vectoriser is not None:
        vectors = np.asarray(vectoriser(x, training=False), np.float32)
    return codes, vectors


# ---- one batch of images: the shared body of the Spark step and the bare loop -----------------


def process_images(
    images: list[np.ndarray], config: PipelineConfig, models: tuple | None = None
) -> list[list[dict[str, Any]]]:
    """Detect, keep, crop from the original image and embed: one list of detection dicts per
    image (``object, box, score, class_id, class, kept, code, vector, patch``; embeddings of
    kept objects only).

    Example::

        rows = process_images([scene], PipelineConfig(keep="all"))[0]
        [(r["class"], r["score"]) for r in rows if r["kept"]]
    """
    detector, coder, vectoriser = models or worker_models(config)
    found = detector.detect(images) if images else []
    out: list[list[dict[str, Any]]] = []
    patches: list[np.ndarray] = []
    targets: list[dict[str, Any]] = []
    for image, detections in zip(images, found, strict=True):
        kept = keep_mask(detections.scores, config.keep, config.score_threshold)
        rows = []
        for k in range(len(detections)):
            class_id = int(detections.class_ids[k])
            labels = detections.labels
            name = labels[k] if labels is not None else str(class_id)
            row = {
                "object": k,
                "box": [float(v) for v in detections.boxes[k]],
                "score": float(detections.scores[k]),
                "class_id": class_id,
                "class": name,
                "kept": bool(kept[k]),
                "code": None,
                "vector": None,
                "patch": None,
            }
            if kept[k]:
                patches.append(crop_to_patch(image, detections.boxes[k]))
                targets.append(row)
            rows.append(row)
        out.append(rows)
    if patches:
        stack = np.stack(patches)
        codes, vectors = embed(stack, coder, vectoriser)
        for i, row in enumerate(targets):
            row["patch"] = stack[i].tobytes()
            row["code"] = codes[i].tobytes() if codes is not None else None
            row["vector"] = vectors[i].tolist() if vectors is not None else None
    return out


def decoded_images(batch: pa.RecordBatch) -> tuple[list[str], list[tuple[Any, str | None]]]:
    """The paths of an input batch and (image, error) per row: an ImageSet ``image`` struct,
    or the file's bytes (``content``, or read here from ``path``) decoded by OpenCV."""
    paths = batch.column("path").to_pylist()
    return paths, _decoded(batch, paths)


def _decoded(batch, paths: list[str]) -> list[tuple[np.ndarray | None, str | None]]:
    names = batch.schema.names
    if "image" in names:  # an ImageSet.df (decoded, maybe transformed, upstream)
        structs = batch.column("image").to_pylist()
        errors = batch.column("error").to_pylist() if "error" in names else [None] * len(paths)
        return [
            (np.ascontiguousarray(struct_to_image(st)), None)
            if st is not None
            else (None, errors[i] or f"{paths[i]}: no image")
            for i, st in enumerate(structs)
        ]
    contents = batch.column("content") if "content" in names else None
    out: list[tuple[np.ndarray | None, str | None]] = []
    for i, path in enumerate(paths):
        try:
            if contents is None:
                data = read_file(path)
            else:
                buffer = contents[i].as_buffer()
                data = memoryview(buffer) if buffer is not None else b""
            out.append((decode_image(data), None))
        except Exception as exc:  # a bad file is reported by name, never fails the job
            out.append((None, f"{path}: {type(exc).__name__}: {exc}"))
    return out


def detect_batch(models: tuple, inputs: tuple[list[str], list]) -> dict[str, list]:
    """The per-batch function of :func:`detect_frame` (no Spark in it): decoded images in,
    the columns of :data:`DETECTIONS_SCHEMA` out, one row per detection; an unreadable image
    gives one row with ``object = -1`` and its ``error``."""
    paths, decoded = inputs
    good = [i for i, (image, _) in enumerate(decoded) if image is not None]
    found = process_images([decoded[i][0] for i in good], models[3], models[:3]) if good else []
    records = [
        _error_record(paths[i], error) for i, (image, error) in enumerate(decoded) if image is None
    ]
    for i, rows in zip(good, found, strict=True):
        height, width = decoded[i][0].shape[:2]
        base = {
            "image_id": image_id(paths[i]),
            "path": paths[i],
            "height": height,
            "width": width,
            "error": None,
        }
        records += [{**base, **row} for row in rows]
    return {name: [r[name] for r in records] for name in DETECTIONS_SCHEMA.names}


def _error_record(path: str, error: str) -> dict[str, Any]:
    """The row of an unreadable image: ``object = -1``, its error, nulls elsewhere."""
    row = dict.fromkeys(DETECTIONS_SCHEMA.names)
    row.update(image_id=image_id(path), path=path, object=-1, kept=False, error=error)
    return row


# ---- Spark steps ------------------------------------------------------------------------------


def read_images(
    spark: SparkSession,
    path: str,
    sample_rate: float = 1.0,
    seed: int = 0,
    partitions: int | None = None,
) -> tuple[DataFrame, int]:
    """``(frame, count)``: the image files under ``path`` (folder or ``hdfs://`` URI,
    searched recursively), a ``sample_rate`` Bernoulli sample of them, as a DataFrame of
    ``path`` (local files: the Python workers read them) or ``path, content`` (other file
    systems: Spark's Hadoop client reads them), in ``partitions`` partitions (default: a
    multiple of the task slots, about 512 files each); and how many files were sampled.
    :func:`detect_frame` decodes the files in the same Python pass that detects (one trip
    from the JVM to Python per batch). Raises ``FileNotFoundError`` when no image file is
    there and ``ValueError`` when the sample is empty.

    Example::

        frame, count = read_images(spark, "hdfs://namenode:8020/photos", sample_rate=0.1)
    """
    source = (
        spark.read.format("binaryFile")
        .option("pathGlobFilter", IMAGE_GLOB)
        .option("recursiveFileLookup", "true")
        .load(path)
    )
    files = source.inputFiles()
    if not files:
        raise FileNotFoundError(f"no image file (png, jpg, ...) under --input {path}")
    listing = sample(source.select("path"), sample_rate, seed)
    count = listing.count()
    if count == 0:
        raise ValueError(
            f"no image left after --sample-rate {sample_rate} of the {len(files)} files under "
            f"{path}; raise the rate"
        )
    if not all(f.startswith("file:") for f in files):
        listing = source.select("path", "content").join(listing, "path")
    slots = max(1, spark.sparkContext.defaultParallelism)
    if partitions is None:
        partitions = slots * max(1, math.ceil(count / (slots * 512)))
    current = listing.rdd.getNumPartitions()
    if partitions < current:  # merges Spark's many small file splits without a shuffle
        return listing.coalesce(int(partitions)), count
    return (listing.repartition(int(partitions)) if partitions > current else listing), count


def detect_frame(images: DataFrame | ImageSet, config: PipelineConfig) -> DataFrame:
    """The decode -> detect -> crop -> embed step: a lazy DataFrame of
    :data:`DETECTIONS_SCHEMA`, run in Arrow batches by ``mapInArrow``. ``images``: the frame
    of :func:`read_images`, or an ``ImageSet`` (or its ``df``) when the images need an
    ImageSet transform chain first.

    Example::

        images, _ = read_images(spark, folder)
        detect_frame(images, PipelineConfig()).write.parquet(out)
    """
    frame = images.df if hasattr(images, "df") else images
    if "path" not in frame.columns:
        raise ValueError(f"detect_frame needs a 'path' column; got {frame.columns}")

    return map_batches(
        frame,
        lambda: (*load_models(config), config),
        detect_batch,
        DETECTIONS_SCHEMA,
        key=_model_key(config),
        read=decoded_images,
        keep_input=False,
        threads=config.threads,
    )


def image_errors(detections: DataFrame | pd.DataFrame) -> list[str]:
    """The errors of images that could not be read (a Spark DataFrame or pandas frame)."""
    if hasattr(detections, "rdd"):
        rows = detections.where("error IS NOT NULL").select("error").limit(20).collect()
        return [r.error for r in rows]
    return [e for e in detections["error"] if isinstance(e, str)]


def features_of(detections: DataFrame) -> DataFrame:
    """The kept objects of a detections table, without the ``kept`` and ``error`` columns."""
    return detections.where("kept AND error IS NULL").drop("kept", "error")


# ---- evaluation -------------------------------------------------------------------------------


def detection_map(detections, truth: dict, num_classes: int = 10, kept_only: bool = False) -> dict:
    """VOC mAP@0.5 of a detections table (pandas) against ``truth`` (:func:`ground_truth`),
    over the images that both name; with ``kept_only`` only the kept boxes count.

    Example::

        detection_map(spark.read.parquet(out + "/detections").toPandas(), truth)["map50"]
    """
    rows = detections[detections["error"].isna()] if "error" in detections else detections
    if kept_only:
        rows = rows[rows["kept"]]
    ids = sorted(set(detections["image_id"]) & set(truth))
    if not ids:
        raise ValueError("no image of the detections has ground truth in annotations.json")
    grouped = {k: g for k, g in rows.groupby("image_id")}
    found, truths = [], []
    for key in ids:
        group = grouped.get(key)
        if group is None or len(group) == 0:
            found.append(Detections.empty())
        else:
            found.append(
                Detections(np.stack(group["box"].to_numpy()), group["score"], group["class_id"])
            )
        boxes, classes = truth[key]
        truths.append({"boxes": boxes, "class_ids": classes})
    value = mean_average_precision(found, truths, 0.5, num_classes=num_classes)
    objects = int(sum(len(truth[key][1]) for key in ids))
    return {"map50": value, "images": len(ids), "objects": objects}


def true_classes(features, truth: dict, iou_threshold: float = 0.5) -> np.ndarray:
    """For each kept object (pandas rows with ``image_id``, ``box``): the class of the
    ground-truth object it overlaps with IoU >= ``iou_threshold``, else -1."""
    out = np.full(len(features), -1, np.int64)
    for n, (key, box) in enumerate(zip(features["image_id"], features["box"], strict=True)):
        boxes, classes = truth.get(key, (np.zeros((0, 4)), np.zeros(0)))
        if len(boxes):
            overlaps = iou(np.asarray(box, np.float32)[None], boxes)[0]
            best = int(np.argmax(overlaps))
            if overlaps[best] >= iou_threshold:
                out[n] = int(classes[best])
    return out


def retrieval_quality(features, labels: np.ndarray, bits: int = 32, seed: int = 0) -> dict:
    """Leave-one-out retrieval mAP of the kept crops with ``labels`` as relevance: by
    Hamming over the deepbit codes, by cosine over the CNN vectors, and, in the same run,
    PCA + sign hashing of the crops' pixels with as many bits (the hashing baseline) and
    the chance level (the mean share of relevant items).

    Example::

        retrieval_quality(features_pandas, true_classes(features_pandas, truth))
    """
    labels = np.asarray(labels)
    valid = labels >= 0
    result: dict[str, Any] = {"queries": int(valid.sum())}
    if valid.sum() < 2:
        return result
    rows = features[valid]
    kept = labels[valid]
    counts = np.bincount(kept)
    if counts.max() < 2:  # no crop shares its digit with another: nothing to retrieve
        return result
    result["chance_map"] = float(np.mean([(counts[c] - 1) / (len(kept) - 1) for c in kept]))
    if rows["code"].notna().all():
        codes = np.stack([np.frombuffer(c, np.uint8) for c in rows["code"]])
        result["code_hamming_map"] = leave_one_out_map(hamming_distance(codes, packed=True), kept)
    if rows["vector"].notna().all():
        vectors = np.stack(rows["vector"].to_numpy())
        result["vector_cosine_map"] = leave_one_out_map(cosine_distance(vectors), kept)
    if rows["patch"].notna().all():
        pixels = np.stack([np.frombuffer(p, np.uint8) for p in rows["patch"]]).astype(np.float32)
        hashed = pca_sign_hash(pixels, pixels, bits=min(bits, len(pixels) - 1), seed=seed)
        result["pca_sign_hamming_map"] = leave_one_out_map(hamming_distance(hashed), kept)
    return result


def lenet_accuracy(features, labels: np.ndarray) -> float | None:
    """How often LeNet-5 (``lenet5.mnist``'s last layer applied to the stored penultimate
    vectors) reads a kept crop as its ground-truth digit: a check of the crops."""
    labels = np.asarray(labels)
    valid = labels >= 0
    if not valid.any() or features["vector"].isna().any():
        return None
    kernel, bias = zoo_model("lenet5.mnist").get_layer("predictions").get_weights()
    vectors = np.stack(features["vector"].to_numpy()[valid])
    predicted = np.argmax(vectors @ kernel + bias, axis=1)
    return float((predicted == labels[valid]).mean())


# ---- search, duplicates, pictures -------------------------------------------------------------


def search(
    features: DataFrame | pd.DataFrame, query: dict, metric: str = "hamming", k: int = 5
) -> pd.DataFrame:
    """The ``k`` images nearest to a query object: each image's closest kept object, by
    Hamming distance between codes or cosine distance between vectors
    (``sparkzoo.datasets.index``). ``features`` is a Spark DataFrame (the distances run in the
    executors) or a pandas frame; ``query`` a row of :func:`process_images` (``code`` bytes /
    ``vector`` list). Returns a pandas frame ``rank, image_id, path, object, box, class,
    score, distance``.

    Example::

        q = process_images([photo], PipelineConfig())[0][0]
        search(spark.read.parquet(out + "/features"), q, "cosine", k=5)
    """
    column = {"hamming": "code", "cosine": "vector"}.get(metric)
    if column is None:
        raise ValueError(f"metric must be 'hamming' or 'cosine', not {metric!r}")
    if query.get(column) is None:
        raise ValueError(f"the query object has no {column} (was its embedder switched off?)")
    columns = ["image_id", "path", "object", "box", "class", "score", column]
    how = {"k": k, "order": ("image_id",), "one_per": "image_id", "within": ("object",)}
    if hasattr(features, "rdd"):
        missing = set(columns) - set(features.columns)
        if missing:
            raise ValueError(f"the features lack the columns {sorted(missing)}")
        top = nearest(features.select(*columns), query[column], column, metric, **how).toPandas()
    else:
        top = nearest_rows(features[columns], query[column], column, metric, **how)
    top = top.drop(columns=[column]).reset_index(drop=True)
    top.insert(0, "rank", np.arange(1, len(top) + 1))
    return top


def config_dict(config: PipelineConfig) -> dict[str, Any]:
    return asdict(config)


__all__ = [
    "DETECTIONS_SCHEMA",
    "DETECTORS",
    "FACE_DETECTORS",
    "FACE_PHOTOS",
    "PipelineConfig",
    "cache_dir",
    "contact_sheet",
    "crop",
    "crop_to_patch",
    "decoded_images",
    "default_input",
    "detect_batch",
    "detect_frame",
    "detection_map",
    "draw_rows",
    "duplicate_pairs",
    "embed",
    "features_of",
    "ground_truth",
    "image_id",
    "keep_mask",
    "load_image",
    "load_models",
    "materialise_photos",
    "materialise_scenes",
    "png_bytes",
    "process_images",
    "read_images",
    "retrieval_quality",
    "search",
    "true_classes",
    "worker_models",
]
