"""LeNet-5 (LeCun et al., 1998), with ReLU and max pooling as it is usually trained today."""

from __future__ import annotations

import tensorflow as tf


def lenet5(
    input_shape: tuple[int, ...] = (28, 28, 1), num_classes: int = 10, name: str = "lenet5"
) -> tf.keras.Model:
    """LeNet-5 for small grey images: two conv/pool stages, then 120-84-``num_classes`` dense.

    Example::

        model = lenet5((28, 28, 1), 10)   # MNIST
    """
    inputs = tf.keras.Input(input_shape, name="image")
    x = tf.keras.layers.Conv2D(6, 5, padding="same", activation="relu", name="conv1")(inputs)
    x = tf.keras.layers.MaxPooling2D(2, name="pool1")(x)
    x = tf.keras.layers.Conv2D(16, 5, activation="relu", name="conv2")(x)
    x = tf.keras.layers.MaxPooling2D(2, name="pool2")(x)
    x = tf.keras.layers.Flatten(name="flatten")(x)
    x = tf.keras.layers.Dense(120, activation="relu", name="fc1")(x)
    x = tf.keras.layers.Dense(84, activation="relu", name="fc2")(x)
    outputs = tf.keras.layers.Dense(num_classes, activation="softmax", name="predictions")(x)
    return tf.keras.Model(inputs, outputs, name=name)
