"""One detector interface for every app: ``Detector.detect(images) -> list[Detections]``.

Three kinds stand behind it:

- :meth:`Detector.from_model` wraps a zoo detector (``ssd_lite`` or ``yolo``, trained or
  pretrained): images of any size are resized to the model's input, preprocessed, run and
  decoded (scores, per-class NMS). Boxes are normalised, so they hold for the original image.
- ``haar.face``: OpenCV's frontal-face Haar cascade (Viola-Jones, as trained by Rainer
  Lienhart), shipped in ``opencv-python-headless``.
- ``mtcnn.face``: the MTCNN face detector (Zhang et al. 2016) of the ``mtcnn`` package, with
  its five landmarks as ``keypoints``.

Images are RGB (or grey, or RGBA: alpha is dropped) as ``uint8`` 0-255 or float in [0, 1]
(scikit-image's convention). ``detect`` takes one image, a list of images of any sizes, or a
batch array, and always returns one :class:`Detections` per image.

Example::

    from sparkzoo import models
    from skimage.data import astronaut

    faces = models.get("haar.face").detect(astronaut())[0]
    faces.boxes, faces.scores                 # [[0.13, 0.35, 0.31, 0.53]], [5.8]
    det = load_detector("ssd_lite.scenes")    # a pretrained zoo detector, card preprocessing
"""

from __future__ import annotations

import importlib.metadata
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from sparkzoo import extras, models
from sparkzoo.models.detection.boxes import Detections, clip_boxes
from sparkzoo.models.registry import ModelCard, apply_preprocessing, register_packaged

Preprocessing = dict | Callable[[np.ndarray], np.ndarray] | None


def _cv2():
    """OpenCV (the [apps] extra), for image resizing and the Haar detectors: loaded where a
    detector runs, so the zoo's other models load without it."""
    return extras.import_module("cv2", "apps", "resizing images for a detector")


def as_image_list(images: Any) -> list[np.ndarray]:
    """One image, a list of images or a batch array -> a list of (H, W, C) uint8 RGB images."""
    if isinstance(images, np.ndarray) or hasattr(images, "__array_interface__"):
        arr = np.asarray(images)
        if arr.ndim == 4:
            items = list(arr)
        elif arr.ndim == 2 or (arr.ndim == 3 and arr.shape[-1] in (1, 3, 4)):
            items = [arr]
        else:
            raise ValueError(
                f"images must be one image (H, W) or (H, W, 1|3|4), a batch (N, H, W, C) or a "
                f"list of images; got an array of shape {arr.shape}"
            )
    elif isinstance(images, (list, tuple)):
        items = list(images)
    else:
        raise TypeError(f"images must be a numpy array or a list of arrays, got {type(images)}")
    return [_as_rgb_uint8(np.asarray(im), i) for i, im in enumerate(items)]


def _as_rgb_uint8(image: np.ndarray, index: int) -> np.ndarray:
    if image.ndim == 3 and image.shape[-1] == 1:
        image = image[..., 0]
    if image.ndim == 2:
        image = np.stack([image] * 3, axis=-1)
    if image.ndim != 3 or image.shape[-1] not in (3, 4) or min(image.shape[:2]) < 1:
        raise ValueError(
            f"image {index} must be (H, W), (H, W, 1), (H, W, 3) or (H, W, 4), got {image.shape}"
        )
    image = image[..., :3]
    if image.dtype == np.uint8:
        return np.ascontiguousarray(image)
    if image.dtype == bool:
        return image.astype("uint8") * 255
    values = image.astype("float32")
    if np.issubdtype(image.dtype, np.floating):
        if values.size and (values.min() < 0 or values.max() > 1):
            raise ValueError(
                f"image {index} is float with values in [{values.min():.3g}, {values.max():.3g}]; "
                "float images must be in [0, 1] (pass uint8 for 0-255 values)"
            )
        values = values * 255.0
    elif values.size and (values.min() < 0 or values.max() > 255):
        raise ValueError(f"image {index}: integer values must be in [0, 255]")
    return np.clip(np.round(values), 0, 255).astype("uint8")


def _preprocess_fn(preprocessing: Preprocessing) -> Callable[[np.ndarray], np.ndarray]:
    """A card-style dict (``scale``, ``mean``, ``std``) or a callable, applied to 0-255 floats."""
    if callable(preprocessing):
        return preprocessing
    spec = {"scale": 1.0 / 255.0} if preprocessing is None else dict(preprocessing)
    unknown = set(spec) - {"scale", "mean", "std", "shape"}
    if unknown:
        raise ValueError(f"preprocessing keys {sorted(unknown)} unknown; use scale, mean, std")
    return lambda batch: apply_preprocessing(spec, batch)


