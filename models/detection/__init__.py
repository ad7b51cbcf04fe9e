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

Importing this package loads neither TensorFlow nor OpenCV; the detectors do when used.

Example::

    from skimage.data import astronaut
    from sparkzoo.models.detection import draw_detections, load_detector, write_png

    faces = load_detector("haar.face").detect(astronaut())[0]
    write_png("faces.png", draw_detections(astronaut(), faces))
"""

from sparkzoo.models.detection.boxes import Detections, iou, mean_average_precision, nms
from sparkzoo.models.detection.detector import Detector, load_detector
from sparkzoo.models.detection.draw import draw_detections, write_png

__all__ = [
    "Detections",
    "Detector",
    "draw_detections",
    "iou",
    "load_detector",
    "mean_average_precision",
    "nms",
    "write_png",
]
