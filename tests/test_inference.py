"""Tests for model.inference: any-size prediction, tiling, clamping, loading."""

from __future__ import annotations

import dataclasses
import itertools
import json
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

from model.checkpoints import CheckpointError
from model.classical import closed_form_prior
from model.inference import Matte, Matter, clamp_to_trimap, estimate_foreground
from model.networks import ModelConfig, build_generator
from model.networks.generator import PRIOR_EPSILON
from model.tiling import CONTEXT, feather, tile_origins, unknown_window

# No batch-statistics normalisation: a pixel's output depends only on its receptive field, so a
# tiled prediction can be compared with the whole-image one.
TINY = ModelConfig(base_filters=4, depth=2, norm="none")


def write_run(log_dir: Path, name: str = "run", cfg: ModelConfig = TINY, step: int = 7) -> Path:
    """Save a freshly initialised generator in the train.py run layout; returns the run folder.

    ``log_dir/name/checkpoints/ckpt-<step>.*`` via tf.train.CheckpointManager and
    ``log_dir/name/config.json`` with ``{"model": cfg.to_dict(), ...}``, as the contract says.
    """
    run = log_dir / name
    keras.utils.set_random_seed(step)
    generator = build_generator(cfg)
    manager = tf.train.CheckpointManager(
        tf.train.Checkpoint(generator=generator),
        run / "checkpoints",
        max_to_keep=5,
        checkpoint_name="ckpt",
    )
    manager.save(checkpoint_number=step)
    config = {"model": cfg.to_dict(), "train": {"steps": step}, "seed": step}
    (run / "config.json").write_text(json.dumps(config), encoding="utf-8")
    return run


def _smooth_image(height: int, width: int) -> np.ndarray:
    """Smooth colour waves, float32 (H, W, 3) in [0, 1]: structure for the network to respond to."""
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    channels = [np.sin(yy / 7.0), np.cos(xx / 5.0), np.sin((xx + yy) / 9.0)]
    return (np.stack(channels, axis=-1) * 0.5 + 0.5).astype(np.float32)


