"""The shipped snapshot on the demo photo: a regression pin (issue 13).

``DEMO_SAD`` was measured with eval.py's defaults (working resolution 384², closed-form prior)
on ``docs/demo/photo.png`` and its trimap when ``log/pretrained`` was exported from step 1100
of the prior run (see log/pretrained/README.md). A new snapshot may lower it; one that raises
it by more than 2 % fails here, and the constant is updated with the README in the same commit.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from model.images import read_alpha, read_image, read_trimap
from model.inference import Matter
from model.metrics import sad

REPO = Path(__file__).resolve().parent.parent
DEMO = REPO / "docs" / "demo"

DEMO_SAD = 1.5941
"""SAD (thousands, unknown region) of the shipped snapshot on the demo photo."""

PREVIOUS_SNAPSHOT_SAD = 2.9522
"""The same for the snapshot before the prior (git a41b1d3), which this one must stay under."""


@pytest.mark.slow
def test_demo_photo_sad_has_not_regressed():
    image = read_image(DEMO / "photo.png")
    trimap = read_trimap(DEMO / "trimap.png", shape=image.shape[:2])
    truth = read_alpha(DEMO / "alpha.png")
    matter = Matter.load(str(REPO / "log" / "pretrained"), REPO / "log")
    assert matter.config.prior == "closed-form"
    score = sad(matter.predict_alpha(image, trimap), truth, trimap)
    assert score <= DEMO_SAD * 1.02, f"demo SAD {score:.4f} regressed from {DEMO_SAD}"
    assert score < PREVIOUS_SNAPSHOT_SAD
