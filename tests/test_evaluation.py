"""Tests for model.evaluation and ``eval.py --evaluate``: samples, scores, table, CSV, figure."""

from __future__ import annotations

import csv
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from test_inference import TINY, write_run

import eval as eval_cli
from model.evaluation import (
    CELL,
    HEADER,
    EvaluationError,
    Result,
    evaluate,
    figure_columns,
    figure_indices,
    find_samples,
    format_table,
    make_figure,
    solved_by_all,
    summarise,
    unmatched,
)
from model.images import read_alpha, read_image, read_trimap, write_png
from model.inference import Matter
from model.metrics import all_metrics
from model.networks import build_generator


@pytest.fixture(scope="module")
def log_dir(tmp_path_factory) -> Path:
    log = tmp_path_factory.mktemp("evaluation") / "log"
    write_run(log)
    return log


@pytest.fixture(scope="module")
def matter() -> Matter:
    return Matter(build_generator(TINY), TINY)


def _copy_split(tiny_dataset: Path, destination: Path) -> Path:
    """A writable copy of the tiny test split, with only image/, trimap/ and alpha/."""
    for kind in ("image", "trimap", "alpha"):
        shutil.copytree(tiny_dataset / "test" / kind, destination / kind)
    return destination


def test_find_samples_matches_stems_across_extensions(tmp_path):
    for kind in ("image", "trimap", "alpha"):
        (tmp_path / kind).mkdir()
    for name in ("b", "a", "c"):
        (tmp_path / "image" / f"{name}.jpg").write_bytes(b"")
        (tmp_path / "trimap" / f"{name}.png").write_bytes(b"")
    (tmp_path / "alpha" / "a.png").write_bytes(b"")
    (tmp_path / "alpha" / "b.tif").write_bytes(b"")
    (tmp_path / "alpha" / "notes.txt").write_bytes(b"")
    samples = find_samples(tmp_path)
    assert [s.name for s in samples] == ["a", "b"]
    assert samples[1].alpha == tmp_path / "alpha" / "b.tif"
    assert samples[1].image == tmp_path / "image" / "b.jpg"
    assert unmatched(tmp_path) == ["c"]
    assert [s.name for s in find_samples(tmp_path, limit=1)] == ["a"]


def test_find_samples_errors(tmp_path):
    with pytest.raises(EvaluationError, match="no such folder"):
        find_samples(tmp_path / "missing")
    (tmp_path / "image").mkdir()
    (tmp_path / "trimap").mkdir()
    with pytest.raises(EvaluationError, match="no alpha/ subfolder"):
        find_samples(tmp_path)
    (tmp_path / "alpha").mkdir()
    with pytest.raises(EvaluationError, match="no image with both"):
        find_samples(tmp_path)


def test_evaluate_scores_each_method_like_a_direct_call(tiny_dataset, matter):
    from pymatting import estimate_alpha_cf

    samples = find_samples(tiny_dataset / "test")
    report = evaluate(samples, ["ours", "closed-form", "knn"], matter, progress=False)
    assert [(r.method, r.sample) for r in report.results] == [
        (method, sample.name) for sample in samples for method in ("ours", "closed-form", "knn")
    ]
    assert all(r.error is None and r.seconds > 0 for r in report.results)
    # Reference: pymatting and the metrics called directly on the files.
    sample = samples[0]
    image, truth = read_image(sample.image), read_alpha(sample.alpha)
    trimap = read_trimap(sample.trimap)
    direct = estimate_alpha_cf(image.astype(np.float64), trimap.astype(np.float64))
    expected = all_metrics(np.clip(direct, 0, 1).astype(np.float32), truth, trimap)
    scored = next(r for r in report.results if r.method == "closed-form")
    assert scored.sad == pytest.approx(expected["sad"], rel=1e-6)
    assert scored.conn == pytest.approx(expected["conn"], rel=1e-6)
    ours = next(r for r in report.results if r.method == "ours")
    expected_ours = all_metrics(matter.predict_alpha(image, trimap), truth, trimap)
    assert ours.mse == pytest.approx(expected_ours["mse"], rel=1e-6)
    assert len(report.panels) == len(samples)
    assert set(report.panels[0]) == {
        "name",
        "input",
        "trimap",
        "truth",
        "ours",
        "closed-form",
        "knn",
    }


def test_a_call_that_traced_the_network_is_timed_again(tiny_dataset, monkeypatch):
    # A fresh model traces once per new input shape; that call is repeated and the repeat
    # timed, so no sample's seconds include a trace.
    matter = Matter(build_generator(TINY), TINY)
    calls = []
    predict = matter.predict_alpha
    monkeypatch.setattr(
        matter, "predict_alpha", lambda image, trimap: calls.append(1) or predict(image, trimap)
    )
    samples = find_samples(tiny_dataset / "test")
    evaluate(samples, ["ours"], matter, progress=False)
    shapes = len(matter.traced_shapes)
    assert 1 <= shapes < len(samples)
    assert len(calls) == len(samples) + shapes


def test_a_method_failure_is_recorded_and_the_rest_goes_on(tiny_dataset, tmp_path):
    root = _copy_split(tiny_dataset, tmp_path / "data")
    name = find_samples(root)[0].name
    # Unknown and background only: pymatting refuses a trimap without foreground.
    trimap = np.full((64, 64), 128, np.uint8)
    trimap[:8] = 0
    write_png(root / "trimap" / f"{name}.png", trimap)
    messages = []
    report = evaluate(find_samples(root), ["closed-form"], progress=False, on_error=messages.append)
    failed = [r for r in report.results if r.error]
    assert [r.sample for r in failed] == [name] and math.isnan(failed[0].sad)
    assert len(messages) == 1 and "foreground" in messages[0]
    assert summarise(report.results)[0]["failed"] == 1


