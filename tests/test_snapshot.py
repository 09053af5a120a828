"""scripts/snapshot.py: a generator-only snapshot predicts exactly what its checkpoint does."""

from __future__ import annotations

import json

import numpy as np
import tensorflow as tf

from model.inference import Matter
from model.networks import ModelConfig, build_discriminator, build_generator
from scripts import snapshot

TINY = ModelConfig(base_filters=4, depth=2, norm="none", disc_filters=4, disc_layers=2)


def _training_run(log_dir, step=40):
    """A run as train.py leaves it: G, D and two Adam optimisers with state, plus config.json."""
    run = log_dir / "run"
    generator, discriminator = build_generator(TINY), build_discriminator(TINY)
    optimizers = [tf.keras.optimizers.Adam(), tf.keras.optimizers.Adam()]
    for optimizer, model in zip(optimizers, (generator, discriminator), strict=True):
        optimizer.build(model.trainable_variables)
    checkpoint = tf.train.Checkpoint(
        generator=generator,
        discriminator=discriminator,
        g_optimizer=optimizers[0],
        d_optimizer=optimizers[1],
    )
    tf.train.CheckpointManager(checkpoint, run / "checkpoints", 3, checkpoint_name="ckpt").save(
        checkpoint_number=step
    )
    (run / "config.json").write_text(json.dumps({"model": TINY.to_dict()}), encoding="utf-8")
    return run


def test_snapshot_holds_the_same_generator_and_less(tmp_path):
    run = _training_run(tmp_path / "log")
    out = tmp_path / "log" / "pretrained"
    assert snapshot.main(snapshot.build_parser().parse_args([str(run), "--out", str(out)])) == 0

    assert json.loads((out / "config.json").read_text()) == json.loads(
        (run / "config.json").read_text()
    )
    assert (out / "checkpoints" / "ckpt-40.index").exists()
    full = sum(p.stat().st_size for p in (run / "checkpoints").glob("ckpt-40.*"))
    lean = sum(p.stat().st_size for p in (out / "checkpoints").glob("ckpt-40.*"))
    assert lean < full / 2

    rng = np.random.default_rng(0)
    image = rng.uniform(0, 1, (20, 28, 3)).astype(np.float32)
    trimap = np.full((20, 28), 0.5, np.float32)
    expected = Matter.load(str(run)).predict_alpha(image, trimap)
    exported = Matter.load(str(out))
    assert exported.ref.step == 40
    np.testing.assert_array_equal(exported.predict_alpha(image, trimap), expected)
    # With no trained run beside it, the default checkpoint is the snapshot.
    (run / "checkpoints" / "ckpt-40.index").unlink()
    assert Matter.load("-1", tmp_path / "log").ref.run_dir == out


def test_existing_output_is_kept_without_force(tmp_path, capsys):
    run = _training_run(tmp_path / "log")
    out = tmp_path / "snap"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    assert snapshot.main(snapshot.build_parser().parse_args([str(run), "--out", str(out)])) == 1
    assert (out / "keep.txt").read_text() == "mine"
    error = capsys.readouterr().err.strip()
    assert error.startswith(f"error: {out}:") and "--force" in error and "\n" not in error

    assert (
        snapshot.main(snapshot.build_parser().parse_args([str(run), "--out", str(out), "--force"]))
        == 0
    )
    assert not (out / "keep.txt").exists() and (out / "config.json").exists()


def test_missing_checkpoint_is_one_line(tmp_path, capsys):
    args = snapshot.build_parser().parse_args(
        [str(tmp_path / "nothing"), "--out", str(tmp_path / "o")]
    )
    assert snapshot.main(args) == 1
    error = capsys.readouterr().err
    assert error.startswith("error: ") and error.count("\n") == 1
    assert not (tmp_path / "o").exists()
