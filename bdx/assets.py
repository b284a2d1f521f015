"""Where bdx finds its shipped weights, and which one each task runs by default.

The repository's top-level ``weights/`` folder is installed as the package data ``bdx.weights`` (see
``pyproject.toml``), so a non-editable install finds the same files as a source checkout. Its ``manifest.json``
holds one model card per file; the card marked ``default`` for a task is what that task runs without
``weights``. A default card may name the input depths it is for (``input_bits``: [lowest, highest]): the
dequantizer ships a network for 3- to 6-bit inputs beside the one for every other depth.
"""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

from bdx.errors import SettingError


def weights_folder() -> Path:
    """The folder holding the shipped weights and their manifest."""
    try:
        folder = Path(str(resources.files("bdx.weights")))
        if (folder / "manifest.json").is_file():
            return folder
    except (ModuleNotFoundError, TypeError):
        pass
    return Path(__file__).resolve().parent.parent / "weights"


@cache
def model_cards() -> tuple[dict[str, Any], ...]:
    """The manifest's model cards (none when the install carries no manifest)."""
    path = weights_folder() / "manifest.json"
    if not path.is_file():
        return ()
    return tuple(json.loads(path.read_text())["models"])


def default_weights(task: str, bits: int | None = None) -> Path:
    """The shipped weights file for ``task`` (``depth``, ``lowlight`` or ``hdr``); a one-line error if absent.

    ``bits``: the input's depth; a default card whose ``input_bits`` range holds it comes first, else the card
    for any depth (the one without ``input_bits``).
    """
    defaults = [card for card in model_cards() if card["task"] == task and card.get("default")]
    for_depth = [card for card in defaults if bits is not None and "input_bits" in card and _holds(card["input_bits"], bits)]
    names = [card["file"] for card in for_depth or [card for card in defaults if "input_bits" not in card]]
    path = weights_folder() / names[0] if names else None
    if path is None or not path.is_file():
        raise SettingError(f"no default {task} weights in this install; pass {{weights}} FILE")
    return path


def has_default_weights(task: str) -> bool:
    """Whether the shipped weights for ``task`` are present."""
    try:
        default_weights(task)
    except SettingError:
        return False
    return True


def _holds(depths: list[int], bits: int) -> bool:
    low, high = depths
    return low <= bits <= high
