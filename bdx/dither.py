"""Dithering: ordered (Bayer), random, and Floyd-Steinberg error diffusion.

Ordered and random dithering are threshold offsets added before rounding.
Floyd-Steinberg runs as a wavefront: pixel (y, x) only depends on pixels with a
smaller y*2 + x, so each anti-diagonal "wave" is quantized in one vectorized step.
"""

from __future__ import annotations

from typing import Callable, Literal, get_args

import numpy as np

DitherMethod = Literal["none", "ordered", "random", "floyd-steinberg"]
DITHER_METHODS: tuple[DitherMethod, ...] = get_args(DitherMethod)


def bayer_matrix(order: int = 3) -> np.ndarray:
    """The 2^order x 2^order Bayer index matrix (values 0 .. 4^order - 1)."""
    matrix = np.zeros((1, 1), dtype=np.int64)
    for _ in range(order):
        matrix = np.block([[4 * matrix, 4 * matrix + 2], [4 * matrix + 3, 4 * matrix + 1]])
    return matrix


def threshold_offsets(height: int, width: int, method: DitherMethod, seed: int = 0) -> np.ndarray | None:
    """Per-pixel offsets in [-0.5, 0.5) of one quantization step (H, W, 1), or None for none."""
    if method == "ordered":
        matrix = bayer_matrix(3)
        size = matrix.shape[0]
        offsets = (matrix + 0.5) / matrix.size - 0.5
        reps = (-(-height // size), -(-width // size))
        return np.tile(offsets, reps)[:height, :width, None].astype(np.float32)
    if method == "random":
        rng = np.random.default_rng(seed)
        return (rng.random((height, width, 1), dtype=np.float32) - np.float32(0.5)).astype(np.float32)
    return None


QuantizeFn = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]


def floyd_steinberg(values: np.ndarray, quantize: QuantizeFn, out_shape: tuple[int, ...], out_dtype) -> np.ndarray:
    """Error-diffuse ``values`` (H, W, C float) through ``quantize``.

    ``quantize`` maps an (n, C) batch of values to (codes, reconstructions): the
    codes are stored in the result (shape ``out_shape``, trailing dims per pixel)
    and the reconstructions (n, C) define the error that is diffused with the
    classic 7/16, 3/16, 5/16, 1/16 weights.
    """
    height, width, channels = values.shape
    result = np.empty(out_shape, dtype=out_dtype)
    error = np.zeros((height + 1, width + 2, channels), dtype=np.float32)  # x offset by one
    all_rows = np.arange(height)
    for wave in range(width + 2 * (height - 1)):
        y_first = max(0, -(-(wave - width + 1) // 2))
        y_last = min(height - 1, wave // 2)
        if y_first > y_last:
            continue
        ys = all_rows[y_first : y_last + 1]
        xs = wave - 2 * ys
        current = values[ys, xs] + error[ys, xs + 1]
        codes, reconstructed = quantize(current)
        result[ys, xs] = codes
        residual = current - reconstructed
        error[ys, xs + 2] += residual * np.float32(7 / 16)
        error[ys + 1, xs] += residual * np.float32(3 / 16)
        error[ys + 1, xs + 1] += residual * np.float32(5 / 16)
        error[ys + 1, xs + 2] += residual * np.float32(1 / 16)
    return result
