"""Merging exposure brackets into scene-linear HDR with a jointly estimated camera response.

Exposure times are often unknown (phones, bracketed JPEGs, the SICE stacks) and
the camera curve is rarely sRGB; assuming both gives wildly wrong ratios. So the
response and the exposure ratios are estimated together, alternating:

1. start from the sRGB curve;
2. exposure ratios between consecutive frames: the median ratio of linearized
   values over pixels well exposed in both;
3. response from the frames and those ratios: Debevec and Malik's
   least-squares fit with a smoothness prior (OpenCV's ``CalibrateDebevec``);
4. repeat 2-3, then merge with Debevec's weighted average.

The result is scaled so the median luminance is 0.18 (relative, not absolute).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from bdx.color import luminance, srgb_to_linear
from bdx.errors import BdxError, InputError, SettingError

WELL_EXPOSED = (0.08, 0.92)
SATURATED_CODE = 250.0  # a sample this high (8-bit code scale) even in the darkest frame gives only a lower bound


@dataclass
class Merge:
    """A merged bracket: scene-linear RGB, the response (256 x 3, linear per 8-bit code) and relative exposure times."""

    linear: np.ndarray
    response: np.ndarray
    times: list[float]  # from the darkest frame to the brightest
    order: list[int]  # the frames' indices, darkest first: times[k] is frame order[k]'s
    saturated: np.ndarray  # (H, W) bool: any channel at the top of the range even in the darkest frame, so the
    # merged radiance there is only a lower bound of the truth

    @property
    def saturated_share(self) -> float:
        """The share of pixels whose radiance is only a lower bound (:attr:`saturated`)."""
        return float(self.saturated.mean()) if self.saturated.size else 0.0

    @property
    def frame_times(self) -> list[float]:
        """The relative exposure times in the frames' own order."""
        by_frame = [0.0] * len(self.order)
        for time, frame in zip(self.times, self.order):
            by_frame[frame] = float(time)
        return by_frame


MIN_EXPOSURE_RATIO = 2 ** (1 / 6)
"""The smallest exposure step between frames (1/6 stop) that merging without times accepts."""


