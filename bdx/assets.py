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

    ``bits``: the input's depth (1 to 15); an installed default whose card's ``input_bits`` range holds it comes
    first, else the default for any depth (the card without ``input_bits``).
    """
    if bits is not None:
        from bdx.quantization import check_depth

        check_depth("bits", bits)
    defaults = [card for card in model_cards() if card["task"] == task and card.get("default")]
    folder = weights_folder()
    for card in defaults:
        if "input_bits" in card and bits is not None and _holds(card, bits) and (folder / card["file"]).is_file():
            return folder / card["file"]
    general = [card["file"] for card in defaults if "input_bits" not in card]
    if not general:
        raise SettingError(f"no default {task} weights in this install; pass {{weights}} FILE")
    path = folder / general[0]
    if not path.is_file():
        raise SettingError(f"the shipped {task} weights {general[0]} are missing from this install; pass {{weights}} FILE")
    return path


def has_default_weights(task: str) -> bool:
    """Whether the shipped weights for ``task`` are present."""
    try:
        default_weights(task)
    except SettingError:
        return False
    return True


def _holds(card: dict[str, Any], bits: int) -> bool:
    """Whether the card's ``input_bits`` range holds ``bits``; a malformed range is a one-line error."""
    depths = card["input_bits"]
    whole = isinstance(depths, list) and len(depths) == 2 and all(type(d) is int for d in depths)
    if not whole:
        raise SettingError(f"weights/manifest.json: {card['file']}: input_bits must be [lowest, highest], not {depths!r}")
    return depths[0] <= bits <= depths[1]
