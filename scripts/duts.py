"""Get the DUTS saliency dataset into the layout ``train.py --task trimap`` reads.

DUTS (Wang et al., CVPR 2017: 10,553 training and 5,019 test photos with pixel masks) is
published as ``DUTS-TR.zip`` and ``DUTS-TE.zip``, each holding ``DUTS-XX/DUTS-XX-Image/*.jpg``
and ``DUTS-XX/DUTS-XX-Mask/*.png``. This script extracts such a zip into ``--out``, taking it
from a local file (``--zip``) or downloading it first (``--url``, on a machine with internet)::

    python3 scripts/duts.py --zip ~/Downloads/DUTS-TR.zip --out data/duts
    python3 scripts/duts.py --url http://saliencydetection.net/duts/download/DUTS-TR.zip \\
        --out data/duts
    python3 scripts/duts.py --zip DUTS-TE.zip --out data/duts     # adds the val split
    python3 train.py data/duts --task trimap

Then ``data/duts/DUTS-TR/DUTS-TR-{Image,Mask}/`` is the train split and, when ``DUTS-TE.zip``
was added too, ``DUTS-TE/`` the val split (``model/trimap_data.py``).

* The download goes to ``--out/.download/<name>.part`` with a progress bar; an interrupted one
  resumes with an HTTP Range request (a server that ignores Range sends it all again), and the
  finished file is renamed into place, so a half-downloaded zip is never taken as whole.
  ``--keep-zip`` keeps it after extraction.
* Extraction checks every member (no absolute paths or ``..``; images and masks matched by
  stem), unpacks into a temporary folder beside the target and renames it into place, so a
  ``DUTS-XX`` folder is complete or absent. An existing one is kept (``--force`` replaces it).
* Bad input (a missing or damaged zip, one without the DUTS layout, an unreachable URL) gives
  one line ``error: <file or URL>: <problem>`` and exit status 2.
"""

from __future__ import annotations

import re
import shutil
import sys
import tempfile
import zipfile
from pathlib import Path, PurePosixPath
from urllib.parse import urlsplit

import requests
from tqdm import tqdm

from model.cli import BAD_INPUT, ArgumentParser

CHUNK = 1 << 20
TIMEOUT = 30.0
_PART = re.compile(r"^(DUTS-(TR|TE))/(DUTS-\2-(Image|Mask))/([^/]+)$")


class DutsError(ValueError):
    """A zip, URL or output folder that cannot be used; the message starts with it."""


def download(url: str, folder: Path, *, progress: bool = True) -> Path:
    """Download ``url`` into ``folder`` (resuming a ``.part`` file) and return the whole file.

    Raises
    ------
    DutsError
        A network error or an HTTP error status.
    """
    name = PurePosixPath(urlsplit(url).path).name or "duts.zip"
    target = folder / name
    if target.is_file():
        return target
    folder.mkdir(parents=True, exist_ok=True)
    part = folder / f"{name}.part"
    done = part.stat().st_size if part.exists() else 0
    headers = {"Range": f"bytes={done}-"} if done else {}
    try:
        with requests.get(url, headers=headers, stream=True, timeout=TIMEOUT) as response:
            if response.status_code == 416:  # the part file already holds everything
                part.rename(target)
                return target
            if response.status_code not in (200, 206):
                raise DutsError(f"{url}: HTTP {response.status_code}")
            if response.status_code == 200:
                done = 0  # no Range support: start over
            length = response.headers.get("Content-Length")
            total = done + int(length) if length else None
            with (
                part.open("ab" if done else "wb") as out,
                tqdm(total=total, initial=done, unit="B", unit_scale=True, desc=name,
                     disable=not progress) as bar,
            ):  # fmt: skip
                for chunk in response.iter_content(CHUNK):
                    out.write(chunk)
                    bar.update(len(chunk))
    except requests.RequestException as error:
        raise DutsError(f"{url}: {type(error).__name__}: {error}".splitlines()[0]) from None
    if total is not None and part.stat().st_size != total:
        raise DutsError(f"{url}: the download stopped short; run again to resume")
    part.rename(target)
    return target


