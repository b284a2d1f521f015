"""Image-quality and quantization metrics shared by every ``bdx eval`` task.

Images are float arrays (H, W, C) in [0, 1] unless a function says otherwise.
"""

from __future__ import annotations

import cv2
import numpy as np

from bdx.color import linear_srgb_to_oklab, luminance, mu_law, srgb_to_linear
from bdx.quantization import Convention, bin_centres, requantize_u16, step_size

BANDING_GAMMAS = (0.6, 1.6)


def psnr(prediction: np.ndarray, reference: np.ndarray, peak: float = 1.0) -> float:
    """Peak signal-to-noise ratio in dB (inf for identical images)."""
    difference = prediction.astype(np.float32) - reference.astype(np.float32)
    mse = float(np.mean(np.square(difference), dtype=np.float64))
    return float("inf") if mse == 0 else 10.0 * np.log10(peak * peak / mse)


def ssim(prediction: np.ndarray, reference: np.ndarray, peak: float = 1.0) -> float:
    """Mean SSIM (Wang et al. 2004): 11x11 Gaussian window, sigma 1.5, valid region only; in float64 (in float32
    the variances' cancellation gave near-identical images a score above 1)."""
    c1, c2 = (0.01 * peak) ** 2, (0.03 * peak) ** 2
    scores = []
    for channel in range(prediction.shape[-1]):
        x = prediction[..., channel].astype(np.float64)
        y = reference[..., channel].astype(np.float64)

        def blur(a: np.ndarray) -> np.ndarray:
            return cv2.GaussianBlur(a, (11, 11), 1.5, borderType=cv2.BORDER_REFLECT)

        mu_x, mu_y = blur(x), blur(y)
        var_x = blur(x * x) - mu_x**2
        var_y = blur(y * y) - mu_y**2
        cov = blur(x * y) - mu_x * mu_y
        ssim_map = ((2 * mu_x * mu_y + c1) * (2 * cov + c2)) / ((mu_x**2 + mu_y**2 + c1) * (var_x + var_y + c2))
        if min(ssim_map.shape) > 10:
            ssim_map = ssim_map[5:-5, 5:-5]
        scores.append(ssim_map.mean(dtype=np.float64))
    return float(np.mean(scores))


def delta_e_ok(prediction_srgb: np.ndarray, reference_srgb: np.ndarray) -> float:
    """Mean Euclidean distance in Oklab, times 100 (about 1 is a just-noticeable difference)."""
    a = linear_srgb_to_oklab(srgb_to_linear(np.clip(prediction_srgb, 0, 1)))
    b = linear_srgb_to_oklab(srgb_to_linear(np.clip(reference_srgb, 0, 1)))
    return oklab_distance(a, b)


