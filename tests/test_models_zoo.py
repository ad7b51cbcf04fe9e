"""Every registered family builds at its tiny size, fits a step, round-trips save/load, predicts.

One parametrised test over the registry (timm's and keras-hub's tiny-variant tests): a family
added to the zoo is tested without anyone writing a test for it.
"""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from sparkzoo import models

FAMILIES = models.list(pretrained=False)


def _as_list(x):
    return x if isinstance(x, (list, tuple)) else [x]


@pytest.mark.parametrize("name", FAMILIES)
def test_family_builds_fits_a_step_and_round_trips(name, tmp_path):
    family = models.family(name)
    assert family.example is not None, f"{name} registers no example batch"
    tf.keras.utils.set_random_seed(0)
    model = models.get(name, **family.tiny)
    x, y = family.example({**family.defaults, **family.tiny}, 4, np.random.default_rng(0))
    # The legacy Adam builds its slots about twice as fast as the new one (one step is all
    # this test takes), which keeps the test of ~25 families in the fast tier.
    model.compile(
        optimizer=tf.keras.optimizers.legacy.Adam(1e-3), loss=family.loss_for(family.tiny)
    )
    before = [w.copy() for w in model.get_weights()]
    history = model.fit(x, y, batch_size=4, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0]), f"{name}: loss {history.history['loss']}"
    changed = any(
        not np.array_equal(a, b) for a, b in zip(before, model.get_weights(), strict=True)
    )
    assert changed, f"{name}: one training step changed no weight"

    path = tmp_path / f"{name}.keras"
    model.save(path)
    reloaded = tf.keras.models.load_model(path, compile=False)
    expected, actual = model.predict(x, verbose=0), reloaded.predict(x, verbose=0)
    for a, b in zip(_as_list(expected), _as_list(actual), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)


def test_every_family_has_a_card_and_a_task():
    for name in FAMILIES:
        card = models.card(name)
        assert card.family == name and card.task and card.summary, name


def test_unknown_name_lists_the_closest_names():
    with pytest.raises(models.UnknownModelError, match=r"unknown model 'lenet'.*lenet5"):
        models.get("lenet")
    with pytest.raises(KeyError, match="closest"):
        models.card("lenet6")


def test_list_filters_by_glob_and_by_pretrained():
    assert "lenet5" in models.list("len*")
    assert models.list("len*", pretrained=False) == ["lenet5"]
    assert all("." in n for n in models.list(pretrained=True))


def test_input_of_the_wrong_shape_names_expected_and_actual():
    model = models.get("lenet5", input_shape=(28, 28, 1), num_classes=10)
    with pytest.raises(
        ValueError, match=r"expects shape \(batch, 28, 28, 1\), got \(2, 32, 32, 1\)"
    ):
        models.check_input(model, np.zeros((2, 32, 32, 1)))
    models.check_input(model, np.zeros((2, 28, 28, 1)))


def test_registering_a_family_name_twice_is_refused():
    from sparkzoo.models.registry import register

    def other():
        return None

    with pytest.raises(ValueError, match="registered twice"):
        register("lenet5", task="x", tiny={})(other)
