"""Quantization levels, bins and effective bit depth.

Two conventions map N-bit levels q into a B-bit container:

* ``centre`` (bdx's default): q is the nearest of 2^N levels spread over the full
  range and is stored as round(q * (2^B - 1) / (2^N - 1)), so a stored value is the
  centre of its bin.
* ``truncate``: the top N bits of the value are kept and the low bits are zero,
  the protocol of most published bit-depth papers.

All rounding is round-half-to-even (``np.rint``), the same everywhere.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Literal

import numpy as np

from bdx.errors import BdxError

Convention = Literal["centre", "truncate"]
CONVENTIONS: tuple[str, ...] = ("centre", "truncate")


def max_level(bits: int) -> int:
    """Highest level of an N-bit quantizer (2^N - 1)."""
    return (1 << bits) - 1


def step_size(bits: int, convention: Convention = "centre") -> float:
    """Width of one N-bit quantization step in [0, 1] units: 1/(2^N - 1) (centre) or 2^-N (truncate)."""
    return 1.0 / max_level(bits) if convention == "centre" else 2.0**-bits


def check_bits(bits: int, container_bits: int | None = None) -> None:
    """Reject a quantization depth outside 1..15, or not below the input's depth."""
    if not 1 <= bits <= 15:
        raise BdxError(f"--bits must be between 1 and 15, not {bits}")
    if container_bits is not None and bits >= container_bits:
        raise BdxError(f"--bits {bits} does not reduce a {container_bits}-bit input")


def container_for(bits: int) -> int:
    """Container depth used to store N-bit levels: 8 for N <= 8, else 16."""
    return 8 if bits <= 8 else 16


def levels_from_codes(codes: np.ndarray, bits: int, container_bits: int, convention: Convention = "centre") -> np.ndarray:
    """Levels (int32) of container code values holding N-bit content."""
    codes = np.asarray(codes)
    if codes.dtype in (np.uint8, np.uint16) and codes.dtype.itemsize * 8 >= container_bits:
        return _level_table(bits, container_bits, convention)[codes]
    return _levels(codes, bits, container_bits, convention)


def _levels(codes: np.ndarray, bits: int, container_bits: int, convention: Convention) -> np.ndarray:
    if convention == "truncate":
        return (codes.astype(np.int32) >> (container_bits - bits)).astype(np.int32)
    scale = max_level(bits) / max_level(container_bits)
    return np.rint(codes.astype(np.float64) * scale).astype(np.int32)


@lru_cache(maxsize=64)
def _level_table(bits: int, container_bits: int, convention: Convention) -> np.ndarray:
    """Level of every possible container code (codes above the container's range clip to the top level)."""
    codes = np.minimum(np.arange(1 << (8 if container_bits <= 8 else 16)), max_level(container_bits))
    table = _levels(codes, bits, container_bits, convention)
    table.setflags(write=False)
    return table


def codes_from_levels(levels: np.ndarray, bits: int, container_bits: int, convention: Convention = "centre") -> np.ndarray:
    """Container code values (uint8 or uint16) that store N-bit levels."""
    dtype = np.uint8 if container_bits <= 8 else np.uint16
    levels = np.asarray(levels)
    if convention == "truncate":
        return (levels.astype(np.uint32) << (container_bits - bits)).astype(dtype)
    scale = max_level(container_bits) / max_level(bits)
    return np.rint(levels.astype(np.float64) * scale).astype(dtype)


def level_units(codes: np.ndarray, container_bits: int, bits: int, convention: Convention = "centre") -> np.ndarray:
    """Container codes expressed in units of the N-bit quantization step (float32)."""
    codes = np.asarray(codes, dtype=np.float32)
    if convention == "truncate":
        return codes / np.float32(1 << (container_bits - bits))
    return codes * np.float32(max_level(bits) / max_level(container_bits))


def round_levels(units: np.ndarray, bits: int, convention: Convention = "centre") -> np.ndarray:
    """Nearest level (centre) or the level below (truncate), clipped to the valid range."""
    quantized = np.rint(units) if convention == "centre" else np.floor(units)
    return np.clip(quantized, 0, max_level(bits)).astype(np.int32)


@lru_cache(maxsize=64)
def bin_bounds_u16(bits: int, convention: Convention = "centre") -> tuple[np.ndarray, np.ndarray]:
    """For each N-bit level, the lowest and highest 16-bit code that re-quantizes to it."""
    if convention == "truncate":
        low = np.arange(1 << bits, dtype=np.int64) << (16 - bits)
        return low.astype(np.uint16), (low + (1 << (16 - bits)) - 1).astype(np.uint16)
    levels = np.rint(np.arange(65536, dtype=np.float64) * (max_level(bits) / 65535)).astype(np.int64)
    starts = np.searchsorted(levels, np.arange(max_level(bits) + 1), side="left")
    ends = np.searchsorted(levels, np.arange(max_level(bits) + 1), side="right") - 1
    return starts.astype(np.uint16), ends.astype(np.uint16)


