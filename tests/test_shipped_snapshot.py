"""The shipped snapshot on the demo photo: a regression pin (issue 13), on the default engine.

``log/pretrained`` ships its checkpoint and ``model.onnx``, an export of that checkpoint with
float16-stored weights, which eval.py and serve.py run by default (``model/engine.py``).

``DEMO_SAD`` was measured with eval.py's defaults (working resolution 384², closed-form prior)
on ``docs/demo/photo.png`` and its trimap when ``log/pretrained`` was exported from step 1100
of the prior run (see log/pretrained/README.md): 1.5941 through the ONNX export and through
TensorFlow alike. A new snapshot may lower it; one that raises it by more than 2 % fails here,
and the constant is updated with the README in the same commit.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from model.checkpoints import resolve_checkpoint
from model.engine import EXPORT_NAME, checkpoint_digest, choose_export
from model.export_contract import read_contract
from model.images import read_alpha, read_image, read_trimap
from model.inference import Matter
from model.metrics import sad

REPO = Path(__file__).resolve().parent.parent
DEMO = REPO / "docs" / "demo"
PRETRAINED = REPO / "log" / "pretrained"

DEMO_SAD = 1.5941
"""SAD (thousands, unknown region) of the shipped snapshot on the demo photo."""

PREVIOUS_SNAPSHOT_SAD = 2.9522
"""The same for the snapshot before the prior (git a41b1d3), which this one must stay under."""

SIZE_BUDGET = 25_000_000
"""Issue 13: the shipped snapshot folder holds at most 25 MB (checkpoint + export + docs)."""

EXPORT_ALPHA_TOLERANCE = 2e-3
"""Max |alpha difference| between the export (float16 weights) and TensorFlow on the demo photo;
measured 3.6e-4."""


@pytest.fixture(scope="module")
def demo() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    image = read_image(DEMO / "photo.png")
    trimap = read_trimap(DEMO / "trimap.png", shape=image.shape[:2])
    return image, trimap, read_alpha(DEMO / "alpha.png")


@pytest.fixture
def fresh_log(tmp_path) -> Path:
    """A log folder holding nothing but the shipped snapshot, as in a fresh clone."""
    (tmp_path / "log").mkdir()
    (tmp_path / "log" / "pretrained").symlink_to(PRETRAINED, target_is_directory=True)
    return tmp_path / "log"


def test_shipped_export_is_of_the_shipped_checkpoint():
    ref = resolve_checkpoint(str(PRETRAINED))
    contract = read_contract(PRETRAINED / EXPORT_NAME, "onnx")
    assert contract["source"]["sha256"] == checkpoint_digest(ref.path), (
        "log/pretrained/model.onnx is stale: re-export it (log/pretrained/README.md)"
    )
    assert contract["source"]["step"] == ref.step
    assert (contract["precision"], contract["compute"]) == ("float16", "float32")
    assert choose_export(ref, "onnx") == PRETRAINED / EXPORT_NAME


def test_shipped_snapshot_fits_its_size_budget():
    total = sum(path.stat().st_size for path in PRETRAINED.rglob("*") if path.is_file())
    assert total <= SIZE_BUDGET


@pytest.mark.slow
def test_demo_photo_sad_has_not_regressed_on_the_default_engine(demo, fresh_log):
    image, trimap, truth = demo
    matter = Matter.load("-1", fresh_log)
    assert (matter.engine, matter.ref.path.name) == ("onnxruntime", EXPORT_NAME)
    assert matter.config.prior == "closed-form"
    score = sad(matter.predict_alpha(image, trimap), truth, trimap)
    assert score <= DEMO_SAD * 1.02, f"demo SAD {score:.4f} regressed from {DEMO_SAD}"
    assert score < PREVIOUS_SNAPSHOT_SAD


@pytest.mark.slow
def test_tensorflow_path_agrees_with_the_shipped_export(demo, fresh_log):
    image, trimap, truth = demo
    exported = Matter.load("-1", fresh_log, engine="onnx").predict_alpha(image, trimap)
    matter = Matter.load("-1", fresh_log, engine="tensorflow")
    assert matter.engine == "tensorflow"
    alpha = matter.predict_alpha(image, trimap)
    assert np.abs(exported - alpha).max() <= EXPORT_ALPHA_TOLERANCE
    score = sad(alpha, truth, trimap)
    assert score <= DEMO_SAD * 1.02, f"demo SAD {score:.4f} regressed from {DEMO_SAD}"
    assert abs(sad(exported, truth, trimap) - score) <= 0.005 * score
