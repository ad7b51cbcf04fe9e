"""The vision families: classifiers at any size, their layer names, Siamese pairs, DeepBit.

(tests/test_models_zoo.py already builds, fits, saves and reloads each family at its tiny
size; these tests check what is particular to each.)
"""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from sparkzoo import models
from sparkzoo.models.deepbit import (
    DeepBitModel,
    binary_codes,
    bit_balance_loss,
    pca_sign_hash,
    quantization_loss,
    rotate_images,
    rotation_invariance_loss,
)
from sparkzoo.models.retrieval import hamming_distance, mean_average_precision_at_k
from sparkzoo.models.siamese import similarity
from sparkzoo.models.transfer import cut

# Each family's tiny configuration without its input shape and class count.
TINY = {
    name: {
        k: v for k, v in models.family(name).tiny.items() if k not in ("input_shape", "num_classes")
    }
    for name in ("vgg", "resnet18", "resnet50", "mobilenet_v2", "inception_v1")
}
# The stride of the `stem` layer of each family (VGG has none) and its stage names.
STEM_STRIDE = {"resnet18": 4, "resnet50": 4, "mobilenet_v2": 2, "inception_v1": 8}
STAGES = {
    "vgg": (1, 2, 3, 4, 5),
    "resnet18": (2, 3, 4, 5),
    "resnet50": (2, 3, 4, 5),
    "mobilenet_v2": (1, 2, 3, 4, 5),
    "inception_v1": (3, 4, 5),
}
CLASSIFIERS = list(TINY)


@pytest.fixture(scope="module")
def any_size_models():
    """One model per family for images of any size, with 7 classes (built on first use)."""
    built: dict[str, tf.keras.Model] = {}

    def get(name: str) -> tf.keras.Model:
        if name not in built:
            tf.keras.utils.set_random_seed(0)
            built[name] = models.get(name, input_shape=(None, None, 3), num_classes=7, **TINY[name])
        return built[name]

    return get


@pytest.mark.parametrize("name", CLASSIFIERS)
def test_classifier_takes_any_input_size_and_class_count(name, any_size_models):
    model = any_size_models(name)
    rng = np.random.default_rng(0)
    for size in (32, 96, 45):
        probs = model(rng.random((2, size, size, 3), dtype="float32"), training=False).numpy()
        assert probs.shape == (2, 7), (name, size)
        np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)
    fixed = models.get(name, input_shape=(96, 96, 3), num_classes=3, **TINY[name])
    assert fixed.output_shape == (None, 3)
    assert fixed(np.zeros((1, 96, 96, 3), "float32")).shape == (1, 3)


