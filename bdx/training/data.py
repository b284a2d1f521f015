"""Finding training files and splitting them, shared by every ``bdx train`` command."""

from __future__ import annotations

import hashlib
from pathlib import Path

from bdx.errors import BdxError


def find_files(folders: list[Path], suffixes: set[str] | frozenset[str]) -> list[Path]:
    """Files given directly, plus every file under the folders whose suffix is in ``suffixes``
    (hidden files skipped), each folder's files in sorted order."""
    files: list[Path] = []
    for folder in folders:
        if folder.is_file():
            files.append(folder)
        elif folder.is_dir():
            files.extend(
                p for p in sorted(folder.rglob("*"))
                if p.is_file() and p.suffix.lower() in suffixes and not p.name.startswith(".")
            )
        else:
            raise BdxError(f"{folder}: no such file or folder")
    return files


def is_validation(name: str, fraction: float) -> bool:
    """Stable file-level split: a file is held out when its name hashes below ``fraction``."""
    digest = hashlib.sha256(name.encode()).digest()
    return int.from_bytes(digest[:4], "big") / 2**32 < fraction
