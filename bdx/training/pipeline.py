"""Realistic imaging pipelines for dequantizer training pairs.

A training pair is a high-precision *truth* and its quantized copy. The truth is what a
camera or renderer would have stored with more bits: scene-linear crops pass through a
random display curve (exposure, S-shaped or shouldered response, clipping at both ends);
display crops get a tone jitter; either may get sensor-like noise and sharpening. Noise
and sharpening are part of the truth (a real photo's 8 bits are its noisy signal
rounded), so a network trained on these pairs keeps texture instead of smoothing it.
The quantized copy may then be JPEG-compressed (8-bit only), as most 8-bit photos are.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from bdx.color import linear_to_srgb, srgb_to_linear


@dataclass(frozen=True)
class PipelineSettings:
    """Probabilities and ranges of each pipeline stage (recorded with the training config)."""

    noise_probability: float = 0.5  # sensor-like noise in the truth
    max_noise_codes: float = 3.0  # its standard deviation at mid-grey, in 8-bit codes
    sharpen_probability: float = 0.2
    clip_probability: float = 0.25  # display crops stretched so that shadows or highlights clip
    tone_probability: float = 0.3  # display crops given an S-curve or a strong gamma


def display_from_linear(linear: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A scene-linear crop (median grey near 1) through a random camera: exposure from -3 to +2 stops around
    mid-grey, a Naka-Rushton S-curve or a plain clip, then sRGB or gamma 2.2 encoding; values clip at 1."""
    exposed = linear * np.float32(0.18 * 2 ** rng.uniform(-3.0, 2.0))
    if rng.random() < 0.6:
        power, knee = rng.uniform(0.8, 1.6), rng.uniform(0.3, 2.0)
        scaled = np.maximum(exposed, 0) ** np.float32(power)
        exposed = scaled / (scaled + np.float32(knee**power)) * np.float32(1 + knee**power)
    exposed = np.clip(exposed, 0, 1)
    if rng.random() < 0.7:
        return linear_to_srgb(exposed)
    return exposed ** np.float32(1 / 2.2)


def tone_jitter(display: np.ndarray, settings: PipelineSettings, rng: np.random.Generator) -> np.ndarray:
    """A display crop with a random gamma, sometimes an S-curve or a contrast stretch that clips."""
    out = np.clip(display, 0, 1) ** np.float32(np.exp(rng.uniform(-0.25, 0.25)))
    if rng.random() < settings.tone_probability:
        amount = rng.uniform(-0.5, 0.8)
        smooth = out * out * (3 - 2 * out)
        out = out + np.float32(amount) * (smooth - out)
    if rng.random() < settings.clip_probability:
        gain = rng.uniform(1.05, 1.8)
        out = out * np.float32(gain) + np.float32(rng.uniform(-0.3 * gain, 0.1))
    return np.clip(out, 0, 1)


def sensor_noise(display: np.ndarray, settings: PipelineSettings, rng: np.random.Generator) -> np.ndarray:
    """Signal-dependent noise added in linear light, partly shared by the channels and sometimes blurred like a
    demosaic; about ``max_noise_codes`` 8-bit codes at most at mid-grey."""
    codes = rng.uniform(0.0, settings.max_noise_codes)
    linear = srgb_to_linear(display)
    # linear sigma that gives ``codes`` / 255 in display values at mid-grey (the sRGB curve's slope there is 1.2)
    sigma_mid = codes / 255 / 1.2
    sigma = np.sqrt(np.float32(sigma_mid**2 * 0.2) + np.float32(sigma_mid**2 * 4.0) * linear)
    noise = rng.normal(0, 1, display.shape).astype(np.float32)
    shared = rng.uniform(0, 0.6)
    noise = (1 - shared) * noise + shared * noise.mean(axis=2, keepdims=True)
    blur = rng.uniform(0, 1.0)
    if blur > 0.3:
        noise = cv2.GaussianBlur(noise, (0, 0), blur) * np.float32(1 + blur)
    return linear_to_srgb(np.clip(linear + sigma * noise, 0, 1))


def sharpen(display: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """An unsharp mask (radius 0.7-2 px, amount 0.2-1)."""
    blurred = cv2.GaussianBlur(display, (0, 0), rng.uniform(0.7, 2.0))
    return np.clip(display + np.float32(rng.uniform(0.2, 1.0)) * (display - blurred), 0, 1)


def render_truth(patch: np.ndarray, linear: bool, settings: PipelineSettings, rng: np.random.Generator) -> np.ndarray:
    """The high-precision truth of a training pair from a reference crop (scene-linear or display values)."""
    display = display_from_linear(patch, rng) if linear else tone_jitter(patch, settings, rng)
    if rng.random() < settings.noise_probability:
        display = sensor_noise(display, settings, rng)
    if rng.random() < settings.sharpen_probability:
        display = sharpen(display, rng)
    return np.ascontiguousarray(display, dtype=np.float32)


def jpeg_round_trip(codes: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """8-bit codes (H, W, 3, as float) through JPEG at a random quality from 75 to 98."""
    quality = int(rng.integers(75, 99))
    ok, data = cv2.imencode(".jpg", codes.astype(np.uint8), [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        return codes
    decoded = cv2.imdecode(data, cv2.IMREAD_UNCHANGED)
    return codes if decoded is None else decoded.reshape(codes.shape).astype(np.float32)
