"""VGG (Simonyan & Zisserman, 2015): stacks of 3x3 convolutions between 2x2 max pools.

Layer names follow the zoo's convention (see :mod:`sparkzoo.models.transfer`): the five conv
stages end in the max pools ``stage1`` ... ``stage5`` (strides 2 ... 32), then ``pool``,
``fc1``, ``fc2``, ``dropout`` and ``predictions``.
"""

from __future__ import annotations

from collections.abc import Sequence

from sparkzoo import keras2 as keras
from sparkzoo.models.registry import image_classification_example, register
from sparkzoo.models.transfer import classifier_head, image_input

# Convolutions per stage of the configurations A (11), B (13), D (16) and E (19) of the paper.
VGG_BLOCKS = {
    11: (1, 1, 2, 2, 2),
    13: (2, 2, 2, 2, 2),
    16: (2, 2, 3, 3, 3),
    19: (2, 2, 4, 4, 4),
}
STAGE_FILTERS = (64, 128, 256, 512, 512)


@register(
    "vgg",
    task="image-classification",
    tiny={"input_shape": (32, 32, 3), "num_classes": 3, "depth": 11, "width": 0.0625},
    example=image_classification_example,
    loss="sparse_categorical_crossentropy",
    metrics=("accuracy",),
)
def vgg(
    input_shape: tuple[int | None, ...] = (224, 224, 3),
    num_classes: int = 1000,
    depth: int = 16,
    blocks: Sequence[int] | None = None,
    batch_norm: bool = False,
    width: float = 1.0,
    fc_units: Sequence[int] = (4096, 4096),
    dropout: float = 0.5,
    pooling: str = "avg",
    classifier_activation: str | None = "softmax",
    name: str | None = None,
) -> keras.Model:
    """VGG-11/13/16/19 image classifier for any input size (at least 32x32) and class count.

    ``depth`` picks the paper's configuration; ``blocks`` (convolutions per stage, one to five
    stages) overrides it. ``batch_norm`` adds batch normalisation after every convolution (the
    "VGG-BN" variants). ``width`` multiplies every filter and ``fc_units`` count, so
    ``width=1/16`` is a tiny VGG. Unlike the paper, the conv features are globally pooled
    (``pooling``: ``"avg"`` or ``"max"``) before the dense layers, which is what lets one set
    of weights take any input size.

    Example::

        net = vgg((32, 32, 3), num_classes=10, depth=11, batch_norm=True, width=0.25)
        features = sparkzoo.models.transfer.cut(net, "stage4")     # stride 16
    """
    if blocks is None:
        if depth not in VGG_BLOCKS:
            raise ValueError(f"vgg depth must be one of {sorted(VGG_BLOCKS)}, got {depth}")
        blocks = VGG_BLOCKS[depth]
    blocks = tuple(blocks)
    if not 1 <= len(blocks) <= 5 or min(blocks) < 1:
        raise ValueError(f"vgg blocks must be 1 to 5 positive conv counts, got {blocks}")
    if width <= 0:
        raise ValueError(f"vgg width must be positive, got {width}")
    name = name or f"vgg{sum(blocks) + 3}"
    inputs = image_input(input_shape, 2 ** len(blocks), name)
    x = inputs
    for stage, (convs, filters) in enumerate(zip(blocks, STAGE_FILTERS, strict=False), start=1):
        filters = max(1, round(filters * width))
        for i in range(1, convs + 1):
            prefix = f"stage{stage}_conv{i}"
            if batch_norm:
                # The convolution's bias is redundant before a batch norm's own offset.
                x = keras.layers.Conv2D(filters, 3, padding="same", use_bias=False, name=prefix)(x)
                x = keras.layers.BatchNormalization(name=f"{prefix}_bn")(x)
                x = keras.layers.ReLU(name=f"{prefix}_relu")(x)
            else:
                x = keras.layers.Conv2D(filters, 3, padding="same", activation="relu", name=prefix)(
                    x
                )
        # "same" pooling rounds odd sizes up, so any size >= 2**stages works.
        x = keras.layers.MaxPooling2D(2, padding="same", name=f"stage{stage}")(x)
    outputs = classifier_head(
        x,
        num_classes,
        hidden=[max(1, round(units * width)) for units in fc_units],
        dropout=dropout,
        activation=classifier_activation,
        pooling=pooling,
    )
    return keras.Model(inputs, outputs, name=name)
