"""Output paths checked before any work: never overwrite an input, fail early on unwritable folders.

A command that writes files calls these before it decodes anything large or loads a model, so a
bad output argument costs a second and touches nothing:

* :func:`same_file` compares two paths as files, like ``os.path.samefile`` (device and inode)
  when they exist, so symbolic links, hard links, ``..`` and case-insensitive file systems all
  count as the same file; an output that does not exist yet is compared by its resolved path.
* :func:`check_not_inputs` refuses an output that is one of the inputs, or two outputs that are
  one file (the second would overwrite the first).
* :func:`check_folder` refuses a folder that is an input folder.
* :func:`check_writable` refuses an output whose folder cannot be created or written, or that
  is itself a folder.

Each raises :class:`OutputError`, whose message is ``"<path>: <problem>"``.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path


class OutputError(ValueError):
    """An output path that must not be written; ``str(error)`` is ``"<path>: <problem>"``."""


def file_key(path: str | os.PathLike) -> tuple:
    """What identifies the file ``path`` names: its device and inode when it exists (so hard
    links and case-insensitive spellings match), else its resolved path (where it would be
    created). Symbolic links and ``..`` are resolved first in both cases."""
    resolved = Path(path).resolve()
    try:
        stat = resolved.stat()
    except OSError:
        return ("path", resolved)
    return ("inode", stat.st_dev, stat.st_ino)


def same_file(a: str | os.PathLike, b: str | os.PathLike) -> bool:
    """True when ``a`` and ``b`` name one file, existing or not (see the module docstring)."""
    return file_key(a) == file_key(b)


def check_not_inputs(
    outputs: Iterable[tuple[str, str | os.PathLike | None]],
    inputs: Iterable[tuple[str, str | os.PathLike | None]],
) -> None:
    """Refuse an output that is an input, or two outputs that are the same file.

    Parameters
    ----------
    outputs : iterable of (label, path or None)
        What each output is, for the message ("the output", "--alpha"); None paths are skipped.
    inputs : iterable of (label, path or None)
        Likewise for the inputs ("the input image", "the trimap"). Each path is looked up once,
        so a batch of thousands of files is checked in linear time.

    Raises
    ------
    OutputError
        ``"<output>: <label> is <input label> (<input>); refusing to overwrite an input"``, or
        ``"<output>: <label> and <label> are the same file"``.
    """
    known = {file_key(path): (label, Path(path)) for label, path in inputs if path is not None}
    written: dict[tuple, str] = {}
    for label, path in outputs:
        if path is None:
            continue
        key = file_key(path)
        if key in known:
            input_label, source = known[key]
            raise OutputError(
                f"{path}: {label} is {input_label} ({source}); refusing to overwrite an input"
            )
        if key in written:
            raise OutputError(f"{path}: {written[key]} and {label} are the same file")
        written[key] = label


def check_folder(
    folder: str | os.PathLike, label: str, inputs: Iterable[tuple[str, str | os.PathLike]]
) -> None:
    """Refuse an output ``folder`` that is one of the input folders.

    Outputs written into an input folder would be read as inputs by the next run, and any that
    shares a name with an input would replace it. A folder *inside* an input folder is allowed
    (inputs are listed without recursion, so its files cannot collide with them); per-file
    collisions are :func:`check_not_inputs`'s job.

    Raises
    ------
    OutputError
        ``"<folder>: <label> is <input label> (<input>); choose another folder"``.
    """
    for input_label, source in inputs:
        if same_file(folder, source):
            raise OutputError(
                f"{folder}: {label} is {input_label} ({source}); outputs would mix with the"
                " inputs; choose another folder"
            )


def check_writable(path: str | os.PathLike, *, folder: bool = False) -> None:
    """Refuse ``path`` when writing it would fail: checked before the work, not after.

    Parameters
    ----------
    path : path
        A file to write (its parent folders are created as needed), or with ``folder=True`` a
        folder to write files into.
    folder : bool
        ``path`` is the folder itself.

    Raises
    ------
    OutputError
        The target is an existing folder (for a file) or file (for a folder); a parent on the
        way is a file; or the nearest existing folder is not writable.
    """
    path = Path(path)
    if folder and path.exists() and not path.is_dir():
        raise OutputError(f"{path}: is a file, not a folder to write into")
    if not folder and path.is_dir():
        raise OutputError(f"{path}: is a folder; give a file name")
    parent = path if folder else path.parent
    # The nearest existing ancestor is where the missing folders (if any) would be created.
    existing = parent.absolute()
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise OutputError(f"{path}: cannot create its folder, {existing} is a file")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise OutputError(f"{path}: cannot write here, {existing} is not writable")


def files_in(folders: Iterable[str | os.PathLike], suffixes: Iterable[str]) -> list[Path]:
    """Files directly in ``folders`` whose suffix (lower-cased) is one of ``suffixes``."""
    wanted = {suffix.lower() for suffix in suffixes}
    return [
        path
        for folder in folders
        for path in sorted(Path(folder).iterdir())
        if path.is_file() and path.suffix.lower() in wanted
    ]
