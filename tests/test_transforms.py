"""Image preprocessing chains on numpy images (fast; the Spark side is in test_images.py)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import skimage.data

from sparkzoo.datasets.transforms import (
    CenterCrop,
    ChannelNormalize,
    ColorJitter,
    Compose,
    Expand,
    HorizontalFlip,
    RandomCrop,
    Resize,
    ToTensor,
    output_layout,
    row_rng,
)


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    return skimage.data.chelsea()  # a real 300 x 451 RGB photograph


def test_resize_to_a_size_and_by_the_shorter_side(photo):
    assert Resize((64, 96))(photo).shape == (64, 96, 3)
    out = Resize(150)(photo)
    assert out.shape == (150, 226, 3) and out.dtype == np.uint8  # 451 * 150 / 300 = 225.5


def test_grey_images_keep_a_channel_axis():
    grey = skimage.data.camera()  # (512, 512)
    out = Compose([Resize((32, 32)), HorizontalFlip(p=1.0)])(grey, rng=0)
    assert out.shape == (32, 32, 1)
    np.testing.assert_array_equal(out[:, :, 0], Resize((32, 32))(grey)[:, ::-1, 0])


def test_center_crop_takes_the_middle(photo):
    out = CenterCrop((100, 200))(photo)
    np.testing.assert_array_equal(out, photo[100:200, 125:325])


def test_crop_larger_than_the_image_names_both_sizes(photo):
    with pytest.raises(ValueError, match=r"at least 400x400, got 300x451"):
        CenterCrop(400)(photo)
    with pytest.raises(ValueError, match=r"at least 301x10, got 300x451"):
        RandomCrop((301, 10))(photo, rng=0)


def test_random_crop_is_a_window_of_the_image_and_follows_the_seed(photo):
    crops = [RandomCrop(64)(photo, rng=seed) for seed in range(6)]
    np.testing.assert_array_equal(crops[0], RandomCrop(64)(photo, rng=0))
    assert len({c.tobytes() for c in crops}) > 1
    for crop in crops:
        # the best match of the crop in the photo is an exact one
        scores = cv2.matchTemplate(photo, crop, cv2.TM_SQDIFF)
        top, left = np.unravel_index(np.argmin(scores), scores.shape)
        np.testing.assert_array_equal(photo[top : top + 64, left : left + 64], crop)


def test_horizontal_flip_with_probability_one_and_zero(photo):
    np.testing.assert_array_equal(HorizontalFlip(p=1.0)(photo, rng=1), photo[:, ::-1])
    np.testing.assert_array_equal(HorizontalFlip(p=0.0)(photo, rng=1), photo)


def test_expand_places_the_image_on_a_filled_canvas(photo):
    out = Expand(max_ratio=3.0, fill=(1, 2, 3), p=1.0)(photo, rng=4)
    assert out.shape[0] >= photo.shape[0] and out.shape[1] >= photo.shape[1]
    assert out.shape[0] / photo.shape[0] <= 3.0 and out.dtype == np.uint8
    # the photo is in there once; every pixel outside it is the fill
    rows = np.where((out != [1, 2, 3]).any(axis=2).any(axis=1))[0]
    cols = np.where((out != [1, 2, 3]).any(axis=2).any(axis=0))[0]
    top, left = rows[0], cols[0]
    np.testing.assert_array_equal(out[top : top + 300, left : left + 451], photo)
    mask = np.ones(out.shape[:2], bool)
    mask[top : top + 300, left : left + 451] = False
    assert (out[mask] == [1, 2, 3]).all()
    np.testing.assert_array_equal(Expand(p=0.0)(photo, rng=4), photo)


def test_expand_refuses_a_fill_of_the_wrong_width(photo):
    with pytest.raises(ValueError, match="fill has 2 values, the image 3 channels"):
        Expand(fill=(1, 2), p=1.0)(photo, rng=0)


def test_color_jitter_stays_in_byte_range_and_leaves_grey_saturation_alone(photo):
    out = ColorJitter(brightness=0.9, contrast=0.9, saturation=0.9)(photo, rng=2)
    assert out.dtype == np.uint8 and out.shape == photo.shape
    assert not np.array_equal(out, photo)
    grey = np.repeat(skimage.data.camera()[:, :, None], 3, axis=2)
    np.testing.assert_array_equal(ColorJitter(saturation=1.0)(grey, rng=5), grey)


def test_contrast_keeps_the_mean_of_a_float_image(photo):
    values = photo.astype(np.float32)
    out = ColorJitter(contrast=0.5)(values, rng=3)
    assert out.dtype == np.float32
    luma = values @ np.array([0.299, 0.587, 0.114], np.float32)
    out_luma = out @ np.array([0.299, 0.587, 0.114], np.float32)
    assert abs(out_luma.mean() - luma.mean()) < 1e-2
    assert abs(out_luma.std() - luma.std()) > 1.0  # it did change the contrast


def test_channel_normalize_with_the_images_own_statistics(photo):
    mean = photo.reshape(-1, 3).mean(axis=0)
    std = photo.reshape(-1, 3).std(axis=0)
    out = ChannelNormalize(mean, std)(photo)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out.reshape(-1, 3).mean(axis=0), 0, atol=1e-3)
    np.testing.assert_allclose(out.reshape(-1, 3).std(axis=0), 1, atol=1e-3)
    with pytest.raises(ValueError, match="mean has 2 values, the image 3 channels"):
        ChannelNormalize((1, 2), 1)(photo)
    with pytest.raises(ValueError, match="std must be non-zero"):
        ChannelNormalize(0, (1, 0, 1))


def test_to_tensor_layout_and_scale(photo):
    out = ToTensor("CHW", scale=1 / 255)(photo)
    assert out.shape == (3, 300, 451) and out.dtype == np.float32
    np.testing.assert_allclose(out[1], photo[:, :, 1] / 255, atol=1e-6)
    assert ToTensor("HWC")(photo).shape == (300, 451, 3)
    with pytest.raises(ValueError, match="layout must be 'CHW' or 'HWC'"):
        ToTensor("NCHW")


def test_to_tensor_must_end_the_chain():
    with pytest.raises(ValueError, match="must be the last step"):
        ToTensor("CHW").then(Resize(10))
    assert output_layout(Resize(8).then(ToTensor("CHW"))) == "CHW"
    assert output_layout(Resize(8)) == "HWC"


def test_then_and_compose_build_the_same_chain(photo):
    a = Resize(200).then(RandomCrop(150)).then(HorizontalFlip()).then(ToTensor("CHW"))
    b = Compose([Compose([Resize(200), RandomCrop(150)]), HorizontalFlip(), ToTensor("CHW")])
    assert len(a.steps) == len(b.steps) == 4 and a.random
    np.testing.assert_array_equal(a(photo, rng=9), b(photo, rng=9))


def test_random_chain_without_a_generator_says_how_to_seed_it(photo):
    with pytest.raises(ValueError, match=r"is random: pass a numpy Generator or a seed"):
        Compose([Resize(100), HorizontalFlip()])(photo)
    Compose([Resize(100), CenterCrop(50)])(photo)  # deterministic chains need none


def test_row_rng_keys_file_uris_and_paths_alike():
    draws = [row_rng(p, 7).random(3) for p in ("file:/data/a b.jpg", "/data/a b.jpg")]
    np.testing.assert_array_equal(draws[0], draws[1])
    assert not np.array_equal(row_rng("/data/a b.jpg", 8).random(3), draws[0])
    assert not np.array_equal(row_rng("/data/c.jpg", 7).random(3), draws[0])


def test_bad_parameters_are_refused():
    with pytest.raises(ValueError, match="interpolation must be one of"):
        Resize(10, interpolation="lanczos9")
    with pytest.raises(ValueError, match="p must be in"):
        HorizontalFlip(p=2)
    with pytest.raises(ValueError, match="max_ratio must be >= 1"):
        Expand(max_ratio=0.5)
    with pytest.raises(ValueError, match="brightness must be >= 0"):
        ColorJitter(brightness=-1)
    with pytest.raises(TypeError, match="Compose takes Transform steps"):
        Compose([lambda x: x])
