"""The sparkzoo model zoo (``sparkzoo.models``).

Keras model families, their registry and model cards. This package depends on
TensorFlow/Keras only: it never imports pyspark or horovod, so a model can be built,
trained and served anywhere (``tests/test_layout.py`` checks it). Importing it is cheap:
the family modules (and TensorFlow) load on the first registry call.

Example::

    from sparkzoo import models
    models.list()                          # every family, pretrained tag and packaged model
    net = models.get("resnet18", input_shape=(64, 64, 3), num_classes=5)
    lenet = models.get("lenet5.mnist")     # weights we trained and ship, sha256-checked
    print(models.card("lenet5.mnist").to_text())
"""

from sparkzoo.models.registry import (
    Family,
    ModelCard,
    UnknownModelError,
    WeightsError,
    card,
    check_input,
    families,
    family,
    get,
    list,
    preprocessor,
    register,
    register_packaged,
)

__all__ = [
    "Family",
    "ModelCard",
    "UnknownModelError",
    "WeightsError",
    "card",
    "check_input",
    "families",
    "family",
    "get",
    "list",
    "preprocessor",
    "register",
    "register_packaged",
]
