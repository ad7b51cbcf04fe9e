"""A feed-forward classifier for tabular features, and two ways to train it on rare classes.

Fraud-like data is heavily imbalanced. :func:`balanced_class_weights` re-weights the classes
(``model.fit(..., class_weight=...)``); :class:`FocalLoss` (Lin et al., 2017) down-weights the
easy, well-classified examples. The family's loss follows its ``loss`` setting, so
``models.family("tabular_mlp").loss_for({"loss": "focal"})`` is a focal loss.

Example::

    model = tabular_mlp(input_dim=30, num_classes=2, loss="focal")
    model.compile("adam", tabular_loss({"loss": "focal", "num_classes": 2}))
    model.fit(x, y, class_weight=balanced_class_weights(y))
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import tensorflow as tf

from sparkzoo import keras2 as keras
from sparkzoo.models.registry import register

_LOSSES = ("bce", "focal")


@keras.saving.register_keras_serializable(package="sparkzoo")
class FocalLoss(keras.losses.Loss):
    """Focal loss ``-alpha_t (1 - p_t) ** gamma * log(p_t)``, binary or sparse categorical.

    The kind follows the predictions: one column (a sigmoid) is binary with 0/1 labels; more
    columns (a softmax) are sparse categorical with class-id labels. ``alpha`` weighs the
    classes: for binary, a float is the weight of class 1 (class 0 gets ``1 - alpha``); for
    categorical, a float scales every class and a list gives one weight per class. With
    ``gamma=0`` and no ``alpha`` it is plain cross-entropy.

    Example::

        loss = FocalLoss(gamma=2.0, alpha=0.25)
        model.compile("adam", loss)
    """

    def __init__(
        self,
        gamma: float = 2.0,
        alpha: float | Sequence[float] | None = None,
        from_logits: bool = False,
        name: str = "focal_loss",
        **kwargs,
    ):
        super().__init__(name=name, **kwargs)
        if gamma < 0:
            raise ValueError(f"gamma must be >= 0, got {gamma}")
        self.gamma = float(gamma)
        self.alpha = list(alpha) if isinstance(alpha, (list, tuple)) else alpha
        self.from_logits = bool(from_logits)

    def call(self, y_true, y_pred):
        y_pred = tf.convert_to_tensor(y_pred)
        eps = keras.backend.epsilon()
        if y_pred.shape[-1] == 1:
            y_true = tf.reshape(tf.cast(y_true, y_pred.dtype), tf.shape(y_pred))
            p = tf.sigmoid(y_pred) if self.from_logits else y_pred
            p = tf.clip_by_value(p, eps, 1.0 - eps)
            p_true = y_true * p + (1.0 - y_true) * (1.0 - p)
            weight = 1.0
            if self.alpha is not None:
                if isinstance(self.alpha, list):
                    raise ValueError("binary focal loss takes one alpha, the weight of class 1")
                weight = y_true * self.alpha + (1.0 - y_true) * (1.0 - self.alpha)
            loss = -weight * tf.pow(1.0 - p_true, self.gamma) * tf.math.log(p_true)
            return tf.squeeze(loss, axis=-1)
        labels = tf.cast(tf.reshape(y_true, tf.shape(y_pred)[:-1]), "int32")
        p = tf.nn.softmax(y_pred) if self.from_logits else y_pred
        p_true = tf.clip_by_value(
            tf.gather(p, labels, axis=-1, batch_dims=labels.shape.rank), eps, 1.0
        )
        loss = -tf.pow(1.0 - p_true, self.gamma) * tf.math.log(p_true)
        if isinstance(self.alpha, list):
            loss *= tf.gather(tf.constant(self.alpha, loss.dtype), labels)
        elif self.alpha is not None:
            loss *= self.alpha
        return loss

    def get_config(self) -> dict:
        return {
            **super().get_config(),
            "gamma": self.gamma,
            "alpha": self.alpha,
            "from_logits": self.from_logits,
        }


def balanced_class_weights(labels: np.ndarray) -> dict[int, float]:
    """``{class: n / (classes * count)}``: each class weighs the same in total (sklearn's
    ``"balanced"``).

    Example::

        balanced_class_weights([0] * 90 + [1] * 10)   # {0: 0.555..., 1: 5.0}
    """
    labels = np.asarray(labels).ravel()
    if labels.size == 0:
        raise ValueError("labels is empty: no class weights can be computed")
    classes, counts = np.unique(labels, return_counts=True)
    weights = labels.size / (len(classes) * counts)
    return {int(c): float(w) for c, w in zip(classes, weights, strict=True)}


def tabular_loss(config: dict):
    """The loss a :func:`tabular_mlp` configuration trains with (its ``loss`` setting).

    Example::

        tabular_loss({"loss": "focal", "num_classes": 2, "focal_gamma": 2.0})   # FocalLoss
    """
    kind = config.get("loss", "bce")
    if kind not in _LOSSES:
        raise ValueError(f"loss must be one of {_LOSSES}, got {kind!r}")
    if kind == "focal":
        return FocalLoss(config.get("focal_gamma", 2.0), config.get("focal_alpha"))
    binary = config.get("num_classes", 2) == 2
    return "binary_crossentropy" if binary else "sparse_categorical_crossentropy"


def _tabular_example(config: dict, n: int, rng: np.random.Generator):
    x = rng.standard_normal((n, config["input_dim"])).astype("float32")
    classes = config["num_classes"]
    y = rng.integers(0, classes, n)
    return x, (y.astype("float32")[:, None] if classes == 2 else y)


@register(
    "tabular_mlp",
    task="tabular-classification",
    tiny={"input_dim": 6, "num_classes": 2, "hidden": (8, 4), "loss": "focal"},
    example=_tabular_example,
    loss=tabular_loss,
    metrics=("accuracy",),
)
def tabular_mlp(
    input_dim: int = 30,
    num_classes: int = 2,
    hidden: Sequence[int] = (64, 32),
    batch_norm: bool = True,
    dropout: float = 0.2,
    loss: str = "bce",
    focal_gamma: float = 2.0,
    focal_alpha: float | None = None,
    name: str = "tabular_mlp",
) -> keras.Model:
    """Feed-forward classifier for a vector of ``input_dim`` numeric features.

    Each hidden layer is Dense -> (BatchNorm) -> ReLU -> (Dropout). Two classes give one
    sigmoid output ``(1,)`` (the probability of class 1); more give a softmax. ``loss``
    (``"bce"`` or ``"focal"``, with ``focal_gamma``/``focal_alpha``) changes no layer: it
    selects what :func:`tabular_loss` (the family's loss) returns for this configuration.

    Example::

        model = tabular_mlp(input_dim=30, hidden=(64, 32), loss="focal", focal_alpha=0.25)
    """
    if loss not in _LOSSES:
        raise ValueError(f"loss must be one of {_LOSSES}, got {loss!r}")
    if num_classes < 2:
        raise ValueError(f"num_classes must be >= 2, got {num_classes}")
    inputs = keras.Input((input_dim,), name="features")
    x = inputs
    for i, units in enumerate(hidden):
        x = keras.layers.Dense(int(units), use_bias=not batch_norm, name=f"dense{i + 1}")(x)
        if batch_norm:
            x = keras.layers.BatchNormalization(name=f"batch_norm{i + 1}")(x)
        x = keras.layers.Activation("relu", name=f"relu{i + 1}")(x)
        if dropout:
            x = keras.layers.Dropout(dropout, name=f"dropout{i + 1}")(x)
    binary = num_classes == 2
    outputs = keras.layers.Dense(
        1 if binary else num_classes,
        activation="sigmoid" if binary else "softmax",
        name="probability",
    )(x)
    return keras.Model(inputs, outputs, name=name)