def oklab_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Mean Euclidean distance between two Oklab images, times 100."""
    return float(np.mean(np.sqrt(((a - b) ** 2).sum(-1))) * 100)


def bin_adherence(codes16: np.ndarray, levels: np.ndarray, bits: int, convention: Convention) -> dict[str, float]:
    """Fractions of samples within 0.5, 1 and 2 input steps of their input bin centre."""
    step = step_size(bits, convention)
    offset = np.abs(codes16.astype(np.float32) / 65535 - bin_centres(levels, bits, convention)) / step
    return {f"within_{k}_step": float(np.mean(offset <= k + 1e-6)) for k in (0.5, 1, 2)}


def requantization_match(codes16: np.ndarray, levels: np.ndarray, bits: int, convention: Convention) -> float:
    """Fraction of samples that re-quantize to their input level."""
    return float(np.mean(requantize_u16(codes16, bits, convention) == levels))


def banding_stress(srgb: np.ndarray, gammas: tuple[float, ...] = BANDING_GAMMAS) -> dict[str, float]:
    """Flatness of linear luminance after strong gamma edits, as a 16-bit display would show it.

    For each gamma: the fraction of zero horizontal and vertical first differences
    and the mean length of horizontal runs of zero differences.
    """
    lum = np.clip(luminance(srgb_to_linear(srgb)), 0.0, 1.0)
    result: dict[str, float] = {}
    for gamma in gammas:
        codes = np.rint(lum**gamma * 65535).astype(np.int32)
        dx = np.diff(codes, axis=1) == 0
        dy = np.diff(codes, axis=0) == 0
        zeros = float((dx.sum() + dy.sum()) / max(1, dx.size + dy.size))
        result[f"zero_diff_g{gamma}"] = zeros
        result[f"zero_run_g{gamma}"] = mean_run_length(dx)
    return result


def mean_run_length(flags: np.ndarray) -> float:
    """Mean length of runs of True along the last axis (0 when there are none)."""
    if flags.size == 0:
        return 0.0
    padded = np.pad(flags.astype(np.int8), [(0, 0)] * (flags.ndim - 1) + [(1, 1)])
    edges = np.diff(padded, axis=-1)
    starts = int((edges == 1).sum())
    return float(flags.sum() / starts) if starts else 0.0


def distinct_values(codes: np.ndarray) -> list[int]:
    """Number of distinct code values in each channel."""
    return [int(np.unique(codes[..., c]).size) for c in range(codes.shape[-1])]


def mean_brightness(srgb: np.ndarray) -> float:
    """Mean of the sRGB-encoded values (0 black, 1 white)."""
    return float(np.mean(srgb))


CLIPPED = 254.5 / 255  # a display value at or above it sits at the top 8-bit code: clipped


def clipped_fraction(srgb: np.ndarray, threshold: float = CLIPPED) -> float:
    """Fraction of pixels with at least one channel at the top of the range (blown highlights)."""
    return float(np.mean(np.any(srgb.reshape(srgb.shape[0], srgb.shape[1], -1) >= threshold, axis=-1)))


def flat_region_noise(srgb: np.ndarray, flat_share: float = 0.2) -> float:
    """Noise in flat regions: residual std after a 5x5 Gaussian, over the smoothest ``flat_share`` of 8x8 blocks.

    Reported in 8-bit code units of sRGB luminance-like grey (mean of channels).
    """
    import cv2

    grey = np.asarray(srgb, dtype=np.float32).reshape(srgb.shape[0], srgb.shape[1], -1).mean(axis=-1)
    residual = grey - cv2.GaussianBlur(grey, (5, 5), 1.0)
    blocks_y, blocks_x = grey.shape[0] // 8, grey.shape[1] // 8
    if blocks_y == 0 or blocks_x == 0:
        return float(residual.std() * 255)
    crop = lambda a: a[: blocks_y * 8, : blocks_x * 8].reshape(blocks_y, 8, blocks_x, 8)  # noqa: E731
    smooth = cv2.GaussianBlur(grey, (0, 0), 4.0)
    structure = crop(np.abs(np.gradient(smooth)[0]) + np.abs(np.gradient(smooth)[1])).mean(axis=(1, 3))
    noise = crop(residual).std(axis=(1, 3))
    flat = structure <= np.quantile(structure, flat_share)
    return float(np.mean(noise[flat]) * 255)


def flat_region_chroma_noise(srgb: np.ndarray, flat_share: float = 0.2, block: int = 16) -> float:
    """Colour noise and blotches in flat regions: the spread of Oklab chroma, sqrt(var a + var b), within
    ``block`` x ``block`` blocks, averaged over the ``flat_share`` of blocks whose lightness varies least."""
    from bdx.color import srgb_to_oklab

    lab = srgb_to_oklab(np.asarray(srgb, dtype=np.float32)[..., :3])
    rows, columns = lab.shape[0] // block, lab.shape[1] // block
    if rows == 0 or columns == 0:
        return 0.0
    blocks = lab[: rows * block, : columns * block].reshape(rows, block, columns, block, 3)
    lightness_spread = blocks[..., 0].std(axis=(1, 3))
    chroma_spread = np.sqrt(blocks[..., 1].var(axis=(1, 3)) + blocks[..., 2].var(axis=(1, 3)))
    flat = lightness_spread <= np.quantile(lightness_spread, flat_share)
    return float(chroma_spread[flat].mean())


def colour_cast(srgb: np.ndarray) -> float:
    """Distance of the image's mean Oklab chroma from neutral grey (x100; grey-world assumption)."""
    from bdx.color import srgb_to_oklab

    pixels = np.asarray(srgb, dtype=np.float32)
    if pixels.ndim == 2 or pixels.shape[-1] == 1:
        return 0.0
    lab = srgb_to_oklab(pixels[..., :3])
    return float(np.hypot(lab[..., 1].mean(), lab[..., 2].mean()) * 100)


