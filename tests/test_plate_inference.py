"""PlateMatter, read_plate/align_plate, eval.py --background-plate, the API's plate field and the
plate evaluation, with a tiny random plate model (its answers are checked against the network
run directly, not against quality)."""

from __future__ import annotations

import dataclasses
import io

import cv2
import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image
from test_inference import TINY, write_run
from test_plate import TINY_PLATE, _texture

import eval as eval_cli
from model import server
from model.checkpoints import CheckpointError
from model.images import ImageError, encode_png, read_image, write_png
from model.inference import Matter
from model.plate_inference import PlateMatter, align_plate, read_plate

HEIGHT, WIDTH = 37, 53  # not multiples of the tiny model's 4: padding and cropping run


@pytest.fixture(scope="module")
def log_dir(tmp_path_factory):
    log = tmp_path_factory.mktemp("plate") / "log"
    write_run(log, "trimap-run", TINY)
    write_run(log, "plate-run", TINY_PLATE)
    return log


@pytest.fixture(scope="module")
def matter(log_dir) -> PlateMatter:
    return PlateMatter.load("-1", log_dir)


@pytest.fixture
def files(tmp_path):
    """A photo (a bright square on a texture) and its plate (the texture), as PNG files."""
    plate = _texture(HEIGHT, WIDTH)
    image = plate.copy()
    image[10:25, 15:35] = [0.9, 0.2, 0.1]
    write_png(tmp_path / "photo.png", image)
    write_png(tmp_path / "plate.png", plate)
    return tmp_path / "photo.png", tmp_path / "plate.png"


# ------------------------------------------------------------------------------ PlateMatter


def test_default_checkpoint_is_the_newest_plate_run_and_each_model_refuses_the_other(log_dir):
    plate = PlateMatter.load("-1", log_dir)
    assert plate.ref.run_dir.name == "plate-run"
    assert Matter.load("-1", log_dir).ref.run_dir.name == "trimap-run"
    with pytest.raises(CheckpointError, match="a matting model"):
        PlateMatter.load(str(log_dir / "trimap-run"), log_dir)
    with pytest.raises(CheckpointError, match="a plate model"):
        Matter.load(str(log_dir / "plate-run"), log_dir)


def test_without_a_plate_run_the_shipped_plate_snapshot_is_the_default(tmp_path):
    write_run(tmp_path, "pretrained-plate", TINY_PLATE)
    write_run(tmp_path, "pretrained", TINY)
    assert PlateMatter.load("-1", tmp_path).ref.run_dir.name == "pretrained-plate"
    # A shipped plate snapshot is never taken for a trained trimap run.
    assert Matter.load("-1", tmp_path).ref.run_dir.name == "pretrained"


def test_clips_prefer_the_shipped_video_plate_snapshot_and_trained_runs_win(tmp_path):
    write_run(tmp_path, "pretrained-plate", TINY_PLATE)
    assert PlateMatter.load("-1", tmp_path, video=True).ref.run_dir.name == "pretrained-plate"
    temporal = dataclasses.replace(TINY_PLATE, previous_alpha=True)
    write_run(tmp_path, "pretrained-plate-video", temporal)
    video = PlateMatter.load("-1", tmp_path, video=True)
    assert video.ref.run_dir.name == "pretrained-plate-video" and video.uses_previous_alpha
    assert PlateMatter.load("-1", tmp_path).ref.run_dir.name == "pretrained-plate"  # photos
    write_run(tmp_path, "plate-run", TINY_PLATE)
    assert PlateMatter.load("-1", tmp_path, video=True).ref.run_dir.name == "plate-run"


def test_full_resolution_alpha_is_the_network_on_the_padded_pair(matter):
    rng = np.random.default_rng(0)
    image, plate = rng.uniform(0, 1, (2, HEIGHT, WIDTH, 3)).astype(np.float32)
    full = PlateMatter(matter.generator, matter.config, network_pixels=0)
    alpha = full.predict_alpha(image, plate)
    stacked = np.concatenate([image, plate], axis=2)
    padded = np.pad(stacked, ((0, 3), (0, 3), (0, 0)), mode="reflect")  # to 40 x 56
    expected = matter.generator(padded[None]).numpy()[0, :HEIGHT, :WIDTH, 0]
    np.testing.assert_allclose(alpha, expected, atol=1e-5)


