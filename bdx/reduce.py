"""Bit-depth reduction of images: the core of ``bdx quantize``."""

from __future__ import annotations

import numbers
from typing import Literal, get_args

import numpy as np

from bdx.dither import DITHER_METHODS, DitherMethod, floyd_steinberg, threshold_offsets
from bdx.errors import BdxError, InputError, SettingError, SettingUsageError, check_setting
from bdx.io import Image, convert_depth, to_float
from bdx.io.image import check_image, straight_alpha
from bdx.palette import kmeans_palette, nearest_colour, palette_spacing
from bdx.quantization import CONVENTIONS, Convention, check_bits, codes_from_levels, container_for, level_units, round_levels

QuantizeMethod = Literal["linear", "kmeans"]
QUANTIZE_METHODS: tuple[QuantizeMethod, ...] = get_args(QuantizeMethod)
MAX_PALETTE_BITS = 8


def check_seed(seed: int) -> None:
    """Refuse a seed that is no whole number of at least 0 (NumPy's generators take no other)."""
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0:
        raise SettingUsageError(f"{{seed}} must be a whole number of at least 0, not {seed!r}")


def check_method_convention(method: str, convention: str) -> None:
    """Refuse a storage convention other than the default with ``kmeans``: a palette's colours are codes, not
    levels stored by a convention (it was ignored without a word)."""
    if method == "kmeans" and convention != "centre":
        raise SettingUsageError("{convention} applies to {method} linear only")


def quantize_image(
    image: Image,
    bits: int,
    *,
    method: QuantizeMethod = "linear",
    dither: DitherMethod = "none",
    convention: Convention = "centre",
    seed: int = 0,
) -> Image:
    """Reduce an 8- or 16-bit image to ``bits`` bits per sample (colour only; alpha is kept).

    ``linear`` rounds each sample to one of 2^bits levels and stores it under ``convention`` in the container
    of :func:`output_container`; ``kmeans`` maps each pixel to a per-image palette of 2^bits colours.
    """
    check_image(image)
    check_setting("method", method, QUANTIZE_METHODS)
    check_setting("dither", dither, DITHER_METHODS)
    check_setting("convention", convention, CONVENTIONS)
    check_method_convention(method, convention)
    check_seed(seed)
    if image.is_float:
        raise InputError("bit-depth reduction needs an 8- or 16-bit input, not a float image")
    colours = 1 if image.pixels.ndim == 2 else image.pixels.shape[-1]  # a palette reduces colours, not samples
    check_bits(bits, image.container_bits * (colours if method == "kmeans" else 1))
    image = straight_alpha(image)  # the levels are of the colour itself, as the PNG output stores it
    if method == "linear" and image.significant_bits and bits >= image.significant_bits:  # declared fewer bits than stored
        declared = f"{image.significant_bits} significant bits ({image.significant_bits_source})"
        raise SettingError(f"{{bits}} {bits} does not reduce an input of {declared}")
    container = output_container(image, bits, method)
    if method == "linear":
        pixels = _quantize_linear(image.pixels, image.container_bits, bits, dither, convention, seed, container)
        return image.with_pixels(pixels, significant_bits=bits)
    check_method_bits(method, bits)
    if method == "kmeans":
        palette_codes = _quantize_palette(image.pixels, bits, dither, seed)
        return image.with_pixels(convert_depth(palette_codes, container), significant_bits=None)
    raise BdxError(f"unknown quantization method {method!r}")


def output_container(image: Image, bits: int, method: QuantizeMethod = "linear") -> int:
    """Container depth of :func:`quantize_image`'s output: 8 bits for up to 8-bit levels and for palettes, else
    16; and 16 whenever the image has a 16-bit alpha channel, which is kept at full precision.

    >>> import numpy as np
    >>> rgba16 = Image(np.zeros((2, 2, 3), np.uint16), alpha=np.zeros((2, 2), np.uint16))
    >>> output_container(rgba16, 2), output_container(rgba16.with_pixels(rgba16.pixels, alpha=None), 2)
    (16, 8)
    """
    colour = container_for(bits) if method == "linear" else 8
    return 16 if image.alpha is not None and image.alpha.dtype == np.uint16 else colour


def check_method_bits(method: str, bits: int) -> None:
    """Refuse a depth the ``method`` cannot give whatever the input (k-means palettes hold at most 256 colours)."""
    if method == "kmeans" and bits > MAX_PALETTE_BITS:
        raise SettingUsageError(f"{{method}} kmeans supports up to {MAX_PALETTE_BITS} bits (256 colours), not {{bits}} {bits}")


def _quantize_linear(codes, container_bits, bits, dither, convention, seed, out_container) -> np.ndarray:
    units = level_units(codes, container_bits, bits, convention)
    if dither == "floyd-steinberg":

        def nearest(values):
            levels = round_levels(values, bits, convention)
            return levels, levels.astype(np.float32)

        levels = floyd_steinberg(units, nearest, units.shape, np.int32)
    else:
        offsets = threshold_offsets(units.shape[0], units.shape[1], dither, seed)
        if offsets is not None:
            units = units + offsets + (np.float32(0.5) if convention == "truncate" else np.float32(0))
        levels = round_levels(units, bits, convention)
    return codes_from_levels(levels, bits, out_container, convention)


def _quantize_palette(codes, bits, dither, seed) -> np.ndarray:
    srgb = to_float(codes)
    palette = kmeans_palette(srgb, 1 << bits, seed=seed)
    if dither == "floyd-steinberg":

        def nearest(values):
            index = nearest_colour(values, palette)
            return index, palette[index]

        index = floyd_steinberg(srgb, nearest, srgb.shape[:2], np.int32)
    else:
        offsets = threshold_offsets(srgb.shape[0], srgb.shape[1], dither, seed)
        if offsets is not None:
            srgb = srgb + offsets * np.float32(palette_spacing(palette))
        index = nearest_colour(srgb, palette)
    palette_codes = np.rint(np.clip(palette, 0, 1) * 255).astype(np.uint8)
    return palette_codes[index]
