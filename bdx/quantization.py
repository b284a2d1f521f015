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
from typing import Literal, get_args

import numpy as np

from bdx.errors import SettingError, SettingUsageError

Convention = Literal["centre", "truncate"]
CONVENTIONS: tuple[Convention, ...] = get_args(Convention)


def max_level(bits: int) -> int:
    """Highest level of an N-bit quantizer (2^N - 1)."""
    return (1 << int(bits)) - 1


def step_size(bits: int, convention: Convention = "centre", container_bits: int = 16) -> float:
    """Width of one N-bit quantization step in [0, 1] units: 1/(2^N - 1) (centre), or 2^(B-N) codes of a
    B-bit container (truncate; 2^-N for 16 bits)."""
    if convention == "centre":
        return 1.0 / max_level(bits)
    container_bits = truth_container(bits, container_bits)
    return 2.0**-bits if container_bits >= 16 else (1 << (container_bits - bits)) / max_level(container_bits)


PIN_ENDS_FROM_BITS = 7  # from this depth up, end codes keep their centre (see ``end_bins_pinned``)


def end_bins_pinned(bits: int, convention: Convention) -> bool:
    """Whether the end codes of N-bit levels keep the bin centre (the end of the range) when dequantized.

    Under ``centre`` the end bins are half-bins whose centre is the end itself. From 7 bits up a half-bin is
    under 1/250 of the range, and an image's values there are nearly always clipped shadows or highlights,
    truly at the end: moving them inward can only lose. At fewer bits real content fills the end bins too,
    and a dequantizer may place it.
    """
    return convention == "centre" and bits >= PIN_ENDS_FROM_BITS


def truth_container(bits: int, container_bits: int) -> int:
    """The container whose codes the truth of N-bit truncated levels held: the input's own when N is below its
    depth (low bits zeroed in place), else 16 bits (N-bit levels as the top bits of 16)."""
    return container_bits if bits < container_bits else 16


def check_depth(setting: str, bits: int) -> None:
    """Reject a depth outside 1..15, or not a whole number, given as ``setting`` (the low-bit depths bdx reduces to
    and restores from)."""
    if isinstance(bits, bool) or not isinstance(bits, (int, np.integer)) or not 1 <= bits <= 15:
        raise SettingUsageError(f"{{{setting}}} must be a whole number between 1 and 15, not {bits!r}")


