"""bdx: restore what 8-bit imaging throws away.

The public API, one shape for the three tasks: ``task(image, model or None, settings) -> result``.

>>> import bdx
>>> [name for name in ("upscale_depth", "enhance_lowlight", "ldr_to_hdr", "load_model") if name in bdx.__all__]
['upscale_depth', 'enhance_lowlight', 'ldr_to_hdr', 'load_model']

Importing :mod:`bdx` is cheap (no torch): every name loads its module on first use.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

from bdx.errors import BdxError, InputError, SettingError, UsageError, WeightsError

__version__ = "0.1.0"

_LAZY = {
    "upscale_depth": "bdx.depth",
    "DepthSettings": "bdx.depth",
    "DepthResult": "bdx.depth",
    "enhance_lowlight": "bdx.lowlight.enhance",
    "EnhanceSettings": "bdx.lowlight.enhance",
    "EnhanceResult": "bdx.lowlight.enhance",
    "ldr_to_hdr": "bdx.hdr.reconstruct",
    "HdrSettings": "bdx.hdr.reconstruct",
    "HdrResult": "bdx.hdr.reconstruct",
    "load_model": "bdx.models",
    "LoadedModel": "bdx.models",
    "architectures": "bdx.models",
    "Image": "bdx.io",
    "read_image": "bdx.io",
    "write_image": "bdx.io",
}

__all__ = [
    "BdxError",
    "InputError",
    "SettingError",
    "UsageError",
    "WeightsError",
    "__version__",
    "upscale_depth",
    "DepthSettings",
    "DepthResult",
    "enhance_lowlight",
    "EnhanceSettings",
    "EnhanceResult",
    "ldr_to_hdr",
    "HdrSettings",
    "HdrResult",
    "load_model",
    "LoadedModel",
    "architectures",
    "Image",
    "read_image",
    "write_image",
]

if TYPE_CHECKING:
    from bdx.depth import DepthResult, DepthSettings, upscale_depth
    from bdx.hdr.reconstruct import HdrResult, HdrSettings, ldr_to_hdr
    from bdx.io import Image, read_image, write_image
    from bdx.lowlight.enhance import EnhanceResult, EnhanceSettings, enhance_lowlight
    from bdx.models import LoadedModel, architectures, load_model


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'bdx' has no attribute {name!r}")


def __dir__() -> list[str]:
    """The loaded names and the lazy ones (for tab completion)."""
    return sorted(set(globals()) | set(_LAZY))