def test_working_resolution_runs_small_and_upsamples(matter):
    rng = np.random.default_rng(1)
    image, plate = rng.uniform(0, 1, (2, 64, 96, 3)).astype(np.float32)
    small = PlateMatter(matter.generator, matter.config, network_pixels=32 * 48)
    alpha = small.predict_alpha(image, plate)
    assert alpha.shape == (64, 96) and alpha.min() >= 0.0 and alpha.max() <= 1.0
    assert small.traced_shapes == {(1, 32, 48, 6)}


def test_extract_rounds_invisible_alpha_and_keeps_colours_away_from_soft_edges(matter):
    rng = np.random.default_rng(2)
    image = rng.uniform(0, 1, (160, 160, 3)).astype(np.float32)
    alpha = np.zeros((160, 160), np.float32)
    alpha[100:150, 100:150] = 1.0
    alpha[0, 0] = 0.001  # under half an 8-bit level: 0
    alpha[8, 0] = 0.5  # the only soft pixel: colours are estimated within 64 px of it
    matte = matter.matte(image, alpha)
    assert matte.alpha[0, 0] == 0.0 and matte.alpha[8, 0] == 0.5
    np.testing.assert_array_equal(matte.foreground[120:, 120:], image[120:, 120:])


# ------------------------------------------------------------------------------ reading plates


def test_read_plate_refusals(files, tmp_path):
    photo, plate_path = files
    image = read_image(photo)
    np.testing.assert_array_equal(read_plate(plate_path, image, photo), read_image(plate_path))
    with pytest.raises(ImageError, match="is the photo itself"):
        read_plate(photo, image, photo)
    write_png(tmp_path / "copy.png", image)
    with pytest.raises(ImageError, match="same pixels as the photo"):
        read_plate(tmp_path / "copy.png", image, photo)
    write_png(tmp_path / "small.png", _texture(HEIGHT - 1, WIDTH))
    with pytest.raises(ImageError, match=f"plate is {WIDTH}x{HEIGHT - 1} but the photo is"):
        read_plate(tmp_path / "small.png", image, photo)
    with pytest.raises(ImageError, match="no such file"):
        read_plate(tmp_path / "missing.png", image, photo)
    (tmp_path / "bad.png").write_bytes(b"not an image")
    with pytest.raises(ImageError, match=r"bad\.png"):
        read_plate(tmp_path / "bad.png", image, photo)


def test_align_plate_undoes_a_shift_and_a_resize():
    scene = _texture(120, 160, seed=3)
    shifted = cv2.warpAffine(
        scene, np.float32([[1, 0, 3], [0, 1, -2]]), (160, 120), borderMode=cv2.BORDER_REFLECT_101
    )
    bigger = cv2.resize(shifted, (200, 150), interpolation=cv2.INTER_LINEAR)
    aligned = align_plate(bigger, scene)
    assert aligned.shape == scene.shape
    inner = (slice(10, -10), slice(10, -10))
    before = np.abs(cv2.resize(bigger, (160, 120), interpolation=cv2.INTER_AREA) - scene)[inner]
    after = np.abs(aligned - scene)[inner]
    assert after.mean() < 0.25 * before.mean()


# ------------------------------------------------------------------------------ eval.py


def _eval(log_dir, *args) -> int:
    return eval_cli.main([*map(str, args), "--log-dir", str(log_dir)])


def test_eval_writes_the_cutout_and_a_composite(log_dir, matter, files, tmp_path):
    photo, plate = files
    out = tmp_path / "out.png"
    assert _eval(log_dir, photo, out, "--background-plate", plate, "--background", "0,255,0") == 0
    rgba = np.asarray(Image.open(out))
    expected = matter.extract(read_image(photo), read_image(plate)).alpha
    assert rgba.shape == (HEIGHT, WIDTH, 4)
    np.testing.assert_allclose(rgba[..., 3] / 255.0, expected, atol=1 / 255 + 1e-6)
    assert (tmp_path / "out_composite.png").exists()