class Detector:
    """Finds objects in images: ``detect(images) -> list[Detections]``, one per image.

    Subclasses implement :meth:`detect_batch` on a list of uint8 RGB images.
    """

    name: str = "detector"
    labels: list[str] | None = None

    def detect(self, images: Any) -> list[Detections]:
        """Detections for one image, a list of images (any sizes) or a batch array."""
        return self.detect_batch(as_image_list(images))

    def detect_batch(self, images: list[np.ndarray]) -> list[Detections]:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r})"

    @staticmethod
    def from_model(
        model: Any, family: str, config: dict | None = None, **options: Any
    ) -> KerasDetector:
        """A :class:`Detector` around a zoo detector model (``ssd_lite`` or ``yolo``).

        ``config`` is what the model was built with; missing keys take the family's
        defaults, except ``input_shape`` and ``num_classes``, read from the model.
        ``options``: ``score_threshold`` (0.3), ``iou_threshold`` (0.45), ``preprocessing``,
        ``labels``, ``max_detections`` (100), ``batch_size`` (16); see :class:`KerasDetector`.

        Example::

            det = Detector.from_model(model, "ssd_lite", {"num_classes": 10}, labels=names)
            det.detect(photo)[0].boxes
        """
        return KerasDetector(model, family, config, **options)


class KerasDetector(Detector):
    """A zoo detector model behind the :class:`Detector` interface (see ``Detector.from_model``).

    Images are resized to the model's input (boxes are normalised, so they hold for the
    original image), preprocessed and run in batches of ``batch_size``; the family's
    ``decode_predictions`` keeps boxes scoring at least ``score_threshold``, suppresses
    overlaps per class above ``iou_threshold`` and returns at most ``max_detections``.
    ``preprocessing`` is a card's dict (``scale``/``mean``/``std``, applied to 0-255 values;
    default ``{"scale": 1/255}``, the [0, 1] input the families expect) or a callable on a
    float32 batch; ``labels`` names the classes.
    """

    def __init__(
        self,
        model: Any,
        family: str,
        config: dict | None = None,
        score_threshold: float = 0.3,
        iou_threshold: float = 0.45,
        preprocessing: Preprocessing = None,
        labels: Sequence[str] | None = None,
        max_detections: int = 100,
        batch_size: int = 16,
    ) -> None:
        # Here, not at the top: ssd and yolo bring TensorFlow, and the Spark tasks that unpickle
        # an OpenCV detector import this module without needing it.
        from sparkzoo.models.detection import ssd, yolo

        modules = {"ssd_lite": ssd, "yolo": yolo}
        if family not in modules:
            raise ValueError(
                f"Detector.from_model knows families {sorted(modules)}, not {family!r}"
            )
        self._module = modules[family]
        input_shape = tuple(int(v) for v in model.input_shape[1:])
        # Both families output 4 box values + 1 (background / objectness) + the classes.
        inferred = {"input_shape": input_shape, "num_classes": int(model.output_shape[-1]) - 5}
        given = dict(config or {})
        for key, value in inferred.items():
            if key in given and tuple(np.atleast_1d(given[key])) != tuple(np.atleast_1d(value)):
                raise ValueError(f"config {key}={given[key]} does not match the model's {value}")
        self.config = self._module.config_with_defaults({**given, **inferred})
        self.model = model
        self.family = family
        self.name = getattr(model, "name", family)
        self.score_threshold = float(score_threshold)
        self.iou_threshold = float(iou_threshold)
        self.max_detections = int(max_detections)
        self.batch_size = int(batch_size)
        self.labels = list(labels) if labels is not None else None
        if self.labels is not None and len(self.labels) != self.config["num_classes"]:
            raise ValueError(
                f"{len(self.labels)} labels for a model with {self.config['num_classes']} classes"
            )
        self._preprocess = _preprocess_fn(preprocessing)
        # Check now that the config's anchors match the model's outputs.
        self._module.decode_predictions(
            np.zeros((1, *model.output_shape[1:]), "float32"), self.config
        )

    def prepare(self, images: list[np.ndarray]) -> np.ndarray:
        """Resize uint8 RGB images to the model input and preprocess: a float32 batch."""
        height, width, channels = self.config["input_shape"]
        cv2 = _cv2()
        batch = []
        for image in images:
            shrink = image.shape[0] > height or image.shape[1] > width
            resized = cv2.resize(
                image, (width, height), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR
            )
            if channels == 1:
                resized = cv2.cvtColor(resized, cv2.COLOR_RGB2GRAY)[..., None]
            batch.append(resized)
        return self._preprocess(np.stack(batch))

    def detect_batch(self, images: list[np.ndarray]) -> list[Detections]:
        out: list[Detections] = []
        for start in range(0, len(images), self.batch_size):
            x = self.prepare(images[start : start + self.batch_size])
            y = np.asarray(self.model(x, training=False))
            out += self._module.decode_predictions(
                y,
                self.config,
                self.score_threshold,
                self.iou_threshold,
                self.max_detections,
                self.labels,
            )
        return out


