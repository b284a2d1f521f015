"""The compressed domains HDR networks work in, and camera response curves.

The networks' mu-law domain (:func:`bdx.color.mu_law`) maps linear radiance (clip point of the input = 1.0)
into [0, 1] over ``HEADROOM`` (32x, five stops above the clip point). Camera
responses are a two-parameter family (a gamma and a sigmoid-like shoulder) that
covers sRGB-like and S-shaped film curves; training draws random members.
"""

from __future__ import annotations

import numpy as np

HEADROOM = 32.0


def camera_response(linear: np.ndarray, gamma: float, shoulder: float, white: float = 1.0) -> np.ndarray:
    """A camera curve: linear [0, ``white``] to display [0, 1], clipped above ``white``. ``shoulder`` 0 is a pure
    gamma; larger values add an S-shaped roll-off. ``white`` > 1 is a filmic camera: the extended Reinhard curve
    ``l (1 + l / white^2) / (1 + l)`` first compresses highlights up to ``white`` times the clip point into the
    range, so a display value near 1 stands for a scene several stops brighter.

    >>> round(float(camera_response(np.float32(4.0), 2.2, 0.0, white=4.0)), 6), float(camera_response(np.float32(2.0), 2.2, 0.0))
    (1.0, 1.0)
    """
    if white > 1.0:
        linear = np.clip(linear, 0.0, white)
        linear = linear * (1.0 + linear / np.float32(white * white)) / (1.0 + linear)
    x = np.clip(linear, 0.0, 1.0) ** (1.0 / gamma)
    if shoulder <= 0:
        return x
    k = 1.0 + 4.0 * shoulder
    return (1 - (1 - x) ** k) * (1 - shoulder * 0.5) + x * shoulder * 0.5


FILMIC_SHARE = 0.5  # of random cameras that compress highlights (white 2-16 x the clip point) before clipping


def random_camera(rng: np.random.Generator) -> tuple[float, float, float]:
    """A random but realistic camera (gamma, shoulder, white): gamma 1.8-2.6, shoulder 0-0.6; half of them
    filmic, with a white point log-uniform in 2-16 (:func:`camera_response`), the others clipping at 1."""
    gamma, shoulder = float(rng.uniform(1.8, 2.6)), float(rng.uniform(0.0, 0.6))
    white = float(np.exp2(rng.uniform(1.0, 4.0))) if rng.random() < FILMIC_SHARE else 1.0
    return gamma, shoulder, white