def _mu_law_normalised(linear: np.ndarray, peak: float) -> np.ndarray:
    return mu_law(np.clip(np.asarray(linear, dtype=np.float64) / peak, 0, 1), headroom=1.0)


RINGING = 0.1  # a channel below -RINGING x the median luminance is resampling ringing, not radiance
RINGING_REACH = 2  # pixels round it whose value is not trusted either


def trusted_pixels(linear: np.ndarray) -> np.ndarray:
    """(H, W) bool: the pixels of a scene-linear reference (negative values not yet clipped) farther than
    :data:`RINGING_REACH` from resampling ringing, a channel below -:data:`RINGING` x the median luminance.

    Panoramas resampled with a ringing filter go negative round the sun and lamps; clipped to zero, their
    brightest spots read black, which is no truth to score or train on.

    >>> scene = np.ones((9, 9, 3), np.float32); scene[4, 4] = -5.0
    >>> trusted = trusted_pixels(scene)
    >>> bool(trusted[4, 2]), bool(trusted[4, 1]), int(trusted.sum())
    (False, True, 56)
    """
    median = max(float(np.median(luminance(np.clip(linear, 0, None)))), 1e-6)
    ringing = (linear < -RINGING * median).any(axis=-1).astype(np.uint8)
    size = 2 * RINGING_REACH + 1
    return cv2.dilate(ringing, np.ones((size, size), np.uint8)) == 0


def hdr_peak(reference: np.ndarray) -> float:
    """The normaliser for PSNR-mu: the reference's 99th percentile (never below a tiny positive value)."""
    return max(float(np.percentile(reference, 99)), 1e-6)


def psnr_mu(prediction: np.ndarray, reference: np.ndarray) -> float:
    """PSNR in the mu-law domain (mu = 5000), both images normalised by the reference's 99th percentile."""
    peak = hdr_peak(reference)
    return psnr(_mu_law_normalised(prediction, peak), _mu_law_normalised(reference, peak))


def ssim_mu(prediction: np.ndarray, reference: np.ndarray) -> float:
    """SSIM of the mu-law images (normalised as for :func:`psnr_mu`)."""
    peak = hdr_peak(reference)
    return ssim(_mu_law_normalised(prediction, peak).astype(np.float32), _mu_law_normalised(reference, peak).astype(np.float32))


def psnr_log(prediction: np.ndarray, reference: np.ndarray, floor: float = 1e-4) -> float:
    """PSNR of log2 values, the peak being the reference's log2 dynamic range (both floored at ``floor`` x its peak)."""
    peak = hdr_peak(reference)
    low = floor * peak
    a = np.log2(np.maximum(prediction, low) / peak)
    b = np.log2(np.maximum(reference, low) / peak)
    span = float(b.max() - b.min()) or 1.0
    mse = float(np.mean((a - b) ** 2))
    return float("inf") if mse == 0 else float(10 * np.log10(span**2 / mse))


def clipped_region_error(prediction: np.ndarray, reference: np.ndarray, clipped: np.ndarray) -> float:
    """Mean absolute mu-law error over pixels whose input was clipped (NaN when none was)."""
    if not clipped.any():
        return float("nan")
    peak = hdr_peak(reference)
    error = np.abs(_mu_law_normalised(prediction, peak) - _mu_law_normalised(reference, peak)).mean(axis=-1)
    return float(error[clipped].mean())


def clipped_region_psnr_mu(prediction: np.ndarray, reference: np.ndarray, clipped: np.ndarray) -> float:
    """PSNR-mu over the ``clipped`` pixels, both normalised by the reference's brightest luminance (NaN when
    none is clipped): normalised as :func:`psnr_mu` is, most highlights would lie above the peak and read equal.

    >>> reference = np.ones((4, 4, 3)); reference[:2] = 16.0
    >>> clipped = np.zeros((4, 4), bool); clipped[:2] = True
    >>> round(clipped_region_psnr_mu(reference / 2, reference, clipped), 1)
    21.8
    """
    if not clipped.any():
        return float("nan")
    peak = max(float(luminance(reference).max()), 1e-6)
    return float(psnr(_mu_law_normalised(prediction[clipped], peak), _mu_law_normalised(reference[clipped], peak)))


