"""Splits of combine.py: train/val/test by foreground identity, backgrounds per split, and the
backgrounds of each foreground, all by stable hashes of names and ``--seed`` (never Python's
``hash``), so adding inputs moves as little as possible.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from scripts.sources import Background

SPLITS = ("train", "val", "test")


def unit_hash(*parts: object) -> float:
    """A stable pseudo-random number in [0, 1) from the parts (sha256, not Python's hash)."""
    digest = hashlib.sha256("\0".join(str(p) for p in parts).encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def assign_splits(
    names: list[str], seed: int, val_fraction: float, test_fraction: float, salt: str
) -> dict[str, str]:
    """Split names into train/val/test by hashing each with the seed.

    A name with ``u = unit_hash(seed, salt, name)`` goes to test if ``u < test_fraction``, to
    val if ``u < test_fraction + val_fraction``, else to train. With 3 or more names, a split
    with a non-zero fraction that came out empty takes the name(s) whose hash is nearest its
    interval, and train always keeps one. Apart from those corrections (small sets only), a
    name's split depends on its own hash alone, so adding names does not move existing ones.

    Returns
    -------
    dict name -> "train" | "val" | "test".
    """
    ranked = sorted(names, key=lambda name: (unit_hash(seed, salt, name), name))
    units = [unit_hash(seed, salt, name) for name in ranked]
    n_test = sum(u < test_fraction for u in units)
    n_val = sum(test_fraction <= u < test_fraction + val_fraction for u in units)
    if len(ranked) >= 3:
        n_test = max(n_test, 1 if test_fraction > 0 else 0)
        n_val = max(n_val, 1 if val_fraction > 0 else 0)
    while ranked and n_test + n_val >= len(ranked):
        if n_val >= n_test and n_val > 0:
            n_val -= 1
        else:
            n_test -= 1
    return {
        name: "test" if i < n_test else "val" if i < n_test + n_val else "train"
        for i, name in enumerate(ranked)
    }


def split_backgrounds(
    backgrounds: list[Background],
    seed: int,
    val_fraction: float,
    test_fraction: float,
    needs: dict[str, int],
) -> tuple[dict[str, list[Background]], str | None]:
    """Give each split its own backgrounds, or all of them to every split when too few.

    Backgrounds are ranked by ``unit_hash(seed, "background", name)``; test takes the first
    ``max(its fraction's share, needs["test"])``, val the next ``max(..., needs["val"])``, train
    the rest. A split without foregrounds (need 0) takes none.

    Parameters
    ----------
    needs : dict split -> int
        Backgrounds one foreground of that split is composited onto (0: no foregrounds).

    Returns
    -------
    pools : dict split -> list of Background
    note : str or None
        Why the splits share their backgrounds, or None when they are disjoint.
    """
    ranked = sorted(backgrounds, key=lambda b: (unit_hash(seed, "background", b.name), b.name))
    units = [unit_hash(seed, "background", b.name) for b in ranked]
    natural = {
        "test": sum(u < test_fraction for u in units),
        "val": sum(test_fraction <= u < test_fraction + val_fraction for u in units),
    }
    counts = {split: max(natural[split], needs[split]) if needs[split] else 0 for split in natural}
    n_train = len(ranked) - counts["test"] - counts["val"]
    if n_train < needs["train"] or n_train < 0:
        wanted = ", ".join(f"{split} {needs[split]}" for split in SPLITS if needs[split])
        note = (
            f"{len(ranked)} backgrounds are too few for disjoint splits (one per sample of a"
            f" foreground: {wanted}); all splits share them"
        )
        return {split: list(ranked) for split in SPLITS}, note
    pools = {
        "test": ranked[: counts["test"]],
        "val": ranked[counts["test"] : counts["test"] + counts["val"]],
        "train": ranked[counts["test"] + counts["val"] :],
    }
    return pools, None


def choose_backgrounds(
    foreground: str, pool: list[Background], count: int, seed: int
) -> list[Background]:
    """The ``count`` backgrounds of ``pool`` with the smallest ``unit_hash(seed, fg, bg)``.

    Rendezvous hashing: adding a background to the pool changes at most one choice.
    """
    ranked = sorted(pool, key=lambda b: (unit_hash(seed, "pair", foreground, b.name), b.name))
    return ranked[:count]


def misplaced_samples(
    out: Path, splits: dict[str, str], pools: dict[str, list[Background]]
) -> list[Path]:
    """Images of earlier runs whose foreground or background now belongs to another split.

    A re-run with another ``--seed`` or other fractions, or with foregrounds added to a small
    set, can assign a foreground elsewhere; its old samples would then put it in two splits.
    Samples of foregrounds or backgrounds no longer used are not counted.
    """
    backgrounds = {b.name for pool in pools.values() for b in pool}
    misplaced = []
    for split in SPLITS:
        pool = {b.name for b in pools[split]}
        for path in sorted((out / split / "image").glob("*.png")):
            # Names never start or end with "_", but may contain "__": try every separator.
            at = path.stem.find("__")
            while at > 0:
                fg, bg = path.stem[:at], path.stem[at + 2 :]
                if fg in splits and bg in backgrounds:
                    if splits[fg] != split or bg not in pool:
                        misplaced.append(path)
                    break
                at = path.stem.find("__", at + 1)
    return misplaced
