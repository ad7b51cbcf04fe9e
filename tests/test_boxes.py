"""The detectors' box toolkit: IoU, encode/decode, NMS and VOC mAP@0.5 against known values."""

from __future__ import annotations

import numpy as np
import pytest

from sparkzoo.models.detection import boxes as bx
from sparkzoo.models.detection.boxes import Detections


def test_iou_known_values():
    a = [[0.0, 0.0, 1.0, 1.0], [0.0, 0.0, 0.5, 0.5]]
    b = [[0.0, 0.0, 0.5, 1.0], [2.0, 2.0, 3.0, 3.0], [0.0, 0.25, 0.5, 0.75], [0.0, 0.0, 1.0, 1.0]]
    expected = [[0.5, 0.0, 0.25, 1.0], [0.5, 0.0, 1 / 3, 0.25]]
    np.testing.assert_allclose(bx.iou(a, b), expected, atol=1e-6)
    assert bx.iou(a, np.zeros((0, 4))).shape == (2, 0)


def test_iou_of_degenerate_boxes_is_zero_not_nan():
    result = bx.iou([[0.5, 0.5, 0.5, 0.5]], [[0.5, 0.5, 0.5, 0.5]])
    assert result.tolist() == [[0.0]]


def _random_boxes(rng: np.random.Generator, n: int) -> np.ndarray:
    ys, xs = np.sort(rng.random((n, 2)), axis=1), np.sort(rng.random((n, 2)), axis=1)
    return np.column_stack([ys[:, 0], xs[:, 0], ys[:, 1], xs[:, 1]]).astype("float32")


def test_iou_tensorflow_matches_numpy():
    rng = np.random.default_rng(0)
    a, b = (_random_boxes(rng, n) for n in (5, 7))
    got = np.asarray(bx.iou_tf(a[:, None, :].astype("float32"), b[None, :, :].astype("float32")))
    np.testing.assert_allclose(got, bx.iou(a, b), atol=1e-6)


def test_boxes_of_the_wrong_shape_are_named():
    with pytest.raises(ValueError, match=r"first boxes must have shape \(N, 4\).*got \(3,\)"):
        bx.iou([0.1, 0.2, 0.3], [[0, 0, 1, 1]])


def test_encode_decode_round_trip_and_zero_offsets_on_the_anchor():
    rng = np.random.default_rng(1)
    centres = np.column_stack([rng.random((50, 2)), rng.uniform(0.05, 0.9, (50, 2))])
    gt = bx.to_corners(centres)
    anchors = bx.to_corners(np.column_stack([rng.random((50, 2)), rng.uniform(0.1, 0.5, (50, 2))]))
    offsets = bx.encode(gt, anchors)
    np.testing.assert_allclose(bx.decode(offsets, anchors), gt, atol=1e-5)
    np.testing.assert_allclose(bx.encode(anchors, anchors), 0.0, atol=1e-6)
    # A box twice the anchor's height, shifted by half its height: (0.5/0.1, 0, log 2/0.2, 0).
    anchor = np.array([[0.4, 0.4, 0.6, 0.6]])
    box = np.array([[0.4, 0.4, 0.8, 0.6]])
    np.testing.assert_allclose(
        bx.encode(box, anchor), [[5.0, 0.0, np.log(2) / 0.2, 0.0]], atol=1e-5
    )


def test_encode_needs_one_anchor_per_box():
    with pytest.raises(ValueError, match="one anchor per box"):
        bx.encode(np.tile([0.0, 0.0, 1.0, 1.0], (2, 1)), np.tile([0.0, 0.0, 1.0, 1.0], (3, 1)))


def test_nms_removes_overlaps_and_keeps_the_best():
    boxes = np.array(
        [
            [0.10, 0.10, 0.50, 0.50],  # 0: overlaps 1 strongly
            [0.12, 0.12, 0.52, 0.52],  # 1: best of the pair
            [0.60, 0.60, 0.90, 0.90],  # 2: alone
            [0.11, 0.30, 0.51, 0.70],  # 3: overlaps 1 by IoU ~0.35
        ]
    )
    scores = np.array([0.8, 0.9, 0.3, 0.7])
    assert bx.nms(boxes, scores, iou_threshold=0.5).tolist() == [1, 3, 2]
    assert bx.nms(boxes, scores, iou_threshold=0.3).tolist() == [1, 2]
    assert bx.nms(boxes, scores, iou_threshold=0.5, max_out=2).tolist() == [1, 3]
    assert bx.nms(np.zeros((0, 4)), np.zeros(0)).tolist() == []


def test_batched_nms_suppresses_within_a_class_only():
    boxes = np.array([[0.1, 0.1, 0.5, 0.5], [0.12, 0.12, 0.52, 0.52], [0.1, 0.1, 0.5, 0.5]])
    scores = np.array([0.8, 0.9, 0.6])
    classes = np.array([0, 0, 1])
    assert bx.batched_nms(boxes, scores, classes, 0.5).tolist() == [1, 2]