def clipped_region_bias_stops(prediction: np.ndarray, reference: np.ndarray, clipped: np.ndarray) -> float:
    """Mean log2 luminance ratio of prediction to reference over the ``clipped`` pixels: how many stops too
    bright (positive) or too dark the reconstructed highlights are (NaN when none is clipped).

    >>> reference = np.full((2, 2, 3), 8.0)
    >>> clipped_region_bias_stops(reference / 4, reference, np.ones((2, 2), bool))
    -2.0
    """
    if not clipped.any():
        return float("nan")
    ratio = np.maximum(luminance(prediction)[clipped], 1e-12) / np.maximum(luminance(reference)[clipped], 1e-12)
    return float(np.mean(np.log2(ratio)))


WELL_EXPOSED = (0.1, 0.9)  # display values (every channel) whose linearized value a scale is fitted to


def well_exposed_pixels(display: np.ndarray) -> np.ndarray:
    """(H, W) bool: pixels of display-referred ``display`` (H, W, C) in [0, 1] whose every channel lies within
    :data:`WELL_EXPOSED`, neither clipped nor lost in the noise floor.

    >>> well_exposed_pixels(np.array([[[0.5, 0.5, 0.5], [0.5, 0.95, 0.5]]])).tolist()
    [[True, False]]
    """
    return np.asarray(((display >= WELL_EXPOSED[0]) & (display <= WELL_EXPOSED[1])).all(axis=-1))


def fit_scale(prediction: np.ndarray, reference: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
    """``prediction`` times the factor that matches its luminance to ``reference`` (:func:`scale_ratio_ev` over
    ``mask``); unchanged when no pixel qualifies.

    >>> fit_scale(np.full((1, 2, 3), 2.0, np.float32), np.full((1, 2, 3), 8.0, np.float32))[0, 0].tolist()
    [8.0, 8.0, 8.0]
    """
    stops = scale_ratio_ev(prediction, reference, mask)
    return prediction * np.float32(2.0**stops) if np.isfinite(stops) else prediction


def input_scale_ev(linear: np.ndarray, display: np.ndarray) -> float:
    """The stops that bring scene-linear ``linear`` to the scale of ``display`` (its rendering, in [0, 1])
    linearized by the sRGB curve: :func:`scale_ratio_ev` over the well-exposed pixels, over all pixels when
    those give none; NaN when no pixel qualifies. The scale ``ldr2hdr`` outputs and trains for.

    >>> from bdx.color import linear_to_srgb
    >>> linear = np.full((2, 2, 3), 0.25, np.float32)
    >>> round(input_scale_ev(linear, linear_to_srgb(linear * 2)), 4)
    1.0
    """
    reference = srgb_to_linear(display)
    well_exposed = well_exposed_pixels(display)
    stops = scale_ratio_ev(linear, reference, well_exposed if well_exposed.any() else None)
    return stops if np.isfinite(stops) else scale_ratio_ev(linear, reference)


def scale_ratio_ev(prediction: np.ndarray, reference: np.ndarray, mask: np.ndarray | None = None) -> float:
    """The stops by which the prediction must be brightened to match the reference's absolute scale: the
    median log2 luminance ratio over the ``mask`` pixels (e.g. the input's unclipped ones) where both
    luminances exceed 1e-4 x the reference's peak (NaN when none do)."""
    predicted, wanted = luminance(prediction), luminance(reference)
    floor = 1e-4 * hdr_peak(reference)
    valid = (predicted > floor) & (wanted > floor)
    if mask is not None:
        valid &= mask
    if not valid.any():
        return float("nan")
    return float(np.median(np.log2(wanted[valid] / predicted[valid])))


def scale_error_ev(prediction: np.ndarray, reference: np.ndarray, mask: np.ndarray | None = None) -> float:
    """How far the prediction's absolute scale is off, in stops: the magnitude of :func:`scale_ratio_ev`."""
    return abs(scale_ratio_ev(prediction, reference, mask))
