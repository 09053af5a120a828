"""model.classical: pymatting baselines and the generator's closed-form prior."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from model.classical import closed_form_prior, has_prior, pymatting_alpha


def _two_colour_scene(size: int = 24) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A red foreground over a blue background with a linear alpha ramp across the middle.

    The image is exactly alpha*F + (1-alpha)*B with constant F and B, the case in which the
    closed-form solution recovers alpha exactly (Levin et al. 2008, Theorem 2).
    """
    ramp = np.clip((np.arange(size) - size / 3) / (size / 3), 0.0, 1.0).astype(np.float32)
    alpha = np.tile(ramp, (size, 1))
    fg, bg = np.array([0.9, 0.1, 0.1]), np.array([0.1, 0.2, 0.8])
    image = (alpha[..., None] * fg + (1 - alpha[..., None]) * bg).astype(np.float32)
    trimap = np.full((size, size), 0.5, np.float32)
    trimap[alpha == 0.0] = 0.0
    trimap[alpha == 1.0] = 1.0
    return image, trimap, alpha


def test_pymatting_alpha_follows_a_trimap_without_unknown():
    trimap = np.zeros((6, 6), np.float32)
    trimap[2:4] = 1.0
    np.testing.assert_array_equal(
        pymatting_alpha("closed-form", np.zeros((6, 6, 3)), trimap), trimap
    )


def test_closed_form_prior_recovers_a_two_colour_blend():
    image, trimap, alpha = _two_colour_scene()
    prior = closed_form_prior(image, trimap)
    assert prior.dtype == np.float32 and prior.shape == alpha.shape
    # The closed form is exact for two-colour blends up to the solver's tolerance.
    assert np.abs(prior - alpha).max() < 0.02


def test_closed_form_prior_falls_back_to_the_trimap_without_definite_foreground():
    image, trimap, _ = _two_colour_scene()
    trimap[trimap == 1.0] = 0.5
    assert not has_prior(trimap)
    with pytest.raises(ValueError):
        pymatting_alpha("closed-form", image, trimap)
    np.testing.assert_array_equal(closed_form_prior(image, trimap), trimap)


def test_has_prior_needs_both_definite_regions():
    trimap = np.full((4, 4), 0.5, np.float32)
    assert not has_prior(trimap)
    trimap[0, 0] = 1.0
    assert not has_prior(trimap)
    trimap[3, 3] = 0.0
    assert has_prior(trimap)


def test_resampling_overshoot_is_clipped_silently():
    # cv2.INTER_AREA can return 1 + 1e-7 for a white pixel; pymatting warns about any value
    # above 1, and the prior must be the one of the clipped image.
    image, trimap, _ = _two_colour_scene()
    overshoot = image.copy()
    overshoot[0, 0] = 1.0000001
    clipped = np.clip(overshoot, 0.0, 1.0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        prior = closed_form_prior(overshoot, trimap)
    np.testing.assert_array_equal(prior, closed_form_prior(clipped, trimap))