def _grid_samples(samples: int, rows: int, cols: int) -> int:
    """``samples`` raised where OpenCV's regular sample grid (``sqrt(samples * cols / rows)`` columns, ``samples /
    columns`` rows) would have no row or column on a very wide or tall frame; an InputError where no grid fits."""
    samples = max(samples, math.ceil(max(rows / cols, cols / rows)))
    columns = int(math.sqrt(samples * cols / rows))
    if not (0 < columns <= cols and 0 < samples // columns <= rows):
        raise InputError(f"frames of {cols}x{rows} pixels are too small to estimate the camera response")
    return samples


def merge_brackets(
    frames: list[np.ndarray],
    times: list[float] | None = None,
    *,
    rounds: int = 2,
    smoothness: float = 10.0,
    samples: int = 70,
) -> Merge:
    """Merge aligned 8- or 16-bit RGB frames (H, W, 3) of one scene, at least two.

    With ``times`` (exposure times, same order as ``frames``) only the response
    is estimated; without, times and response are estimated together. That joint
    problem has a power-law ambiguity (a response g^k with times^k fits equally
    well), which the sRGB starting point fixes only approximately: prefer real
    exposure times when the files carry them. The response (per 8-bit code) is
    estimated on 8-bit copies; 16-bit frames are merged at their full precision,
    the response interpolated between codes.
    """
    if len(frames) < 2:
        raise BdxError("need at least two exposures to merge")
    shapes = {f.shape for f in frames}
    if len(shapes) != 1:
        raise BdxError(f"frames differ in size: {sorted(shapes)}")
    if {f.dtype for f in frames} - {np.dtype(np.uint8), np.dtype(np.uint16)} or frames[0].ndim != 3 or frames[0].shape[2] != 3:
        raise InputError("merging brackets needs 8- or 16-bit RGB frames")
    all_codes = [_codes(f) for f in frames]  # on the 8-bit scale, fractional for 16-bit frames
    brightness = [float(c.mean()) for c in all_codes]
    order = sorted(range(len(frames)), key=lambda i: brightness[i])
    codes = [all_codes[i] for i in order]
    if not any(((c >= 0.5) & (c <= 254.5)).any() for c in codes):
        raise InputError("every pixel of every frame is black or white: nothing to merge")
    for a, b in zip(order, order[1:]):  # the response fit breaks down (NaN) on a frame given twice
        if np.array_equal(frames[a], frames[b]):
            raise InputError(f"frames {a + 1} and {b + 1} are identical: each frame of a bracket needs its own exposure")
    stack = [np.ascontiguousarray(np.rint(c[..., ::-1]).astype(np.uint8)) for c in codes]  # OpenCV wants BGR
    response = np.repeat(srgb_to_linear(np.arange(256, dtype=np.float32) / 255)[:, None], 3, axis=1)
    known = times is not None
    longest = 1.0  # the given times' scale, restored in the result
    if times is not None:
        if len(times) != len(frames) or min(times) <= 0:
            raise BdxError("need one positive exposure time per frame")
        longest = max(float(t) for t in times)  # only the ratios matter: the fit (float32) sees times up to 1
        times = [float(times[i]) / longest for i in order]
        for i in range(len(order) - 1):  # a brighter frame with a shorter time: the times are in another order
            dim, bright = order[i], order[i + 1]
            if times[i + 1] < times[i] and brightness[bright] - brightness[dim] > 2.0:
                raise SettingError(
                    f"{{times}} contradicts the frames' brightness: frame {bright + 1} is brighter than frame {dim + 1} "
                    f"but given a shorter time ({times[i + 1] * longest:g} < {times[i] * longest:g}); give the times in the frames' order"
                )
    else:
        times = _ratios(stack, response)
        for i, step in enumerate(later / earlier for earlier, later in zip(times, times[1:])):
            if step < MIN_EXPOSURE_RATIO:  # no response can be fitted between equal exposures
                first, second = sorted((order[i] + 1, order[i + 1] + 1))
                raise InputError(
                    f"frames {first} and {second} have nearly the same exposure ({math.log2(step):.2f} stops "
                    "apart): each frame of a bracket needs its own exposure"
                )
    calibrate = cv2.createCalibrateDebevec(samples=_grid_samples(samples, *stack[0].shape[:2]), lambda_=smoothness, random=False)
    for _ in range(1 if known else rounds):
        estimated = calibrate.process(stack, np.array(times, dtype=np.float32))
        response = np.maximum(estimated.reshape(256, 3), 1e-8)
        if not known:
            times = _ratios(stack, response)
    rgb_response = response[:, ::-1]
    linear = np.clip(np.nan_to_num(merge_debevec(codes, times, rgb_response), nan=0.0, posinf=0.0), 0, None)
    scale = 0.18 / max(float(np.median(luminance(linear))), 1e-12)
    with np.errstate(over="ignore", invalid="ignore"):  # a failed fit is reported below, not as a NumPy warning
        scaled = linear * np.float32(scale)
    if not (np.isfinite(response).all() and np.isfinite(scaled).all() and scaled.max(initial=0.0) > 0):
        given = "the exposure times given" if known else "any exposure times"
        raise InputError(f"the frames' brightness does not follow {given} (frames nearly the same?): no response fits")
    saturated = codes[0].max(axis=2) >= SATURATED_CODE
    return Merge(scaled, rgb_response / response.max(), [t * longest for t in times], order, saturated)


def _codes(frame: np.ndarray) -> np.ndarray:
    """A frame's samples on the 8-bit code scale (0-255), as float32."""
    return frame.astype(np.float32) * np.float32(255 / np.iinfo(frame.dtype).max)


def merge_debevec(codes: list[np.ndarray], times: list[float], response: np.ndarray) -> np.ndarray:
    """Debevec and Malik's weighted mean of log radiance, as OpenCV's ``MergeDebevec`` (hat weights, zero at both
    ends of the range, averaged over each pixel's channels), for samples anywhere on the 8-bit code scale:
    ``codes`` (H, W, 3) float, ``response`` (256, 3) linear value per code (RGB), interpolated between codes.

    A pixel at an end of the range in every frame has no weight: it takes the value of the frame that tells the
    most about it (clipped bright: the shortest exposure's, at least that bright; black: the longest's).
    """
    grid = np.arange(256, dtype=np.float32)
    log_response = np.log(response.astype(np.float32))
    total = np.zeros(codes[0].shape, np.float32)
    weight_sum = np.zeros(codes[0].shape[:2] + (1,), np.float32)
    shortest, longest = int(np.argmin(times)), int(np.argmax(times))
    ends = {}  # the log radiance of the shortest and longest exposures, for pixels no frame weighs
    for index, (frame, time) in enumerate(zip(codes, times)):
        weight = np.minimum(frame, 255 - frame).mean(axis=2, keepdims=True)
        log_value = np.stack([np.interp(frame[..., c], grid, log_response[:, c]) for c in range(3)], axis=2)
        log_value -= np.float32(math.log(time))
        if index in (shortest, longest):
            ends[index] = log_value
        total += weight * log_value
        weight_sum += weight
    bright = codes[shortest].mean(axis=2, keepdims=True) >= 127.5
    fallback = np.where(bright, ends[shortest], ends[longest])
    unweighted = weight_sum <= 0
    merged = np.where(unweighted, fallback, total / np.where(unweighted, 1.0, weight_sum))
    return np.exp(merged).astype(np.float32)


def _ratios(stack: list[np.ndarray], response: np.ndarray) -> list[float]:
    """Relative exposure times (first frame 1.0) from consecutive pairs of frames."""
    times = [1.0]
    low, high = (np.array(WELL_EXPOSED) * 255).astype(int)
    for dark, bright in zip(stack, stack[1:]):
        ratios = []
        for c in range(3):
            a, b = dark[..., c], bright[..., c]
            mask = (a >= low) & (a <= high) & (b >= low) & (b <= high)
            if mask.sum() < 50:
                continue
            ratios.append(float(np.median(response[b[mask], c] / response[a[mask], c])))
        if not ratios:
            means = max(float(dark.mean()), 1.0), max(float(bright.mean()), 1.0)
            ratios = [(means[1] / means[0]) ** 2.2]
        times.append(times[-1] * max(float(np.median(ratios)), 1.0001))
    return times
