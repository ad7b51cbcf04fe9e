"""Sequence-to-sequence: an LSTM/GRU encoder-decoder with optional attention, greedy and beam
decoding, and the error rates a grapheme-to-phoneme model is judged by.

Training uses teacher forcing: the model reads the source ids and the target shifted right
(``start_id`` first) and predicts the next target id at every step
(:func:`teacher_forcing` makes both arrays). Decoding runs the same trained layers one step at
a time: :func:`greedy_decode` and :func:`beam_decode` build an encoder model and a one-step
decoder model from the trained model's layers, found by name, so they share its weights and
work the same on a model loaded from a ``.keras`` file.

Id conventions: ``0`` is padding in both vocabularies (masked everywhere); the caller chooses
``start_id`` and ``end_id`` of the target vocabulary.

Example::

    model = seq2seq(source_vocab=30, target_vocab=42, attention="luong")
    dec_in, target = teacher_forcing(phonemes, start_id=1, end_id=2, length=20)
    model.compile("adam", "sparse_categorical_crossentropy")
    model.fit([letters, dec_in], target, epochs=10)
    guesses = beam_decode(model, letters_test, beam_width=4, start_id=1, end_id=2)
    phoneme_error_rate(guesses, references)
"""

from __future__ import annotations

import weakref
from collections.abc import Sequence

import numpy as np

from sparkzoo import keras2 as keras
from sparkzoo.models.registry import register

_CELLS = {"lstm": keras.layers.LSTM, "gru": keras.layers.GRU}
_ATTENTION = (None, "luong", "bahdanau")


def _seq2seq_example(config: dict, n: int, rng: np.random.Generator):
    source_len = config["source_len"] or 6
    target_len = config["target_len"] or 5
    source = rng.integers(1, config["source_vocab"], (n, source_len))
    source[:, -1] = 0  # some padding, so the masks are exercised
    target = rng.integers(3, config["target_vocab"], (n, target_len - 1)).tolist()
    decoder_inputs, targets = teacher_forcing(target, start_id=1, end_id=2, length=target_len)
    return [source, decoder_inputs], targets


@register(
    "seq2seq",
    task="sequence-to-sequence",
    tiny={
        "source_vocab": 7,
        "target_vocab": 6,
        "embedding_dim": 4,
        "units": 8,
        "attention": "luong",
        "source_len": 6,
        "target_len": 5,
    },
    example=_seq2seq_example,
    loss="sparse_categorical_crossentropy",
    metrics=("accuracy",),
)
def seq2seq(
    source_vocab: int = 32,
    target_vocab: int = 32,
    embedding_dim: int = 64,
    units: int = 128,
    cell: str = "lstm",
    attention: str | None = None,
    source_len: int | None = None,
    target_len: int | None = None,
    dropout: float = 0.0,
    name: str = "seq2seq",
) -> keras.Model:
    """Encoder-decoder over token ids (LSTM or GRU, optional Luong or Bahdanau attention).

    Inputs: ``source_ids`` ``(source_len,)`` and ``decoder_input_ids`` ``(target_len,)``,
    integer ids with ``0`` as padding (``None`` lengths accept any length; the distributed
    trainer needs fixed ones). Output: ``(target_len, target_vocab)`` next-id probabilities;
    train with sparse categorical cross-entropy against the target ids (padding is masked).
    The encoder's final state starts the decoder. With ``attention`` each decoder output
    attends over the encoder outputs, scored by a scaled dot product (``"luong"``) or an
    additive network (``"bahdanau"``), and ``tanh(W [output; context])`` feeds the softmax
    (Luong et al., 2015).

    Example::

        model = seq2seq(source_vocab=30, target_vocab=42, units=128, attention="luong",
                        source_len=20, target_len=20)
    """
    if cell not in _CELLS:
        raise ValueError(f"cell must be one of {sorted(_CELLS)}, got {cell!r}")
    if attention not in _ATTENTION:
        raise ValueError(f"attention must be one of {_ATTENTION}, got {attention!r}")
    if source_vocab < 3 or target_vocab < 3:
        raise ValueError(
            "each vocabulary needs at least padding, start and end plus one token; got "
            f"source_vocab={source_vocab}, target_vocab={target_vocab}"
        )
    rnn = _CELLS[cell]
    source = keras.Input((source_len,), dtype="int64", name="source_ids")
    decoder_input = keras.Input((target_len,), dtype="int64", name="decoder_input_ids")

    x = keras.layers.Embedding(
        source_vocab, embedding_dim, mask_zero=True, name="source_embedding"
    )(source)
    encoded, *states = rnn(
        units, return_sequences=True, return_state=True, dropout=dropout, name="encoder"
    )(x)
    y = keras.layers.Embedding(
        target_vocab, embedding_dim, mask_zero=True, name="target_embedding"
    )(decoder_input)
    decoded, *_ = rnn(
        units, return_sequences=True, return_state=True, dropout=dropout, name="decoder"
    )(y, initial_state=states)
    if attention:
        context = _attention_layer(attention)([decoded, encoded])
        joined = keras.layers.Concatenate(name="attention_concat")([decoded, context])
        decoded = keras.layers.Dense(units, activation="tanh", name="attention_vector")(joined)
    if dropout:
        decoded = keras.layers.Dropout(dropout, name="output_dropout")(decoded)
    outputs = keras.layers.Dense(target_vocab, activation="softmax", name="next_token")(decoded)
    return keras.Model([source, decoder_input], outputs, name=name)


