"""MobileNetV2 (Sandler et al., 2018): inverted residual blocks with linear bottlenecks.

Layer names follow the zoo's convention (see :mod:`sparkzoo.models.transfer`): ``stem``
(stride 2), ``stage1`` ... ``stage5`` (strides 2, 4, 8, 16, 32), ``top`` (the 1x1 conv to
1280 channels), ``pool``, ``dropout``, ``predictions``. Block ``j`` of stage ``k`` is
``stage{k}_block{j}_*``.
"""

from __future__ import annotations

from collections.abc import Sequence

import tensorflow as tf

from sparkzoo import keras2 as keras
from sparkzoo.models.registry import image_classification_example, register
from sparkzoo.models.transfer import classifier_head, image_input

# (expansion t, output channels c, repeats n, first stride s, stage) from Table 2 of the paper;
# "stage" is log2 of the total stride at the end of that row.
INVERTED_RESIDUAL_SETTINGS = (
    (1, 16, 1, 1, 1),
    (6, 24, 2, 2, 2),
    (6, 32, 3, 2, 3),
    (6, 64, 4, 2, 4),
    (6, 96, 3, 1, 4),
    (6, 160, 3, 2, 5),
    (6, 320, 1, 1, 5),
)
MINIMUM_SIZE = 32  # the total stride


def make_divisible(value: float, divisor: int = 8) -> int:
    """Round a channel count to a multiple of ``divisor`` without losing more than 10 %
    (the paper's rule, which keeps channel counts friendly to vectorised kernels)."""
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * value else rounded


def inverted_residual(
    x: tf.Tensor,
    expansion: int,
    filters: int,
    strides: int,
    name: str,
    output_name: str | None = None,
) -> tf.Tensor:
    """1x1 expansion -> 3x3 depthwise -> linear 1x1 projection, with a residual connection
    when the block keeps the shape. The block's output layer is ``output_name`` when given."""
    in_channels = x.shape[-1]
    residual = strides == 1 and in_channels == filters
    y = x
    if expansion != 1:
        y = keras.layers.Conv2D(in_channels * expansion, 1, use_bias=False, name=f"{name}_expand")(
            y
        )
        y = keras.layers.BatchNormalization(name=f"{name}_expand_bn")(y)
        y = keras.layers.ReLU(6.0, name=f"{name}_expand_relu")(y)
    y = keras.layers.DepthwiseConv2D(
        3, strides=strides, padding="same", use_bias=False, name=f"{name}_depthwise"
    )(y)
    y = keras.layers.BatchNormalization(name=f"{name}_depthwise_bn")(y)
    y = keras.layers.ReLU(6.0, name=f"{name}_depthwise_relu")(y)
    y = keras.layers.Conv2D(filters, 1, use_bias=False, name=f"{name}_project")(y)
    # No activation after the projection: the paper's "linear bottleneck".
    bn_name = f"{name}_project_bn" if residual or output_name is None else output_name
    y = keras.layers.BatchNormalization(name=bn_name)(y)
    if residual:
        y = keras.layers.Add(name=output_name or f"{name}_add")([x, y])
    return y


@register(
    "mobilenet_v2",
    task="image-classification",
    # One block per row: tracing a training step costs time per layer, not per weight.
    tiny={
        "input_shape": (32, 32, 3),
        "num_classes": 3,
        "alpha": 0.25,
        "last_channels": 64,
        "blocks": (1, 1, 1, 1, 1, 1, 1),
    },
    example=image_classification_example,
    loss="sparse_categorical_crossentropy",
    metrics=("accuracy",),
)
def mobilenet_v2(
    input_shape: tuple[int | None, ...] = (224, 224, 3),
    num_classes: int = 1000,
    alpha: float = 1.0,
    last_channels: int | None = None,
    blocks: Sequence[int] = (1, 2, 3, 4, 3, 3, 1),
    dropout: float = 0.2,
    classifier_activation: str | None = "softmax",
    name: str = "mobilenet_v2",
) -> keras.Model:
    """MobileNetV2 image classifier for any input size (at least 32x32) and class count.

    ``alpha`` is the paper's width multiplier (channel counts are rounded to multiples of 8).
    ``last_channels`` sets the width of the final 1x1 conv (``top``); by default 1280, or
    1280 * ``alpha`` when ``alpha`` > 1, as in the paper. ``blocks`` counts the inverted
    residual blocks of each of the seven rows of the paper's Table 2 (all ones: a shallow
    MobileNetV2 for tests).

    Example::

        net = mobilenet_v2((96, 96, 3), num_classes=7, alpha=0.35)
    """
    if alpha <= 0:
        raise ValueError(f"mobilenet_v2 alpha must be positive, got {alpha}")
    blocks = tuple(blocks)
    if len(blocks) != len(INVERTED_RESIDUAL_SETTINGS) or min(blocks) < 1:
        raise ValueError(f"mobilenet_v2 takes seven positive block counts, got {blocks}")
    inputs = image_input(input_shape, MINIMUM_SIZE, name)
    x = keras.layers.Conv2D(
        make_divisible(32 * alpha),
        3,
        strides=2,
        padding="same",
        use_bias=False,
        name="stem_conv",
    )(inputs)
    x = keras.layers.BatchNormalization(name="stem_bn")(x)
    x = keras.layers.ReLU(6.0, name="stem")(x)
    # Stage k ends at the last block of the last settings row with that stage number.
    last_row = {stage: i for i, (*_, stage) in enumerate(INVERTED_RESIDUAL_SETTINGS)}
    block_in_stage: dict[int, int] = {}
    for row, ((expansion, channels, _, stride, stage), repeats) in enumerate(
        zip(INVERTED_RESIDUAL_SETTINGS, blocks, strict=True)
    ):
        filters = make_divisible(channels * alpha)
        for i in range(repeats):
            block_in_stage[stage] = block_in_stage.get(stage, 0) + 1
            is_stage_end = last_row[stage] == row and i == repeats - 1
            x = inverted_residual(
                x,
                expansion,
                filters,
                strides=stride if i == 0 else 1,
                name=f"stage{stage}_block{block_in_stage[stage]}",
                output_name=f"stage{stage}" if is_stage_end else None,
            )
    if last_channels is None:
        last_channels = make_divisible(1280 * alpha) if alpha > 1.0 else 1280
    x = keras.layers.Conv2D(last_channels, 1, use_bias=False, name="top_conv")(x)
    x = keras.layers.BatchNormalization(name="top_bn")(x)
    x = keras.layers.ReLU(6.0, name="top")(x)
    outputs = classifier_head(x, num_classes, dropout=dropout, activation=classifier_activation)
    return keras.Model(inputs, outputs, name=name)
