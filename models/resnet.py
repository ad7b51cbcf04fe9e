"""ResNet (He et al., 2016): basic blocks (ResNet-18/34) and bottleneck blocks (ResNet-50...).

Both block kinds live here and share the stem, the stages and the head. Layer names follow
the zoo's convention (see :mod:`sparkzoo.models.transfer`): ``stem`` (stride 4), then
``stage2`` ... ``stage5`` (strides 4, 8, 16, 32; the paper's conv2_x ... conv5_x), ``pool``,
``dropout``, ``predictions``. Inside a stage, block ``j`` is ``stage{k}_block{j}_*``.
"""

from __future__ import annotations

from collections.abc import Sequence

import tensorflow as tf

from sparkzoo import keras2 as keras
from sparkzoo.models.registry import image_classification_example, register
from sparkzoo.models.transfer import classifier_head, image_input

STAGE_FILTERS = (64, 128, 256, 512)
BOTTLENECK_EXPANSION = 4
MINIMUM_SIZE = 32  # the total stride


def _conv_bn(
    x: tf.Tensor, filters: int, kernel: int, strides: int, name: str, relu: bool = True
) -> tf.Tensor:
    x = keras.layers.Conv2D(
        filters, kernel, strides=strides, padding="same", use_bias=False, name=f"{name}_conv"
    )(x)
    x = keras.layers.BatchNormalization(epsilon=1.001e-5, name=f"{name}_bn")(x)
    return keras.layers.ReLU(name=f"{name}_relu")(x) if relu else x


def residual_block(
    x: tf.Tensor,
    filters: int,
    strides: int,
    bottleneck: bool,
    name: str,
    output_name: str | None = None,
) -> tf.Tensor:
    """One residual block: two 3x3 convs (basic) or 1x1-3x3-1x1 with 4x expansion (bottleneck);
    a projection shortcut where the shape changes (ResNet option B). The block's output layer
    is ``output_name`` (default ``{name}_out``)."""
    out_filters = filters * BOTTLENECK_EXPANSION if bottleneck else filters
    shortcut = x
    if strides != 1 or x.shape[-1] != out_filters:
        shortcut = _conv_bn(x, out_filters, 1, strides, f"{name}_shortcut", relu=False)
    if bottleneck:
        # Stride on the 3x3 convolution ("ResNet v1.5"), which is the more accurate variant.
        y = _conv_bn(x, filters, 1, 1, f"{name}_1")
        y = _conv_bn(y, filters, 3, strides, f"{name}_2")
        y = _conv_bn(y, out_filters, 1, 1, f"{name}_3", relu=False)
    else:
        y = _conv_bn(x, filters, 3, strides, f"{name}_1")
        y = _conv_bn(y, filters, 3, 1, f"{name}_2", relu=False)
    y = keras.layers.Add(name=f"{name}_add")([shortcut, y])
    return keras.layers.ReLU(name=output_name or f"{name}_out")(y)


def resnet(
    input_shape: tuple[int | None, ...] = (224, 224, 3),
    num_classes: int = 1000,
    blocks: Sequence[int] = (2, 2, 2, 2),
    bottleneck: bool = False,
    width: float = 1.0,
    dropout: float = 0.0,
    classifier_activation: str | None = "softmax",
    name: str = "resnet",
) -> keras.Model:
    """A ResNet with ``blocks`` residual blocks in each of its four stages.

    Example::

        resnet34 = resnet((224, 224, 3), 1000, blocks=(3, 4, 6, 3), name="resnet34")
    """
    blocks = tuple(blocks)
    if len(blocks) != 4 or min(blocks) < 1:
        raise ValueError(f"{name} takes four positive block counts, got {blocks}")
    if width <= 0:
        raise ValueError(f"{name} width must be positive, got {width}")
    inputs = image_input(input_shape, MINIMUM_SIZE, name)
    x = _conv_bn(inputs, max(1, round(64 * width)), 7, 2, "stem")
    x = keras.layers.MaxPooling2D(3, strides=2, padding="same", name="stem")(x)
    for stage, (count, filters) in enumerate(zip(blocks, STAGE_FILTERS, strict=True), start=2):
        filters = max(1, round(filters * width))
        for block in range(1, count + 1):
            x = residual_block(
                x,
                filters,
                strides=2 if block == 1 and stage > 2 else 1,
                bottleneck=bottleneck,
                name=f"stage{stage}_block{block}",
                output_name=f"stage{stage}" if block == count else None,
            )
    outputs = classifier_head(x, num_classes, dropout=dropout, activation=classifier_activation)
    return keras.Model(inputs, outputs, name=name)


@register(
    "resnet18",
    task="image-classification",
    # One block per stage: tracing a training step costs time per layer, not per weight.
    tiny={"input_shape": (32, 32, 3), "num_classes": 3, "width": 0.0625, "blocks": (1, 1, 1, 1)},
    example=image_classification_example,
    loss="sparse_categorical_crossentropy",
    metrics=("accuracy",),
)
def resnet18(
    input_shape: tuple[int | None, ...] = (224, 224, 3),
    num_classes: int = 1000,
    width: float = 1.0,
    blocks: Sequence[int] = (2, 2, 2, 2),
    dropout: float = 0.0,
    classifier_activation: str | None = "softmax",
    name: str = "resnet18",
) -> keras.Model:
    """ResNet-18 (basic blocks, 2-2-2-2) for any input size (at least 32x32) and class count.

    ``width`` multiplies every filter count (``width=1/16`` is a tiny ResNet-18 of ~45 K
    parameters); ``blocks`` counts the basic blocks of each stage (``(3, 4, 6, 3)`` is
    ResNet-34, ``(1, 1, 1, 1)`` a shallow one for tests); ``dropout`` goes before
    ``predictions``.

    Example::

        net = resnet18((64, 64, 3), num_classes=5, width=0.5)
    """
    return resnet(
        input_shape, num_classes, blocks, False, width, dropout, classifier_activation, name
    )


@register(
    "resnet50",
    task="image-classification",
    tiny={"input_shape": (32, 32, 3), "num_classes": 3, "width": 0.0625, "blocks": (1, 1, 1, 1)},
    example=image_classification_example,
    loss="sparse_categorical_crossentropy",
    metrics=("accuracy",),
)
def resnet50(
    input_shape: tuple[int | None, ...] = (224, 224, 3),
    num_classes: int = 1000,
    width: float = 1.0,
    blocks: Sequence[int] = (3, 4, 6, 3),
    dropout: float = 0.0,
    classifier_activation: str | None = "softmax",
    name: str = "resnet50",
) -> keras.Model:
    """ResNet-50 (bottleneck blocks, 3-4-6-3) for any input size (at least 32x32) and class
    count.

    ``width`` multiplies every filter count (the 4x bottleneck expansion stays);
    ``blocks`` counts the bottleneck blocks of each stage (``(3, 4, 23, 3)`` is ResNet-101,
    ``(1, 1, 1, 1)`` a shallow one for tests); ``dropout`` goes before ``predictions``.

    Example::

        net = resnet50((128, 128, 3), num_classes=20, width=0.25)
    """
    return resnet(
        input_shape, num_classes, blocks, True, width, dropout, classifier_activation, name
    )
