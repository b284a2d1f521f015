"""Classical inverse tone mapping: camera-curve linearization plus highlight expansion.

The baseline ``bdx ldr2hdr --method classical`` and the reference the learned
model must beat. Linearization inverts a power curve; its exponent (2.6) and the
expansion's threshold and boost were chosen by PSNR-mu on the training scenes of
``bdx train hdr`` (never on the held-out ones): cameras roll highlights off, so
a steeper curve than sRGB fits them better. Expansion follows the
idea of Banterle's expand map: a smooth map of where the image is near clipping
(the max channel above ``threshold``, blurred over about 1/40 of the image)
scales those regions up to ``boost`` times, so clipped highlights become
brighter than anything unclipped while edges stay put.
"""

from __future__ import annotations

import cv2
import numpy as np


def expand_highlights(srgb: np.ndarray, threshold: float = 0.95, boost: float = 2.0, gamma: float = 2.6) -> np.ndarray:
    """Scene-linear estimate from display values in [0, 1] (H, W, 3), clip point at 1.0."""
    srgb = np.clip(np.asarray(srgb, dtype=np.float32), 0.0, 1.0)
    linear = srgb ** np.float32(gamma)
    peak = srgb.max(axis=-1)
    near_clip = np.clip((peak - threshold) / (1.0 - threshold), 0.0, 1.0) ** 2
    expand_map = _wide_blur(near_clip, max(1.0, max(srgb.shape[:2]) / 40.0))
    expand_map = np.maximum(expand_map, near_clip)  # never less than the pixel's own clipping
    return (linear * (1.0 + (boost - 1.0) * expand_map)[..., None]).astype(np.float32)


def _wide_blur(plane: np.ndarray, sigma: float, working_sigma: float = 4.0) -> np.ndarray:
    """Gaussian blur of a float32 plane; wide ones run on an area-downscaled copy and are upscaled bilinearly
    (a 100 px blur of a 12 MP plane: about 0.05 s instead of several seconds; the map is smooth anyway)."""
    factor = sigma / working_sigma
    height, width = plane.shape
    if factor < 2 or min(height, width) / factor < 8:
        return cv2.GaussianBlur(plane, (0, 0), sigma)
    small = cv2.resize(plane, (max(1, round(width / factor)), max(1, round(height / factor))), interpolation=cv2.INTER_AREA)
    return cv2.resize(cv2.GaussianBlur(small, (0, 0), working_sigma), (width, height), interpolation=cv2.INTER_LINEAR)
