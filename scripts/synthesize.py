"""Make synthetic raw material for combine.py, offline, in the layout download.py writes.

Writes ``OUT/foreground/<family>_NNNNN.png`` (RGBA, soft alpha), ``OUT/background/bg_NNNNN.png``
(opaque RGB, larger than the foregrounds and of varied aspect ratios) and appends one record per
file to ``OUT/manifest.jsonl``. The foreground families (see ``scripts/procedural.py``) cover
what makes matting hard: fur and hair strands, glass and smoke, lace with holes, motion and
defocus blur, with textured interiors whose colours also occur in the backgrounds.

A share of the items (``--photo-fraction``, default 0.5) is made from real photographs, the
public-domain and CC0 sample images inside scikit-image (``scripts/photos.py``): such a
background is a random crop of a photograph (random window, scale and flip, then a colour
shift), and such a foreground is a procedural shape whose colours are a photo crop, so objects
and scenes have photographic colour statistics. Their manifest records carry a ``photo`` entry
with the source image, package, version, licence, window and shift; other records have
``"photo": null``. With ``--photo-fraction 0`` every file is what it was before the option.

Every item has its own random stream, ``SeedSequence(--seed, spawn_key=(kind, index))`` with
kind 0 for foregrounds and 1 for backgrounds, so a run is byte-identical for a given seed
whatever ``--workers`` is, and any single file can be made again on its own. Whether an item
is a photo item comes from its own number ``u`` of ``SeedSequence(--seed, spawn_key=(2, kind,
index))``: it is when ``u < --photo-fraction``, so raising the fraction only turns more items
into photo items. A re-run keeps the files whose manifest record matches (same seed, size and
generator, photo or not, same sha256) and makes the rest, so an interrupted run resumes and a
deleted or damaged file is remade.

Usage::

    python3 scripts/synthesize.py                     # 60 + 60 images at 512 px into scripts/raw
    python3 scripts/synthesize.py --out demo-out/raw --count 12 --backgrounds 12 --size 320
    python3 scripts/synthesize.py --seed 7 --workers 2
    python3 scripts/synthesize.py --photo-fraction 0      # procedural only, as before
"""

from __future__ import annotations

import hashlib
import signal
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from model.cli import (
    ArgumentParser,
    add_process_workers,
    first_interrupt_only,
    non_negative_int,
    positive_int,
    unit_interval,
)
from model.images import encode_png, write_bytes
from model.manifest import append_record, read_records
from scripts import photos, procedural
from scripts.parallel import Workers

DEFAULT_OUT = Path(__file__).resolve().parent / "raw"
MANIFEST = "manifest.jsonl"
MIN_SIZE = 32
KIND_CODES = {"foreground": 0, "background": 1}
PHOTO_CHOICE = 2
"""First spawn key of the streams that decide which items are photo items."""
FOLDERS = {"foreground": "foreground", "background": "background"}


@dataclass(frozen=True)
class Item:
    """One file to make: its kind, index and generator, and where it goes under OUT."""

    kind: str
    index: int
    family: str
    seed: int
    size: int
    photo: bool = False

    @property
    def file(self) -> str:
        stem = self.family if self.kind == "foreground" else "bg"
        return f"{FOLDERS[self.kind]}/{stem}_{self.index:05d}.png"


def item_rng(seed: int, kind: str, index: int) -> np.random.Generator:
    """The random stream of one item.

    Equal to ``SeedSequence(seed).spawn(2)[k].spawn(index + 1)[index]`` for kind code ``k``,
    so no two items share a stream and none depends on how many items a run makes.
    """
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(KIND_CODES[kind], index)))


def is_photo(seed: int, kind: str, index: int, fraction: float) -> bool:
    """Whether an item is made from a photograph: its own uniform number is below ``fraction``."""
    stream = np.random.SeedSequence(seed, spawn_key=(PHOTO_CHOICE, KIND_CODES[kind], index))
    return bool(np.random.default_rng(stream).random() < fraction)


def render(item: Item) -> tuple[np.ndarray, dict | None]:
    """The pixels of an item and, for a photo item, where its photograph came from.

    Returns
    -------
    pixels : ndarray, float32, RGBA HxWx4 for a foreground, RGB HxWx3 for a background
    photo : dict or None
        ``scripts.photos.photo_crop``'s info for a photo item, else None.
    """
    rng = item_rng(item.seed, item.kind, item.index)
    if item.kind == "foreground":
        fill, info = (
            photos.photo_crop(rng, item.size, item.size, turn=True) if item.photo else (None, None)
        )
        colour, alpha = procedural.make_foreground(item.family, rng, item.size, item.size, fill)
        return np.concatenate([colour, alpha[..., None]], axis=2), info
    height, width = procedural.background_size(rng, item.size)
    if item.photo:
        return photos.photo_crop(rng, height, width)
    return procedural.make_background(rng, height, width), None