def _attention_layer(kind: str) -> keras.layers.Layer:
    if kind == "luong":
        return keras.layers.Attention(use_scale=True, name="attention")
    return keras.layers.AdditiveAttention(name="attention")


def teacher_forcing(
    sequences: Sequence[Sequence[int]], start_id: int, end_id: int, length: int
) -> tuple[np.ndarray, np.ndarray]:
    """Decoder inputs ``[start, y1 .. yn]`` and targets ``[y1 .. yn, end]``, zero-padded to
    ``length``.

    Example::

        teacher_forcing([[5, 6]], start_id=1, end_id=2, length=4)
        # (array([[1, 5, 6, 0]]), array([[5, 6, 2, 0]]))
    """
    decoder_inputs = np.zeros((len(sequences), length), dtype="int64")
    targets = np.zeros((len(sequences), length), dtype="int64")
    for row, sequence in enumerate(sequences):
        sequence = list(sequence)
        if len(sequence) + 1 > length:
            raise ValueError(
                f"sequence {row} has {len(sequence)} ids; with the start/end id it needs "
                f"length >= {len(sequence) + 1}, got {length}"
            )
        if 0 in sequence:
            raise ValueError(f"sequence {row} contains id 0, which is reserved for padding")
        decoder_inputs[row, : len(sequence) + 1] = [start_id, *sequence]
        targets[row, : len(sequence) + 1] = [*sequence, end_id]
    return decoder_inputs, targets


def pad_ids(sequences: Sequence[Sequence[int]], length: int) -> np.ndarray:
    """Zero-pad (never truncate) id sequences into an ``(n, length)`` array.

    Example::

        pad_ids([[3, 4], [5]], 3)   # [[3, 4, 0], [5, 0, 0]]
    """
    out = np.zeros((len(sequences), length), dtype="int64")
    for row, sequence in enumerate(sequences):
        if len(sequence) > length:
            raise ValueError(f"sequence {row} has {len(sequence)} ids, more than {length}")
        out[row, : len(sequence)] = sequence
    return out


# ---- decoding ---------------------------------------------------------------------------


