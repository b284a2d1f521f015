"""Per-image colour palettes: k-means in Oklab and nearest-colour assignment."""

from __future__ import annotations

import cv2
import numpy as np

from bdx.color import srgb_to_oklab

_CHUNK = 1 << 16


def kmeans_palette(srgb: np.ndarray, colours: int, *, sample: int = 200_000, seed: int = 0) -> np.ndarray:
    """A palette of at most ``colours`` sRGB colours (k, C) fitted by k-means in Oklab.

    Clusters are found in Oklab, a perceptual space; each palette colour is the
    mean sRGB value of its cluster. Images with fewer distinct colours than
    ``colours`` get exactly their own colours.
    """
    pixels = srgb.reshape(-1, srgb.shape[-1]).astype(np.float32)
    rng = np.random.default_rng(seed)
    if len(pixels) > sample:
        pixels = pixels[rng.choice(len(pixels), sample, replace=False)]
    distinct = np.unique(pixels, axis=0)
    if len(distinct) <= colours:
        return distinct
    lab = np.ascontiguousarray(srgb_to_oklab(pixels), dtype=np.float32)
    cv2.setRNGSeed(seed % 2**31)  # OpenCV takes a C int; any seed NumPy takes works
    criteria = (cv2.TERM_CRITERIA_EPS + cv2.TERM_CRITERIA_MAX_ITER, 30, 1e-5)
    _, labels, _ = cv2.kmeans(lab, colours, None, criteria, 1, cv2.KMEANS_PP_CENTERS)
    labels = labels[:, 0]
    counts = np.bincount(labels, minlength=colours)
    sums = np.zeros((colours, pixels.shape[1]), dtype=np.float64)
    np.add.at(sums, labels, pixels)
    used = counts > 0
    return (sums[used] / counts[used, None]).astype(np.float32)


def nearest_colour(srgb: np.ndarray, palette: np.ndarray) -> np.ndarray:
    """Index of the palette colour nearest (in Oklab) to each pixel of an (..., C) array."""
    shape = srgb.shape[:-1]
    flat = srgb.reshape(-1, srgb.shape[-1])
    palette_lab = srgb_to_oklab(palette).astype(np.float32)
    norms = (palette_lab**2).sum(axis=1)
    result = np.empty(len(flat), dtype=np.int32)
    for start in range(0, len(flat), _CHUNK):
        lab = srgb_to_oklab(np.clip(flat[start : start + _CHUNK], 0.0, 1.0)).astype(np.float32)
        distance = norms[None, :] - 2.0 * lab @ palette_lab.T
        result[start : start + _CHUNK] = np.argmin(distance, axis=1)
    return result.reshape(shape)


def palette_spacing(palette: np.ndarray) -> float:
    """Median distance from each palette colour to its nearest neighbour (sRGB units)."""
    if len(palette) < 2:
        return 1.0
    distance = np.sqrt(((palette[:, None, :] - palette[None, :, :]) ** 2).sum(-1))
    np.fill_diagonal(distance, np.inf)
    return float(np.median(distance.min(axis=1)))
