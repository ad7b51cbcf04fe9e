"""TextSet: text in a Spark DataFrame to fixed-length arrays of word ids, the trainer's input.

The steps follow Analytics Zoo's TextSet (tokenize, normalize, word2idx, shape_sequence), run
as Spark SQL expressions (tokenising, normalising) and Arrow batches (ids, padding) on the
executors; the vocabulary is counted with Spark and only its top words reach the driver.

Ids: 0 pads, 1 stands for a word outside the vocabulary, words get 2, 3, ... by falling count
(ties alphabetically), so ``len(vocabulary)`` is the ``input_dim`` of a Keras ``Embedding``.

Example::

    from sparkzoo.datasets.text import TextSet, Vocabulary

    texts = TextSet(df, text_col="text").tokenize().normalize()
    vocab = texts.build_vocabulary(max_words=5000)
    vocab.save("/data/models/vocab.json")
    train = texts.to_sequences(vocab, length=40)      # adds "indices": array<int>, 40 per row
    texts.encode("A fine, funny film", vocab, length=40)  # the same ids locally (numpy)
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pyspark.sql import functions as F
from pyspark.sql.types import ArrayType, IntegerType, StructField, StructType

from sparkzoo import fs
from sparkzoo.arrow import list_array

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

PAD_ID = 0
OOV_ID = 1
# Runs of ASCII letters, digits and apostrophes ("don't" stays one token). ASCII classes mean
# the same in Java (Spark) and Python regular expressions, so local and Spark tokens agree.
TOKEN_PATTERN = r"[A-Za-z0-9']+"
NORMALIZE_REMOVE = r"[^a-z0-9]"
_FORMAT = "sparkzoo.vocabulary"


@dataclass(frozen=True)
class Vocabulary:
    """Words and their ids (0 = padding, 1 = out of vocabulary, words from 2).

    Example::

        vocab = Vocabulary(["film", "good"])
        vocab.encode(["good", "film", "zebra"], length=5)   # array([3, 2, 1, 0, 0])
        len(vocab)                                          # 4: the Embedding input_dim
    """

    words: tuple[str, ...]
    counts: tuple[int, ...] | None = None
    _index: dict[str, int] = field(init=False, repr=False, compare=False)

    def __post_init__(self):
        object.__setattr__(self, "words", tuple(self.words))
        if self.counts is not None:
            object.__setattr__(self, "counts", tuple(int(c) for c in self.counts))
            if len(self.counts) != len(self.words):
                raise ValueError(
                    f"vocabulary has {len(self.words)} words but {len(self.counts)} counts"
                )
        index = {word: i + 2 for i, word in enumerate(self.words)}
        if len(index) != len(self.words):
            raise ValueError("vocabulary words must be unique")
        object.__setattr__(self, "_index", index)

    def __len__(self) -> int:
        return len(self.words) + 2

    def id(self, word: str) -> int:
        """The id of ``word`` (``OOV_ID`` when it is not in the vocabulary)."""
        return self._index.get(word, OOV_ID)

    def encode(
        self,
        tokens: Sequence[str],
        length: int | None = None,
        padding: str = "post",
        truncating: str = "post",
    ) -> np.ndarray:
        """Ids of ``tokens``; with ``length``, cut and padded as :meth:`TextSet.to_sequences`."""
        ids = np.array([self.id(t) for t in tokens], np.int32)
        return ids if length is None else shape_sequence(ids, length, padding, truncating)

    def to_dict(self) -> dict:
        return {
            "format": _FORMAT,
            "version": 1,
            "pad_id": PAD_ID,
            "oov_id": OOV_ID,
            "words": list(self.words),
            "counts": None if self.counts is None else list(self.counts),
        }

    @classmethod
    def from_dict(cls, data: dict) -> Vocabulary:
        if data.get("format") != _FORMAT:
            raise ValueError(f"not a sparkzoo vocabulary (format {data.get('format')!r})")
        if (data.get("pad_id"), data.get("oov_id")) != (PAD_ID, OOV_ID):
            raise ValueError(
                f"vocabulary reserves pad={data.get('pad_id')} oov={data.get('oov_id')}; "
                f"this version uses pad={PAD_ID} oov={OOV_ID}"
            )
        return cls(tuple(data["words"]), data.get("counts") and tuple(data["counts"]))

    def save(self, uri: str) -> None:
        """Write the vocabulary as JSON to ``uri`` (atomically)."""
        fs.write_bytes(uri, json.dumps(self.to_dict(), ensure_ascii=False).encode("utf-8"))

    @classmethod
    def load(cls, uri: str) -> Vocabulary:
        """A vocabulary written by :meth:`save`."""
        try:
            data = json.loads(fs.read_bytes(uri).decode("utf-8"))
        except json.JSONDecodeError as exc:
            raise ValueError(f"{uri}: not a JSON vocabulary ({exc})") from exc
        return cls.from_dict(data)


def shape_sequence(
    ids: np.ndarray, length: int, padding: str = "post", truncating: str = "post"
) -> np.ndarray:
    """Cut ``ids`` to ``length`` (``truncating="post"`` keeps the start, ``"pre"`` the end) and
    pad with ``PAD_ID`` (``padding="post"`` after, ``"pre"`` before)."""
    _check_modes(length, padding, truncating)
    ids = np.asarray(ids, np.int32)
    kept = ids[:length] if truncating == "post" else ids[max(0, len(ids) - length) :]
    out = np.full(length, PAD_ID, np.int32)
    if padding == "post":
        out[: len(kept)] = kept
    elif len(kept):
        out[-len(kept) :] = kept
    return out


def _check_modes(length: int, padding: str, truncating: str) -> None:
    if length <= 0:
        raise ValueError(f"sequence length must be positive, got {length}")
    for name, value in (("padding", padding), ("truncating", truncating)):
        if value not in ("pre", "post"):
            raise ValueError(f"{name} must be 'pre' or 'post', got {value!r}")


def _sequences_batches(
    batches: Iterator[pa.RecordBatch],
    tokens_col: str,
    words: list[str],
    length: int,
    padding: str,
    truncating: str,
    output_col: str,
    drop: Sequence[str],
) -> Iterator[pa.RecordBatch]:
    """Executor side: a token-list column to fixed-length int32 id lists, a batch at a time."""
    vocabulary = pa.array(words, pa.string())
    for batch in batches:
        tokens = batch.column(tokens_col)
        rows = len(batch)
        flat = pc.list_flatten(tokens)
        found = pc.index_in(flat, value_set=vocabulary).to_numpy(zero_copy_only=False)
        ids = np.where(np.isnan(found), OOV_ID, np.nan_to_num(found) + 2).astype(np.int32)
        counts = pc.fill_null(pc.list_value_length(tokens), 0).to_numpy().astype(np.int64)
        starts = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)
        kept = np.minimum(counts, length)
        source = starts + (counts - kept if truncating == "pre" else 0)
        target = length - kept if padding == "pre" else np.zeros(rows, np.int64)
        row = np.repeat(np.arange(rows), kept)
        within = np.arange(kept.sum()) - np.repeat(np.cumsum(kept) - kept, kept)
        out = np.full((rows, length), PAD_ID, np.int32)
        out[row, target[row] + within] = ids[source[row] + within]
        sequences = list_array(out, np.int32)
        names = [n for n in batch.schema.names if n not in drop]
        yield pa.RecordBatch.from_arrays(
            [batch.column(n) for n in names] + [sequences], names=[*names, output_col]
        )


class TextSet:
    """A DataFrame's text column on its way to word-id arrays; each step returns a new TextSet.

    Example::

        ts = TextSet(df, "text").tokenize().normalize(stopwords=["the", "a"])
        vocab = ts.build_vocabulary(max_words=10000, min_count=2)
        out = ts.to_sequences(vocab, length=50)          # "indices": array<int> of 50
    """

    def __init__(self, df: DataFrame, text_col: str = "text", tokens_col: str = "tokens"):
        if text_col not in df.columns:
            raise ValueError(
                f"text column {text_col!r} is not in the DataFrame; it has {df.columns}"
            )
        self._df = df
        self.text_col = text_col
        self.tokens_col = tokens_col
        # The same steps as plain Python, for encode(): (name, parameters).
        self._steps: list[tuple[str, dict]] = []

    @property
    def df(self) -> DataFrame:
        """The DataFrame with the ``tokens`` column (after :meth:`tokenize`)."""
        return self._df

    def _with(self, df: DataFrame, step: tuple[str, dict]) -> TextSet:
        out = TextSet.__new__(TextSet)
        out._df, out.text_col, out.tokens_col = df, self.text_col, self.tokens_col
        out._steps = [*self._steps, step]
        return out

    def _need_tokens(self, what: str) -> None:
        if not self._steps:
            raise ValueError(f"{what} needs tokens: call tokenize() first")

    def tokenize(self, pattern: str = TOKEN_PATTERN, lowercase: bool = True) -> TextSet:
        """Split the text into the runs matching ``pattern`` (a null text gives no tokens)."""
        re.compile(pattern)  # a bad pattern fails here, with Python's message, not in a task
        text = F.coalesce(F.col(self.text_col).cast("string"), F.lit(""))
        if lowercase:
            text = F.lower(text)
        tokens = F.regexp_extract_all(text, F.lit(pattern), 0)
        step = ("tokenize", {"pattern": pattern, "lowercase": lowercase})
        return self._with(self._df.withColumn(self.tokens_col, tokens), step)

    def normalize(
        self,
        remove: str = NORMALIZE_REMOVE,
        min_length: int = 1,
        stopwords: Iterable[str] = (),
    ) -> TextSet:
        """Lower-case each token, delete the characters matching ``remove`` (by default all but
        ``a-z0-9``), then drop tokens shorter than ``min_length`` and ``stopwords``."""
        self._need_tokens("normalize")
        re.compile(remove)
        stop = sorted(set(stopwords))
        tokens = F.transform(
            F.col(self.tokens_col), lambda t: F.regexp_replace(F.lower(t), remove, "")
        )
        tokens = F.filter(tokens, lambda t: F.length(t) >= max(1, min_length))
        if stop:
            stop_array = F.array(*[F.lit(w) for w in stop])
            tokens = F.filter(tokens, lambda t: ~F.array_contains(stop_array, t))
        step = ("normalize", {"remove": remove, "min_length": min_length, "stopwords": stop})
        return self._with(self._df.withColumn(self.tokens_col, tokens), step)

    def tokens(self, text: str | None) -> list[str]:
        """The tokens the steps so far give for one text, computed locally (no Spark)."""
        tokens: list[str] = []
        for name, params in self._steps:
            if name == "tokenize":
                value = "" if text is None else str(text)
                value = value.lower() if params["lowercase"] else value
                tokens = re.findall(params["pattern"], value)
            else:
                stop = set(params["stopwords"])
                cleaned = (re.sub(params["remove"], "", t.lower()) for t in tokens)
                tokens = [
                    t for t in cleaned if len(t) >= max(1, params["min_length"]) and t not in stop
                ]
        return tokens

    def encode(
        self,
        text: str | None,
        vocabulary: Vocabulary,
        length: int,
        padding: str = "post",
        truncating: str = "post",
    ) -> np.ndarray:
        """One text to the ids :meth:`to_sequences` gives it, locally (for serving)."""
        self._need_tokens("encode")
        return vocabulary.encode(self.tokens(text), length, padding, truncating)

    def build_vocabulary(self, max_words: int | None = None, min_count: int = 1) -> Vocabulary:
        """Count the tokens with Spark and keep the ``max_words`` most frequent that occur at
        least ``min_count`` times (ties broken alphabetically, so the result is stable)."""
        self._need_tokens("build_vocabulary")
        if max_words is not None and max_words <= 0:
            raise ValueError(f"max_words must be positive, got {max_words}")
        counts = (
            self._df.select(F.explode(self.tokens_col).alias("word"))
            .where(F.col("word").isNotNull())
            .groupBy("word")
            .count()
        )
        if min_count > 1:
            counts = counts.where(F.col("count") >= min_count)
        ranked = counts.orderBy(F.desc("count"), F.asc("word"))
        rows = (ranked.limit(max_words) if max_words else ranked).collect()
        return Vocabulary(tuple(r.word for r in rows), tuple(r["count"] for r in rows))

    def to_sequences(
        self,
        vocabulary: Vocabulary,
        length: int,
        output_col: str = "indices",
        padding: str = "post",
        truncating: str = "post",
        keep_tokens: bool = False,
    ) -> DataFrame:
        """The DataFrame with ``output_col``: ``array<int>`` of exactly ``length`` word ids.

        ``truncating="post"`` keeps the first ``length`` tokens (``"pre"``: the last);
        ``padding="post"`` pads after them with 0 (``"pre"``: before). The tokens column is
        dropped unless ``keep_tokens``.
        """
        self._need_tokens("to_sequences")
        _check_modes(length, padding, truncating)
        if output_col in self._df.columns:
            raise ValueError(f"output column {output_col!r} is already in the DataFrame")
        drop = () if keep_tokens else (self.tokens_col,)
        fields = [f for f in self._df.schema.fields if f.name not in drop]
        schema = StructType([*fields, StructField(output_col, ArrayType(IntegerType()))])
        words, tokens_col = list(vocabulary.words), self.tokens_col

        def to_ids(batches):
            return _sequences_batches(
                batches, tokens_col, words, length, padding, truncating, output_col, drop
            )

        return self._df.mapInArrow(to_ids, schema)


__all__ = [
    "NORMALIZE_REMOVE",
    "OOV_ID",
    "PAD_ID",
    "TOKEN_PATTERN",
    "TextSet",
    "Vocabulary",
    "shape_sequence",
]
