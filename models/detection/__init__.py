"""Object detection: one box toolkit, SSD-lite and YOLO-style detectors, packaged face detectors.

- :mod:`~sparkzoo.models.detection.boxes`: normalised (y1, x1, y2, x2) boxes, IoU, SSD
  encode/decode, NMS, VOC mAP@0.5, and :class:`Detections` (one per image: boxes, scores,
  class ids), the output of every detector.
- :mod:`~sparkzoo.models.detection.anchors`: SSD default boxes, YOLO per-cell anchors.
- :mod:`~sparkzoo.models.detection.ssd` (family ``ssd_lite``) and
  :mod:`~sparkzoo.models.detection.yolo` (family ``yolo``): builder, ``encode_targets``,
  loss, ``decode_predictions``.
- :mod:`~sparkzoo.models.detection.detector`: :class:`Detector` (``detect(images)``) around
  a zoo model, OpenCV's Haar face cascade (``haar.face``) and MTCNN (``mtcnn.face``).
- :mod:`~sparkzoo.models.detection.draw`: boxes drawn on an image, written as PNG.

Importing this package loads neither TensorFlow nor OpenCV: the names below load their module
on first use (the detectors and the drawing bring OpenCV; the zoo's detectors TensorFlow).

Example::

    from skimage.data import astronaut
    from sparkzoo.models.detection import draw_detections, load_detector, write_png

    faces = load_detector("haar.face").detect(astronaut())[0]
    write_png("faces.png", draw_detections(astronaut(), faces))
"""

from __future__ import annotations

from sparkzoo.lazy import lazy_exports

_EXPORTS: dict[str, str] = {
    "Detections": "boxes",
    "iou": "boxes",
    "mean_average_precision": "boxes",
    "nms": "boxes",
    "Detector": "detector",
    "load_detector": "detector",
    "draw_detections": "draw",
    "draw_rows": "draw",
    "write_png": "draw",
}


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)

__all__ = sorted(_EXPORTS)