def test_summarise_means_by_hand():
    results = [
        Result("ours", "a", sad=1.0, mse=0.002, grad=3.0, conn=4.0, seconds=0.5),
        Result("ours", "b", sad=3.0, mse=0.004, grad=5.0, conn=6.0, seconds=1.5),
        Result("knn", "a", sad=2.0, mse=0.001, grad=1.0, conn=1.0, seconds=2.0),
        Result("knn", "b", error="b: knn failed"),
    ]
    ours, knn = summarise(results)
    assert ours == pytest.approx(
        {
            "method": "ours",
            "samples": 2,
            "failed": 0,
            "sad": 2.0,
            "mse_e3": 3.0,
            "grad": 4.0,
            "conn": 5.0,
            "seconds": 1.0,
        }
    )
    assert knn["samples"] == 1 and knn["failed"] == 1 and knn["sad"] == 2.0
    table = format_table([ours, knn])
    assert table.splitlines()[0].split()[:4] == ["method", "n", "failed", "SAD"]
    assert table.splitlines()[1].split() == [
        "ours",
        "2",
        "0",
        "2.000",
        "3.000",
        "4.000",
        "5.000",
        "1.000",
    ]


def test_make_figure_layout():
    grey = np.full((20, 40), 200, np.uint8)
    panel = {
        "name": "a",
        "input": np.zeros((20, 40, 3), np.uint8),
        "trimap": grey,
        "truth": grey,
        "ours": grey,
        "closed-form": grey,
    }
    figure = make_figure([panel, panel], ["ours", "closed-form"])
    labels = [label for _, label in figure_columns(["ours", "closed-form"])]
    assert labels == ["input", "trimap", "closed-form", "ours", "ground truth"]
    assert figure.shape == (HEADER + 2 * CELL, 5 * CELL, 3) and figure.dtype == np.uint8
    # Column 0 of each row holds the black input at the cell centre; others the 200-grey matte.
    centre = HEADER + CELL // 2
    assert tuple(figure[centre, CELL // 2]) == (0, 0, 0)
    assert tuple(figure[centre + CELL, 3 * CELL + CELL // 2]) == (200, 200, 200)
    # The label row has dark text on white.
    assert figure[:HEADER].min() < 100 and figure[0, 0].tolist() == [255, 255, 255]


def _read_csv(path: Path) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def test_cli_evaluate_writes_table_csv_and_figure(tiny_dataset, log_dir, tmp_path, capsys):
    args = ["--evaluate", str(tiny_dataset / "test"), "--log-dir", str(log_dir)]
    assert eval_cli.main([*args, "--csv", str(tmp_path / "scores.csv")]) == 0
    rows = _read_csv(tmp_path / "scores.csv")
    assert [row["method"] for row in rows] == ["ours", "closed-form", "knn"]
    assert all(row["samples"] == "2" and float(row["sad"]) > 0 for row in rows)
    assert len(_read_csv(tmp_path / "scores_samples.csv")) == 2 * 3
    with Image.open(tmp_path / "scores.png") as figure:
        assert figure.size == (6 * CELL, HEADER + 2 * CELL)
    printed = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in printed[:-1]] == ["method", "ours", "closed-form", "knn"]
    checkpoint = log_dir / "run" / "checkpoints" / "ckpt-7"  # no model.onnx beside it
    assert printed[-1].startswith(f"ours model: {checkpoint} (step 7), tensorflow on ")


def test_cli_evaluate_default_outputs(tiny_dataset, tmp_path, monkeypatch):
    log = tmp_path / "log"
    run = write_run(log, name="trained", step=9)
    data = str(tiny_dataset / "test")
    assert eval_cli.main(["--evaluate", data, "--log-dir", str(log), "--methods", "ours"]) == 0
    assert (run / "evaluation" / "test-step9.csv").exists()
    assert (run / "evaluation" / "test-step9.png").exists()
    # Without a model (or with the shipped snapshot) results go to ./evaluation/.
    monkeypatch.chdir(tmp_path)
    assert eval_cli.main(["--evaluate", data, "--methods", "closed-form", "--limit", "1"]) == 0
    assert len(_read_csv(tmp_path / "evaluation" / "test.csv")) == 1


def test_cli_evaluate_bad_arguments(tiny_dataset, tmp_path, capsys):
    data = str(tiny_dataset / "test")
    assert eval_cli.main(["--evaluate", data, "--methods", "ours,magic"]) == 2
    assert capsys.readouterr().err.startswith("error: --methods: 'ours,magic'")
    assert eval_cli.main(["--evaluate", str(tmp_path)]) == 2
    assert "no image/ subfolder" in capsys.readouterr().err


def test_means_over_the_pairs_every_method_solved():
    results = [
        Result("ours", "a", sad=1.0, mse=0.0, grad=0.0, conn=0.0, seconds=1.0),
        Result("ours", "b", sad=5.0, mse=0.0, grad=0.0, conn=0.0, seconds=1.0),
        Result("closed-form", "a", sad=2.0, mse=0.0, grad=0.0, conn=0.0, seconds=1.0),
        Result("closed-form", "b", error="b: closed-form failed"),
    ]
    assert solved_by_all(results) == {"a"}
    ours, closed_form = summarise(results, solved_by_all(results))
    assert (ours["samples"], ours["sad"]) == (1, 1.0)
    assert (closed_form["samples"], closed_form["failed"], closed_form["sad"]) == (1, 0, 2.0)


def test_figure_rows_are_spread_over_the_samples():
    assert figure_indices(10, 4) == {0, 2, 5, 7}
    assert figure_indices(3, 4) == {0, 1, 2}
    assert figure_indices(5, 0) == set()
