"""Every shipped pretrained model against its card (torchvision's ``test_schema_meta_validation``).

For each card in ``sparkzoo/models/pretrained``: the weights file has the card's size and
sha256, the rebuilt model has the card's parameter count, and the card's headline metric,
re-measured on the held-out slice its recipe names, matches within the card's tolerance.
"""

from __future__ import annotations

import importlib
import shutil

import numpy as np
import pytest

from sparkzoo import models
from sparkzoo.models.recipes import RECIPES
from sparkzoo.models.registry import PRETRAINED_DIR, sha256_of

TAGS = [n for n in models.list(pretrained=True) if models.card(n).kind == "pretrained"]
TOTAL_LIMIT = 50 * 2**20  # every shipped weights file together


def test_every_recipe_has_shipped_weights_and_every_card_a_recipe():
    assert set(TAGS) == set(RECIPES)


@pytest.mark.parametrize("tag", TAGS)
def test_card_matches_the_shipped_weights(tag):
    card = models.card(tag)
    path = PRETRAINED_DIR / card.file
    assert path.stat().st_size == card.file_size
    assert sha256_of(path) == card.sha256
    model = models.get(tag)
    assert model.count_params() == card.params
    for key in ("task", "input", "data", "metrics", "recipe"):
        assert getattr(card, key), f"{tag}: card has no {key}"
    assert {"name", "licence", "split"} <= set(card.data), tag
    assert card.recipe == f"python -m sparkzoo.models.recipes {tag}"


@pytest.mark.slow
@pytest.mark.parametrize("tag", TAGS)
def test_pretrained_model_meets_the_metric_on_its_card(tag):
    card = models.card(tag)
    check = card.metrics["check"]
    recipe = importlib.import_module(RECIPES[tag])
    measured = recipe.check_metric(models.get(tag), check["limit"])
    assert measured == pytest.approx(check["value"], abs=check["tolerance"]), (tag, measured)


def test_shipped_weights_stay_small():
    total = sum(p.stat().st_size for p in PRETRAINED_DIR.glob("*.h5"))
    assert total <= TOTAL_LIMIT, f"{total / 2**20:.1f} MB of weights ship; the limit is 50 MB"


@pytest.fixture
def tampered_copy(tmp_path, monkeypatch):
    """The pretrained folder copied to tmp_path, so a test can damage a weights file."""
    copy = tmp_path / "pretrained"
    shutil.copytree(PRETRAINED_DIR, copy)
    monkeypatch.setattr("sparkzoo.models.registry.PRETRAINED_DIR", copy)
    return copy


def test_weights_whose_sha256_does_not_match_are_refused(tampered_copy):
    tag = TAGS[0]
    path = tampered_copy / models.card(tag).file
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(models.WeightsError, match=r"sha256 .* expected"):
        models.get(tag)


def test_a_truncated_weights_file_is_refused(tampered_copy):
    tag = TAGS[0]
    path = tampered_copy / models.card(tag).file
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 3])
    with pytest.raises(models.WeightsError, match="truncated"):
        models.get(tag)


def test_preprocessing_comes_from_the_card():
    card = models.card("lenet5.mnist")
    raw = np.full((2, 28, 28, 1), 255.0)
    np.testing.assert_allclose(
        models.preprocessor("lenet5.mnist")(raw), raw * card.preprocessing["scale"]
    )
    with pytest.raises(
        ValueError, match=r"expects input of shape \(batch, 28, 28, 1\), got \(2, 784\)"
    ):
        models.preprocessor("lenet5.mnist")(np.zeros((2, 784)))