class HaarCascadeDetector(Detector):
    """An OpenCV Haar cascade (``cv2.data.haarcascades``) behind the :class:`Detector` interface.

    Runs ``detectMultiScale3`` on the grey image with ``outputRejectLevels=True``; the score of
    a box is its level weight: the summed vote of the cascade's last stage, a margin (larger
    is surer, ~1 to ~10 for faces), not a probability. ``min_neighbors`` is the filter;
    ``score_threshold`` (None: keep all) can drop weak boxes further.
    """

    def __init__(
        self,
        cascade: str = "haarcascade_frontalface_default.xml",
        label: str = "face",
        scale_factor: float = 1.1,
        min_neighbors: int = 5,
        min_size: float = 0.03,
        score_threshold: float | None = None,
    ) -> None:
        self.cascade = cascade
        self.labels = [label]
        self.name = f"haar:{cascade}"
        self.scale_factor = scale_factor
        self.min_neighbors = min_neighbors
        self.min_size = min_size  # fraction of the shorter image side
        self.score_threshold = score_threshold
        self._classifier: Any = None

    def __getstate__(self) -> dict:
        # The OpenCV object does not pickle; it is loaded again where it is used (Spark tasks).
        return {**self.__dict__, "_classifier": None}

    def _load(self) -> Any:
        if self._classifier is None:
            cv2 = _cv2()
            path = cv2.data.haarcascades + self.cascade
            classifier = cv2.CascadeClassifier(path)
            if classifier.empty():
                raise FileNotFoundError(f"OpenCV cannot load the Haar cascade {path}")
            self._classifier = classifier
        return self._classifier

    def detect_batch(self, images: list[np.ndarray]) -> list[Detections]:
        classifier = self._load()
        out = []
        for image in images:
            height, width = image.shape[:2]
            grey = _cv2().cvtColor(image, _cv2().COLOR_RGB2GRAY)
            side = max(1, int(self.min_size * min(height, width)))
            rects, _, weights = classifier.detectMultiScale3(
                grey,
                scaleFactor=self.scale_factor,
                minNeighbors=self.min_neighbors,
                minSize=(side, side),
                outputRejectLevels=True,
            )
            rects = np.asarray(rects, dtype="float32").reshape(-1, 4)
            scores = np.asarray(weights, dtype="float32").reshape(-1)
            if self.score_threshold is not None:
                keep = scores >= self.score_threshold
                rects, scores = rects[keep], scores[keep]
            x, y, w, h = rects.T
            boxes = clip_boxes(
                np.stack([y / height, x / width, (y + h) / height, (x + w) / width], axis=-1)
            )
            order = np.argsort(-scores, kind="stable")
            n = len(order)
            out.append(
                Detections(boxes[order], scores[order], np.zeros(n), labels=[self.labels[0]] * n)
            )
        return out


# MTCNN's landmarks, in the order Detections.keypoints holds them.
MTCNN_KEYPOINTS = ("left_eye", "right_eye", "nose", "mouth_left", "mouth_right")


