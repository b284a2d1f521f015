"""The compressed domains HDR networks work in, and camera response curves.

``mu_law`` maps linear radiance (clip point of the input = 1.0) into [0, 1]
with mu = 5000 over ``HEADROOM`` (32x, five stops above the clip point). Camera
responses are a two-parameter family (a gamma and a sigmoid-like shoulder) that
covers sRGB-like and S-shaped film curves; training draws random members.
"""

from __future__ import annotations

import math

import numpy as np
import torch

MU = 5000.0
HEADROOM = 32.0


def mu_law(linear: torch.Tensor, headroom: float = HEADROOM) -> torch.Tensor:
    """Linear values (0 .. headroom) to the mu-law domain (0 .. 1)."""
    return torch.log1p(MU * (linear.clamp_min(0) / headroom)) / math.log1p(MU)


def inverse_mu_law(compressed: torch.Tensor, headroom: float = HEADROOM) -> torch.Tensor:
    """Inverse of :func:`mu_law`."""
    return torch.expm1(compressed * math.log1p(MU)) / MU * headroom


def mu_law_np(linear: np.ndarray, peak: float) -> np.ndarray:
    """mu-law of values normalised by ``peak`` (for PSNR-mu), clipped to [0, 1]."""
    return np.log1p(MU * np.clip(linear / peak, 0, 1)) / math.log1p(MU)


def camera_response(linear: np.ndarray, gamma: float, shoulder: float) -> np.ndarray:
    """A camera curve: linear [0, 1] to display [0, 1]. ``shoulder`` 0 is a pure gamma; larger values add an S-shaped roll-off."""
    x = np.clip(linear, 0.0, 1.0) ** (1.0 / gamma)
    if shoulder <= 0:
        return x
    k = 1.0 + 4.0 * shoulder
    return (1 - (1 - x) ** k) * (1 - shoulder * 0.5) + x * shoulder * 0.5


def random_camera(rng: np.random.Generator) -> tuple[float, float]:
    """A random but realistic camera: gamma 1.8-2.6, shoulder 0-0.6."""
    return float(rng.uniform(1.8, 2.6)), float(rng.uniform(0.0, 0.6))