class _Decoder:
    """An encoder model and a one-step decoder model sharing the trained model's layers."""

    def __init__(self, model: keras.Model):
        names = {layer.name for layer in model.layers}
        required = {"source_embedding", "encoder", "target_embedding", "decoder", "next_token"}
        missing = sorted(required - names)
        if missing:
            raise ValueError(
                f"model {model.name!r} is not a sparkzoo seq2seq model: it has no layers {missing}"
            )
        self.source_len = model.inputs[0].shape[1]
        self.target_len = model.inputs[1].shape[1]
        encoder = model.get_layer("encoder")
        self.encoder = keras.Model(model.inputs[0], encoder.output, name="seq2seq_encoder")
        self.num_states = len(encoder.output) - 1
        units = encoder.cell.units if hasattr(encoder, "cell") else encoder.units

        token = keras.Input((1,), dtype="int64", name="token")
        encoded = keras.Input((self.source_len, units), name="encoded")
        source_mask = keras.Input((self.source_len,), dtype="bool", name="source_mask")
        states = [keras.Input((units,), name=f"state{i}") for i in range(self.num_states)]
        y = model.get_layer("target_embedding")(token)
        decoded, *new_states = model.get_layer("decoder")(y, initial_state=states)
        if "attention" in names:
            context = model.get_layer("attention")([decoded, encoded], mask=[None, source_mask])
            joined = model.get_layer("attention_concat")([decoded, context])
            decoded = model.get_layer("attention_vector")(joined)
        probabilities = model.get_layer("next_token")(decoded)
        self.step = keras.Model(
            [token, encoded, source_mask, *states],
            [probabilities, *new_states],
            name="seq2seq_step",
        )

    def source_array(self, source_ids) -> np.ndarray:
        if isinstance(source_ids, np.ndarray) and source_ids.ndim == 2:
            array = source_ids.astype("int64")
        else:
            lengths = [len(s) for s in source_ids]
            array = pad_ids(source_ids, self.source_len or max(lengths, default=1))
        if self.source_len is not None and array.shape[1] != self.source_len:
            raise ValueError(
                f"the model takes sources of {self.source_len} ids, got shape {array.shape}"
            )
        return array

    def encode(self, source: np.ndarray) -> tuple[np.ndarray, np.ndarray, list[np.ndarray]]:
        encoded, *states = self.encoder(source, training=False)
        return encoded.numpy(), source != 0, [s.numpy() for s in states]

    def next(self, tokens, encoded, mask, states) -> tuple[np.ndarray, list[np.ndarray]]:
        probabilities, *states = self.step(
            [tokens.reshape(-1, 1), encoded, mask, *states], training=False
        )
        probabilities = probabilities.numpy()[:, 0, :]
        # Id 0 is padding, never a real output (and fed back it would be masked out).
        probabilities[:, 0] = 0.0
        return probabilities, [s.numpy() for s in states]


_DECODERS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _decoder(model: keras.Model) -> _Decoder:
    # Building the step model costs more than a decoding step; build it once per model.
    if model not in _DECODERS:
        _DECODERS[model] = _Decoder(model)
    return _DECODERS[model]


def _default_max_len(decoder: _Decoder, max_len: int | None) -> int:
    if max_len is not None:
        return max_len
    return decoder.target_len or 50


def greedy_decode(
    model: keras.Model,
    source_ids,
    start_id: int,
    end_id: int,
    max_len: int | None = None,
) -> list[list[int]]:
    """Decode each source by taking the most probable next id until ``end_id`` or ``max_len``.

    ``source_ids`` is an ``(n, source_len)`` array or a list of id lists. Returns one id list
    per source, without the start and end ids. ``max_len`` defaults to the model's
    ``target_len`` (50 if that is not fixed).

    Example::

        greedy_decode(model, [[5, 6, 7]], start_id=1, end_id=2)   # [[7, 6, 5]] once trained
    """
    decoder = _decoder(model)
    source = decoder.source_array(source_ids)
    max_len = _default_max_len(decoder, max_len)
    encoded, mask, states = decoder.encode(source)
    tokens = np.full(len(source), start_id, dtype="int64")
    output = np.zeros((len(source), max_len), dtype="int64")
    finished = np.zeros(len(source), dtype=bool)
    for t in range(max_len):
        probabilities, states = decoder.next(tokens, encoded, mask, states)
        tokens = probabilities.argmax(axis=-1).astype("int64")
        output[:, t] = np.where(finished, end_id, tokens)
        finished |= tokens == end_id
        if finished.all():
            break
    return [_until_end(row, end_id) for row in output]