def check_bits(bits: int, container_bits: int | None = None) -> None:
    """Reject a quantization depth outside 1..15, or not below the input's depth."""
    check_depth("bits", bits)
    if container_bits is not None and bits >= container_bits:
        raise SettingError(f"{{bits}} {bits} does not reduce an input of {container_bits} bits")


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
def bin_bounds_u16(
    bits: int,
    convention: Convention = "centre",
    container_bits: int = 16,
    *,
    pin_ends: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """For each N-bit level, the lowest and highest 16-bit code inside its bin, as the input's container sees it.

    ``truncate``: the container codes [q, q + 1) * 2^(B-N) (the codes that truncate to level q), as values;
    ``centre``: the 16-bit codes that re-quantize to q both directly and through the container's codes.
    In a 16-bit container both are the plain 16-bit bins. ``pin_ends`` (centre only) shrinks the end bins, which
    are half-bins whose centre is the end of the range itself, to that end: clipped shadows and highlights,
    where the truth usually is, stay there.
    """
    if convention == "truncate":
        container_bits = truth_container(bits, container_bits)
        shift = container_bits - bits
        first = np.arange(1 << bits, dtype=np.int64) << shift
        scale = 65535 / max_level(container_bits)
        low, high = np.ceil(first * scale - 1e-9), np.floor((first + (1 << shift) - 1) * scale + 1e-9)
    else:
        codes = np.arange(65536, dtype=np.float64)
        wanted = np.arange(max_level(bits) + 1)

        def span(levels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:  # first and last code of each level
            return np.searchsorted(levels, wanted, "left"), np.searchsorted(levels, wanted, "right") - 1

        low, high = span(np.rint(codes * (max_level(bits) / 65535)))
        if container_bits < 16:
            stored = np.rint(codes * (max_level(container_bits) / 65535))
            through_low, through_high = span(np.rint(stored * (max_level(bits) / max_level(container_bits))))
            low, high = np.maximum(low, through_low), np.minimum(high, through_high)
        if pin_ends:
            high[0], low[-1] = 0, 65535
    low, high = low.astype(np.uint16), high.astype(np.uint16)
    low.setflags(write=False)
    high.setflags(write=False)
    return low, high


def requantize_u16(codes16: np.ndarray, bits: int, convention: Convention = "centre") -> np.ndarray:
    """Levels of 16-bit codes under an N-bit quantizer (the inverse of the bin tables)."""
    return levels_from_codes(codes16, bits, 16, convention)


def bin_centres(levels: np.ndarray, bits: int, convention: Convention = "centre", container_bits: int = 16) -> np.ndarray:
    """Bin centres of N-bit levels as float32 in [0, 1] (truncate: the middle of the level's container codes)."""
    levels = np.asarray(levels)
    if convention == "truncate":
        container_bits = truth_container(bits, container_bits)
        shift = container_bits - bits
        first = levels.astype(np.float64) * (1 << shift)
        return ((first + ((1 << shift) - 1) / 2) / max_level(container_bits)).astype(np.float32)
    return (levels.astype(np.float32) / np.float32(max_level(bits))).astype(np.float32)


def clamp_to_bins(values: np.ndarray, levels: np.ndarray, bits: int, convention: Convention = "centre") -> np.ndarray:
    """Round float values in [0, 1] to 16-bit codes, each forced inside its input level's bin."""
    low, high = bin_bounds_u16(bits, convention)
    scaled = np.clip(np.asarray(values, dtype=np.float32), 0.0, 1.0) * np.float32(65535.0)
    codes = np.rint(scaled, out=scaled).astype(np.uint16)
    np.maximum(codes, low[levels], out=codes)
    return np.minimum(codes, high[levels], out=codes)


@lru_cache(maxsize=64)
def code_bounds_u16(
    bits: int,
    container_bits: int,
    convention: Convention = "centre",
    pin_ends: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """For each container code holding N-bit content, the 16-bit bin of its level (lowest, highest code)."""
    low, high = bin_bounds_u16(bits, convention, container_bits, pin_ends=pin_ends)  # pinned under centre only
    table = _level_table(bits, container_bits, convention)
    return low[table], high[table]


def clamp_codes_to_bins(
    values: np.ndarray,
    codes: np.ndarray,
    bits: int,
    container_bits: int,
    convention: Convention = "centre",
    *,
    overwrite: bool = False,
    pin_ends: bool = False,
) -> np.ndarray:
    """Like :func:`clamp_to_bins`, with the bins given by the input's container codes.

    ``overwrite`` lets it use float32 ``values`` as scratch space (saves a copy of the rows).
    ``pin_ends``: the end codes' half-bins keep their centre, the end of the range (centre convention).
    """
    low, high = code_bounds_u16(bits, container_bits, convention, pin_ends)
    reusable = overwrite and values.dtype == np.float32 and values.flags.writeable
    scaled = values if reusable else np.array(values, dtype=np.float32)
    np.clip(scaled, 0.0, 1.0, out=scaled)
    scaled *= np.float32(65535.0)
    out = np.rint(scaled, out=scaled).astype(np.uint16)
    np.maximum(out, lookup(low, codes), out=out)
    return np.minimum(out, lookup(high, codes), out=out)


_LUT_DTYPES = (np.uint8, np.int8, np.uint16, np.int16, np.int32, np.float32, np.float64)  # what cv2.LUT writes


def lookup(table: np.ndarray, codes: np.ndarray) -> np.ndarray:
    """``table[codes]``: for 8-bit codes in a (H, W) or (H, W, C <= 4) array, OpenCV's table lookup (several
    times faster than NumPy's gather, on its threads), else NumPy's.

    >>> lookup(np.arange(256, dtype=np.uint16) * 257, np.array([[0, 255]], np.uint8)).tolist()
    [[0, 65535]]
    """
    if (
        codes.dtype == np.uint8
        and table.shape == (256,)
        and table.dtype in _LUT_DTYPES
        and (codes.ndim == 2 or (codes.ndim == 3 and codes.shape[2] <= 4))
        and codes.strides[-1] == 1
        and (codes.ndim == 2 or codes.strides[1] == codes.shape[2])
    ):
        import cv2

        out = cv2.LUT(codes, table)
        return out.reshape(codes.shape)  # OpenCV returns (H, W) for one channel
    return table[codes]


def effective_bits(codes: np.ndarray, container_bits: int, convention: Convention = "centre") -> int:
    """Smallest N whose levels reproduce every code value exactly under ``convention``.

    An 8-bit image whose values are all multiples of 17 holds 4-bit content; a
    16-bit image whose values are all multiples of 257 holds 8-bit content.
    """
    return _effective_bits(present_codes(codes), container_bits, convention)


def _effective_bits(values: np.ndarray, container_bits: int, convention: Convention) -> int:
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
    if codes.flags.c_contiguous and 0 < codes.size < 1 << 31:  # OpenCV's histogram: one pass, on its threads
        import cv2

        size = 1 << (8 * codes.dtype.itemsize)
        counts = cv2.calcHist([codes.reshape(-1, 1)], [0], None, [size], [0, size])
        return np.flatnonzero(counts.ravel() > 0).astype(codes.dtype)
    seen = np.zeros(1 << (8 * codes.dtype.itemsize), dtype=bool)
    flat = codes.reshape(codes.shape[0], -1) if codes.ndim > 1 else codes.reshape(1, -1)
    for start in range(0, flat.shape[0], rows_per_chunk):
        seen[flat[start : start + rows_per_chunk].ravel()] = True
    return np.flatnonzero(seen).astype(codes.dtype)


def detect_bits(codes: np.ndarray, container_bits: int) -> tuple[int, Convention]:
    """Effective bit depth and the convention that explains it best (centre wins ties)."""
    values = present_codes(codes)  # once for both conventions
    centre = _effective_bits(values, container_bits, "centre")
    truncate = _effective_bits(values, container_bits, "truncate")
    return (truncate, "truncate") if truncate < centre else (centre, "centre")
