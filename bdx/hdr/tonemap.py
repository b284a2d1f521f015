"""The compressed domains HDR networks work in, and camera response curves.

The networks' mu-law domain (:func:`to_domain`) maps linear radiance (clip point of the input = 1.0) into
[0, 1] over a headroom (by default ``HEADROOM``, 32x, five stops above the clip point; a network may reach
higher). Camera responses come in five
families (:class:`Camera`): a gamma with a sigmoid-like shoulder (and an optional filmic white point), a plain
hard clip (sRGB or a pure gamma), a rational filmic curve with a toe and a shoulder, a rational S-curve
that saturates like the ACES fits, and a log encoding with display contrast on top. Training draws random
members of every family (:func:`random_camera`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np

from bdx.color import MU, Values, inverse_mu_law, linear_to_srgb, mu_law

HEADROOM = 32.0


def to_domain(linear: Values, headroom: float = HEADROOM) -> Values:
    """Linear radiance to the networks' mu-law domain over ``headroom``: mu grows with the headroom, so a
    larger headroom keeps the same resolution below 32x and only shrinks the whole domain by a constant factor
    (:func:`domain_ratio`).

    >>> round(float(to_domain(np.array(256.0), headroom=256.0)), 6)
    1.0
    """
    return mu_law(linear, headroom, MU * headroom / HEADROOM)


def from_domain(compressed: Values, headroom: float = HEADROOM) -> Values:
    """Inverse of :func:`to_domain`."""
    return inverse_mu_law(compressed, headroom, MU * headroom / HEADROOM)


def domain_ratio(old: float, new: float) -> float:
    """``to_domain(x, new) / to_domain(x, old)``, the same for every ``x``.

    >>> x = np.array([0.01, 1.0, 30.0])
    >>> bool(np.allclose(to_domain(x, 128.0) / to_domain(x, 32.0), domain_ratio(32.0, 128.0)))
    True
    """
    return math.log1p(MU * old / HEADROOM) / math.log1p(MU * new / HEADROOM)


CameraFamily = Literal["gamma", "plain", "filmic", "rational", "log"]


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


def _filmic(v: np.ndarray, a: float, b: float, c: float, d: float, e: float, f: float) -> np.ndarray:
    """A rational toe-and-shoulder curve of the form popularised by Hable's filmic operator."""
    return (v * (a * v + c * b) + d * e) / (v * (a * v + b) + d * f) - e / f


def _rational(v: np.ndarray, a: float, b: float, c: float, d: float, e: float) -> np.ndarray:
    """``v (a v + b) / (v (c v + d) + e)``: the form of the ACES fits (a toe, then saturation towards a / c)."""
    return v * (a * v + b) / (v * (c * v + d) + e)


@dataclass(frozen=True)
class Camera:
    """A camera response: scene-linear values (1.0 = the exposure's reference level) to display [0, 1].

    ``family`` names the curve; ``params`` are its parameters:

    - ``gamma``: (gamma, shoulder[, white]) of :func:`camera_response`;
    - ``plain``: (gamma,) a hard clip at 1.0 through a pure power curve, or () for the sRGB curve;
    - ``filmic``: (a, b, c, d, e, f, white, clip) a rational toe-and-shoulder curve normalised so ``white`` maps to 1,
      applied to ``linear * white / clip`` (display 1 at ``clip``), then sRGB;
    - ``rational``: (a, b, c, d, e, white, clip) an ACES-like S-curve normalised so ``white`` maps to 1, applied to
      ``linear * white / clip`` (display 1 at ``clip``; the longer the shoulder, the larger ``white``), then sRGB;
    - ``log``: (stops, contrast, offset, gamma, clip) log2 over ``stops`` stops, contrast about the middle, an offset
      that lifts blacks, a display gamma; display 1 at ``clip``.

    >>> camera = Camera("plain", ())
    >>> [round(float(v), 4) for v in camera(np.array([0.0, 0.5, 2.0], np.float32))]
    [0.0, 0.7354, 1.0]
    """

    family: CameraFamily
    params: tuple[float, ...]

    def __call__(self, linear: np.ndarray) -> np.ndarray:
        x = np.maximum(np.asarray(linear, dtype=np.float32), 0.0)
        p = self.params
        if self.family == "gamma":
            display = camera_response(x, *p)
        elif self.family == "plain":
            display = np.clip(x, 0.0, 1.0) ** (1.0 / p[0]) if p else linear_to_srgb(np.clip(x, 0.0, 1.0))
        elif self.family in ("filmic", "rational"):
            *shape, white, clip = p
            curve = _filmic if self.family == "filmic" else _rational
            display = linear_to_srgb(np.clip(curve(x * np.float32(white / clip), *shape) / curve(np.float32(white), *shape), 0, 1))
        elif self.family == "log":
            stops, contrast, offset, gamma, clip = p
            middle = np.log2(clip) - stops * (0.5 + (0.5 - offset) / contrast)  # display 1 at clip
            encoded = (np.log2(np.maximum(x, 1e-8)) - middle) / stops
            display = np.clip(0.5 + (encoded - 0.5) * contrast + offset, 0, 1) ** np.float32(gamma)
        else:
            raise ValueError(f"unknown camera family {self.family!r}")
        # exactly white from the clip point up (the sRGB curve and a filmic white give 0.99999994 there)
        display = np.where(x >= np.float32(self.clip_point), np.float32(1.0), display)
        return np.asarray(display, dtype=np.float32)

    @property
    def clip_point(self) -> float:
        """The linear value from which the display is white."""
        if self.family == "gamma":
            return max(1.0, self.params[2]) if len(self.params) > 2 else 1.0
        return 1.0 if self.family == "plain" else self.params[-1]


