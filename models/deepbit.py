"""DeepBit-like binary hashing (Lin et al., CVPR 2016), its retrieval metric and a baseline.

A CNN backbone (any zoo classifier or Keras model, usually pretrained, cut at a named layer)
feeds a ``codes`` layer of ``bits`` sigmoid units; a code bit is 1 where the unit is above
0.5. :class:`DeepBitModel` trains it without labels on the paper's three objectives:

- quantisation loss: the activations should sit at 0 or 1, so that thresholding loses little;
- bit-balance loss: each bit should be on for half of the images (maximum information);
- rotation-invariance loss: an image and a copy rotated by up to ``max_angle`` degrees should
  get the same code, rotations by larger angles being penalised less (weight
  ``exp(-angle^2 / (2 max_angle^2))``).

:func:`binary_codes` turns the model into a retrieval system (ranked by
:func:`sparkzoo.models.retrieval.hamming_distance`, measured by
:func:`~sparkzoo.models.retrieval.mean_average_precision_at_k`), and :func:`pca_sign_hash` is
the classic unsupervised baseline of the same code length (PCA, then the sign of each
component).

Example::

    net = deepbit((28, 28, 1), bits=32, backbone="lenet5.mnist")
    net.compile("adam")                      # the objectives are built in; no loss to give
    net.fit(train_images, epochs=5)          # labels, if given, are ignored
    db, q = binary_codes(net, train_images), binary_codes(net, test_images)
    retrieval.mean_average_precision_at_k(q, db, test_labels, train_labels, k=100)
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import tensorflow as tf

from sparkzoo import keras2 as keras
from sparkzoo.models.objectives import ObjectivesModel
from sparkzoo.models.registry import image_classification_example, register
from sparkzoo.models.transfer import build_backbone, cut, default_cut, flat_features, freeze

LOSS_SETTINGS = ("quantization_weight", "balance_weight", "rotation_weight", "max_angle")


def quantization_loss(codes: tf.Tensor) -> tf.Tensor:
    """Mean squared distance of each activation from its bit (0 for activations at 0 or 1).

    Example::

        quantization_loss(tf.constant([[0.0, 1.0]]))     # 0.0
    """
    codes = tf.convert_to_tensor(codes, tf.float32)
    bits = tf.stop_gradient(tf.cast(codes > 0.5, codes.dtype))
    return tf.reduce_mean(tf.square(codes - bits))


def bit_balance_loss(codes: tf.Tensor) -> tf.Tensor:
    """Mean over bits of (fraction of the batch with that bit on - 1/2)^2, computed on the
    activations; 0 when every bit is on for exactly half of the batch.

    Example::

        bit_balance_loss(tf.constant([[0.0, 1.0], [1.0, 0.0]]))   # 0.0
    """
    codes = tf.convert_to_tensor(codes, tf.float32)
    return tf.reduce_mean(tf.square(tf.reduce_mean(codes, axis=0) - 0.5))


def rotation_invariance_loss(
    codes: tf.Tensor,
    rotated_codes: tf.Tensor,
    angles: tf.Tensor | None = None,
    max_angle: float = 20.0,
) -> tf.Tensor:
    """Mean squared difference between the codes of images and of their rotated copies, each
    pair weighted by ``exp(-angle^2 / (2 max_angle^2))`` (``angles`` in degrees; none: 1).

    Example::

        rotation_invariance_loss(codes, codes)           # 0.0
    """
    codes = tf.convert_to_tensor(codes, tf.float32)
    rotated_codes = tf.convert_to_tensor(rotated_codes, tf.float32)
    per_image = tf.reduce_mean(tf.square(codes - rotated_codes), axis=-1)
    if angles is not None:
        angles = tf.convert_to_tensor(angles, tf.float32)
        per_image = per_image * tf.exp(-tf.square(angles) / (2.0 * max_angle**2))
    return tf.reduce_mean(per_image)


def rotate_images(images: tf.Tensor, angles: tf.Tensor) -> tf.Tensor:
    """Rotate each image of a batch ``(n, h, w, c)`` about its centre by ``angles`` degrees
    (bilinear; corners filled with 0).

    Example::

        rotate_images(batch, tf.fill([len(batch)], 90.0))
    """
    images = tf.convert_to_tensor(images, tf.float32)
    radians = tf.convert_to_tensor(angles, tf.float32) * (math.pi / 180.0)
    height = tf.cast(tf.shape(images)[1], tf.float32)
    width = tf.cast(tf.shape(images)[2], tf.float32)
    cx, cy = (width - 1.0) / 2.0, (height - 1.0) / 2.0
    cos, sin = tf.cos(radians), tf.sin(radians)
    zeros = tf.zeros_like(radians)
    # Each row maps an output pixel (x, y) back to the input pixel it samples from.
    transforms = tf.stack(
        [
            cos,
            -sin,
            cx - cos * cx + sin * cy,
            sin,
            cos,
            cy - sin * cx - cos * cy,
            zeros,
            zeros,
        ],
        axis=1,
    )
    return tf.raw_ops.ImageProjectiveTransformV3(
        images=images,
        transforms=transforms,
        output_shape=tf.shape(images)[1:3],
        fill_value=0.0,
        interpolation="BILINEAR",
        fill_mode="CONSTANT",
    )


@keras.saving.register_keras_serializable(package="sparkzoo")
class DeepBitModel(ObjectivesModel):
    """A functional ``image -> codes`` model whose ``fit`` trains the DeepBit objectives.

    Build it like a functional model, ``DeepBitModel(inputs, codes, quantization_weight=...)``
    (or with :func:`deepbit`). ``fit`` takes images (labels, if any, are ignored), rotates a
    copy of each by a random angle in ``[-max_angle, max_angle]`` degrees, and minimises
    ``quantization_weight * quantisation + balance_weight * balance + rotation_weight *
    rotation`` (plus any regularisation losses). The loss weights travel with saved models.

    Example::

        net = DeepBitModel(inputs, codes, rotation_weight=0.5)
        net.compile("adam")
        net.fit(images, epochs=3)       # logs loss, quantization, balance, rotation
    """

    TERMS = ("loss", "quantization", "balance", "rotation")

    def __init__(
        self,
        inputs: Any,
        outputs: Any,
        name: str | None = None,
        trainable: bool = True,
        *,
        quantization_weight: float = 1.0,
        balance_weight: float = 1.0,
        rotation_weight: float = 1.0,
        max_angle: float = 20.0,
        **kwargs: Any,
    ) -> None:
        # Functional's positional arguments, then keyword-only ones: Keras then saves and
        # revives this class as a functional graph (see functional.get_config/from_config).
        super().__init__(inputs, outputs, name=name, trainable=trainable, **kwargs)
        self.quantization_weight = float(quantization_weight)
        self.balance_weight = float(balance_weight)
        self.rotation_weight = float(rotation_weight)
        self.max_angle = float(max_angle)
        self.track_terms()

    def get_config(self) -> dict:
        config = super().get_config()
        config.update({key: getattr(self, key) for key in LOSS_SETTINGS})
        return config

    @classmethod
    def from_config(cls, config: dict, custom_objects: dict | None = None) -> DeepBitModel:
        config = dict(config)
        settings = {key: config.pop(key) for key in LOSS_SETTINGS if key in config}
        model = super().from_config(config, custom_objects)
        for key, value in settings.items():
            setattr(model, key, float(value))
        return model

    def objectives(self, images: tf.Tensor, training: bool) -> dict[str, tf.Tensor]:
        """The three DeepBit losses and their weighted total on a batch of images."""
        images = tf.convert_to_tensor(images, tf.float32)
        angles = tf.random.uniform(
            tf.shape(images)[:1], -self.max_angle, self.max_angle, dtype=tf.float32
        )
        rotated = rotate_images(images, angles)
        # One forward pass over originals and rotated copies together.
        both = self(tf.concat([images, rotated], axis=0), training=training)
        codes, rotated_codes = tf.split(both, 2, axis=0)
        terms = {
            "quantization": quantization_loss(codes),
            "balance": bit_balance_loss(codes),
            "rotation": rotation_invariance_loss(codes, rotated_codes, angles, self.max_angle),
        }
        total = (
            self.quantization_weight * terms["quantization"]
            + self.balance_weight * terms["balance"]
            + self.rotation_weight * terms["rotation"]
        )
        terms["loss"] = total
        return terms


@register(
    "deepbit",
    task="binary-hashing",
    tiny={"input_shape": (16, 16, 1), "bits": 8, "backbone": "lenet5"},
    example=image_classification_example,
    loss=None,  # the objectives are part of DeepBitModel.train_step
    metrics=(),
)
def deepbit(
    input_shape: tuple[int | None, ...] | None = (28, 28, 1),
    bits: int = 32,
    backbone: str | keras.Model = "lenet5",
    backbone_config: dict | None = None,
    cut_at: str | None = None,
    freeze_to: str | None = None,
    quantization_weight: float = 1.0,
    balance_weight: float = 1.0,
    rotation_weight: float = 1.0,
    max_angle: float = 20.0,
    name: str = "deepbit",
) -> DeepBitModel:
    """DeepBit binary hashing: a CNN backbone -> ``bits`` sigmoid units (layer ``codes``).

    ``backbone`` is a zoo name (a family built with ``backbone_config`` at ``input_shape``, or
    a pretrained tag such as ``"lenet5.mnist"``, whose input shape wins; pass
    ``input_shape=None`` for it) or a Keras model; it is cut at ``cut_at`` (default: the
    layer feeding its classifier) and pooled if the cut is spatial. ``freeze_to`` freezes it
    up to that layer. The loss weights and ``max_angle`` (degrees) set the training
    objectives of :class:`DeepBitModel`. From a randomly initialised backbone the unit
    weights let quantisation win (every image ends up with the same code); the
    ``deepbit.mnist`` recipe uses ``quantization_weight=0.1, balance_weight=10``.

    Example::

        net = deepbit((28, 28, 1), bits=16, backbone="lenet5", rotation_weight=0.5)
        net.compile("adam"); net.fit(images, epochs=5)
        codes = binary_codes(net, images, packed=True)    # (n, 2) uint8
    """
    if bits < 1:
        raise ValueError(f"deepbit needs at least one bit, got bits={bits}")
    base = build_backbone(backbone, input_shape, backbone_config)
    cut_at = cut_at or default_cut(base)
    if freeze_to:
        freeze(base, up_to=freeze_to)
    features = flat_features(cut(base, cut_at).output, name="features_pool")
    codes = keras.layers.Dense(bits, activation="sigmoid", name="codes")(features)
    return DeepBitModel(
        base.inputs,
        codes,
        quantization_weight=quantization_weight,
        balance_weight=balance_weight,
        rotation_weight=rotation_weight,
        max_angle=max_angle,
        name=name,
    )


def binary_codes(
    model: keras.Model, x: Any, packed: bool = False, batch_size: int = 256
) -> np.ndarray:
    """The binary code of each input: ``(n, bits)`` uint8 0/1 (activation > 0.5), or with
    ``packed=True`` eight bits per byte, ``(n, ceil(bits / 8))`` (``np.packbits``).

    Example::

        binary_codes(net, images[:3])          # array([[0, 1, 1, ...], ...], dtype=uint8)
    """
    activations = np.asarray(model.predict(x, batch_size=batch_size, verbose=0))
    bits = (activations > 0.5).astype(np.uint8)
    return np.packbits(bits, axis=1) if packed else bits


def pca_sign_hash(train_x: Any, x: Any, bits: int, seed: int = 0) -> np.ndarray:
    """Baseline hashing: fit PCA with ``bits`` components on ``train_x``, code ``x`` by the
    sign of each component (1 where positive). Returns ``(n, bits)`` uint8 0/1.

    Inputs of any shape are flattened per example.

    Example::

        db = pca_sign_hash(train_images, train_images, bits=32)
        q = pca_sign_hash(train_images, test_images, bits=32)
    """
    # scikit-learn (a second to import) for this baseline only: every rank that builds a zoo
    # model imports all the family modules, this one included.
    from sklearn.decomposition import PCA

    train = np.asarray(train_x, dtype=np.float64).reshape(len(train_x), -1)
    data = np.asarray(x, dtype=np.float64).reshape(len(x), -1)
    if data.shape[1] != train.shape[1]:
        raise ValueError(f"x has {data.shape[1]} values per example, train_x has {train.shape[1]}")
    if not 1 <= bits <= min(train.shape):
        raise ValueError(
            f"pca_sign_hash needs 1 <= bits <= min(examples, features) = {min(train.shape)}, "
            f"got {bits}"
        )
    pca = PCA(n_components=bits, random_state=seed).fit(train)
    return (pca.transform(data) > 0).astype(np.uint8)
