"""Where bdx finds its shipped weights.

The repository's top-level ``weights/`` folder is installed as the package data
``bdx.weights`` (see ``pyproject.toml``), so a non-editable install finds the
same files as a source checkout.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from bdx.errors import SettingError

DEFAULT_WEIGHTS = {
    "depth": "depth-contour-gated-v5.safetensors",
    "lowlight": "lowlight-curvenet-v3.safetensors",
    "hdr": "hdr-feedback-v2.safetensors",
}


def weights_folder() -> Path:
    """The folder holding the shipped weights and their manifest."""
    try:
        folder = Path(str(resources.files("bdx.weights")))
        if (folder / "manifest.json").is_file():
            return folder
    except (ModuleNotFoundError, TypeError):
        pass
    return Path(__file__).resolve().parent.parent / "weights"


def default_weights(task: str) -> Path:
    """The shipped weights file for ``task`` (``depth``, ``lowlight`` or ``hdr``); a one-line error if absent."""
    name = DEFAULT_WEIGHTS[task]
    path = weights_folder() / name
    if not path.is_file():
        raise SettingError(f"no default {task} weights ({name}) in this install; pass {{weights}} FILE")
    return path


def has_default_weights(task: str) -> bool:
    """Whether the shipped weights for ``task`` are present."""
    return (weights_folder() / DEFAULT_WEIGHTS[task]).is_file()
