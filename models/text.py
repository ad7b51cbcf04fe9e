"""Text classifiers over token ids: Kim's CNN and a recurrent classifier (LSTM, GRU, Bi-LSTM).

Both take ``(seq_len,)`` integer ids with ``0`` as padding (a tokenizer or
``keras.layers.TextVectorization`` makes them) and return class probabilities.

Example::

    model = text_cnn(vocab_size=20000, seq_len=56, num_classes=2)
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(ids, labels, epochs=5)
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from sparkzoo import keras2 as keras
from sparkzoo.models.registry import register


def _text_example(config: dict, n: int, rng: np.random.Generator):
    ids = rng.integers(1, config["vocab_size"], (n, config["seq_len"]))
    ids[:, -2:] = 0  # padding
    return ids, rng.integers(0, config["num_classes"], n)


@register(
    "text_cnn",
    task="text-classification",
    tiny={"vocab_size": 30, "seq_len": 12, "num_classes": 3, "embedding_dim": 8, "filters": 4},
    example=_text_example,
    loss="sparse_categorical_crossentropy",
    metrics=("accuracy",),
)
def text_cnn(
    vocab_size: int = 20000,
    seq_len: int = 64,
    num_classes: int = 2,
    embedding_dim: int = 128,
    kernel_sizes: Sequence[int] = (3, 4, 5),
    filters: int = 100,
    dropout: float = 0.5,
    l2: float = 0.0,
    name: str = "text_cnn",
) -> keras.Model:
    """Kim (2014) CNN: embedding -> parallel Conv1D of several widths -> max over time -> softmax.

    One ReLU ``Conv1D`` of ``filters`` maps per width in ``kernel_sizes``, each max-pooled over
    the whole sentence; the pooled features are concatenated, dropped out and classified.
    ``l2`` regularises the classifier (Kim used a max-norm constraint instead).

    Example::

        model = text_cnn(vocab_size=18000, seq_len=56, num_classes=2)   # sentence polarity
    """
    kernel_sizes = [int(k) for k in kernel_sizes]
    if not kernel_sizes or min(kernel_sizes) < 1:
        raise ValueError(f"kernel_sizes must be one or more positive widths, got {kernel_sizes}")
    if max(kernel_sizes) > seq_len:
        raise ValueError(
            f"kernel width {max(kernel_sizes)} is longer than the sequence ({seq_len} ids)"
        )
    inputs = keras.Input((seq_len,), dtype="int64", name="token_ids")
    x = keras.layers.Embedding(vocab_size, embedding_dim, name="embedding")(inputs)
    pooled = []
    for width in kernel_sizes:
        features = keras.layers.Conv1D(filters, width, activation="relu", name=f"conv{width}")(x)
        pooled.append(keras.layers.GlobalMaxPooling1D(name=f"max_over_time{width}")(features))
    x = pooled[0] if len(pooled) == 1 else keras.layers.Concatenate(name="features")(pooled)
    if dropout:
        x = keras.layers.Dropout(dropout, name="dropout")(x)
    outputs = keras.layers.Dense(
        num_classes,
        activation="softmax",
        kernel_regularizer=keras.regularizers.l2(l2) if l2 else None,
        name="predictions",
    )(x)
    return keras.Model(inputs, outputs, name=name)


_RNN_CELLS = ("lstm", "gru", "bilstm", "bigru")


@register(
    "text_rnn",
    task="text-classification",
    tiny={"vocab_size": 30, "seq_len": 12, "num_classes": 3, "embedding_dim": 8, "units": 6},
    example=_text_example,
    loss="sparse_categorical_crossentropy",
    metrics=("accuracy",),
)
def text_rnn(
    vocab_size: int = 20000,
    seq_len: int = 64,
    num_classes: int = 2,
    embedding_dim: int = 128,
    units: int = 64,
    cell: str = "lstm",
    hidden: int = 0,
    dropout: float = 0.3,
    name: str = "text_rnn",
) -> keras.Model:
    """Recurrent text classifier: embedding -> LSTM, GRU or bidirectional LSTM/GRU -> dense.

    ``cell`` is ``"lstm"``, ``"gru"``, ``"bilstm"`` or ``"bigru"``; padding (id 0) is masked, so
    the final state is that of the last real token. ``hidden`` adds a ReLU layer of that size
    before the softmax.

    Example::

        model = text_rnn(vocab_size=18000, seq_len=56, cell="bilstm")
    """
    if cell not in _RNN_CELLS:
        raise ValueError(f"cell must be one of {_RNN_CELLS}, got {cell!r}")
    inputs = keras.Input((seq_len,), dtype="int64", name="token_ids")
    x = keras.layers.Embedding(vocab_size, embedding_dim, mask_zero=True, name="embedding")(inputs)
    kind = keras.layers.GRU if cell.endswith("gru") else keras.layers.LSTM
    if cell.startswith("bi"):
        x = keras.layers.Bidirectional(kind(units, name=cell[2:]), name=cell)(x)
    else:
        x = kind(units, name=cell)(x)
    if dropout:
        x = keras.layers.Dropout(dropout, name="dropout")(x)
    if hidden:
        x = keras.layers.Dense(hidden, activation="relu", name="hidden")(x)
    outputs = keras.layers.Dense(num_classes, activation="softmax", name="predictions")(x)
    return keras.Model(inputs, outputs, name=name)