FILMIC_SHARE = 0.5  # of random gamma-family cameras that compress highlights (white 2-16 x the clip point)
FAMILY_SHARES: dict[CameraFamily, float] = {"gamma": 0.4, "plain": 0.15, "filmic": 0.15, "rational": 0.15, "log": 0.15}


def random_gamma_camera(rng: np.random.Generator) -> Camera:
    """Gamma 1.8-2.6, shoulder 0-0.6; a share :data:`FILMIC_SHARE` with a white point log-uniform in 2-16."""
    gamma, shoulder = float(rng.uniform(1.8, 2.6)), float(rng.uniform(0.0, 0.6))
    white = float(np.exp2(rng.uniform(1.0, 4.0))) if rng.random() < FILMIC_SHARE else 1.0
    return Camera("gamma", (gamma, shoulder, white))


def family_shares(plain_fraction: float | None = None) -> dict[CameraFamily, float]:
    """:data:`FAMILY_SHARES`, or with the plain family at ``plain_fraction`` and the others scaled to the rest."""
    if plain_fraction is None:
        return dict(FAMILY_SHARES)
    rest = sum(share for family, share in FAMILY_SHARES.items() if family != "plain")
    return {family: plain_fraction if family == "plain" else share * (1 - plain_fraction) / rest for family, share in FAMILY_SHARES.items()}


def random_camera(rng: np.random.Generator, plain_fraction: float | None = None) -> Camera:
    """A random but realistic camera, its family drawn with :func:`family_shares` (``plain_fraction``: the share of
    plain sRGB or gamma hard clips, None: :data:`FAMILY_SHARES`). Filmic, rational and log
    curves reach display 1 at 1 to 8 times the exposure's reference level (log-uniform); their shapes vary
    around typical toe, shoulder and contrast values."""
    shares = family_shares(plain_fraction)
    family = rng.choice(list(shares), p=list(shares.values()))
    clip = float(np.exp2(rng.uniform(0.0, 3.0)))
    if family == "gamma":
        return random_gamma_camera(rng)
    if family == "plain":
        return Camera("plain", () if rng.random() < 0.5 else (float(rng.uniform(1.8, 2.6)),))
    if family == "filmic":
        shoulder, linear_strength, linear_angle = rng.uniform(0.08, 0.3), rng.uniform(0.25, 0.8), rng.uniform(0.05, 0.2)
        toe, toe_numerator, toe_denominator = rng.uniform(0.1, 0.4), rng.uniform(0.005, 0.04), rng.uniform(0.2, 0.45)
        shape = (shoulder, linear_strength, linear_angle, toe, toe_numerator, toe_denominator)
        return Camera("filmic", tuple(float(v) for v in shape) + (float(rng.uniform(4.0, 16.0)), clip))
    if family == "rational":
        a, c = rng.uniform(2.0, 3.0), rng.uniform(1.9, 2.9)
        coefficients = (a, rng.uniform(0.0, 0.08), c, rng.uniform(0.4, 0.8), rng.uniform(0.08, 0.25))
        white = np.exp2(rng.uniform(0.0, 3.0))  # from a cut at the shoulder's start to a long roll-off (ACES's fit: 7.2)
        return Camera("rational", tuple(float(v) for v in coefficients) + (float(white), clip))
    stops, contrast = rng.uniform(9.0, 16.0), rng.uniform(1.0, 1.8)
    return Camera("log", (float(stops), float(contrast), float(rng.uniform(-0.05, 0.12)), float(rng.uniform(0.85, 1.3)), clip))