def beam_decode(
    model: keras.Model,
    source_ids,
    beam_width: int = 4,
    start_id: int = 1,
    end_id: int = 2,
    max_len: int | None = None,
    length_penalty: float = 0.0,
    return_scores: bool = False,
):
    """Beam search: keep the ``beam_width`` most probable partial outputs at every step.

    A hypothesis ends at ``end_id``; the best one per source (by log-probability divided by
    ``length ** length_penalty``) is returned as an id list without start and end ids. With
    ``return_scores=True`` returns ``(sequences, scores)``. ``beam_width=1`` is greedy
    decoding.

    Example::

        beam_decode(model, [[5, 6, 7]], beam_width=4, start_id=1, end_id=2)
    """
    if beam_width < 1:
        raise ValueError(f"beam_width must be >= 1, got {beam_width}")
    decoder = _decoder(model)
    source = decoder.source_array(source_ids)
    max_len = _default_max_len(decoder, max_len)
    n, width = len(source), beam_width
    encoded, mask, states = decoder.encode(source)
    # Every source gets `width` rows; only the first beam is live at the start, so the
    # first step does not pick the same token `width` times.
    encoded = np.repeat(encoded, width, axis=0)
    mask = np.repeat(mask, width, axis=0)
    states = [np.repeat(s, width, axis=0) for s in states]
    scores = np.tile(np.r_[0.0, np.full(width - 1, -np.inf)], n)  # (n * width,)
    tokens = np.full(n * width, start_id, dtype="int64")
    history = np.zeros((n * width, 0), dtype="int64")
    finished = np.zeros(n * width, dtype=bool)
    lengths = np.zeros(n * width)
    for _ in range(max_len):
        probabilities, states = decoder.next(tokens, encoded, mask, states)
        vocab = probabilities.shape[-1]
        logp = np.log(np.maximum(probabilities, 1e-12))
        logp[:, 0] = -np.inf
        # A finished hypothesis only extends by end_id at no cost: it keeps its score.
        logp[finished] = -np.inf
        logp[finished, end_id] = 0.0
        total = (scores[:, None] + logp).reshape(n, width * vocab)
        best = np.argsort(-total, axis=1, kind="stable")[:, :width]
        rows = (np.arange(n)[:, None] * width + best // vocab).ravel()
        tokens = (best % vocab).ravel().astype("int64")
        scores = np.take_along_axis(total, best, axis=1).ravel()
        history = np.concatenate([history[rows], tokens[:, None]], axis=1)
        lengths = lengths[rows] + ~finished[rows]
        finished = finished[rows] | (tokens == end_id)
        states = [s[rows] for s in states]
        if finished.all():
            break
    normalised = (scores / np.maximum(lengths, 1.0) ** length_penalty).reshape(n, width)
    choice = normalised.argmax(axis=1)
    picked = np.arange(n) * width + choice
    sequences = [_until_end(history[i], end_id) for i in picked]
    if return_scores:
        return sequences, normalised[np.arange(n), choice]
    return sequences


def _until_end(ids: np.ndarray, end_id: int) -> list[int]:
    ids = ids.tolist()
    return ids[: ids.index(end_id)] if end_id in ids else ids


# ---- error rates ------------------------------------------------------------------------


def edit_distance(a: Sequence, b: Sequence) -> int:
    """Levenshtein distance: the fewest insertions, deletions and substitutions from a to b.

    Example::

        edit_distance("kitten", "sitting")   # 3
    """
    previous = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        current = [i]
        for j, y in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (x != y)))
        previous = current
    return previous[-1]


def phoneme_error_rate(predictions: Sequence[Sequence], references: Sequence[Sequence]) -> float:
    """Total edit distance over total reference length (PER, like WER over phonemes).

    Example::

        phoneme_error_rate([["K", "AE1", "T"]], [["K", "AE1", "T", "S"]])   # 0.25
    """
    if len(predictions) != len(references):
        raise ValueError(
            f"{len(predictions)} predictions but {len(references)} references: they must pair"
        )
    total = sum(len(r) for r in references)
    if total == 0:
        raise ValueError("the references are empty: the error rate is undefined")
    return sum(edit_distance(p, r) for p, r in zip(predictions, references, strict=True)) / total


def sequence_error_rate(predictions: Sequence[Sequence], references: Sequence[Sequence]) -> float:
    """Share of predictions that differ from their reference at all (G2P's word error rate).

    Example::

        sequence_error_rate([[1, 2], [3]], [[1, 2], [4]])   # 0.5
    """
    if len(predictions) != len(references) or not references:
        raise ValueError(
            f"need as many predictions as references (and some): got {len(predictions)} "
            f"and {len(references)}"
        )
    wrong = sum(list(p) != list(r) for p, r in zip(predictions, references, strict=True))
    return wrong / len(references)
