"""Spark's image schema, defined once for every package: the struct Spark's ``image`` source
gives (``origin, height, width, nChannels, mode, data``), which sparkzoo's ``ImageSet`` also
writes, and the OpenCV type code in its ``mode``.

``mode`` is OpenCV's ``CV_<depth>C<channels>``: ``depth + 8 * (channels - 1)``, so
``mode % 8`` names the element type of the bytes in ``data`` (``CV_8UC3`` = 16 is 8-bit
BGR or RGB, ``CV_32FC3`` = 21 float32). Spark's source keeps a file it could not decode with
``mode`` -1. numpy only: the trainer's ranks and the MLflow pyfunc model import it without
pyspark.

Example::

    mode_dtype(16)                    # dtype('uint8')
    opencv_mode(np.float32, 3)        # 21
"""

from __future__ import annotations

import numpy as np

# The fields every image struct has (an ImageSet's has ``origin`` and ``layout`` too).
IMAGE_FIELDS = ("height", "width", "nChannels", "mode", "data")
# OpenCV's depths: CV_8U, CV_8S, CV_16U, CV_16S, CV_32S, CV_32F, CV_64F, CV_16F.
OPENCV_DEPTHS = {
    0: np.dtype(np.uint8),
    1: np.dtype(np.int8),
    2: np.dtype(np.uint16),
    3: np.dtype(np.int16),
    4: np.dtype(np.int32),
    5: np.dtype(np.float32),
    6: np.dtype(np.float64),
    7: np.dtype(np.float16),
}


def mode_dtype(mode: int) -> np.dtype | None:
    """The element type of an image of OpenCV type ``mode``; None for a negative mode (-1: an
    image Spark's source could not decode)."""
    return OPENCV_DEPTHS[mode % 8] if mode >= 0 else None


def opencv_mode(dtype, channels: int) -> int:
    """OpenCV's type code for ``channels`` channels of ``dtype`` (``CV_8UC3`` = 16)."""
    for depth, known in OPENCV_DEPTHS.items():
        if known == np.dtype(dtype):
            return depth + 8 * (channels - 1)
    raise ValueError(f"OpenCV has no image type of {np.dtype(dtype)}")


__all__ = ["IMAGE_FIELDS", "OPENCV_DEPTHS", "mode_dtype", "opencv_mode"]
