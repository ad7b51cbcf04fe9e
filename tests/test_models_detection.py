"""Detectors: anchors, SSD and YOLO targets/losses/decoding, the Detector interface, face detectors."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import tensorflow as tf
from skimage.data import astronaut

from sparkzoo import models
from sparkzoo.models.detection import anchors, ssd, yolo
from sparkzoo.models.detection import boxes as bx
from sparkzoo.models.detection.detector import (
    Detector,
    HaarCascadeDetector,
    MTCNNDetector,
    load_detector,
)
from sparkzoo.models.detection.draw import draw_detections, write_png
from sparkzoo.models.detection.squares import square_scenes

# The astronaut's face in skimage.data.astronaut() (512 x 512), set by hand: rows 60-175,
# columns 175-270.
FACE = np.array([[60 / 512, 175 / 512, 175 / 512, 270 / 512]], dtype="float32")


# ---- anchors -----------------------------------------------------------------------------


def test_ssd_anchors_count_order_and_sizes():
    priors = anchors.ssd_anchors([(2, 2), (1, 1)], scales=[0.2, 0.6], aspect_ratios=(1.0, 2.0))
    assert priors.shape == ((4 + 1) * 3, 4)
    centres = bx.to_centres(priors)
    # First map, first cell (centre 0.25, 0.25): ratio 1, ratio 2 (w = 2h), extra square.
    np.testing.assert_allclose(centres[0], [0.25, 0.25, 0.2, 0.2], atol=1e-6)
    np.testing.assert_allclose(centres[1], [0.25, 0.25, 0.2 / 2**0.5, 0.2 * 2**0.5], atol=1e-6)
    np.testing.assert_allclose(centres[2, 2:], [(0.2 * 0.6) ** 0.5] * 2, atol=1e-6)
    np.testing.assert_allclose(centres[3, :2], [0.25, 0.75], atol=1e-6)  # next cell: right
    np.testing.assert_allclose(centres[12], [0.5, 0.5, 0.6, 0.6], atol=1e-6)  # second map


def test_feature_shapes_and_bad_strides():
    assert anchors.feature_shapes((100, 64, 3), (8, 16)) == [(13, 8), (7, 4)]
    with pytest.raises(ValueError, match="powers of two, got 12"):
        anchors.feature_shapes((64, 64), (8, 12))


def test_kmeans_anchors_find_the_box_shapes():
    rng = np.random.default_rng(0)
    sizes = np.concatenate(
        [rng.normal([0.1, 0.05], 0.003, (40, 2)), rng.normal([0.4, 0.4], 0.01, (40, 2))]
    )
    found = anchors.kmeans_anchors(
        bx.to_corners(np.column_stack([np.full((80, 2), 0.5), sizes])), 2
    )
    np.testing.assert_allclose(found, [(0.1, 0.05), (0.4, 0.4)], atol=0.01)


# ---- SSD ---------------------------------------------------------------------------------


def test_ssd_target_puts_a_box_on_its_anchor_and_decodes_back():
    config = ssd.config_with_defaults(ssd.TINY)
    priors = ssd.anchors_for(config)
    k = 5  # an anchor of the stride-8 map
    far = np.array([[0.7, 0.7, 0.95, 0.95]], "float32")
    target = ssd.encode_targets([np.vstack([priors[k : k + 1], far])], [[1, 0]], config)[0]
    assert target.shape == (len(priors), 4 + 2 + 1)
    np.testing.assert_allclose(target[k, :4], 0.0, atol=1e-6)
    assert target[k, 4:].tolist() == [0.0, 0.0, 1.0]  # class 1 -> index 1 + 1
    positives = np.flatnonzero(target[:, 4] == 0)
    assert k in positives and len(positives) >= 2
    # Every positive decodes to its ground truth.
    decoded = bx.decode(target[positives, :4], priors[positives])
    best = bx.iou(decoded, np.vstack([priors[k : k + 1], far])).max(axis=1)
    np.testing.assert_allclose(best, 1.0, atol=1e-5)
    # No anchor overlaps a tiny box by 0.5, yet its best anchor is matched.
    tiny = np.array([[0.5, 0.5, 0.52, 0.52]], "float32")
    assert (ssd.encode_targets([tiny], [[0]], config)[0][:, 4] == 0).sum() == 1


def _ssd_perfect_outputs(target: np.ndarray) -> np.ndarray:
    out = target.copy()
    out[..., 4:] = target[..., 4:] * 20.0  # one-hot -> confident logits
    return out


def test_ssd_decode_of_encoded_ground_truth_recovers_it():
    config = ssd.config_with_defaults(ssd.TINY)
    _, boxes, classes = square_scenes(3, config["input_shape"], 2, np.random.default_rng(3))
    targets = ssd.encode_targets(boxes, classes, config)
    found = ssd.decode_predictions(_ssd_perfect_outputs(targets), config, labels=["red", "green"])
    for det, b, c in zip(found, boxes, classes, strict=True):
        assert len(det) == 1
        assert bx.iou(det.boxes, b)[0, 0] > 0.999 and det.class_ids.tolist() == c.tolist()
        assert det.labels == [["red", "green"][c[0]]]


def test_ssd_loss_mines_three_hard_negatives_per_positive():
    loss = ssd.SSDLoss(num_classes=1)
    y_true = np.zeros((1, 10, 6), "float32")
    y_true[0, :, 4] = 1.0  # background everywhere ...
    y_true[0, 0, 4:] = [0.0, 1.0]  # ... except anchor 0, class 0
    y_true[0, 0, :4] = [1.0, 0.0, 0.0, 0.0]
    y_pred = np.zeros((1, 10, 6), "float32")
    y_pred[0, 0, :4] = [0.5, 0.0, 0.0, 0.0]  # smooth L1 of 0.5 = 0.125
    y_pred[0, 1:, 5] = -10.0  # easy negatives
    y_pred[0, 1:6, 5] = [1.0, 2.0, 3.0, 4.0, 5.0]
    hardest = sum(np.log1p(np.exp(z)) for z in (3.0, 4.0, 5.0))
    expected = np.log(2.0) + hardest + 0.125
    assert float(loss(y_true, y_pred)) == pytest.approx(expected, rel=1e-5)
    # An image without objects still learns from 3 negatives (normalised by 1).
    empty = np.zeros_like(y_true)
    empty[..., 4] = 1.0
    assert float(loss(empty, y_pred)) == pytest.approx(hardest, rel=1e-4)


def test_ssd_checks_its_settings_and_outputs():
    with pytest.raises(ValueError, match=r"unknown ssd_lite settings \['anchor_sizes'\]"):
        ssd.encode_targets([], [], {"anchor_sizes": 3})
    with pytest.raises(ValueError, match=r"shape \(batch, 80, 7\), got \(1, 80, 8\)"):
        ssd.decode_predictions(np.zeros((1, 80, 8)), ssd.TINY)
    with pytest.raises(ValueError, match="feature_strides must increase"):
        ssd.ssd_lite(feature_strides=(16, 8))


# ---- YOLO --------------------------------------------------------------------------------


def test_yolo_target_goes_to_the_best_anchor_in_the_centre_cell():
    config = yolo.config_with_defaults(yolo.TINY)  # 32 px: grids 4x4 (stride 8), 2x2 (16)
    big = [0.1, 0.4, 0.5, 0.8]  # centre (0.3, 0.6), size 0.4 x 0.4: coarse anchor 1
    small = [0.755, 0.055, 0.845, 0.145]  # centre (0.8, 0.1), 0.09 x 0.09: fine anchor 0
    target = yolo.encode_targets(
        [[big, small]], [[1, 0]], config, extra_anchor_threshold=None, neighbour_cells=False
    )[0]
    assert target.shape == (4 * 4 * 3 + 2 * 2 * 3, 7)
    big_row = 48 + (0 * 2 + 1) * 3 + 1  # after the fine scale; cell (0, 1); anchor 1
    small_row = (3 * 4 + 0) * 3 + 0  # fine scale; cell (3, 0); anchor 0
    assert np.flatnonzero(target[:, 4]).tolist() == [small_row, big_row]
    np.testing.assert_allclose(target[big_row], [0.6, 0.2, 0.0, 0.0, 1.0, 0.0, 1.0], atol=1e-5)
    np.testing.assert_allclose(target[small_row], [0.2, 0.4, 0.0, 0.0, 1.0, 1.0, 0.0], atol=1e-4)
    decoded, classes = yolo.decode_targets(target, config)
    np.testing.assert_allclose(decoded, [small, big], atol=1e-5)
    assert classes.tolist() == [0, 1]

    # By default more rows learn each object. YOLOv4's extra anchors: the coarse anchors
    # (0.32, 0.26) and (0.6, 0.5) fit the big box with shape IoU 0.52 and 0.53 > 0.5.
    # YOLOv5's neighbour cells: the big centre lies low in its row (0.6) and left in its
    # column (0.2), so cells (1, 1) and (0, 0) join; the small one's left neighbour is
    # outside the grid, its upper one (2, 0) joins.
    full = yolo.encode_targets([[big, small]], [[1, 0]], config)[0]
    coarse = [48 + (r * 2 + c) * 3 + a for r, c in ((0, 0), (0, 1), (1, 1)) for a in range(3)]
    assert np.flatnonzero(full[:, 4]).tolist() == [(2 * 4 + 0) * 3, small_row, *coarse]
    np.testing.assert_allclose(full[48 + (1 * 2 + 1) * 3 + 1, :2], [-0.4, 0.2], atol=1e-5)
    np.testing.assert_allclose(full[48 + 1, :2], [0.6, 1.2], atol=1e-5)
    decoded, classes = yolo.decode_targets(full, config)
    np.testing.assert_allclose(decoded, [small] * 2 + [big] * 9, atol=1e-5)
    assert classes.tolist() == [0] * 2 + [1] * 9


def _yolo_perfect_outputs(target: np.ndarray) -> np.ndarray:
    out = target.copy()
    stretched = np.clip((target[..., :2] + 0.5) / 2, 1e-4, 1 - 1e-4)
    out[..., :2] = np.log(stretched / (1 - stretched))  # offset = 2 sigmoid(t) - 0.5
    out[..., 4] = np.where(target[..., 4] > 0, 12.0, -12.0)
    out[..., 5:] = target[..., 5:] * 20.0
    return out


def test_yolo_decode_of_encoded_ground_truth_recovers_it():
    config = yolo.config_with_defaults(yolo.TINY)
    _, boxes, classes = square_scenes(3, config["input_shape"], 2, np.random.default_rng(4))
    targets = yolo.encode_targets(boxes, classes, config)
    for det, b, c in zip(
        yolo.decode_predictions(_yolo_perfect_outputs(targets), config), boxes, classes, strict=True
    ):
        assert len(det) == 1 and det.class_ids.tolist() == c.tolist()
        assert bx.iou(det.boxes, b)[0, 0] > 0.99


def test_yolo_loss_ignores_negatives_that_already_cover_an_object():
    config = yolo.config_with_defaults(yolo.TINY)
    box = [0.1, 0.4, 0.5, 0.8]
    target = yolo.encode_targets(
        [[box]], [[1]], config, extra_anchor_threshold=None, neighbour_cells=False
    )
    pred = _yolo_perfect_outputs(target)
    positive = int(np.flatnonzero(target[0, :, 4])[0])
    other = positive - 1  # another anchor of the same cell
    pred[0, other, :4] = pred[0, positive, :4]
    pred[0, other, 2:4] += np.log([0.4 / 0.32, 0.4 / 0.26])  # same box from its own anchor
    pred[0, other, 4] = 0.0  # unsure: BCE ln 2 if counted as a negative
    counted = yolo.yolo_loss(config, ignore_threshold=1.01)(target, pred)
    ignored = yolo.yolo_loss(config, ignore_threshold=0.5)(target, pred)
    assert float(counted) - float(ignored) == pytest.approx(np.log(2.0), abs=1e-3)
    assert float(ignored) < 0.01  # everything else is right


def test_yolo_checks_its_anchors():
    with pytest.raises(ValueError, match=r"one list of \(height, width\) pairs per feature stride"):
        yolo.yolo(**{**yolo.TINY, "anchors": [[(0.1, 0.1)]]})
    with pytest.raises(ValueError, match="no default anchors for 4 scales"):
        yolo.yolo(**{**yolo.TINY, "feature_strides": (4, 8, 16, 32)})


# ---- training from scratch -----------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize(("family", "module"), [("ssd_lite", ssd), ("yolo", yolo)])
def test_a_tiny_detector_overfits_four_squares(family, module):
    tf.keras.utils.set_random_seed(1)
    config = {
        "input_shape": (32, 32, 3),
        "num_classes": 2,
        "width": 0.5,
        "feature_strides": (8, 16),
    }
    images, boxes, classes = square_scenes(
        4, config["input_shape"], 2, np.random.default_rng(7), size_range=(0.3, 0.5)
    )
    model = models.get(family, **config)
    steps = 60  # one step per epoch; the learning rate decays so batch-norm statistics settle
    schedule = tf.keras.optimizers.schedules.CosineDecay(0.005, steps)
    model.compile(tf.keras.optimizers.Adam(schedule), loss=models.family(family).loss_for(config))
    y = module.encode_targets(boxes, classes, config)
    history = model.fit(images, y, batch_size=4, epochs=steps, verbose=0).history["loss"]
    assert history[-1] < history[0] / 10, history

    detector = Detector.from_model(model, family, config, score_threshold=0.3)
    for det, b, c in zip(detector.detect(images), boxes, classes, strict=True):
        assert len(det) >= 1 and det.class_ids[0] == c[0]
        assert bx.iou(det.boxes[:1], b)[0, 0] > 0.5
    # The same scene at another size and aspect: the same normalised box comes back.
    import cv2

    big = cv2.resize((images[0] * 255).astype("uint8"), (64, 96), interpolation=cv2.INTER_NEAREST)
    det = detector.detect(big)[0]
    assert bx.iou(det.boxes[:1], boxes[0])[0, 0] > 0.5


# ---- the Detector interface ----------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_ssd_detector():
    tf.keras.utils.set_random_seed(0)
    model = models.get("ssd_lite", **ssd.TINY)
    return Detector.from_model(model, "ssd_lite", ssd.TINY, score_threshold=0.0, max_detections=5)


def test_detector_takes_images_of_any_size_and_kind(tiny_ssd_detector):
    rng = np.random.default_rng(0)
    images = [
        rng.integers(0, 256, (50, 70, 3), dtype="uint8"),
        rng.integers(0, 256, (40, 30), dtype="uint8"),  # grey
        rng.random((33, 33, 4)).astype("float32"),  # RGBA float in [0, 1]
        rng.integers(0, 256, (200, 20, 1), dtype="uint8"),
    ]
    found = tiny_ssd_detector.detect(images)
    assert len(found) == 4
    for det in found:
        assert det.boxes.dtype == np.float32 and det.boxes.shape == (5, 4)
        assert det.scores.shape == (5,) and det.class_ids.dtype == np.int32
        assert det.boxes.min() >= 0.0 and det.boxes.max() <= 1.0
        assert np.all(np.diff(det.scores) <= 0)  # best first
        assert set(det.class_ids.tolist()) <= {0, 1}
    assert len(tiny_ssd_detector.detect(images[0])) == 1  # one image -> a list of one
    assert len(tiny_ssd_detector.detect(np.zeros((3, 16, 16, 3), "uint8"))) == 3


def test_detector_rejects_bad_images_and_configs(tiny_ssd_detector):
    with pytest.raises(ValueError, match=r"float images must be in \[0, 1\]"):
        tiny_ssd_detector.detect(np.full((10, 10, 3), 200.0))
    with pytest.raises(ValueError, match=r"image 0 must be .* got \(10, 10, 2\)"):
        tiny_ssd_detector.detect([np.zeros((10, 10, 2), "uint8")])
    with pytest.raises(ValueError, match="knows families"):
        Detector.from_model(tiny_ssd_detector.model, "rcnn")
    with pytest.raises(ValueError, match=r"config num_classes=3 does not match the model's 2"):
        Detector.from_model(tiny_ssd_detector.model, "ssd_lite", {**ssd.TINY, "num_classes": 3})
    with pytest.raises(ValueError, match=r"shape \(batch, 320, 7\), got \(1, 80, 7\)"):
        Detector.from_model(tiny_ssd_detector.model, "ssd_lite", {"feature_strides": (4, 8)})


def test_yolo_detector_from_a_model():
    model = models.get("yolo", **yolo.TINY)
    detector = Detector.from_model(
        model, "yolo", yolo.TINY, score_threshold=0.0, labels=["a", "b"], max_detections=3
    )
    det = detector.detect(np.zeros((64, 48, 3), "uint8"))[0]
    assert det.boxes.shape == (3, 4) and set(det.labels) <= {"a", "b"}


def test_haar_face_finds_the_astronaut():
    detector = models.get("haar.face")
    assert isinstance(detector, HaarCascadeDetector)
    image = astronaut()
    det = detector.detect(image)[0]
    assert len(det) == 1 and det.labels == ["face"] and det.scores[0] > 0
    assert bx.iou(det.boxes, FACE)[0, 0] > 0.5
    # A half-size, float copy gives the same normalised box; the detector pickles (Spark).
    half = image[::2, ::2].astype("float32") / 255
    again = pickle.loads(pickle.dumps(detector)).detect(half)[0]
    assert len(again) == 1 and bx.iou(again.boxes, FACE)[0, 0] > 0.5


def test_haar_finds_nothing_in_a_blank_image():
    assert (
        len(load_detector("haar.face", min_neighbors=3).detect(np.zeros((80, 80), "uint8"))[0]) == 0
    )


@pytest.mark.slow
def test_mtcnn_face_finds_the_astronaut_with_landmarks():
    detector = models.get("mtcnn.face")
    assert isinstance(detector, MTCNNDetector)
    det = detector.detect(astronaut())[0]
    assert len(det) == 1 and det.scores[0] > 0.99
    assert bx.iou(det.boxes, FACE)[0, 0] > 0.5
    y1, x1, y2, x2 = det.boxes[0]
    points = det.keypoints[0]
    assert points.shape == (5, 2)
    assert np.all(
        (points[:, 0] > y1) & (points[:, 0] < y2) & (points[:, 1] > x1) & (points[:, 1] < x2)
    )
    left_eye, right_eye = points[0], points[1]
    assert left_eye[1] < right_eye[1]  # image left to right


def test_packaged_detectors_have_cards():
    assert {"haar.face", "mtcnn.face"} <= set(models.list("*.face", pretrained=True))
    haar, mtcnn = models.card("haar.face"), models.card("mtcnn.face")
    assert (haar.family, haar.task, haar.kind) == ("haar", "face-detection", "packaged")
    assert mtcnn.family == "mtcnn" and "MIT" in mtcnn.data["licence"]
    assert "Intel" in haar.data["licence"] and "level weight" in haar.notes
    with pytest.raises(ValueError, match="family without weights"):
        load_detector("ssd_lite")


def test_draw_detections_and_write_png(tmp_path):
    import cv2

    image = np.full((60, 80, 3), 255, "uint8")
    det = bx.Detections([[0.25, 0.25, 0.75, 0.75]], [0.9], [0], labels=["face"])
    drawn = draw_detections(image, det)
    assert drawn.shape == image.shape and drawn.dtype == np.uint8
    assert (image == 255).all()  # the input is untouched
    assert tuple(drawn[45, 20]) == (230, 25, 75)  # the left edge, class 0's colour
    assert (drawn[30, 40] == 255).all()  # inside the box: untouched
    path = write_png(tmp_path / "out" / "det.png", drawn)
    assert np.array_equal(cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB), drawn)
    assert [p.name for p in path.parent.iterdir()] == ["det.png"]


DETECTOR_TAGS = models.list("ssd_lite.*", pretrained=True) + models.list("yolo.*", pretrained=True)


@pytest.mark.parametrize("name", DETECTOR_TAGS)
def test_pretrained_detectors_find_digits_in_larger_scenes(name):
    from sparkzoo.datasets.synthetic import detection_scenes

    detector = load_detector(name, score_threshold=0.05)
    side = detector.config["input_shape"][0]
    assert detector.labels == [str(d) for d in range(10)]
    # Held-out scenes at twice the model's input size: resized down, boxes mapped back.
    scenes = detection_scenes(24, image_size=2 * side, seed=0, subset="test")
    found = detector.detect(scenes.images)
    truths = [scenes.targets(i) for i in range(len(scenes))]
    assert bx.mean_average_precision(found, truths, num_classes=10) > 0.5  # cards: ~0.8
