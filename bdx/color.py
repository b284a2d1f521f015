"""Colour math: sRGB transfer function, luminance, Oklab, and the mu-law domain of HDR values.

Functions take float arrays with channels last and work on NumPy arrays of any
leading shape; the sRGB decoding and the mu-law functions also take tensors (on any device, differentiable).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, TypeVar, cast

import numpy as np

if TYPE_CHECKING:
    import torch

    from bdx.io import Image

Values = TypeVar("Values", np.ndarray, "torch.Tensor")
MU = 5000.0  # the mu-law's compression, as in HDR reconstruction papers

REC709_LUMA = np.array([0.2126, 0.7152, 0.0722], dtype=np.float32)

_LMS_FROM_LINEAR_SRGB = np.array(
    [
        [0.4122214708, 0.5363325363, 0.0514459929],
        [0.2119034982, 0.6806995451, 0.1073969566],
        [0.0883024619, 0.2817188376, 0.6299787005],
    ],
    dtype=np.float64,
)
_OKLAB_FROM_LMS_ = np.array(
    [
        [0.2104542553, 0.7936177850, -0.0040720468],
        [1.9779984951, -2.4285922050, 0.4505937099],
        [0.0259040371, 0.7827717662, -0.8086757660],
    ],
    dtype=np.float64,
)


def srgb_to_linear(values: Values) -> Values:
    """sRGB-encoded values in [0, 1] to linear light (IEC 61966-2-1), for a NumPy array (float32 out) or a
    tensor.

    >>> float(srgb_to_linear(np.array(0.5)))
    0.21404114365577698
    """
    if not isinstance(values, np.ndarray) and hasattr(values, "clamp_min"):
        return ((values.clamp_min(0.04045) + 0.055) / 1.055).pow(2.4).where(values > 0.04045, values / 12.92)
    array = np.asarray(values, dtype=np.float32)
    linear = np.where(array <= 0.04045, array / 12.92, ((np.maximum(array, 0.04045) + 0.055) / 1.055) ** 2.4)
    return cast(Values, linear.astype(np.float32))


def linear_to_srgb(values: np.ndarray) -> np.ndarray:
    """Linear light to sRGB encoding (values above 1 are extended with the same curve)."""
    values = np.asarray(values, dtype=np.float32)
    return np.where(values <= 0.0031308, values * 12.92, 1.055 * np.maximum(values, 0.0031308) ** (1 / 2.4) - 0.055).astype(np.float32)


def srgb_codes(linear: np.ndarray) -> np.ndarray:
    """Linear light clipped to [0, 1], sRGB-encoded as 16-bit codes: how a display-referred consumer (an
    enhancement, a display metric) reads a float or linear image.

    >>> srgb_codes(np.array([0.0, 0.214, 1.0, 7.0])).tolist()
    [0, 32765, 65535, 65535]
    """
    return np.rint(linear_to_srgb(np.clip(np.asarray(linear, dtype=np.float32), 0.0, 1.0)) * 65535).astype(np.uint16)


def display_codes_of(values: np.ndarray, linear: bool) -> np.ndarray:
    """Float or linear samples as 16-bit display codes: linear light sRGB-encoded (:func:`srgb_codes`), display
    values (a float TIFF) clipped to [0, 1] and scaled.

    >>> display_codes_of(np.array([0.0, 0.214, 1.0]), linear=True).tolist(), display_codes_of(np.array([0.5, 2.0]), linear=False).tolist()
    ([0, 32765, 65535], [32768, 65535])
    """
    if linear:
        return srgb_codes(values)
    return np.rint(np.clip(np.asarray(values, dtype=np.float32), 0.0, 1.0) * 65535).astype(np.uint16)


def scene_linear(image: Image) -> Image:
    """An image of sRGB display codes as scene-linear float32 (EXR's convention), alpha and metadata kept."""
    from bdx.io import to_float

    return image.with_pixels(srgb_to_linear(to_float(image.pixels)).astype(np.float32), linear=True)


def mu_law(linear: Values, headroom: float, mu: float = MU) -> Values:
    """Linear values from 0 to ``headroom`` to the mu-law domain, 0 to 1 (negatives count as 0), for a NumPy
    array or a tensor.

    >>> float(mu_law(np.array(32.0), headroom=32.0))
    1.0
    """
    if isinstance(linear, np.ndarray):
        return np.log1p(mu * (np.maximum(linear, 0) / headroom)) / math.log1p(mu)
    return (mu * (linear.clamp_min(0) / headroom)).log1p() / math.log1p(mu)


def inverse_mu_law(compressed: Values, headroom: float, mu: float = MU) -> Values:
    """Inverse of :func:`mu_law`."""
    if isinstance(compressed, np.ndarray):
        return np.expm1(compressed * math.log1p(mu)) / mu * headroom
    return (compressed * math.log1p(mu)).expm1() / mu * headroom


def luminance(linear_rgb: np.ndarray) -> np.ndarray:
    """Rec. 709 relative luminance of linear RGB; a single channel is returned as is."""
    if linear_rgb.shape[-1] == 1:
        return linear_rgb[..., 0]
    return linear_rgb @ REC709_LUMA


def linear_srgb_to_oklab(linear_rgb: np.ndarray) -> np.ndarray:
    """Linear sRGB to Oklab (Ottosson 2020); gray input is treated as R = G = B."""
    if linear_rgb.shape[-1] == 1:
        linear_rgb = np.repeat(linear_rgb, 3, axis=-1)
    lms = np.asarray(linear_rgb, dtype=np.float32) @ _LMS_FROM_LINEAR_SRGB.T.astype(np.float32)
    return np.cbrt(lms) @ _OKLAB_FROM_LMS_.T.astype(np.float32)


def srgb_to_oklab(srgb: np.ndarray) -> np.ndarray:
    """sRGB-encoded values in [0, 1] to Oklab."""
    return linear_srgb_to_oklab(srgb_to_linear(srgb))