class MTCNNDetector(Detector):
    """The ``mtcnn`` package's MTCNN face detector behind the :class:`Detector` interface.

    Score = MTCNN's confidence (the output network's face probability); boxes (x, y, w, h
    pixels) become normalised (y1, x1, y2, x2); the five landmarks become ``keypoints``
    (N, 5, 2) normalised (y, x) in :data:`MTCNN_KEYPOINTS` order. The networks load on the
    first call (a few seconds).
    """

    def __init__(self, min_confidence: float = 0.9) -> None:
        self.name = "mtcnn"
        self.labels = ["face"]
        self.min_confidence = float(min_confidence)
        self._mtcnn: Any = None

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_mtcnn": None}

    def detect_batch(self, images: list[np.ndarray]) -> list[Detections]:
        if self._mtcnn is None:
            # mtcnn brings TensorFlow: it loads where the detector runs (a Spark task), on
            # first use, like the networks themselves.
            from mtcnn import MTCNN

            self._mtcnn = MTCNN()
        out = []
        for image in images:
            height, width = image.shape[:2]
            found = [
                f for f in self._mtcnn.detect_faces(image) if f["confidence"] >= self.min_confidence
            ]
            found.sort(key=lambda f: -f["confidence"])
            boxes = np.array(
                [
                    [y / height, x / width, (y + h) / height, (x + w) / width]
                    for x, y, w, h in (f["box"] for f in found)
                ],
                dtype="float32",
            )
            keypoints = np.array(
                [
                    [
                        [f["keypoints"][k][1] / height, f["keypoints"][k][0] / width]
                        for k in MTCNN_KEYPOINTS
                    ]
                    for f in found
                ],
                dtype="float32",
            ).reshape(-1, len(MTCNN_KEYPOINTS), 2)
            out.append(
                Detections(
                    clip_boxes(boxes),
                    [f["confidence"] for f in found],
                    np.zeros(len(found)),
                    labels=["face"] * len(found),
                    keypoints=keypoints,
                )
            )
        return out


def load_detector(name: str, **options: Any) -> Detector:
    """A :class:`Detector` by zoo name: a packaged one (``haar.face``, ``mtcnn.face``) or a
    pretrained ``ssd_lite.<tag>`` / ``yolo.<tag>`` with its card's config, preprocessing and
    labels. ``options`` go to the detector (``score_threshold``, ``iou_threshold``...).

    Example::

        detector = load_detector("mtcnn.face", min_confidence=0.95)
    """
    if name in PACKAGED:
        return PACKAGED[name](**options)
    card = models.card(name)
    if card.kind != "pretrained":
        raise ValueError(
            f"{name!r} is a family without weights; build and train it, then use "
            "Detector.from_model(model, family, config)"
        )
    model = models.get(name)
    return Detector.from_model(
        model,
        card.family,
        card.config,
        preprocessing=card.preprocessing or None,
        labels=card.labels,
        **options,
    )


def _package_version(package: str) -> str:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


# The ready-made detectors of other packages, by zoo name (models.get returns them too).
PACKAGED: dict[str, type[Detector]] = {
    "haar.face": HaarCascadeDetector,
    "mtcnn.face": MTCNNDetector,
}

register_packaged(
    "haar.face",
    HaarCascadeDetector,
    ModelCard(
        name="haar.face",
        family="haar",
        task="face-detection",
        summary="OpenCV's frontal-face Haar cascade (Viola-Jones boosted cascade, 24x24 window)",
        input={"image": "RGB/grey uint8 (or float in [0, 1]), any size; run on the grey image"},
        labels=["face"],
        data={
            "name": "haarcascade_frontalface_default.xml",
            "source": f"opencv-python-headless {_package_version('opencv-python-headless')}, "
            "cv2.data.haarcascades (created by Rainer Lienhart)",
            "licence": "Intel License Agreement for Open Source Computer Vision Library "
            "(BSD-style; in the file's header)",
        },
        notes="score = detectMultiScale3 level weight (last-stage margin, not a probability; "
        "~5.8 on skimage.data.astronaut's face); scale_factor 1.1, min_neighbors 5",
        kind="packaged",
    ),
)

register_packaged(
    "mtcnn.face",
    MTCNNDetector,
    ModelCard(
        name="mtcnn.face",
        family="mtcnn",
        task="face-detection",
        summary="MTCNN face detector with 5 landmarks (Zhang et al. 2016), the mtcnn package",
        input={"image": "RGB uint8 (or float in [0, 1]), any size"},
        labels=["face"],
        data={
            "name": "MTCNN P/R/O-Net weights shipped in the mtcnn package",
            "source": f"mtcnn {_package_version('mtcnn')} (MTCNN().detect_faces)",
            "licence": "MIT (the mtcnn package)",
        },
        notes="score = MTCNN confidence (O-Net face probability; 0.999 on "
        "skimage.data.astronaut); boxes below min_confidence=0.9 are dropped; "
        "keypoints: left_eye, right_eye, nose, mouth_left, mouth_right as (y, x)",
        kind="packaged",
    ),
)
