"""Retrieval by distance, and how good it is: numpy only, one implementation for the whole
tree (DeepBit and its recipe, the object-detection and image-similarity apps, the benchmarks).

Distances:

- :func:`hamming_distance`: between binary codes, as 0/1 bits ``(n, bits)`` or as
  ``np.packbits`` bytes (``packed=True``);
- :func:`cosine_distance`: ``1 - cos`` between float vectors.

Quality, relevance = same label:

- :func:`map_at_k`: queries against a database, from a ``(queries, database)`` distance matrix
  (the mAP@k of the hashing literature: DeepBit, HashNet);
- :func:`mean_average_precision_at_k`: the same, from the codes (in bounded memory);
- :func:`leave_one_out_map`: every item queries all the others.

Example::

    from sparkzoo.models.retrieval import hamming_distance, map_at_k

    d = hamming_distance(query_codes, db_codes, packed=True)
    map_at_k(d, query_labels, db_labels, k=100)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

_QUERY_CHUNK = 512  # queries ranked at once: bounded memory for large query sets


def _as_bits(codes: Any, packed: bool, what: str, nbits: int | None = None) -> np.ndarray:
    codes = np.asarray(codes)
    if codes.ndim == 1:
        codes = codes[None, :]
    if codes.ndim != 2:
        raise ValueError(f"{what} must be (n, bits) codes, got shape {codes.shape}")
    if packed:
        codes = np.unpackbits(codes.astype(np.uint8), axis=1).astype(np.int32)
        return codes[:, :nbits] if nbits else codes
    if codes.size and not np.isin(codes, (0, 1)).all():
        raise ValueError(
            f"{what} must hold 0/1 bits (pass packed=True for np.packbits bytes), "
            f"found values {np.unique(codes)[:5]}"
        )
    return codes.astype(np.int32)


def hamming_distance(a: Any, b: Any = None, packed: bool = False) -> np.ndarray:
    """Hamming distances between every code of ``a`` and every code of ``b`` (default: ``a``
    itself), ``(n, m)`` int.

    Codes are 0/1 bits ``(n, bits)``, or bytes from ``np.packbits`` with ``packed=True``; a
    single code may be 1-D.

    Example::

        hamming_distance([[0, 1, 1]], [[0, 1, 1], [1, 0, 1]])     # [[0, 2]]
    """
    a_bits = _as_bits(a, packed, "a")
    b_bits = a_bits if b is None else _as_bits(b, packed, "b")
    if a_bits.shape[1] != b_bits.shape[1]:
        raise ValueError(
            f"codes of different lengths: {a_bits.shape[1]} and {b_bits.shape[1]} bits"
        )
    # Mismatches = ones of a against zeros of b, plus zeros of a against ones of b.
    return a_bits @ (1 - b_bits).T + (1 - a_bits) @ b_bits.T


def cosine_distance(a: Any, b: Any = None) -> np.ndarray:
    """``1 - cos`` between every row of ``a`` and every row of ``b`` (default: ``a`` itself),
    ``(n, m)``; a zero vector is at distance 1 from everything.

    Example::

        cosine_distance([[1, 0]], [[1, 0], [0, 1]])      # [[0., 1.]]
    """
    an = _unit_rows(a)
    bn = an if b is None else _unit_rows(b)
    if an.shape[1] != bn.shape[1]:
        raise ValueError(f"vectors of different lengths: {an.shape[1]} and {bn.shape[1]}")
    return 1.0 - an @ bn.T


def _unit_rows(values: Any) -> np.ndarray:
    rows = np.atleast_2d(np.asarray(values, np.float64))
    return rows / np.maximum(np.linalg.norm(rows, axis=1, keepdims=True), 1e-12)


def _precision_sums(
    distances: np.ndarray, query_labels: np.ndarray, db_labels: np.ndarray, k: int
) -> np.ndarray:
    """Average precision at k of each query (row of ``distances``): ties in database order."""
    order = np.argsort(distances, axis=1, kind="stable")[:, :k]
    relevant = db_labels[order] == query_labels[:, None]
    hits = np.cumsum(relevant, axis=1)
    found = relevant.sum(axis=1)
    precision_sum = (hits / np.arange(1, k + 1) * relevant).sum(axis=1)
    return np.where(found > 0, precision_sum / np.maximum(found, 1), 0.0)


def _cutoff(k: int | None, database: int) -> int:
    k = database if k is None else int(k)
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    return min(k, database)


def map_at_k(
    distances: np.ndarray,
    query_labels: Sequence | np.ndarray,
    db_labels: Sequence | np.ndarray,
    k: int | None = None,
) -> float:
    """Retrieval mAP@k from a ``(queries, database)`` distance matrix: the database ranked by
    distance for each query (ties in database order); the precision at each relevant rank
    among the first ``k``, averaged over the relevant items retrieved there (0 when none is),
    then over the queries. Relevance = same label. ``k=None``: the whole database.

    Example::

        map_at_k(np.array([[0.0, 2.0, 1.0]]), [1], [1, 0, 1], k=3)      # 1.0
    """
    distances = np.atleast_2d(np.asarray(distances, np.float64))
    query_labels, db_labels = np.asarray(query_labels), np.asarray(db_labels)
    if distances.shape != (len(query_labels), len(db_labels)):
        raise ValueError(
            f"distances {distances.shape} do not match {len(query_labels)} query and "
            f"{len(db_labels)} database labels"
        )
    if distances.size == 0:
        raise ValueError("map_at_k needs at least one query and one database item")
    k = _cutoff(k, len(db_labels))
    return float(_precision_sums(distances, query_labels, db_labels, k).mean())


def mean_average_precision_at_k(
    query_codes: Any,
    db_codes: Any,
    query_labels: Sequence | np.ndarray,
    db_labels: Sequence | np.ndarray,
    k: int | None = None,
    packed: bool = False,
) -> float:
    """:func:`map_at_k` by Hamming distance between binary codes (0/1 bits, or ``np.packbits``
    bytes with ``packed=True``), ranked 512 queries at a time.

    Example::

        mean_average_precision_at_k([[0, 0]], [[0, 0], [1, 1], [0, 1]], [1], [1, 0, 1], k=3)
        # ranks: d=0 (relevant), d=1 (relevant), d=2 -> AP = (1/1 + 2/2) / 2 = 1.0
    """
    queries = _as_bits(query_codes, packed, "query_codes")
    database = _as_bits(db_codes, packed, "db_codes")
    query_labels, db_labels = np.asarray(query_labels), np.asarray(db_labels)
    if len(query_labels) != len(queries) or len(db_labels) != len(database):
        raise ValueError(
            f"{len(queries)} query codes with {len(query_labels)} labels, "
            f"{len(database)} database codes with {len(db_labels)} labels"
        )
    if len(queries) == 0 or len(database) == 0:
        raise ValueError("mean_average_precision_at_k needs at least one query and one item")
    k = _cutoff(k, len(database))
    total = 0.0
    for start in range(0, len(queries), _QUERY_CHUNK):
        part = slice(start, start + _QUERY_CHUNK)
        distances = hamming_distance(queries[part], database)
        total += _precision_sums(distances, query_labels[part], db_labels, k).sum()
    return float(total / len(queries))


def leave_one_out_map(distances: np.ndarray, labels: Sequence | np.ndarray) -> float:
    """Leave-one-out retrieval mAP: each item queries all the others, ranked by ``distances``
    ``(n, n)`` (ties in index order); relevant = same label. Items labelled -1 are neither
    queries nor relevant; queries with no relevant item are left out.

    Example::

        leave_one_out_map(np.array([[0, 1, 2], [1, 0, 1], [2, 1, 0]]), [0, 0, 1])  # 1.0
    """
    labels = np.asarray(labels)
    distances = np.asarray(distances, np.float64).copy()
    if distances.shape != (len(labels), len(labels)):
        raise ValueError(f"distances {distances.shape} do not match {len(labels)} labels")
    np.fill_diagonal(distances, np.inf)  # self ranks last, then is cut off
    queries = np.flatnonzero(labels >= 0)
    others = np.where(labels >= 0, labels, -2)  # unlabelled items are never relevant
    if len(queries):
        order = np.argsort(distances[queries], axis=1, kind="stable")[:, :-1]
        relevant = others[order] == labels[queries][:, None]
        has = relevant.any(axis=1)
        hits = np.cumsum(relevant, axis=1)
        precision = hits / np.arange(1, order.shape[1] + 1) * relevant
        scores = precision.sum(axis=1)[has] / relevant.sum(axis=1)[has]
    else:
        scores = np.zeros(0)
    if not len(scores):
        raise ValueError("leave_one_out_map: no query has a relevant item")
    return float(scores.mean())


__all__ = [
    "cosine_distance",
    "hamming_distance",
    "leave_one_out_map",
    "map_at_k",
    "mean_average_precision_at_k",
]
