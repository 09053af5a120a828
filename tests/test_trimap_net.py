"""The trimap network (``--task trimap``): network, losses, targets, data layouts, metrics,
training, inference, and the config migration that gave it the task name."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
import tensorflow as tf

from model.checkpoints import read_run_config, run_task
from model.dataset import DatasetError
from model.metrics import class_metrics
from model.networks import ModelConfig, build_generator
from model.networks.config import CONFIG_VERSION, section_task
from model.trimap_data import find_pairs, make_trimap_dataset, target_trimap, trimap_classes
from model.trimap_losses import TrimapLossWeights, trimap_losses

ROOT = Path(__file__).resolve().parents[1]
TINY = ModelConfig(task="trimap", encoder="unet", base_filters=4, depth=2, encoder_weights=None)


# --- config migration ---------------------------------------------------------------------


def test_unversioned_and_version_1_trimap_configs_are_matting_generators():
    # Before version 2, "trimap" named the trimap-conditioned matting generator.
    assert ModelConfig.from_dict({"task": "trimap", "depth": 2}).task == "matting"
    assert ModelConfig.from_dict({"task": "trimap", "version": 1}).task == "matting"
    assert ModelConfig.from_dict({}).task == "matting"
    assert ModelConfig.from_dict({"task": "plate"}).task == "plate"
    assert section_task({"task": "trimap"}) == "matting"
    # From version 2 on the name means the trimap network.
    assert ModelConfig.from_dict({"task": "trimap", "version": 2}).task == "trimap"
    assert section_task({"task": "trimap", "version": 2}) == "trimap"
    assert ModelConfig.from_dict(TINY.to_dict()) == TINY
    assert TINY.to_dict()["version"] == CONFIG_VERSION == 2
    with pytest.raises(ValueError, match="version 3 is newer"):
        ModelConfig.from_dict({"version": 3})
    with pytest.raises(ValueError, match="task 'trimap' needs prior None"):
        ModelConfig(task="trimap", prior="closed-form")


def test_old_run_folder_with_task_trimap_loads_as_matting(tmp_path):
    run = tmp_path / "old"
    run.mkdir()
    # What train.py wrote before version 2 for a matting generator.
    section = {"base_filters": 4, "depth": 2, "encoder": "unet", "task": "trimap"}
    (run / "config.json").write_text(json.dumps({"model": section, "version": 1}))
    assert read_run_config(run)[0].task == "matting"
    assert run_task(run) == "matting"


@pytest.mark.parametrize(
    ("snapshot", "task"), [("pretrained", "matting"), ("pretrained-plate", "plate")]
)
def test_shipped_snapshots_keep_their_task(snapshot, task):
    assert read_run_config(ROOT / "log" / snapshot)[0].task == task


# --- network, losses, targets, metrics --------------------------------------------------------


def test_network_output_shape_and_dtype():
    network = build_generator(TINY)
    logits = network(np.zeros((2, 16, 24, 3), np.float32))
    assert tuple(logits.shape) == (2, 16, 24, 3) and logits.dtype == tf.float32
    mobile = build_generator(
        ModelConfig(task="trimap", encoder="mobilenetv2", base_filters=4, encoder_weights=None)
    )
    assert tuple(mobile(np.zeros((1, 64, 32, 3), np.float32)).shape) == (1, 64, 32, 3)


def _reference_losses(logits: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """The loss equations written out in float64, pixel by pixel."""
    q = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
    ce = bce = 0.0
    pixels = labels.size
    for index in np.ndindex(labels.shape):
        ce -= math.log(q[index][labels[index]])
        y, p = float(labels[index] == 2), q[index][2]
        bce -= y * math.log(p) + (1 - y) * math.log(1 - p)
    dice = 0.0
    for b in range(labels.shape[0]):
        p, y = q[b, ..., 2], (labels[b] == 2).astype(float)
        dice += 1 - (2 * (p * y).sum() + 1) / (p.sum() + y.sum() + 1)
    return {"ce": ce / pixels, "bce": bce / pixels, "dice": dice / labels.shape[0]}


def test_losses_match_a_hand_computed_reference():
    # One pixel by hand: logits (0, 0, ln 2) -> q = (1/4, 1/4, 1/2); label fg:
    # ce = ln 2, bce = ln 2, dice = 1 - (2 * 0.5 + 1) / (0.5 + 1 + 1) = 0.2.
    one = trimap_losses(np.array([[[[0.0, 0.0, math.log(2.0)]]]]), np.array([[[2]]]))
    assert float(one["ce"]) == pytest.approx(math.log(2.0), abs=1e-6)
    assert float(one["bce"]) == pytest.approx(math.log(2.0), abs=1e-6)
    assert float(one["dice"]) == pytest.approx(0.2, abs=1e-6)
    assert float(one["total"]) == pytest.approx(2 * math.log(2.0) + 0.2, abs=1e-6)

    rng = np.random.default_rng(0)
    logits = rng.normal(0, 2, (2, 3, 4, 3)).astype(np.float32)
    labels = rng.integers(0, 3, (2, 3, 4))
    got = trimap_losses(logits, labels, TrimapLossWeights(ce=1.0, bce=0.5, dice=2.0))
    want = _reference_losses(logits.astype(np.float64), labels)
    for key in ("ce", "bce", "dice"):
        assert float(got[key]) == pytest.approx(want[key], rel=1e-5)
    total = want["ce"] + 0.5 * want["bce"] + 2.0 * want["dice"]
    assert float(got["total"]) == pytest.approx(total, rel=1e-5)


def test_bce_stays_finite_when_the_softmax_saturates():
    losses = trimap_losses(np.array([[[[200.0, 0.0, -200.0]]]]), np.array([[[2]]]))
    assert float(losses["bce"]) == pytest.approx(400.0, rel=1e-5)
    assert float(losses["ce"]) == pytest.approx(400.0, rel=1e-5)


def test_target_trimap_from_a_mask_matches_the_hand_drawn_band():
    mask = np.zeros((11, 11), np.float32)
    mask[3:8, 3:8] = 0.9  # a hard mask once thresholded at 0.5
    # band 0.1 of the 11-px side: r = 1, a 3 x 3 elliptical kernel, which is a cross, so one
    # pixel off each region's edge except diagonally: the ring's four corners stay background.
    trimap = target_trimap(mask, soft=False, band=0.1)
    expected = np.zeros((11, 11), np.float32)
    expected[2:9, 2:9] = 0.5
    expected[4:7, 4:7] = 1.0
    expected[[2, 2, 8, 8], [2, 8, 2, 8]] = 0.0
    np.testing.assert_array_equal(trimap, expected)
    # A soft alpha keeps its partial pixels unknown; band 0 adds no margin.
    alpha = np.zeros((5, 5), np.float32)
    alpha[1:4, 1:4] = 1.0
    alpha[2, 0] = 0.3
    soft = target_trimap(alpha, soft=True, band=0.0)
    assert soft[2, 0] == 0.5 and soft[2, 2] == 1.0 and soft[0, 4] == 0.0
    np.testing.assert_array_equal(trimap_classes(expected)[4, 1:5], [0, 1, 1, 2])


def test_class_metrics_per_class():
    gt = np.array([[0, 0, 1, 2]])
    pred = np.array([[0, 1, 1, 2]])
    scores = class_metrics(pred, gt, ("bg", "unknown", "fg"))
    # bg: P={0}, G={0,1} -> IoU 1/2, Dice 2/3, masks agree on 3 of 4 pixels.
    assert scores["iou_bg"] == 0.5 and scores["dice_bg"] == pytest.approx(2 / 3)
    assert scores["acc_bg"] == 0.75
    # unknown: P={1,2}, G={2} -> IoU 1/2; fg: perfect.
    assert scores["iou_unknown"] == 0.5 and scores["iou_fg"] == 1.0
    assert scores["miou"] == pytest.approx(2 / 3) and scores["accuracy"] == 0.75


# --- data layouts -------------------------------------------------------------------------------


def _write_pair(images: Path, targets: Path, name: str, suffix: str = ".png") -> None:
    images.mkdir(parents=True, exist_ok=True)
    targets.mkdir(parents=True, exist_ok=True)
    mask = np.zeros((20, 24), np.uint8)
    mask[5:15, 6:18] = 255
    cv2.imwrite(str(images / f"{name}{suffix}"), np.dstack([mask // 2] * 3))
    cv2.imwrite(str(targets / f"{name}.png"), mask)


def test_the_three_layouts_are_found(tmp_path):
    combine = tmp_path / "combine"
    _write_pair(combine / "train/image", combine / "train/alpha", "a")
    pairs = find_pairs(combine, "train")
    assert [(p.name, p.soft) for p in pairs] == [("a", True)]

    flat = tmp_path / "flat"
    _write_pair(flat / "images", flat / "masks", "b", ".jpg")
    _write_pair(flat / "images", flat / "masks", "c", ".jpg")
    (flat / "images" / "no_mask.jpg").write_bytes((flat / "images" / "b.jpg").read_bytes())
    assert [(p.name, p.soft) for p in find_pairs(flat, "train")] == [("b", False), ("c", False)]
    with pytest.raises(DatasetError, match="no val image/target pairs"):
        find_pairs(flat, "val")

    duts = tmp_path / "duts"
    _write_pair(duts / "DUTS-TR/DUTS-TR-Image", duts / "DUTS-TR/DUTS-TR-Mask", "d", ".jpg")
    _write_pair(duts / "DUTS-TE/DUTS-TE-Image", duts / "DUTS-TE/DUTS-TE-Mask", "e", ".jpg")
    assert [p.name for p in find_pairs(duts, "train")] == ["d"]
    assert [p.name for p in find_pairs(duts, "val")] == ["e"]

    batch = next(iter(make_trimap_dataset(duts, "train", size=32, batch_size=2, seed=1)))
    assert batch["image"].shape == (2, 32, 32, 3) and batch["labels"].shape == (2, 32, 32)
    assert set(np.unique(batch["labels"].numpy())) <= {0, 1, 2}
    whole = next(iter(make_trimap_dataset(duts, "val", size=24, batch_size=4, repeat=False)))
    # Unaugmented: the 20 x 24 mask resized to 24 x 24 keeps all three classes.
    assert set(np.unique(whole["labels"].numpy())) == {0, 1, 2}


def test_missing_layout_names_the_folder(tmp_path):
    with pytest.raises(DatasetError, match=r"no train image/target pairs; expected"):
        find_pairs(tmp_path, "train")
    (tmp_path / "images").mkdir()
    (tmp_path / "masks").mkdir()
    _write_pair(tmp_path / "images", tmp_path / "elsewhere", "x")
    with pytest.raises(DatasetError, match="no image has a file of the same stem"):
        find_pairs(tmp_path, "train")


# --- training and inference -----------------------------------------------------------------


@pytest.mark.parametrize("compiled", [False, True])
def test_one_training_step_changes_the_weights(compiled):
    from model.training import TrainSettings
    from model.training.trimap_trainer import build_trimap_trainer

    trainer = build_trimap_trainer(TINY, TrainSettings(lr=1e-2))
    before = [w.numpy().copy() for w in trainer.generator.trainable_weights]
    rng = np.random.default_rng(0)
    batch = {
        "image": tf.constant(rng.uniform(size=(2, 16, 16, 3)), tf.float32),
        "labels": tf.constant(rng.integers(0, 3, (2, 16, 16)), tf.int32),
    }
    step = tf.function(trainer.train_step) if compiled else trainer.train_step
    logs = step(batch)
    assert set(logs) == {"ce", "bce", "dice", "total"}
    assert all(np.isfinite(float(value)) for value in logs.values())
    after = trainer.generator.trainable_weights
    assert any(not np.allclose(b, a.numpy()) for b, a in zip(before, after, strict=True))


def test_train_cli_resume_and_network_trimapper(tmp_path):
    import train
    from model.trimap_inference import NetworkTrimapper, make_trimapper

    data = tmp_path / "data"
    for split in ("train", "val"):
        for index in range(3):
            _write_pair(data / split / "images", data / split / "masks", f"{split}{index}")
    common = ["--log-dir", str(tmp_path / "log"), "--run", "t", "--quiet"]
    args = [str(data), "--task", "trimap", "--encoder", "unet", "--base-filters", "4",
            "--depth", "2", "--crop-size", "32", "--batch-size", "2", "--save-every", "2",
            "--val-every", "2", "--max-val-samples", "2", *common]  # fmt: skip
    assert train.main([*args, "--steps", "2"]) == 0
    run = tmp_path / "log" / "t"
    config = json.loads((run / "config.json").read_text())
    assert config["model"]["task"] == "trimap" and config["version"] == 2
    records = [json.loads(line) for line in (run / "validation.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [0, 2]
    assert {"iou_fg", "dice_unknown", "acc_bg", "miou", "accuracy"} <= set(records[-1])
    assert train.main([*common, "--resume", "--steps", "4"]) == 0
    assert (run / "checkpoints" / "ckpt-4.index").exists()

    trimapper = make_trimapper(str(run))
    assert isinstance(trimapper, NetworkTrimapper) and trimapper.size == 32
    trimap = trimapper(np.random.default_rng(0).uniform(size=(30, 41, 3)).astype(np.float32))
    assert trimap.shape == (30, 41) and set(np.unique(trimap)) <= {0.0, 0.5, 1.0}
    probabilities = trimapper.probabilities(np.zeros((7, 9, 3), np.float32))
    np.testing.assert_allclose(probabilities.sum(-1), 1.0, atol=1e-5)


def test_a_matting_run_is_refused_as_trimap_model(tmp_path):
    from model.checkpoints import CheckpointError
    from model.trimap_inference import NetworkTrimapper

    shutil.copytree(ROOT / "log" / "pretrained", tmp_path / "m")
    with pytest.raises(CheckpointError, match="a matting model, not a trimap network"):
        NetworkTrimapper(tmp_path / "m")


# --- one-line errors of the new command-line paths ---------------------------------------------


def _run(*args: str, cwd: Path) -> tuple[int, list[str]]:
    import subprocess
    import sys

    result = subprocess.run(
        [sys.executable, *args], cwd=cwd, capture_output=True, text=True, timeout=300
    )
    # TensorFlow's C++ start-up notices are not ours.
    lines = [line for line in result.stderr.splitlines() if line.startswith("error")]
    assert "Traceback" not in result.stderr
    return result.returncode, lines


def test_bad_input_of_the_new_paths_gives_one_line(tmp_path):
    photo = tmp_path / "photo.png"
    cv2.imwrite(str(photo), np.full((8, 8, 3), 128, np.uint8))
    missing = tmp_path / "no-such-run"
    shutil.copytree(ROOT / "log" / "pretrained", tmp_path / "matting")
    code, lines = _run(str(ROOT / "train.py"), str(tmp_path / "empty"), "--task", "trimap",
                       "--log-dir", str(tmp_path / "log"), cwd=tmp_path)  # fmt: skip
    assert code == 2 and lines == [f"error: {tmp_path / 'empty'}: no such folder"]
    for tool in ("generate_trimaps.py", "eval.py"):
        outputs = [] if tool == "generate_trimaps.py" else [str(tmp_path / "out.png")]
        code, lines = _run(str(ROOT / tool), str(photo), *outputs, "--trimap-model",
                           str(missing), cwd=tmp_path)  # fmt: skip
        assert code == 2 and lines == [f"error: {missing}: no such checkpoint"], tool
        code, lines = _run(str(ROOT / tool), str(photo), *outputs, "--trimap-model",
                           str(tmp_path / "matting"), cwd=tmp_path)  # fmt: skip
        assert code == 2 and len(lines) == 1, tool
        assert "a matting model, not a trimap network" in lines[0], tool
    assert not (tmp_path / "photo_trimap.png").exists() and not (tmp_path / "out.png").exists()
