"""Transfer learning by layer name, as in the Analytics Zoo talks: cut, freeze, new head, load.

Every image classifier of the zoo names its layers the same way: ``stem`` (where there is
one), ``stage1`` ... ``stage5`` (``stageK`` is the last layer at total stride 2**K; a family
has the stages its architecture has: ResNet 2-5, Inception 3-5, VGG and MobileNetV2 1-5),
``pool`` (global pooling), ``dropout`` and ``predictions``. So a recipe can say "features at
``stage4``" (stride 16) or "freeze up to ``stage3``" without knowing which family it holds.

Example::

    from sparkzoo import models
    from sparkzoo.models.transfer import freeze, new_head

    base = models.get("resnet18", input_shape=(96, 96, 3), num_classes=1000)
    net = new_head(base, num_classes=5, freeze_to="stage4")   # cut at "pool" by default
    net.compile("adam", "sparse_categorical_crossentropy")    # re-compile after freezing

This module also holds the two pieces every classifier builder shares (:func:`image_input`
checks the input size, :func:`classifier_head` builds ``pool`` -> ``predictions``), so that a
classifier's head and a transfer-learning head are the same code.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import tensorflow as tf

from sparkzoo import keras2 as keras
from sparkzoo.models.hub import fetch
from sparkzoo.models.registry import get, load_verified_weights


def layer_names(model: keras.Model) -> list[str]:
    """The names of ``model``'s layers, in the model's order."""
    return [layer.name for layer in model.layers]


def _get_layer(model: keras.Model, layer_name: str) -> keras.layers.Layer:
    names = layer_names(model)
    if layer_name not in names:
        raise ValueError(
            f"{model.name} has no layer {layer_name!r}; its layers are: {', '.join(names)}"
        )
    return model.get_layer(layer_name)


def cut(model: keras.Model, layer_name: str, name: str | None = None) -> keras.Model:
    """A model with ``model``'s inputs whose output is the output of layer ``layer_name``.

    The new model shares its layers (and so its weights) with ``model``.

    Example::

        features = cut(models.get("vgg", depth=16), "stage4")   # stride-16 feature maps
    """
    layer = _get_layer(model, layer_name)
    return keras.Model(model.inputs, layer.output, name=name or f"{model.name}_{layer_name}")


def _ancestors(model: keras.Model, layer_name: str) -> list[keras.layers.Layer]:
    # The layers a functional model needs to compute `layer_name` are exactly the layers of
    # the model cut there; for a Sequential model that is every layer up to it.
    layer = _get_layer(model, layer_name)
    try:
        needed = {id(x) for x in cut(model, layer_name).layers}
    except (AttributeError, ValueError):  # a subclassed model has no graph to walk
        index = model.layers.index(layer)
        needed = {id(x) for x in model.layers[: index + 1]}
    return [x for x in model.layers if id(x) in needed]


def freeze(model: keras.Model, up_to: str, inclusive: bool = True) -> int:
    """Make every layer from the inputs up to layer ``up_to`` untrainable; return how many.

    "Up to" means the layers that compute ``up_to``'s output (its ancestors), so parallel
    branches after it stay trainable. Frozen batch-norm layers also stop updating their
    statistics (they run in inference mode). Re-compile the model afterwards: Keras reads
    ``trainable`` when it compiles.

    Example::

        freeze(net, up_to="stage3")      # train stage4, stage5 and the head only
    """
    target = _get_layer(model, up_to)
    frozen = 0
    for layer in _ancestors(model, up_to):
        if isinstance(layer, keras.layers.InputLayer):
            continue
        if layer is target and not inclusive:
            continue
        if layer.trainable:
            layer.trainable = False
            frozen += 1
    return frozen


def unfreeze(model: keras.Model) -> int:
    """Make every layer trainable again; return how many changed."""
    changed = 0
    for layer in model.layers:
        if not layer.trainable:
            layer.trainable = True
            changed += 1
    return changed


def default_cut(model: keras.Model) -> str:
    """The layer a new head goes on when none is named: the input of the last layer, skipping
    dropout (``pool`` for the zoo's classifiers, ``fc2`` for VGG and LeNet-5).

    Example::

        default_cut(models.get("resnet18"))      # 'pool'
    """
    by_output = {}
    for candidate in model.layers:
        try:
            by_output[id(candidate.output)] = candidate
        except AttributeError:  # a layer used more than once has no single output
            continue
    layer = model.layers[-1]
    while True:
        try:
            inbound = layer.input
        except AttributeError:
            break
        if isinstance(inbound, (list, tuple)) or id(inbound) not in by_output:
            break
        source = by_output[id(inbound)]
        if not isinstance(source, keras.layers.Dropout):
            return source.name
        layer = source
    raise ValueError(
        f"cannot tell where to cut {model.name} (its last layer has no single input layer); "
        f"name a layer: {', '.join(layer_names(model))}"
    )


def build_backbone(
    backbone: str | keras.Model,
    input_shape: Sequence[int | None] | None = None,
    config: dict | None = None,
) -> keras.Model:
    """A model to build on: ``backbone`` itself if it is a Keras model, else the zoo model of
    that name (a family built with ``config`` at ``input_shape``, or a pretrained tag, whose
    input shape is fixed by its weights). ``input_shape=None`` keeps the model's own.

    Example::

        base = build_backbone("resnet18", (64, 64, 3), {"width": 0.5})
        base = build_backbone("lenet5.mnist")             # shipped weights
    """
    if isinstance(backbone, keras.Model):
        if input_shape is not None and tuple(backbone.input_shape[1:]) != tuple(input_shape):
            raise ValueError(
                f"backbone {backbone.name} takes input_shape {tuple(backbone.input_shape[1:])}, "
                f"got {tuple(input_shape)}"
            )
        return backbone
    config = dict(config or {})
    if "." in backbone:
        model = get(backbone, **config)
        want = tuple(model.input_shape[1:])
        if input_shape is not None and tuple(input_shape) != want:
            raise ValueError(f"{backbone} takes input_shape {want}, got {tuple(input_shape)}")
        return model
    if input_shape is not None:
        config["input_shape"] = tuple(input_shape)
    return get(backbone, **config)


def flat_features(x: tf.Tensor, name: str = "pool", pooling: str = "avg") -> tf.Tensor:
    """``x`` as one vector per example: globally pooled (``"avg"`` or ``"max"``) if it is a
    feature map, flattened if it has other extra axes, as it is if it is already flat.

    Example::

        vector = flat_features(cut(net, "stage4").output, name="stage4_pool")
    """
    if len(x.shape) == 4:
        pool_class = {
            "avg": keras.layers.GlobalAveragePooling2D,
            "max": keras.layers.GlobalMaxPooling2D,
        }
        if pooling not in pool_class:
            raise ValueError(f"pooling must be 'avg' or 'max', got {pooling!r}")
        return pool_class[pooling](name=name)(x)
    if len(x.shape) != 2:
        return keras.layers.Flatten(name=name)(x)
    return x


def classifier_head(
    x: tf.Tensor,
    num_classes: int,
    hidden: Sequence[int] = (),
    dropout: float = 0.0,
    activation: str | None = "softmax",
    pooling: str = "avg",
    prefix: str = "",
) -> tf.Tensor:
    """``pool`` (global pooling when ``x`` is spatial) -> ``fc1`` -> ``fc1_dropout`` ...
    -> ``dropout`` -> ``predictions``; ``prefix`` goes in front of every layer name.

    Example::

        outputs = classifier_head(features, num_classes=10, hidden=(256,), dropout=0.5)
    """
    if num_classes < 1:
        raise ValueError(f"num_classes must be >= 1, got {num_classes}")
    x = flat_features(x, f"{prefix}pool", pooling)
    for i, units in enumerate(hidden, start=1):
        if dropout and i > 1:  # dropout follows each hidden layer, as in VGG and AlexNet
            x = keras.layers.Dropout(dropout, name=f"{prefix}fc{i - 1}_dropout")(x)
        x = keras.layers.Dense(units, activation="relu", name=f"{prefix}fc{i}")(x)
    if dropout:
        x = keras.layers.Dropout(dropout, name=f"{prefix}dropout")(x)
    return keras.layers.Dense(num_classes, activation=activation, name=f"{prefix}predictions")(x)


def image_input(input_shape: Sequence[int | None], minimum: int, family: str) -> keras.layers.Layer:
    """The ``image`` input of a classifier, after checking ``input_shape`` is (H, W, C) with
    H and W at least ``minimum`` (``None`` means any size, checked when the model runs).

    Example::

        inputs = image_input((64, 64, 3), minimum=32, family="resnet18")
    """
    shape = tuple(input_shape)
    if len(shape) != 3:
        raise ValueError(f"{family} takes images of shape (height, width, channels), got {shape}")
    small = [s for s in shape[:2] if s is not None and s < minimum]
    if small:
        raise ValueError(
            f"{family} needs images of at least {minimum}x{minimum} pixels (its total stride), "
            f"got input_shape {shape}"
        )
    return keras.Input(shape, name="image")


def new_head(
    model: keras.Model,
    num_classes: int,
    cut_at: str | None = None,
    freeze_to: str | None = None,
    hidden: Sequence[int] = (),
    dropout: float = 0.0,
    activation: str | None = "softmax",
    name: str | None = None,
) -> keras.Model:
    """``model`` cut at ``cut_at`` (default :func:`default_cut`), globally pooled if the cut is
    spatial, with a new dense head of ``num_classes``; layers up to ``freeze_to`` frozen.

    The new layers are named ``head_pool``, ``head_fc1``..., ``head_dropout`` and
    ``head_predictions``, so they never collide with the base model's names.

    Example::

        base = models.get("lenet5.mnist")                 # 10 digits
        net = new_head(base, num_classes=2, freeze_to="conv2")
    """
    cut_at = cut_at or default_cut(model)
    features = _get_layer(model, cut_at).output
    if freeze_to:
        freeze(model, up_to=freeze_to)
    outputs = classifier_head(
        features,
        num_classes,
        hidden=hidden,
        dropout=dropout,
        activation=activation,
        prefix="head_",
    )
    return keras.Model(model.inputs, outputs, name=name or f"{model.name}_{num_classes}")


def load_weights(
    model: keras.Model, uri: str | Path, sha256: str | None = None, **fetch_options: Any
) -> keras.Model:
    """Load weights into ``model`` from a local path, ``hdfs://`` URI or ``https://`` URL.

    Remote files are fetched (and cached) by :func:`sparkzoo.models.hub.fetch`, which checks
    ``sha256`` before anything reaches the cache; ``fetch_options`` go to it (``cache_dir``,
    ``context``, ``cafile``, ``timeout``).

    Example::

        load_weights(net, "https://example.org/resnet18.weights.h5", sha256="9f2c...")
    """
    path = fetch(str(uri), sha256=sha256, **fetch_options)
    return load_verified_weights(model, path, sha256)