def requantize_u16(codes16: np.ndarray, bits: int, convention: Convention = "centre") -> np.ndarray:
    """Levels of 16-bit codes under an N-bit quantizer (the inverse of the bin tables)."""
    return levels_from_codes(codes16, bits, 16, convention)


def bin_centres(levels: np.ndarray, bits: int, convention: Convention = "centre") -> np.ndarray:
    """Bin centres of N-bit levels as float32 in [0, 1]."""
    levels = np.asarray(levels)
    if convention == "truncate":
        low, high = bin_bounds_u16(bits, convention)
        return ((low[levels].astype(np.float32) + high[levels]) * np.float32(0.5 / 65535)).astype(np.float32)
    return (levels.astype(np.float32) / np.float32(max_level(bits))).astype(np.float32)


def clamp_to_bins(values: np.ndarray, levels: np.ndarray, bits: int, convention: Convention = "centre") -> np.ndarray:
    """Round float values in [0, 1] to 16-bit codes, each forced inside its input level's bin."""
    low, high = bin_bounds_u16(bits, convention)
    scaled = np.clip(np.asarray(values, dtype=np.float32), 0.0, 1.0) * np.float32(65535.0)
    codes = np.rint(scaled, out=scaled).astype(np.uint16)
    np.maximum(codes, low[levels], out=codes)
    return np.minimum(codes, high[levels], out=codes)


@lru_cache(maxsize=64)
def code_bounds_u16(bits: int, container_bits: int, convention: Convention = "centre") -> tuple[np.ndarray, np.ndarray]:
    """For each container code holding N-bit content, the 16-bit bin of its level (lowest, highest code)."""
    low, high = bin_bounds_u16(bits, convention)
    table = _level_table(bits, container_bits, convention)
    return low[table], high[table]


def clamp_codes_to_bins(
    values: np.ndarray, codes: np.ndarray, bits: int, container_bits: int, convention: Convention = "centre",
    *, overwrite: bool = False,
) -> np.ndarray:
    """Like :func:`clamp_to_bins`, with the bins given by the input's container codes.

    ``overwrite`` lets it use float32 ``values`` as scratch space (saves a copy of the rows).
    """
    low, high = code_bounds_u16(bits, container_bits, convention)
    reusable = overwrite and values.dtype == np.float32 and values.flags.writeable
    scaled = values if reusable else np.array(values, dtype=np.float32)
    np.clip(scaled, 0.0, 1.0, out=scaled)
    scaled *= np.float32(65535.0)
    out = np.rint(scaled, out=scaled).astype(np.uint16)
    np.maximum(out, low[codes], out=out)
    return np.minimum(out, high[codes], out=out)


def effective_bits(codes: np.ndarray, container_bits: int, convention: Convention = "centre") -> int:
    """Smallest N whose levels reproduce every code value exactly under ``convention``.

    An 8-bit image whose values are all multiples of 17 holds 4-bit content; a
    16-bit image whose values are all multiples of 257 holds 8-bit content.
    """
    values = present_codes(codes)
    for bits in range(1, container_bits):
        if convention == "truncate":
            if not np.any(values.astype(np.int64) & ((1 << (container_bits - bits)) - 1)):
                return bits
        else:
            levels = levels_from_codes(values, bits, container_bits, convention)
            if np.array_equal(codes_from_levels(levels, bits, container_bits, convention), values):
                return bits
    return container_bits


def present_codes(codes: np.ndarray, rows_per_chunk: int = 256) -> np.ndarray:
    """The distinct code values of a uint8/uint16 array, counted in row chunks (no full-size temporaries)."""
    codes = np.asarray(codes)
    if codes.dtype not in (np.uint8, np.uint16):
        return np.unique(codes)
    seen = np.zeros(1 << (8 * codes.dtype.itemsize), dtype=bool)
    flat = codes.reshape(codes.shape[0], -1) if codes.ndim > 1 else codes.reshape(1, -1)
    for start in range(0, flat.shape[0], rows_per_chunk):
        seen[flat[start : start + rows_per_chunk].ravel()] = True
    return np.flatnonzero(seen).astype(codes.dtype)


def detect_bits(codes: np.ndarray, container_bits: int) -> tuple[int, Convention]:
    """Effective bit depth and the convention that explains it best (centre wins ties)."""
    centre = effective_bits(codes, container_bits, "centre")
    truncate = effective_bits(codes, container_bits, "truncate")
    return (truncate, "truncate") if truncate < centre else (centre, "centre")
