"""Tests for model.dataset: reproducible batches, the matting equation, crops on the edge."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from model.compositing import unknown_mask
from model.dataset import DatasetError, list_samples, make_train_dataset
from model.eval_data import make_eval_dataset
from model.images import read_uint8, trimap_from_uint8, write_png

CROP, BATCH, BATCHES = 32, 4, 3


def _batches(root, seed: int, **options) -> list[dict[str, np.ndarray]]:
    dataset = make_train_dataset(root, crop_size=CROP, batch_size=BATCH, seed=seed, **options)
    return [{key: value.numpy() for key, value in batch.items()} for batch in dataset.take(BATCHES)]


def test_one_seed_gives_identical_batches_and_another_seed_does_not(tiny_dataset):
    first, second = _batches(tiny_dataset, seed=3), _batches(tiny_dataset, seed=3)
    for a, b in zip(first, second, strict=True):
        assert a.keys() == b.keys()
        for key in a:
            np.testing.assert_array_equal(a[key], b[key], err_msg=key)
    other = _batches(tiny_dataset, seed=4)
    pairs = zip(first, other, strict=True)
    assert any(not np.array_equal(a["image"], b["image"]) for a, b in pairs)


def test_every_sample_obeys_the_matting_equation(tiny_dataset):
    for batch in _batches(tiny_dataset, seed=5):
        assert batch["image"].shape == (BATCH, CROP, CROP, 3)
        assert batch["alpha"].shape == (BATCH, CROP, CROP, 1)
        alpha = batch["alpha"]
        expected = alpha * batch["fg"] + (1.0 - alpha) * batch["bg"]
        # float32 arithmetic in a different order: a few ulps of 1.0 apart at most.
        np.testing.assert_allclose(batch["image"], expected, rtol=0, atol=1e-6)


@pytest.mark.parametrize("redraw_trimap", [True, False])
def test_every_crop_has_unknown_pixels_covering_the_soft_alpha(tiny_dataset, redraw_trimap):
    for batch in _batches(tiny_dataset, seed=6, redraw_trimap=redraw_trimap):
        for trimap, alpha in zip(batch["trimap"][..., 0], batch["alpha"][..., 0], strict=True):
            assert set(np.unique(trimap)) <= {0.0, 0.5, 1.0}
            unknown = unknown_mask(trimap)
            assert unknown.any()
            soft = (alpha > 0) & (alpha < 1)
            assert not np.any(soft & ~unknown)


def test_eval_dataset_pads_to_the_multiple_and_marks_the_padding(tiny_dataset):
    samples = list(make_eval_dataset(tiny_dataset, "val", multiple=48).as_numpy_iterator())
    assert len(samples) == len(list_samples(tiny_dataset, "val"))
    for sample in samples:
        # The tiny samples are 64x64: padded to 96x96, the sample's own pixels top-left.
        assert sample["image"].shape == (1, 96, 96, 3)
        valid = sample["valid"][0, ..., 0]
        assert valid[:64, :64].all() and not valid[64:, :].any() and not valid[:, 64:].any()


def test_a_sample_missing_a_file_is_named(tiny_dataset, tmp_path):
    root = tmp_path / "data"
    shutil.copytree(tiny_dataset / "train", root / "train")
    missing = root / "train" / "alpha" / "train_002.png"
    missing.unlink()
    with pytest.raises(DatasetError, match=r"alpha/train_002\.png: missing"):
        list_samples(root, "train")


def test_prior_crops_are_aligned_with_the_alpha(tiny_dataset):
    batches = _batches(
        tiny_dataset, seed=7, prior=True, recompose=False, redraw_trimap=False, jitter=False
    )
    aligned, flipped = [], []
    for batch in batches:
        assert batch["prior"].shape == (BATCH, CROP, CROP, 1)
        for prior, alpha, trimap in zip(
            batch["prior"][..., 0], batch["alpha"][..., 0], batch["trimap"][..., 0], strict=True
        ):
            known = ~unknown_mask(trimap)
            np.testing.assert_array_equal(prior[known], trimap[known])
            unknown = ~known
            aligned.append(np.abs(prior - alpha)[unknown].mean())
            flipped.append(np.abs(prior[:, ::-1] - alpha)[unknown].mean())
    # The stored closed-form mattes of these smooth composites are close to the truth; the same
    # prior mirrored (a crop or flip applied to one array but not the other) is far from it.
    assert np.mean(aligned) < 0.5 * np.mean(flipped)


def test_prior_needs_the_stored_trimap_and_composite(tiny_dataset):
    with pytest.raises(ValueError, match="recompose=False and redraw_trimap=False"):
        make_train_dataset(tiny_dataset, crop_size=CROP, batch_size=BATCH, prior=True)


def test_a_missing_prior_is_named(tiny_dataset, tmp_path):
    root = tmp_path / "data"
    shutil.copytree(tiny_dataset, root)
    (root / "val" / "prior" / "val_001.png").unlink()
    with pytest.raises(DatasetError, match=r"val_001\.png: missing .*combine\.py"):
        list_samples(root, "val", prior=True)
    assert list_samples(root, "val") == ["val_000", "val_001"]


def test_an_unsolvable_sample_gets_its_trimap_as_the_prior(tiny_dataset, tmp_path):
    root = tmp_path / "data"
    shutil.copytree(tiny_dataset, root)
    trimap_path = root / "val" / "trimap" / "val_000.png"
    levels = read_uint8(trimap_path, grey=True)
    levels[levels == 255] = 128  # no definite foreground: pymatting cannot solve it
    write_png(trimap_path, levels)
    # combine.py stores the trimap itself then; 16 bits cannot hold 0.5 exactly.
    write_png(root / "val" / "prior" / "val_000.png", trimap_from_uint8(levels), bits=16)
    sample = next(make_eval_dataset(root, "val", multiple=16, prior=True).as_numpy_iterator())
    np.testing.assert_array_equal(sample["prior"], sample["trimap"])
