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
    sigma = max(1.0, max(srgb.shape[:2]) / 40.0)
    expand_map = cv2.GaussianBlur(near_clip, (0, 0), sigma)
    expand_map = np.maximum(expand_map, near_clip)  # never less than the pixel's own clipping
    return (linear * (1.0 + (boost - 1.0) * expand_map)[..., None]).astype(np.float32)
