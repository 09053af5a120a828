"""JSON Lines manifests: one record per item, appended atomically.

Every stage that produces files keeps a manifest beside them (``raw/manifest.jsonl``,
``data/manifest.jsonl``) saying where each item came from and whether it was kept. A record is
written with a single ``write`` of one complete line on a file opened in append mode, then
flushed and fsynced, so a crash can at worst leave a torn final line, which
:func:`read_records` ignores.
"""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path

_lock = threading.Lock()


def append_record(path: str | os.PathLike, record: dict) -> None:
    """Append ``record`` as one JSON line to ``path`` (created with its folder if missing).

    Safe to call from several threads of one process, and from several processes, because
    each record goes out in one ``O_APPEND`` write.
    """
    line = (json.dumps(record, sort_keys=True, ensure_ascii=False) + "\n").encode("utf-8")
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    with _lock:
        descriptor = os.open(target, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            # End a line torn by a crash first, so this record does not get glued onto it.
            end = os.lseek(descriptor, 0, os.SEEK_END)
            if end and os.pread(descriptor, 1, end - 1) != b"\n":
                line = b"\n" + line
            os.write(descriptor, line)
            os.fsync(descriptor)
        finally:
            os.close(descriptor)


def read_records(path: str | os.PathLike) -> list[dict]:
    """All complete records of a manifest, oldest first; a missing file gives ``[]``.

    A line that is not valid JSON (a write torn by a crash) is skipped.
    """
    target = Path(path)
    if not target.exists():
        return []
    records = []
    with target.open("r", encoding="utf-8", errors="replace") as handle:
        for line in handle:
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(record, dict):
                records.append(record)
    return records