@pytest.mark.parametrize("name", CLASSIFIERS)
def test_stage_names_mark_the_output_stride(name, any_size_models):
    model = any_size_models(name)
    names = [layer.name for layer in model.layers]
    assert names[-1] == "predictions" and "pool" in names
    x = np.zeros((1, 64, 64, 3), "float32")
    for stage in STAGES[name]:
        features = cut(model, f"stage{stage}")(x)
        assert features.shape[1:3] == (64 // 2**stage, 64 // 2**stage), (name, stage)
    if name in STEM_STRIDE:
        side = 64 // STEM_STRIDE[name]
        assert cut(model, "stem")(x).shape[1:3] == (side, side)
    else:
        assert "stem" not in names


@pytest.mark.parametrize("name", list(TINY))
def test_images_below_the_minimum_size_are_refused(name):
    with pytest.raises(ValueError, match=r"at least 32x32 pixels.*\(31, 64, 3\)"):
        models.get(name, input_shape=(31, 64, 3), **TINY[name])
    with pytest.raises(ValueError, match=r"\(height, width, channels\)"):
        models.get(name, input_shape=(64, 64), **TINY[name])


def test_block_counts_set_the_depth_and_are_checked():
    shallow = models.get("resnet50", input_shape=(32, 32, 3), width=0.0625, blocks=(1, 2, 1, 1))
    blocks = {x.name.rsplit("_", 1)[0] for x in shallow.layers if x.name.endswith("_add")}
    assert blocks == {
        "stage2_block1",
        "stage3_block1",
        "stage3_block2",
        "stage4_block1",
        "stage5_block1",
    }
    with pytest.raises(ValueError, match=r"four positive block counts, got \(1, 1, 1\)"):
        models.get("resnet18", blocks=(1, 1, 1))
    with pytest.raises(ValueError, match=r"seven positive block counts, got \(1, 1\)"):
        models.get("mobilenet_v2", blocks=(1, 1))
    with pytest.raises(ValueError, match=r"1-2, 1-5 and 1-2 modules .* got \(3, 1, 1\)"):
        models.get("inception_v1", blocks=(3, 1, 1))


def test_vgg_depths_batch_norm_and_blocks():
    def convs(model):
        return sum(isinstance(layer, tf.keras.layers.Conv2D) for layer in model.layers)

    tiny = {"input_shape": (32, 32, 3), "width": 0.0625}
    assert convs(models.get("vgg", depth=11, **tiny)) == 8
    vgg16 = models.get("vgg", depth=16, batch_norm=True, **tiny)
    assert convs(vgg16) == 13 and vgg16.name == "vgg16"
    assert sum(isinstance(x, tf.keras.layers.BatchNormalization) for x in vgg16.layers) == 13
    # Two stages: a total stride of 4, so 8x8 images are fine.
    small = models.get("vgg", blocks=(1, 1), input_shape=(8, 8, 1), num_classes=2, width=0.25)
    assert small.output_shape == (None, 2) and "stage3" not in [x.name for x in small.layers]
    with pytest.raises(ValueError, match=r"depth must be one of \[11, 13, 16, 19\], got 12"):
        models.get("vgg", depth=12)


@pytest.mark.slow
def test_full_size_parameter_counts_match_the_reference_architectures():
    # References: torchvision's resnet18/resnet50 (trainable weights), Keras' MobileNetV2
    # (all weights), GoogLeNet without auxiliary heads, and VGG16's conv layers.
    def trainable(model):
        return int(sum(np.prod(w.shape) for w in model.trainable_weights))

    shape = {"input_shape": (32, 32, 3)}
    assert trainable(models.get("resnet18", **shape)) == 11_689_512
    assert trainable(models.get("resnet50", **shape)) == 25_557_032
    assert models.get("mobilenet_v2", **shape).count_params() == 3_538_984
    assert models.get("inception_v1", **shape).count_params() == 6_998_552
    assert cut(models.get("vgg", depth=16, **shape), "stage5").count_params() == 14_714_688


# ---- Siamese ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def siamese_net():
    tf.keras.utils.set_random_seed(0)
    return models.get("siamese", input_shape=(16, 16, 1), backbone="lenet5", embedding_dim=8)


def test_siamese_is_symmetric_and_identical_pairs_score_the_same(siamese_net):
    rng = np.random.default_rng(1)
    a = rng.random((6, 16, 16, 1), dtype="float32")
    b = rng.random((6, 16, 16, 1), dtype="float32")
    same = similarity(siamese_net, a, a)
    # |f(a) - f(a)| = 0, so every identical pair gets sigmoid(bias of `similarity`).
    bias = siamese_net.get_layer("similarity").get_weights()[1][0]
    np.testing.assert_allclose(same, 1 / (1 + np.exp(-bias)), rtol=1e-5)
    np.testing.assert_allclose(similarity(siamese_net, a, b), similarity(siamese_net, b, a))
    assert not np.allclose(similarity(siamese_net, a, b), same)


def test_siamese_shares_one_encoder_between_its_inputs(siamese_net):
    encoder = siamese_net.get_layer("encoder")
    assert [x.name for x in siamese_net.inputs] == ["a", "b"]
    assert encoder.output_shape == (None, 8)
    # The backbone (lenet5 cut below its classifier) + embedding, counted once.
    head = siamese_net.get_layer("similarity").count_params()
    assert siamese_net.count_params() == encoder.count_params() + head
    assert "predictions" not in [x.name for x in encoder.layers]


def test_siamese_from_a_given_backbone_cut_and_frozen_by_name():
    base = models.get("resnet18", input_shape=(32, 32, 3), num_classes=4, width=0.0625)
    net = models.get(
        "siamese", backbone=base, cut_at="stage4", freeze_to="stage3", embedding_dim=None
    )
    encoder = net.get_layer("encoder")
    assert encoder.output_shape == (None, base.get_layer("stage4").output_shape[-1])
    assert not base.get_layer("stage3").trainable and not base.get_layer("stem_conv").trainable
    assert base.get_layer("stage4_block1_1_conv").trainable
    with pytest.raises(ValueError, match=r"takes input_shape \(32, 32, 3\), got \(64, 64, 3\)"):
        models.get("siamese", backbone=base, input_shape=(64, 64, 3))
    with pytest.raises(ValueError, match=r"no layer 'stage9'; its layers are: image, stem_conv"):
        models.get("siamese", backbone=base, cut_at="stage9")


# ---- DeepBit ----------------------------------------------------------------------------


def test_quantization_loss_is_zero_for_bits_and_largest_at_one_half():
    assert float(quantization_loss([[0.0, 1.0, 1.0], [1.0, 0.0, 0.0]])) == 0.0
    assert float(quantization_loss([[0.5, 0.5]])) == pytest.approx(0.25)
    assert float(quantization_loss([[0.9, 0.2]])) == pytest.approx((0.01 + 0.04) / 2)


def test_bit_balance_loss_is_zero_for_a_balanced_batch():
    balanced = [[0, 1, 1], [1, 0, 0], [0, 0, 1], [1, 1, 0]]
    assert float(bit_balance_loss(np.array(balanced, "float32"))) == 0.0
    all_on = np.ones((4, 3), "float32")
    assert float(bit_balance_loss(all_on)) == pytest.approx(0.25)


def test_rotation_invariance_loss_weights_small_rotations_more():
    codes = np.array([[1.0, 0.0], [1.0, 0.0]], "float32")
    flipped = 1.0 - codes
    assert float(rotation_invariance_loss(codes, codes)) == 0.0
    assert float(rotation_invariance_loss(codes, flipped)) == pytest.approx(1.0)
    small = float(rotation_invariance_loss(codes, flipped, angles=[5.0, 5.0], max_angle=20))
    large = float(rotation_invariance_loss(codes, flipped, angles=[20.0, 20.0], max_angle=20))
    assert large == pytest.approx(np.exp(-0.5)) and small > large


def test_rotate_images_turns_a_quarter_like_rot90():
    image = np.arange(25, dtype="float32").reshape(1, 5, 5, 1)
    quarter = rotate_images(image, [90.0]).numpy()
    turned = [np.rot90(image[0, :, :, 0], k)[None, :, :, None] for k in (1, -1)]
    assert any(np.allclose(quarter, t, atol=1e-4) for t in turned)
    np.testing.assert_allclose(rotate_images(image, [360.0]).numpy(), image, atol=1e-3)


@pytest.fixture(scope="module")
def digits_16():
    """sklearn's 1,797 real 8x8 digits, scaled to [0, 1] and enlarged to 16x16."""
    from sklearn.datasets import load_digits

    data = load_digits()
    images = np.kron(data.images / 16.0, np.ones((2, 2)))[..., None].astype("float32")
    return images, data.target


def test_deepbit_trains_its_objectives_and_codes_are_bits(digits_16, tmp_path):
    images, _ = digits_16
    tf.keras.utils.set_random_seed(0)
    net = models.get(
        "deepbit", input_shape=(16, 16, 1), bits=12, backbone="lenet5", rotation_weight=0.5
    )
    assert isinstance(net, DeepBitModel) and net.get_layer("codes").output_shape == (None, 12)
    net.compile(tf.keras.optimizers.Adam(3e-3))
    history = net.fit(images[:256], batch_size=64, epochs=6, verbose=0).history
    assert set(history) == {"loss", "quantization", "balance", "rotation"}
    assert history["loss"][-1] < 0.85 * history["loss"][0]
    assert history["quantization"][-1] < 0.6 * history["quantization"][0]
    # Quantisation alone would push every bit to a constant (balance loss 0.25).
    assert history["balance"][-1] < 0.15

    bits = binary_codes(net, images[:20])
    assert bits.dtype == np.uint8 and bits.shape == (20, 12) and set(np.unique(bits)) <= {0, 1}
    packed = binary_codes(net, images[:20], packed=True)
    assert packed.shape == (20, 2)
    np.testing.assert_array_equal(np.unpackbits(packed, axis=1)[:, :12], bits)

    path = tmp_path / "deepbit.keras"
    net.save(path)
    reloaded = tf.keras.models.load_model(path)
    assert isinstance(reloaded, DeepBitModel) and reloaded.rotation_weight == 0.5
    np.testing.assert_array_equal(binary_codes(reloaded, images[:20]), bits)


def test_hamming_distance_on_bits_and_packed_bytes():
    a = np.array([[0, 1, 1, 0], [1, 1, 1, 1]], np.uint8)
    b = np.array([[0, 1, 1, 0], [1, 0, 0, 1], [0, 0, 0, 0]], np.uint8)
    expected = [[0, 4, 2], [2, 2, 4]]
    np.testing.assert_array_equal(hamming_distance(a, b), expected)
    np.testing.assert_array_equal(
        hamming_distance(np.packbits(a, axis=1), np.packbits(b, axis=1), packed=True), expected
    )
    with pytest.raises(ValueError, match="0/1 bits"):
        hamming_distance([[0, 2]], [[0, 1]])
    with pytest.raises(ValueError, match="4 and 3 bits"):
        hamming_distance(a, b[:, :3])


def test_mean_average_precision_at_k_on_a_hand_made_case():
    db = np.array([[0, 0, 0], [1, 1, 1], [0, 0, 1], [1, 1, 0]], np.uint8)
    db_labels = [0, 1, 0, 1]
    queries = np.array([[0, 0, 0], [1, 1, 1]], np.uint8)
    # Query 0 (label 0) ranks items 0 (d=0, hit), 2 (d=1, hit), 3 (d=2), 1 (d=3): AP = 1.
    # Query 1 (label 0) ranks items 1 (d=0), 3 (d=1), 2 (d=2, hit), 0 (d=3, hit):
    #   AP@4 = (1/3 + 2/4) / 2 = 5/12;  AP@2 = 0 (no hit in the first two).
    labels = [0, 0]
    assert mean_average_precision_at_k(queries, db, labels, db_labels, k=4) == pytest.approx(
        (1 + 5 / 12) / 2
    )
    assert mean_average_precision_at_k(queries, db, labels, db_labels, k=2) == pytest.approx(0.5)
    # Ties keep database order: every item is 1 bit away, so the ranking is 0, 1, 2.
    tied = np.array([[0, 1], [1, 0], [0, 1]], np.uint8)
    query = np.array([[0, 0]], np.uint8)
    assert mean_average_precision_at_k(query, tied, [1], [0, 1, 1], k=3) == pytest.approx(
        (1 / 2 + 2 / 3) / 2
    )
    assert mean_average_precision_at_k(query, tied, [1], [0, 1, 1], k=1) == 0.0
    with pytest.raises(ValueError, match="2 query codes with 1 labels"):
        mean_average_precision_at_k(queries, db, [0], db_labels, k=2)


def test_pca_sign_hash_retrieves_real_digits_better_than_chance():
    from sklearn.datasets import load_digits

    data = load_digits()
    x, y = data.data, data.target
    train, test = slice(0, 1500), slice(1500, None)
    db = pca_sign_hash(x[train], x[train], bits=16)
    queries = pca_sign_hash(x[train], x[test], bits=16)
    assert db.shape == (1500, 16) and db.dtype == np.uint8
    # PCA centres the data, so every bit is on for roughly half of the training set.
    assert np.all(np.abs(db.mean(axis=0) - 0.5) < 0.35)
    found = mean_average_precision_at_k(queries, db, y[test], y[train], k=50)
    rng = np.random.default_rng(0)
    chance = mean_average_precision_at_k(
        rng.integers(0, 2, queries.shape), rng.integers(0, 2, db.shape), y[test], y[train], k=50
    )
    assert found > 0.6 and chance < 0.25, (found, chance)
    with pytest.raises(ValueError, match=r"bits <= min\(examples, features\) = 64, got 65"):
        pca_sign_hash(x[train], x[test], bits=65)
