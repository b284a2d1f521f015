"""Finding training files and splitting them, shared by every ``bdx train`` command."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Callable, TypeVar

from bdx.errors import BdxError

T = TypeVar("T")


def find_files(folders: list[Path], suffixes: set[str] | frozenset[str]) -> list[Path]:
    """Files given directly, every file under the folders whose suffix is in ``suffixes`` (hidden files
    skipped), and the files a glob pattern matches with such a suffix, each folder's or pattern's in sorted
    order."""
    import glob

    files: list[Path] = []
    for folder in folders:
        if folder.is_file():
            files.append(folder)
        elif folder.is_dir():
            files.extend(
                p for p in sorted(folder.rglob("*")) if p.is_file() and p.suffix.lower() in suffixes and not p.name.startswith(".")
            )
        elif glob.has_magic(str(folder)):
            matches = sorted(Path(m) for m in glob.glob(str(folder), recursive=True))
            matches = [m for m in matches if m.is_file() and m.suffix.lower() in suffixes]
            if not matches:
                raise BdxError(f"{folder}: no files match")
            files.extend(matches)
        else:
            raise BdxError(f"{folder}: no such file or folder")
    return files


MIN_REFERENCE_SIDE = 32  # pixels: every network's crop grid fits, with room for a crop to move


def check_reference_size(path: Path, height: int, width: int) -> None:
    """A one-line error naming ``path`` when a training reference of (height, width) pixels is too small to crop."""
    if min(height, width) < MIN_REFERENCE_SIDE:
        raise BdxError(f"{path}: {width}x{height} pixels; a training reference needs at least {MIN_REFERENCE_SIDE} a side")


def read_pairs_list(pairs_file: Path) -> list[dict[str, str]]:
    """The entries of a pairs file: a JSON list of ``{"input": file, "reference": file}``, both non-empty text; a
    one-line error naming the file otherwise."""
    import json

    try:
        entries = json.loads(pairs_file.read_text())
    except (OSError, ValueError) as exc:
        problem = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise BdxError(f"cannot read pairs from {pairs_file}: {problem.lower()}") from None
    if not isinstance(entries, list) or not entries or not all(isinstance(e, dict) and {"input", "reference"} <= set(e) for e in entries):
        raise BdxError(f'{pairs_file}: expected a JSON list of {{"input": ..., "reference": ...}} entries')
    for number, entry in enumerate(entries, 1):
        for key in ("input", "reference"):
            if not isinstance(entry[key], str) or not entry[key]:
                raise BdxError(f'{pairs_file}: entry {number}: "{key}" must be a file name, not {json.dumps(entry[key])}')
    return entries


def is_validation(name: str, fraction: float) -> bool:
    """Stable file-level split: a file is held out when its name hashes below ``fraction``."""
    digest = hashlib.sha256(name.encode()).digest()
    return int.from_bytes(digest[:4], "big") / 2**32 < fraction


def split_by_name(
    items: list[T],
    name_of: Callable[[T], str],
    fraction: float,
    *,
    validate_from: int = 2,
) -> tuple[list[T], list[T]]:
    """Training and validation items by :func:`is_validation` of their names. Whatever the names hash to, a
    lone file trains (without validation), and from ``validate_from`` files on both sides get at least one."""
    train = [item for item in items if not is_validation(name_of(item), fraction)]
    val = [item for item in items if is_validation(name_of(item), fraction)]
    if len(items) < validate_from:
        return list(items), []
    if not val and len(train) > 1:
        val = [train.pop()]
    if not train and len(val) > 1:
        train = [val.pop()]
    return train, val
