"""Imports every family module so that each registers its builders (see registry.register).

One line per module; a helper adding a family adds its module here.
"""

from sparkzoo.models import (
    deepbit,  # noqa: F401
    inception,  # noqa: F401
    lenet,  # noqa: F401
    mobilenet,  # noqa: F401
    recommendation,  # noqa: F401
    resnet,  # noqa: F401
    seq2seq,  # noqa: F401
    siamese,  # noqa: F401
    tabular,  # noqa: F401
    text,  # noqa: F401
    timeseries,  # noqa: F401
    vae,  # noqa: F401
    vgg,  # noqa: F401
)
from sparkzoo.models.detection import detector, ssd, yolo  # noqa: F401