def _random_trimap(height: int, width: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.choice(np.float32([0.0, 0.5, 1.0]), size=(height, width))


@pytest.fixture(scope="module")
def generator() -> keras.Model:
    keras.utils.set_random_seed(0)
    return build_generator(TINY)


@pytest.fixture(scope="module")
def matter(generator) -> Matter:
    return Matter(generator, TINY)


def _raw_network(generator, image: np.ndarray, trimap: np.ndarray) -> np.ndarray:
    """Independent reference: pad reflect to the multiple by hand, call the model, crop."""
    height, width = trimap.shape
    multiple = TINY.multiple
    padded_h, padded_w = -(-height // multiple) * multiple, -(-width // multiple) * multiple
    stacked = np.dstack([image, trimap]).astype(np.float32)
    stacked = np.pad(stacked, ((0, padded_h - height), (0, padded_w - width), (0, 0)), "reflect")
    return np.asarray(generator(stacked[None], training=False))[0, :height, :width, 0]


def test_tile_origins_hand_computed():
    # padded 92 (multiple 4); stride 32 - 8 = 24; last pulled back to 92 - 32 = 60.
    assert tile_origins(90, 32, 8, 4) == [0, 24, 48, 60]
    assert tile_origins(32, 32, 8, 4) == [0]
    assert tile_origins(30, 32, 8, 4) == [0]
    # stride 30 rounds down to 28 so every origin stays on the pooling grid.
    assert tile_origins(100, 32, 2, 4) == [0, 28, 56, 68]


@pytest.mark.parametrize(
    ("size", "tile", "overlap", "multiple"), [(90, 32, 8, 4), (1000, 256, 64, 16)]
)
def test_tile_origins_cover_with_overlap(size, tile, overlap, multiple):
    origins = tile_origins(size, tile, overlap, multiple)
    assert all(origin % multiple == 0 for origin in origins)
    assert origins[0] == 0 and origins[-1] + tile >= size
    assert all(b - a <= tile - overlap for a, b in itertools.pairwise(origins))


def test_feather_hand_computed():
    # w_i = min(1, (i + 1) / 4, (8 - i) / 4) for length 8, overlap 3.
    expected = [0.25, 0.5, 0.75, 1.0, 1.0, 0.75, 0.5, 0.25]
    np.testing.assert_allclose(feather(8, 3), expected)


@pytest.mark.parametrize(("height", "width"), [(37, 53), (1, 1), (5, 1), (64, 64)])
def test_output_has_the_input_size(matter, height, width):
    image = _smooth_image(height, width)
    trimap = np.full((height, width), 0.5, np.float32)
    alpha = matter.predict_alpha(image, trimap)
    assert alpha.shape == (height, width)
    assert alpha.dtype == np.float32


def test_prediction_equals_the_network_on_a_hand_padded_input(matter, generator):
    image, trimap = _smooth_image(37, 53), _random_trimap(37, 53)
    alpha = matter.predict_alpha(image, trimap)
    reference = clamp_to_trimap(_raw_network(generator, image, trimap), trimap)
    np.testing.assert_allclose(alpha, reference, atol=1e-6)


def test_known_regions_are_clamped_exactly(generator):
    image, trimap = _smooth_image(70, 90), _random_trimap(70, 90, seed=1)
    for tiled in (False, True):
        matter = Matter(generator, TINY, max_pixels=1 if tiled else 10**6, tile=32, overlap=8)
        alpha = matter.predict_alpha(image, trimap)
        assert np.all(alpha[trimap == 0.0] == 0.0)
        assert np.all(alpha[trimap == 1.0] == 1.0)
        # The sigmoid of an untrained net never reaches 0 or 1, so unknown pixels were predicted.
        unknown = alpha[trimap == 0.5]
        assert np.all((unknown > 0) & (unknown < 1))


def test_tiled_blend_is_exact_for_a_pointwise_model():
    # A 1x1 convolution sees one pixel, so every tile predicts exactly what the whole image
    # does; any error in the weights' normalisation or coverage would show up here.
    inputs = keras.Input((None, None, 4))
    pointwise = keras.Model(inputs, keras.layers.Conv2D(1, 1, activation="sigmoid")(inputs))
    image, trimap = _smooth_image(90, 77), np.full((90, 77), 0.5, np.float32)
    whole = Matter(pointwise, TINY).predict_alpha(image, trimap)
    tiled = Matter(pointwise, TINY, max_pixels=1, tile=32, overlap=8).predict_alpha(image, trimap)
    assert len(tile_origins(90, 32, 8, 4)) * len(tile_origins(77, 32, 8, 4)) == 12
    np.testing.assert_allclose(tiled, whole, atol=1e-6)


def test_tiled_prediction_matches_the_whole_image(generator):
    # The U-Net's receptive field is wider than the overlap, so tiles differ from the whole
    # image near their borders; aligned origins and feathered weights keep that small.
    # Bounds measured once: max 0.009, mean 0.0008 against an output spread (std) of 0.07.
    image, trimap = _smooth_image(96, 80), np.full((96, 80), 0.5, np.float32)
    whole = Matter(generator, TINY).predict_alpha(image, trimap)
    tiled = Matter(generator, TINY, max_pixels=1, tile=64, overlap=32).predict_alpha(image, trimap)
    difference = np.abs(tiled - whole)
    assert whole.std() > 0.02
    assert difference.max() < 0.02
    assert difference.mean() < 2e-3
    # Without blending (each pixel from the last tile that covers it) the seams are worse.
    assert difference.mean() < _last_tile_wins(generator, image, trimap, 64).mean() / 2


def _last_tile_wins(generator, image, trimap, tile) -> np.ndarray:
    """|naive tiling - whole image|: overlapping tiles pasted over each other, no weights."""
    whole = Matter(generator, TINY).predict_alpha(image, trimap)
    pasted = np.zeros_like(whole)
    height, width = trimap.shape
    for top in tile_origins(height, tile, 32, 4):
        for left in tile_origins(width, tile, 32, 4):
            rows, cols = slice(top, top + tile), slice(left, left + tile)
            pasted[rows, cols] = _raw_network(generator, image[rows, cols], trimap[rows, cols])
    return np.abs(pasted - whole)


def test_working_size_keeps_the_aspect_ratio_on_the_pooling_grid(generator):
    matter = Matter(generator, TINY, network_pixels=250_000)
    assert matter.working_size(1000, 1000) == (500, 500)
    # Scale sqrt(250000 / 995328) = 0.501: 433.1 x 577.4, rounded to multiples of 4.
    assert matter.working_size(864, 1152) == (432, 576)
    # Scale 0.354: 7.07 x 1414.2 -> 8 x 1416; a side is never below the multiple.
    assert Matter(generator, TINY, network_pixels=10_000).working_size(20, 4000) == (8, 1416)
    assert Matter(generator, TINY, network_pixels=100).working_size(50, 50) == (8, 8)
    assert matter.working_size(300, 400) == (300, 400)  # within the budget: full size
    assert Matter(generator, TINY, network_pixels=0).working_size(3000, 4000) == (3000, 4000)


def test_a_large_window_runs_at_the_working_resolution(generator, monkeypatch):
    matter = Matter(generator, TINY, network_pixels=80 * 120 // 4)
    calls = []
    run = matter._run
    monkeypatch.setattr(matter, "_run", lambda batch: calls.append(batch.shape) or run(batch))
    image, trimap = _smooth_image(80, 120), _random_trimap(80, 120, seed=2)
    trimap[:, :8] = 0.5  # the unknown window is the whole image
    alpha = matter.predict_alpha(image, trimap)
    assert calls == [(1, 40, 60, 4)]
    assert alpha.shape == (80, 120)
    assert np.all(alpha[trimap == 0.0] == 0.0) and np.all(alpha[trimap == 1.0] == 1.0)
    unknown = alpha[trimap == 0.5]
    assert np.all((unknown >= 0) & (unknown <= 1)) and unknown.std() > 0


def _affine_network() -> keras.Model:
    """alpha = 0.2 R + 0.3 G + 0.1 B + 0.2 at every pixel (trimap ignored), in [0.2, 0.8]."""
    inputs = keras.Input((None, None, 4))
    layer = keras.layers.Conv2D(1, 1)
    outputs = layer(inputs)
    layer.set_weights([np.float32([0.2, 0.3, 0.1, 0.0]).reshape(1, 1, 4, 1), np.float32([0.2])])
    return keras.Model(inputs, outputs)


def test_working_resolution_recovers_full_resolution_detail():
    # A network whose matte is an affine function of the colours: at a quarter of the pixels
    # plus the guided filter it must give what it gives at full resolution, detail included.
    network = _affine_network()
    image, trimap = _smooth_image(96, 128), np.full((96, 128), 0.5, np.float32)
    full = Matter(network, TINY, network_pixels=0).predict_alpha(image, trimap)
    np.testing.assert_allclose(full, image @ np.float32([0.2, 0.3, 0.1]) + 0.2, atol=1e-6)
    small = Matter(network, TINY, network_pixels=96 * 128 // 4)
    working = small.predict_alpha(image, trimap)
    assert small.traced_shapes == {(1, 48, 64, 4)}
    np.testing.assert_allclose(working, full, atol=2e-3)


def test_trimap_without_unknown_is_returned_without_running_the_model(generator, monkeypatch):
    matter = Matter(generator, TINY)
    monkeypatch.setattr(matter, "_run", lambda batch: pytest.fail("the model should not run"))
    trimap = np.zeros((20, 30), np.float32)
    trimap[5:15, 10:20] = 1.0
    alpha = matter.predict_alpha(_smooth_image(20, 30), trimap)
    np.testing.assert_array_equal(alpha, trimap)


def test_tiles_without_unknown_pixels_are_skipped(generator, monkeypatch):
    matter = Matter(generator, TINY, max_pixels=1, tile=32, overlap=8)
    calls = []
    run = matter._run
    monkeypatch.setattr(matter, "_run", lambda batch: calls.append(batch.shape) or run(batch))
    trimap = np.zeros((90, 90), np.float32)
    trimap[2:6, 2:6] = 0.5  # only the top-left tile (rows and columns 0..31) holds unknowns
    matter.predict_alpha(_smooth_image(90, 90), trimap)
    assert calls == [(1, 32, 32, 4)]


def test_rejects_mismatched_shapes(matter):
    with pytest.raises(ValueError, match="differs"):
        matter.predict_alpha(_smooth_image(10, 12), np.zeros((12, 10), np.float32))


def test_extract_uses_pymatting_foreground(matter):
    from pymatting import estimate_foreground_ml

    image, trimap = _smooth_image(40, 48), _random_trimap(40, 48, seed=2)
    matte = matter.extract(image, trimap)
    np.testing.assert_allclose(matte.alpha, matter.predict_alpha(image, trimap))
    np.testing.assert_allclose(matte.foreground, estimate_foreground_ml(image, matte.alpha))
    np.testing.assert_array_equal(matte.rgba[..., :3], matte.foreground)
    np.testing.assert_array_equal(matte.rgba[..., 3], matte.alpha)


def test_one_pixel_foreground_is_the_pixel():
    image = np.float32([[[0.2, 0.4, 0.6]]])
    np.testing.assert_array_equal(estimate_foreground(image, np.float32([[0.5]])), image)


def test_load_restores_the_saved_weights(tmp_path, generator):
    run = write_run(tmp_path / "log")
    loaded = Matter.load("-1", tmp_path / "log")
    assert loaded.ref.step == 7 and loaded.ref.run_dir == run
    assert loaded.config == TINY
    # Reference: the same seed rebuilds the generator that was saved.
    keras.utils.set_random_seed(7)
    saved = build_generator(TINY)
    image, trimap = _smooth_image(24, 36), np.full((24, 36), 0.5, np.float32)
    np.testing.assert_allclose(
        loaded.predict_alpha(image, trimap), _raw_network(saved, image, trimap), atol=1e-6
    )


def test_default_checkpoint_falls_back_to_pretrained(tmp_path):
    write_run(tmp_path / "log", name="pretrained", step=3)
    assert Matter.load(log_dir=tmp_path / "log").ref.run_dir.name == "pretrained"
    write_run(tmp_path / "log", name="trained", step=5)
    assert Matter.load(log_dir=tmp_path / "log").ref.run_dir.name == "trained"


def test_load_reports_a_folder_without_checkpoints(tmp_path):
    (tmp_path / "log" / "empty" / "checkpoints").mkdir(parents=True)
    with pytest.raises(CheckpointError, match="no checkpoint"):
        Matter.load(str(tmp_path / "log" / "empty"), tmp_path / "log")


def test_load_reports_another_architecture(tmp_path):
    run = write_run(tmp_path / "log")
    wider = {"model": {**TINY.to_dict(), "base_filters": 8}}
    (run / "config.json").write_text(json.dumps(wider), encoding="utf-8")
    with pytest.raises(CheckpointError, match="does not match the architecture") as caught:
        Matter.load("-1", tmp_path / "log")
    assert "\n" not in str(caught.value)


def test_load_reports_a_config_without_model(tmp_path):
    run = write_run(tmp_path / "log")
    (run / "config.json").write_text("{}", encoding="utf-8")
    with pytest.raises(CheckpointError, match='no "model" section'):
        Matter.load("-1", tmp_path / "log")


def test_load_reports_a_corrupt_checkpoint(tmp_path):
    run = write_run(tmp_path / "log")
    for data in (run / "checkpoints").glob("ckpt-7.data-*"):
        data.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="ckpt-7"):
        Matter.load("-1", tmp_path / "log")


def test_matte_rgba_stacks_foreground_and_alpha():
    matte = Matte(np.full((2, 3), 0.25, np.float32), np.zeros((2, 3, 3), np.float32))
    assert matte.rgba.shape == (2, 3, 4)
    np.testing.assert_array_equal(matte.rgba[..., 3], 0.25)


def test_the_network_runs_only_on_the_window_around_the_unknown_region(generator, monkeypatch):
    matter = Matter(generator, TINY)
    shapes = []
    run = matter._run
    monkeypatch.setattr(matter, "_run", lambda batch: shapes.append(batch.shape) or run(batch))
    image, trimap = _smooth_image(200, 240), np.zeros((200, 240), np.float32)
    trimap[90:110, 100:130] = 0.5
    trimap[95:105, 110:120] = 1.0
    alpha = matter.predict_alpha(image, trimap)
    # Rows 90-64=26 rounded down to 24 .. 110+64=174; columns 36 .. 194; padded to 152 x 160.
    assert unknown_window(trimap == 0.5, 4, CONTEXT) == (slice(24, 174), slice(36, 194))
    assert shapes == [(1, 152, 160, 4)]
    # The tiny U-Net sees far less than CONTEXT pixels, so the unknown pixels are exactly what
    # the network gives on the whole image.
    whole = clamp_to_trimap(_raw_network(generator, image, trimap), trimap)
    np.testing.assert_allclose(alpha, whole, atol=1e-5)


def test_many_input_sizes_do_not_warn_about_retracing(generator, capfd, caplog):
    # Each size is its own trace by design; TensorFlow warns after five of them.
    matter = Matter(generator, TINY)
    for side in range(8, 64, 8):
        matter.predict_alpha(_smooth_image(side, side), np.full((side, side), 0.5, np.float32))
    assert len(matter.traced_shapes) == 7
    assert "retracing" not in capfd.readouterr().err + caplog.text


def test_a_generator_with_a_prior_starts_from_closed_form():
    # An untrained prior generator returns its prior (clipped to [0.01, 0.99]); Matter must feed
    # it the closed-form matte of exactly the pixels it sees.
    size = 48
    ramp = np.clip((np.arange(size) - 16) / 16, 0, 1).astype(np.float32)
    truth = np.tile(ramp, (size, 1))
    image = (truth[..., None] * [0.9, 0.2, 0.1] + (1 - truth[..., None]) * [0.1, 0.3, 0.8]).astype(
        np.float32
    )
    trimap = np.where(truth == 0, 0.0, np.where(truth == 1, 1.0, 0.5)).astype(np.float32)
    cfg = dataclasses.replace(TINY, prior="closed-form")
    matter = Matter(build_generator(cfg), cfg, network_pixels=0)
    expected = np.clip(closed_form_prior(image, trimap), PRIOR_EPSILON, 1 - PRIOR_EPSILON)
    expected = np.where(trimap == 0.5, expected, trimap)
    np.testing.assert_allclose(matter.predict_alpha(image, trimap), expected, atol=1e-5)
