"""Inception-v1 / GoogLeNet (Szegedy et al., 2015), without the auxiliary classifiers.

This is the model of BigDL's scaling benchmark ("Inception_v1_NoAuxClassifier"). Layer
names follow the zoo's convention (see :mod:`sparkzoo.models.transfer`): ``stem`` (stride 8),
``stage3`` (the output of inception 3b), ``stage4`` (of 4e), ``stage5`` (of 5b), ``pool``,
``dropout``, ``predictions``; the other modules are ``inception3a``, ``inception4a`` ...,
with branches ``inception4a_1x1``, ``inception4a_3x3_reduce``, ``inception4a_3x3``,
``inception4a_5x5_reduce``, ``inception4a_5x5``, ``inception4a_pool``,
``inception4a_pool_proj``.
"""

from __future__ import annotations

from collections.abc import Sequence

import tensorflow as tf

from sparkzoo import keras2 as keras
from sparkzoo.models.registry import image_classification_example, register
from sparkzoo.models.transfer import classifier_head, image_input

# Table 1 of the paper: #1x1, #3x3 reduce, #3x3, #5x5 reduce, #5x5, pool proj.
INCEPTION_MODULES = {
    "3a": (64, 96, 128, 16, 32, 32),
    "3b": (128, 128, 192, 32, 96, 64),
    "4a": (192, 96, 208, 16, 48, 64),
    "4b": (160, 112, 224, 24, 64, 64),
    "4c": (128, 128, 256, 24, 64, 64),
    "4d": (112, 144, 288, 32, 64, 64),
    "4e": (256, 160, 320, 32, 128, 128),
    "5a": (256, 160, 320, 32, 128, 128),
    "5b": (384, 192, 384, 48, 128, 128),
}
STAGE_MODULES = (2, 5, 2)  # modules in stages 3, 4 and 5
MINIMUM_SIZE = 32  # the total stride


def _conv(
    x: tf.Tensor, filters: int, kernel: int, name: str, strides: int = 1, batch_norm: bool = False
) -> tf.Tensor:
    if not batch_norm:
        return keras.layers.Conv2D(
            filters, kernel, strides=strides, padding="same", activation="relu", name=name
        )(x)
    x = keras.layers.Conv2D(
        filters, kernel, strides=strides, padding="same", use_bias=False, name=name
    )(x)
    x = keras.layers.BatchNormalization(name=f"{name}_bn")(x)
    return keras.layers.ReLU(name=f"{name}_relu")(x)


def inception_module(
    x: tf.Tensor,
    filters: tuple[int, int, int, int, int, int],
    name: str,
    batch_norm: bool = False,
    output_name: str | None = None,
) -> tf.Tensor:
    """Four parallel branches (1x1; 1x1 -> 3x3; 1x1 -> 5x5; 3x3 max pool -> 1x1) whose outputs
    are concatenated along the channels (as layer ``output_name``, default ``name``)."""
    n1, r3, n3, r5, n5, pool_proj = filters
    b1 = _conv(x, n1, 1, f"{name}_1x1", batch_norm=batch_norm)
    b3 = _conv(x, r3, 1, f"{name}_3x3_reduce", batch_norm=batch_norm)
    b3 = _conv(b3, n3, 3, f"{name}_3x3", batch_norm=batch_norm)
    b5 = _conv(x, r5, 1, f"{name}_5x5_reduce", batch_norm=batch_norm)
    b5 = _conv(b5, n5, 5, f"{name}_5x5", batch_norm=batch_norm)
    bp = keras.layers.MaxPooling2D(3, strides=1, padding="same", name=f"{name}_pool")(x)
    bp = _conv(bp, pool_proj, 1, f"{name}_pool_proj", batch_norm=batch_norm)
    return keras.layers.Concatenate(name=output_name or name)([b1, b3, b5, bp])


@register(
    "inception_v1",
    task="image-classification",
    # One module per stage: tracing a training step costs time per layer, not per weight.
    tiny={"input_shape": (32, 32, 3), "num_classes": 3, "width": 0.0625, "blocks": (1, 1, 1)},
    example=image_classification_example,
    loss="sparse_categorical_crossentropy",
    metrics=("accuracy",),
)
def inception_v1(
    input_shape: tuple[int | None, ...] = (224, 224, 3),
    num_classes: int = 1000,
    width: float = 1.0,
    blocks: Sequence[int] = (2, 5, 2),
    batch_norm: bool = False,
    dropout: float = 0.4,
    classifier_activation: str | None = "softmax",
    name: str = "inception_v1",
) -> keras.Model:
    """Inception-v1 (GoogLeNet) image classifier for any input size (at least 32x32) and
    class count.

    ``width`` multiplies every filter count; ``batch_norm`` adds batch normalisation after
    each convolution (as in most modern re-implementations; the paper and BigDL's benchmark
    model have none, and local response normalisation is left out). No auxiliary heads.
    ``blocks`` counts the inception modules of stages 3, 4 and 5 (the paper's 3a-3b, 4a-4e,
    5a-5b); fewer take the first ones of each stage (``(1, 1, 1)``: 3a, 4a, 5a, for tests).

    Example::

        net = inception_v1((224, 224, 3), num_classes=1000)    # BigDL's benchmark model
    """
    if width <= 0:
        raise ValueError(f"inception_v1 width must be positive, got {width}")
    blocks = tuple(blocks)
    if len(blocks) != 3 or not all(1 <= n <= m for n, m in zip(blocks, STAGE_MODULES, strict=True)):
        raise ValueError(
            f"inception_v1 takes 1-2, 1-5 and 1-2 modules for stages 3, 4, 5, got {blocks}"
        )

    def scaled(filters: int) -> int:
        return max(1, round(filters * width))

    inputs = image_input(input_shape, MINIMUM_SIZE, name)
    x = _conv(inputs, scaled(64), 7, "stem_conv1", strides=2, batch_norm=batch_norm)
    x = keras.layers.MaxPooling2D(3, strides=2, padding="same", name="stem_pool1")(x)
    x = _conv(x, scaled(64), 1, "stem_conv2_reduce", batch_norm=batch_norm)
    x = _conv(x, scaled(192), 3, "stem_conv2", batch_norm=batch_norm)
    x = keras.layers.MaxPooling2D(3, strides=2, padding="same", name="stem")(x)
    for stage, count in zip((3, 4, 5), blocks, strict=True):
        if stage > 3:
            x = keras.layers.MaxPooling2D(3, strides=2, padding="same", name=f"stage{stage}_pool")(
                x
            )
        for i in range(count):
            module = f"{stage}{'abcde'[i]}"
            x = inception_module(
                x,
                tuple(scaled(f) for f in INCEPTION_MODULES[module]),
                f"inception{module}",
                batch_norm=batch_norm,
                output_name=f"stage{stage}" if i == count - 1 else None,
            )
    outputs = classifier_head(x, num_classes, dropout=dropout, activation=classifier_activation)
    return keras.Model(inputs, outputs, name=name)
