"""A Siamese pair model built by transfer learning: one shared backbone embeds both images.

``a`` and ``b`` go through the same ``encoder`` (a zoo classifier, or any model, cut at a
named layer, globally pooled, then an optional dense ``embedding``); the ``distance`` layer
takes ``|f(a) - f(b)|`` and a dense ``similarity`` layer turns it into the probability that
the two images match (Koch et al., 2015). Because the distance is symmetric and zero for
identical inputs, so is the model: ``s(a, b) == s(b, a)`` and ``s(a, a)`` is the same for
every ``a``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import tensorflow as tf

from sparkzoo import keras2 as keras
from sparkzoo.models.registry import register
from sparkzoo.models.transfer import build_backbone, cut, default_cut, flat_features, freeze


@keras.saving.register_keras_serializable(package="sparkzoo")
class AbsoluteDifference(keras.layers.Layer):
    """``|a - b|`` element-wise, for a pair of tensors of the same shape."""

    def call(self, inputs: Sequence[tf.Tensor]) -> tf.Tensor:
        a, b = inputs
        return tf.abs(a - b)


def siamese_pair_example(config: dict, n: int, rng: np.random.Generator):
    """A batch of ``n`` image pairs: the even ones identical (label 1), the odd ones not (0)."""
    shape = config.get("input_shape")
    if shape is None:
        raise ValueError("siamese_pair_example needs an input_shape in the configuration")
    a = rng.random((n, *shape), dtype="float32")
    b = rng.random((n, *shape), dtype="float32")
    same = np.arange(n) % 2 == 0
    b[same] = a[same]
    return [a, b], same.astype("float32")[:, None]


@register(
    "siamese",
    task="image-similarity",
    tiny={"input_shape": (16, 16, 1), "backbone": "lenet5", "embedding_dim": 8},
    example=siamese_pair_example,
    loss="binary_crossentropy",
    metrics=("accuracy",),
)
def siamese(
    input_shape: tuple[int | None, ...] | None = None,
    backbone: str | keras.Model = "resnet18",
    backbone_config: dict | None = None,
    cut_at: str | None = None,
    embedding_dim: int | None = 128,
    freeze_to: str | None = None,
    hidden: Sequence[int] = (),
    name: str = "siamese",
) -> keras.Model:
    """A Siamese similarity model: shared backbone -> ``|f(a) - f(b)|`` -> match probability.

    ``backbone`` is a zoo name (a family, built with ``backbone_config`` at ``input_shape``,
    or a pretrained tag such as ``"lenet5.mnist"``) or a Keras model. It is cut at ``cut_at``
    (default: the layer feeding its classifier, ``pool`` for the zoo's classifiers), globally
    pooled if the cut is spatial, and followed by a dense ``embedding`` of ``embedding_dim``
    (``None``: use the features as they are). ``freeze_to`` freezes the backbone up to that
    layer. ``hidden`` adds ReLU layers between the distance and the ``similarity`` output.
    ``input_shape=None`` keeps the backbone's own input shape.

    Example::

        net = siamese((64, 64, 3), backbone="resnet18", backbone_config={"width": 0.5},
                      freeze_to="stage4")
        net.compile("adam", "binary_crossentropy")
        net.fit([a, b], same, epochs=5)
        encoder = net.get_layer("encoder")        # embed a gallery once, compare later
    """
    base = build_backbone(backbone, input_shape, backbone_config)
    cut_at = cut_at or default_cut(base)
    if freeze_to:
        freeze(base, up_to=freeze_to)
    features = flat_features(cut(base, cut_at).output, name="embedding_pool")
    if embedding_dim:
        features = keras.layers.Dense(embedding_dim, name="embedding")(features)
    encoder = keras.Model(base.inputs, features, name="encoder")

    shape = tuple(base.input_shape[1:])
    a = keras.Input(shape, name="a")
    b = keras.Input(shape, name="b")
    x = AbsoluteDifference(name="distance")([encoder(a), encoder(b)])
    for i, units in enumerate(hidden, start=1):
        x = keras.layers.Dense(units, activation="relu", name=f"fc{i}")(x)
    outputs = keras.layers.Dense(1, activation="sigmoid", name="similarity")(x)
    return keras.Model([a, b], outputs, name=name)


def similarity(model: keras.Model, a: Any, b: Any, batch_size: int = 256) -> np.ndarray:
    """The match probability of each pair ``(a[i], b[i])``, shape ``(n,)``.

    Example::

        similarity(net, images[:10], images[:10])      # identical pairs: all the same value
    """
    out = model.predict([np.asarray(a), np.asarray(b)], batch_size=batch_size, verbose=0)
    return np.asarray(out).reshape(-1)