def test_voc_ap_all_points_interpolation_by_hand():
    # Ranked: TP, FP, TP over 2 ground truths -> recall .5 .5 1, precision 1 .5 .667.
    assert bx.voc_ap([0.5, 0.5, 1.0], [1.0, 0.5, 2 / 3]) == pytest.approx(0.5 + 0.5 * 2 / 3)
    # Precision is interpolated from the right: a later, higher precision lifts earlier steps.
    assert bx.voc_ap([0.25, 0.25, 0.5], [1.0, 0.5, 2 / 3]) == pytest.approx(0.25 + 0.25 * 2 / 3)


GT = [
    {"boxes": [[0.1, 0.1, 0.4, 0.4], [0.5, 0.5, 0.9, 0.9]], "class_ids": [0, 1]},
    {"boxes": [[0.2, 0.2, 0.6, 0.6]], "class_ids": [0]},
]


def test_perfect_detections_give_map_one():
    dets = [Detections(g["boxes"], [0.9] * len(g["boxes"]), g["class_ids"]) for g in GT]
    assert bx.mean_average_precision(dets, GT) == pytest.approx(1.0)
    assert bx.average_precisions(dets, GT, num_classes=3) == pytest.approx(
        {0: 1.0, 1: 1.0, 2: float("nan")}, nan_ok=True
    )


def test_map_hand_computed_with_a_duplicate_and_a_miss():
    dets = [
        # class 0: a hit (0.9), a duplicate of it (0.8, a false positive), class 1: missed.
        Detections([[0.1, 0.1, 0.4, 0.4], [0.11, 0.1, 0.4, 0.4]], [0.9, 0.8], [0, 0]),
        # class 0: the second image's object, found with a lower score (0.7).
        (np.array([[0.2, 0.2, 0.6, 0.6]]), np.array([0.7]), np.array([0])),
    ]
    aps = bx.average_precisions(dets, GT)
    assert aps[0] == pytest.approx(0.5 + 0.5 * 2 / 3)  # TP FP TP over 2 ground truths
    assert aps[1] == 0.0  # ground truth, no detection
    assert bx.mean_average_precision(dets, GT) == pytest.approx((0.5 + 0.5 * 2 / 3) / 2)


def test_a_class_without_ground_truth_is_left_out_of_the_mean():
    dets = [
        Detections(
            [[0.1, 0.1, 0.4, 0.4], [0.5, 0.5, 0.9, 0.9], [0.0, 0.0, 0.1, 0.1]],
            [0.9, 0.9, 0.95],
            [0, 1, 5],
        ),
        Detections([[0.2, 0.2, 0.6, 0.6]], [0.9], [0]),
    ]
    aps = bx.average_precisions(dets, GT)
    assert np.isnan(aps[5])  # only false detections: no AP
    assert bx.mean_average_precision(dets, GT) == pytest.approx(1.0)


def test_a_box_below_the_iou_threshold_is_a_false_positive():
    gt = [{"boxes": [[0.0, 0.0, 0.5, 0.5]], "class_ids": [0]}]
    half = [Detections([[0.0, 0.0, 0.5, 0.25]], [0.9], [0])]  # IoU 0.5 exactly
    assert bx.mean_average_precision(half, gt, iou_threshold=0.5) == pytest.approx(1.0)
    assert bx.mean_average_precision(half, gt, iou_threshold=0.6) == 0.0


def test_map_inputs_are_checked():
    with pytest.raises(ValueError, match="one entry per image"):
        bx.mean_average_precision([Detections.empty()], GT)
    with pytest.raises(ValueError, match=r"ground_truths\[0\] has no \['class_ids'\]"):
        bx.mean_average_precision([Detections.empty()], [{"boxes": [[0, 0, 1, 1]]}])
    with pytest.raises(ValueError, match="hold no boxes"):
        bx.mean_average_precision([Detections.empty()], [{"boxes": [], "class_ids": []}])


def test_detections_check_their_lengths_and_convert_to_pixels():
    with pytest.raises(ValueError, match="boxes 2, scores 1, class_ids 2"):
        Detections(np.zeros((2, 4)), [0.5], [0, 1])
    det = Detections([[0.1, 0.2, 0.5, 1.0]], [0.5], [3])
    assert det.to_pixels(100, 200).tolist() == [[10, 40, 50, 200]]
    assert det.to_dict()["class_ids"] == [3] and len(det) == 1


def test_ground_truth_checks_name_the_image_and_the_problem():
    with pytest.raises(ValueError, match=r"image 1: boxes must be normalised.*\[0, 40\]"):
        bx.check_ground_truth([[[0, 0, 0.5, 0.5]], [[0, 0, 40, 40]]], [[0], [0]], 3)
    with pytest.raises(ValueError, match=r"image 0: class ids must be integers in \[0, 3\)"):
        bx.check_ground_truth([[[0, 0, 0.5, 0.5]]], [[3]], 3)
    with pytest.raises(ValueError, match="image 0: boxes need y2 > y1"):
        bx.check_ground_truth([[[0.5, 0, 0.2, 0.5]]], [[0]], 3)
    with pytest.raises(ValueError, match="image 0: 1 boxes but 2 class ids"):
        bx.check_ground_truth([[[0, 0, 0.5, 0.5]]], [[0, 1]], 3)