def _members(archive: zipfile.ZipFile, source: Path) -> dict[str, list[zipfile.ZipInfo]]:
    """The zip's DUTS files by top folder (``DUTS-TR`` / ``DUTS-TE``), checked."""
    found: dict[str, list[zipfile.ZipInfo]] = {}
    for info in archive.infolist():
        path = PurePosixPath(info.filename)
        if path.is_absolute() or ".." in path.parts:
            raise DutsError(f"{source}: unsafe member name {info.filename!r}")
        match = _PART.match(info.filename)
        if match and not info.is_dir() and not match.group(5).startswith("."):
            found.setdefault(match.group(1), []).append(info)
    if not found:
        raise DutsError(
            f"{source}: no DUTS-TR/DUTS-TR-Image + DUTS-TR-Mask (or DUTS-TE) files inside"
        )
    for top, infos in found.items():
        stems = {}
        for info in infos:
            kind = _PART.match(info.filename).group(4)
            stems.setdefault(kind, set()).add(PurePosixPath(info.filename).stem)
        if not stems.get("Image", set()) & stems.get("Mask", set()):
            raise DutsError(f"{source}: {top} has no image with a mask of the same name")
    return found


def extract(source: Path, out: Path, *, force: bool = False) -> dict[str, int]:
    """Extract a DUTS zip into ``out``; returns the images per top folder extracted.

    Raises
    ------
    DutsError
        A missing, damaged or non-DUTS zip, or an existing folder without ``force``.
    """
    if not source.is_file():
        raise DutsError(f"{source}: no such file")
    try:
        with zipfile.ZipFile(source) as archive:
            found = _members(archive, source)
            out.mkdir(parents=True, exist_ok=True)
            counts = {}
            for top, infos in sorted(found.items()):
                target = out / top
                if target.exists() and not force:
                    print(f"{target}: already there (--force replaces it)", file=sys.stderr)
                    continue
                staging = Path(tempfile.mkdtemp(prefix=f".{top}.", dir=out))
                try:
                    for info in infos:
                        archive.extract(info, staging)
                    if target.exists():
                        shutil.rmtree(target)
                    (staging / top).rename(target)
                finally:
                    shutil.rmtree(staging, ignore_errors=True)
                counts[top] = sum("-Image/" in info.filename for info in infos)
            return counts
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError) as error:
        raise DutsError(f"{source}: not a readable zip ({error})") from None


def build_parser() -> ArgumentParser:
    parser = ArgumentParser(description=__doc__.split("\n", 1)[0])
    source = parser.add_argument_group("source (one of)").add_mutually_exclusive_group(
        required=True
    )
    source.add_argument("--zip", type=Path, help="a local DUTS-TR.zip or DUTS-TE.zip")
    source.add_argument("--url", help="download the zip from here first (resumable)")
    out = parser.add_argument_group("output")
    out.add_argument("--out", type=Path, default=Path("data/duts"), help="(default: %(default)s)")
    out.add_argument("--force", action="store_true", help="replace an existing DUTS-XX folder")
    out.add_argument("--keep-zip", action="store_true", help="keep a downloaded zip")
    out.add_argument("--quiet", action="store_true", help="no progress bar")
    return parser


def main(args: list[str] | None = None) -> int:
    options = build_parser().parse_args(args)
    try:
        if options.out.exists() and not options.out.is_dir():
            raise DutsError(f"{options.out}: not a folder")
        source = options.zip
        if options.url is not None:
            source = download(options.url, options.out / ".download", progress=not options.quiet)
        counts = extract(source, options.out, force=options.force)
        if options.url is not None and not options.keep_zip:
            source.unlink()
    except DutsError as error:
        print(f"error: {error}", file=sys.stderr)
        return BAD_INPUT
    except OSError as error:
        print(f"error: {error.filename or options.out}: {error.strerror}", file=sys.stderr)
        return BAD_INPUT
    for top, count in counts.items():
        print(f"{options.out / top}: {count} images with masks")
    return 0


if __name__ == "__main__":
    sys.exit(main())
