"""model/manifest.py and model/checkpoints.py: both work on plain files, no TensorFlow."""

import json
import os
import threading

import pytest

from model.checkpoints import CheckpointError, resolve_checkpoint, trained_runs
from model.manifest import append_record, read_records


def test_records_roundtrip_in_order(tmp_path):
    path = tmp_path / "sub" / "manifest.jsonl"
    append_record(path, {"file": "a.png", "status": "kept"})
    append_record(path, {"file": "b.png", "status": "rejected", "reason": "fully opaque"})
    assert read_records(path) == [
        {"file": "a.png", "status": "kept"},
        {"file": "b.png", "reason": "fully opaque", "status": "rejected"},
    ]
    assert read_records(tmp_path / "missing.jsonl") == []


def test_torn_last_line_is_ignored(tmp_path):
    path = tmp_path / "m.jsonl"
    append_record(path, {"n": 1})
    with path.open("a") as handle:
        handle.write('{"n": 2, "fi')
    assert read_records(path) == [{"n": 1}]


def test_concurrent_appends_never_interleave(tmp_path):
    path = tmp_path / "m.jsonl"
    payload = "x" * 5000

    def writer(worker):
        for index in range(50):
            append_record(path, {"worker": worker, "index": index, "payload": payload})

    threads = [threading.Thread(target=writer, args=(w,)) for w in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    records = read_records(path)
    assert len(records) == 200 and len(path.read_text().splitlines()) == 200
    expected = {(w, i) for w in range(4) for i in range(50)}
    assert {(r["worker"], r["index"]) for r in records} == expected


def _make_run(log_dir, name, steps, mtime=None):
    run = log_dir / name
    (run / "checkpoints").mkdir(parents=True)
    (run / "config.json").write_text(json.dumps({"model": {"depth": 2}}))
    for step in steps:
        for suffix in (".index", ".data-00000-of-00001"):
            (run / "checkpoints" / f"ckpt-{step}{suffix}").write_bytes(b"")
        if mtime is not None:
            os.utime(run / "checkpoints" / f"ckpt-{step}.index", (mtime, mtime))
    return run


def test_index_resolution_follows_design(tmp_path):
    run = _make_run(tmp_path, "run-a", [100, 200, 300])
    assert resolve_checkpoint(-1, tmp_path).step == 300
    assert resolve_checkpoint("-2", tmp_path).step == 200
    assert resolve_checkpoint("100", tmp_path).path == run / "checkpoints" / "ckpt-100"
    assert resolve_checkpoint(-1, tmp_path).config == {"model": {"depth": 2}}
    listing = r"no checkpoint saved at step 150; available steps: 100, 200, 300"
    with pytest.raises(CheckpointError, match=listing):
        resolve_checkpoint(150, tmp_path)
    with pytest.raises(CheckpointError, match=r"checkpoint -4 does not exist, there are only 3"):
        resolve_checkpoint(-4, tmp_path)


def test_paths_resolve_to_prefix_run_or_folder(tmp_path):
    run = _make_run(tmp_path, "run-a", [100, 200])
    prefix = run / "checkpoints" / "ckpt-100"
    assert resolve_checkpoint(str(prefix)) == resolve_checkpoint(100, tmp_path)
    assert resolve_checkpoint(str(prefix)).run_dir == run
    assert resolve_checkpoint(str(run)).step == 200
    assert resolve_checkpoint(str(run / "checkpoints")).step == 200
    with pytest.raises(CheckpointError, match="no such checkpoint"):
        resolve_checkpoint(str(run / "checkpoints" / "ckpt-999"))
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(CheckpointError, match="empty: no checkpoint in this folder"):
        resolve_checkpoint(str(empty))


def test_newest_trained_run_wins_and_pretrained_is_the_fallback(tmp_path):
    _make_run(tmp_path, "pretrained", [5000], mtime=3_000_000_000)
    assert resolve_checkpoint(-1, tmp_path).run_dir == tmp_path / "pretrained"
    _make_run(tmp_path, "old", [100], mtime=1_000_000_000)
    newer = _make_run(tmp_path, "new", [50], mtime=2_000_000_000)
    assert trained_runs(tmp_path) == [newer, tmp_path / "old"]
    assert resolve_checkpoint(-1, tmp_path).run_dir == newer


def test_no_checkpoint_anywhere(tmp_path):
    with pytest.raises(CheckpointError, match="no checkpoint found"):
        resolve_checkpoint(-1, tmp_path)