@pytest.mark.parametrize(
    "plate_name, message",
    [
        ("photo.png", "is the photo itself"),
        ("missing.png", "no such file"),
        ("small.png", "(--align-plate resizes and aligns it)"),
        ("copy.png", "same pixels as the photo"),
    ],
)
def test_eval_bad_plate_is_one_line_and_no_file(
    log_dir, files, tmp_path, capsys, plate_name, message
):
    photo, _ = files
    write_png(tmp_path / "small.png", _texture(HEIGHT + 2, WIDTH))
    write_png(tmp_path / "copy.png", read_image(photo))
    out = tmp_path / "out.png"
    assert _eval(log_dir, photo, out, "--background-plate", tmp_path / plate_name) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and message in err[0]
    assert not out.exists()


def test_eval_plate_takes_no_trimap_and_plates_need_evaluate(log_dir, files, tmp_path, capsys):
    photo, plate = files
    args = (photo, photo, tmp_path / "o.png", "--background-plate", plate)
    assert _eval(log_dir, *args) == 2
    assert "give INPUT OUTPUT" in capsys.readouterr().err
    assert _eval(log_dir, photo, tmp_path / "o.png", "--plates") == 2
    assert "only with --evaluate" in capsys.readouterr().err


def test_eval_batch_with_one_plate_for_all(log_dir, files, tmp_path):
    photo, plate = files
    photos = tmp_path / "photos"
    photos.mkdir()
    for name in ("a", "b"):
        (photos / f"{name}.png").write_bytes(photo.read_bytes())
    out = tmp_path / "cutouts"
    assert _eval(log_dir, photos, out, "--background-plate", plate) == 0
    assert sorted(path.name for path in out.iterdir()) == ["a.png", "b.png"]


# ------------------------------------------------------------------------------ serve.py


def _post(client, files, **fields):
    photo, plate = files
    upload = {
        "image": ("photo.png", photo.read_bytes()),
        "plate": ("plate.png", plate.read_bytes()),
    }
    upload.update({k: v for k, v in fields.items() if isinstance(v, tuple)})
    data = {k: v for k, v in fields.items() if not isinstance(v, tuple)}
    return client.post("/api/matte", files=upload, data=data)


def test_api_plate_field(log_dir, matter, files):
    trimap_matter = Matter.load("-1", log_dir)
    app = server.create_app(trimap_matter, plate_matter=matter)
    with TestClient(app) as client:
        response = _post(client, files, output="soft_mask")
        assert response.status_code == 200, response.text
        soft = np.asarray(Image.open(io.BytesIO(response.content)))
        expected = matter.extract(read_image(files[0]), read_image(files[1])).alpha
        np.testing.assert_allclose(soft / 255.0, expected, atol=1 / 255 + 1e-6)
        both = _post(
            client, files, trimap=("t.png", encode_png(np.zeros((HEIGHT, WIDTH), np.uint8)))
        )
        assert both.status_code == 400 and "not both" in both.json()["error"]
        same = _post(client, files, plate=("p.png", files[0].read_bytes()))
        assert same.status_code == 400 and "same pixels" in same.json()["error"]
        json_response = _post(client, files, format="json")
        assert "trimap" not in json_response.json()["outputs"]
    with TestClient(server.create_app(trimap_matter)) as client:
        response = _post(client, files)
        assert response.status_code == 400 and "no plate model" in response.json()["error"]


# ------------------------------------------------------------------------------ evaluation


def test_plate_evaluation_scores_the_key_by_hand(tiny_dataset, matter):
    from model.metrics import sad
    from model.plate import difference_key, perturb_plate
    from model.plate_evaluation import DEFAULT_PERTURBATION, evaluate_plates, find_plate_samples

    samples = find_plate_samples(tiny_dataset / "test")
    report = evaluate_plates(
        samples, ["plate", "difference-key"], plate_matter=matter, progress=False
    )
    assert [(r.method, r.sample) for r in report.results] == [
        (m, s) for s, _ in samples for m in ("plate", "difference-key")
    ]
    name, paths = samples[1]
    image, background = read_image(paths["image"]), read_image(paths["bg"])
    plate = perturb_plate(background, DEFAULT_PERTURBATION.__class__(**{
        **DEFAULT_PERTURBATION.__dict__, "seed": DEFAULT_PERTURBATION.seed + 1
    }))  # fmt: skip
    from model.images import read_alpha

    truth = read_alpha(paths["alpha"])
    whole = np.full(truth.shape, 0.5, np.float32)
    expected = sad(difference_key(image, plate), truth, whole)
    key = next(r for r in report.results if r.method == "difference-key" and r.sample == name)
    assert key.sad == pytest.approx(expected, rel=1e-6)