def make(task: tuple[Item, str]) -> dict:
    """Render, encode and atomically write one item; return its manifest record."""
    item, out = task
    pixels, photo = render(item)
    data = encode_png(pixels)
    write_bytes(Path(out) / item.file, data)
    height, width = pixels.shape[:2]
    return {
        "kind": item.kind,
        "file": item.file,
        "status": "kept",
        "reason": None,
        "generator": item.family,
        "seed": item.seed,
        "index": item.index,
        "size": item.size,
        "sha256": hashlib.sha256(data).hexdigest(),
        "width": width,
        "height": height,
        "photo": photo,
    }


def plan(
    count: int, backgrounds: int, size: int, seed: int, photo_fraction: float = 0.0
) -> list[Item]:
    """All items of a run; foreground families go round-robin so each is equally common.

    A photo background's generator is ``"photo"`` (a procedural one's ``"clutter"``); a photo
    foreground keeps its family, whose shape it has, and is marked by ``photo``.
    """
    families = procedural.FOREGROUND_FAMILIES
    items = [
        Item(
            "foreground",
            i,
            families[i % len(families)],
            seed,
            size,
            is_photo(seed, "foreground", i, photo_fraction),
        )
        for i in range(count)
    ]
    for i in range(backgrounds):
        photo = is_photo(seed, "background", i, photo_fraction)
        items.append(Item("background", i, "photo" if photo else "clutter", seed, size, photo))
    return items


def _sha256(path: Path) -> str | None:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return None


def is_done(item: Item, out: Path, records: dict[str, dict]) -> bool:
    """True when the file exists and its latest record says it was made by the same item."""
    record = records.get(item.file)
    if record is None or record.get("status") != "kept":
        return False
    same = all(
        record.get(key) == value
        for key, value in (("seed", item.seed), ("size", item.size), ("generator", item.family))
    )
    same = same and (record.get("photo") is not None) == item.photo
    return same and record.get("sha256") == _sha256(out / item.file)


def build_parser() -> ArgumentParser:
    parser = ArgumentParser(
        description="Make procedural foregrounds (RGBA) and backgrounds for combine.py.",
    )
    output = parser.add_argument_group("output")
    output.add_argument(
        "--out",
        type=Path,
        default=DEFAULT_OUT,
        help="raw folder to fill: foreground/, background/, manifest.jsonl (default scripts/raw)",
    )
    amount = parser.add_argument_group("what to make")
    amount.add_argument(
        "--count", type=non_negative_int, default=60, help="foregrounds to make (default 60)"
    )
    amount.add_argument(
        "--backgrounds", type=non_negative_int, default=60, help="backgrounds to make (default 60)"
    )
    amount.add_argument(
        "--size",
        type=positive_int,
        default=512,
        help=f"foreground side in pixels (square); backgrounds are 1.1-1.6x on their long side"
        f" (default 512, at least {MIN_SIZE})",
    )
    amount.add_argument(
        "--seed", type=non_negative_int, default=0, help="seed of the whole run (default 0)"
    )
    amount.add_argument(
        "--photo-fraction",
        type=unit_interval,
        default=0.5,
        help="share of foregrounds and of backgrounds made from scikit-image's public-domain"
        " and CC0 photographs (default 0.5; 0 gives procedural items only)",
    )
    add_process_workers(parser)
    return parser


def main(args: list[str] | None = None) -> int:
    options = build_parser().parse_args(args)
    out: Path = options.out
    if options.size < MIN_SIZE:
        print(f"error: --size: must be at least {MIN_SIZE}, not {options.size}", file=sys.stderr)
        return 2
    if out.exists() and not out.is_dir():
        print(f"error: {out}: not a folder", file=sys.stderr)
        return 2
    try:
        out.mkdir(parents=True, exist_ok=True)
        records = {r.get("file"): r for r in read_records(out / MANIFEST)}
        items = plan(
            options.count, options.backgrounds, options.size, options.seed, options.photo_fraction
        )
        todo = [item for item in items if not is_done(item, out, records)]
        kept = len(items) - len(todo)
        # Ctrl-C is handled here even when the process was started with SIGINT ignored (a
        # background job); a second one during the pool's shutdown is ignored.
        with (
            first_interrupt_only(),
            Workers(options.workers, preload=__name__) as workers,
            tqdm(total=len(todo), desc="synthesize", unit="img") as bar,
        ):
            for record in workers.imap_unordered(make, [(item, str(out)) for item in todo]):
                append_record(out / MANIFEST, record)
                bar.update()
    except OSError as error:
        where = error.filename or out
        print(f"error: {where}: {error.strerror or error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"error: {out}: interrupted; run again to resume", file=sys.stderr)
        return 130
    foregrounds = sum(item.kind == "foreground" for item in items)
    print(
        f"{foregrounds} foregrounds and {len(items) - foregrounds} backgrounds in {out}"
        f" ({len(todo)} made, {kept} already there); manifest: {out / MANIFEST}"
    )
    return 0


if __name__ == "__main__":
    status = main()
    # Only exit handlers run from here (the worker pool's, among them); another Ctrl-C would
    # turn the 130 of an interrupted run into a traceback and death by SIGINT.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    sys.exit(status)
