"""sparkzoo.models.retrieval: the one set of distances and retrieval metrics of the tree."""

from __future__ import annotations

import numpy as np
import pytest

from sparkzoo.models.retrieval import (
    cosine_distance,
    hamming_distance,
    leave_one_out_map,
    map_at_k,
    mean_average_precision_at_k,
)


def test_distances_and_leave_one_out_map():
    rng = np.random.default_rng(0)
    bits = rng.integers(0, 2, (6, 32)).astype(np.uint8)
    packed = np.packbits(bits, axis=1)
    expected = (bits[:, None, :] != bits[None, :, :]).sum(axis=2)
    assert np.array_equal(hamming_distance(packed, packed=True), expected)
    assert np.array_equal(hamming_distance(bits), expected)
    cos = cosine_distance(np.array([[1.0, 0.0], [0.0, 2.0], [3.0, 0.0]]))
    assert np.allclose(cos, [[0, 1, 0], [1, 0, 1], [0, 1, 0]])
    distances = np.array([[0, 1, 2], [1, 0, 1], [2, 1, 0]])
    assert leave_one_out_map(distances, np.array([0, 0, 1])) == 1.0
    # query 0 ranks 2 (wrong) before 1 (right): AP 1/2; query 1 ties 0 and 2 -> 0 first: AP 1
    swapped = np.array([[0, 2, 1], [1, 0, 1], [1, 2, 0]])
    assert leave_one_out_map(swapped, np.array([0, 0, 1])) == pytest.approx(0.75)
    with pytest.raises(ValueError, match="do not match"):
        leave_one_out_map(distances, np.array([0, 1]))


def test_leave_one_out_skips_unlabelled_items_and_lonely_queries():
    distances = np.array([[0, 1, 2, 3], [1, 0, 1, 2], [2, 1, 0, 1], [3, 2, 1, 0]])
    # item 1 is unlabelled: never a query, never relevant; item 3 has no partner: left out
    # query 0 finds item 2 at rank 2 (AP 1/2), query 2 finds item 0 at rank 3 (AP 1/3)
    assert leave_one_out_map(distances, np.array([0, -1, 0, 1])) == pytest.approx(5 / 12)
    with pytest.raises(ValueError, match="no query has a relevant item"):
        leave_one_out_map(distances, np.array([0, 1, 2, 3]))


def test_map_at_k_from_distances_equals_the_code_version():
    rng = np.random.default_rng(1)
    q = rng.integers(0, 2, (7, 16)).astype(np.uint8)
    db = rng.integers(0, 2, (30, 16)).astype(np.uint8)
    yq, ydb = rng.integers(0, 3, 7), rng.integers(0, 3, 30)
    for k in (1, 5, None):
        expected = mean_average_precision_at_k(q, db, yq, ydb, k=k)
        assert map_at_k(hamming_distance(q, db), yq, ydb, k=k) == pytest.approx(expected)
    packed = mean_average_precision_at_k(
        np.packbits(q, 1), np.packbits(db, 1), yq, ydb, k=5, packed=True
    )
    assert packed == pytest.approx(mean_average_precision_at_k(q, db, yq, ydb, k=5))


def test_cosine_distance_of_different_lengths_is_refused():
    with pytest.raises(ValueError, match="different lengths"):
        cosine_distance([[1.0, 0.0]], [[1.0, 0.0, 0.0]])


def test_map_at_k_agrees_with_the_hamming_map_of_codes():
    rng = np.random.default_rng(0)
    q, db = rng.integers(0, 2, (20, 16)), rng.integers(0, 2, (60, 16))
    yq, ydb = rng.integers(0, 3, 20), rng.integers(0, 3, 60)
    for k in (5, 30, None):
        expected = mean_average_precision_at_k(q, db, yq, ydb, k=k)
        assert map_at_k(hamming_distance(q, db), yq, ydb, k=k) == pytest.approx(expected)
    # one query, ranks: item 0 (relevant), item 2 (relevant), item 1 -> AP = 1
    assert map_at_k(np.array([[0.0, 2.0, 1.0]]), [1], [1, 0, 1], k=3) == 1.0
    # relevant item ranked second only: AP = 1/2
    assert map_at_k(np.array([[0.0, 1.0]]), [1], [0, 1]) == 0.5
    with pytest.raises(ValueError, match="do not match"):
        map_at_k(np.zeros((2, 3)), [1], [1, 0, 1])
    with pytest.raises(ValueError, match="k must be"):
        map_at_k(np.zeros((1, 3)), [1], [1, 0, 1], k=0)


def test_cosine_distance():
    d = cosine_distance([[1.0, 0.0]], [[2.0, 0.0], [0.0, 3.0], [-1.0, 0.0], [0.0, 0.0]])
    np.testing.assert_allclose(d, [[0.0, 1.0, 2.0, 1.0]], atol=1e-12)
    with pytest.raises(ValueError, match="different lengths"):
        cosine_distance([[1.0, 0.0]], [[1.0, 0.0, 0.0]])
