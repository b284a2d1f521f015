"""Evaluation of dequantization results: the core of ``bdx eval depth``."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bdx.color import display_codes_of, linear_srgb_to_oklab, srgb_to_linear
from bdx.depth import DepthMethod, DepthSource, input_levels
from bdx.errors import BdxError, InputError
from bdx.io import Image, convert_depth, to_float
from bdx.io.image import straight_alpha
from bdx.metrics import (
    CLIPPED,
    banding_stress,
    bin_adherence,
    clipped_fraction,
    colour_cast,
    distinct_values,
    flat_region_noise,
    mean_brightness,
    oklab_distance,
    psnr,
    requantization_match,
    ssim,
)
from bdx.quantization import Convention, codes_from_levels, container_for, requantize_u16


@dataclass
class DepthReference:
    """Everything about one reference (and its quantized input) that every method is compared with.

    Built once per image, so comparing several methods does not redo the
    reference's colour conversions and banding figures.
    """

    srgb: np.ndarray
    linear: np.ndarray
    oklab: np.ndarray
    stats: dict
    source: DepthSource | None = None
    source_levels: np.ndarray | None = None


def depth_reference(
    reference: Image, source: Image | None = None, *, bits: int | None = None, convention: Convention = "centre"
) -> DepthReference:
    """Prepare a reference (and optional quantized input) for :func:`evaluate_depth`; colour premultiplied by
    alpha (a TIFF's associated alpha) is compared straight, as bdx writes it."""
    _display_codes(reference, "reference")
    reference = straight_alpha(reference)
    source = None if source is None else straight_alpha(source)
    srgb = to_float(reference.pixels)
    linear = srgb_to_linear(srgb)
    stats: dict = {f"ref_{k}": v for k, v in banding_stress(srgb).items()}
    prepared = DepthReference(srgb, linear, linear_srgb_to_oklab(np.clip(linear, 0, 1)), stats)
    if source is not None:
        _display_codes(source, "input")
        _same_shape(source, reference, "reference")
        prepared.source = input_levels(source, bits, convention)
        prepared.source_levels = prepared.source.levels()
        stats["in_bits"] = prepared.source.bits
        stats.update({f"input_{k}": v for k, v in banding_stress(to_float(source.pixels)).items()})
        stats["input_distinct"] = distinct_values(source.pixels)
    return prepared


def evaluate_depth(prediction: Image, reference: DepthReference, *, method: DepthMethod | None = None) -> dict:
    """All ``eval depth`` metrics for one prediction: fidelity, bin safety, banding, idempotence drift."""
    from bdx.depth import DepthSettings, upscale_depth

    _display_codes(prediction, "prediction")
    prediction = straight_alpha(prediction)
    if prediction.pixels.shape != reference.srgb.shape:
        height, width, channels = reference.srgb.shape
        raise BdxError(
            f"prediction is {prediction.width}x{prediction.height}x{prediction.channels}, the reference is {width}x{height}x{channels}"
        )
    pred_codes = convert_depth(prediction.pixels, 16)
    pred = to_float(pred_codes)
    linear = srgb_to_linear(pred)
    record: dict = {
        "psnr": psnr(pred, reference.srgb),
        "ssim": ssim(pred, reference.srgb),
        "psnr_linear": psnr(linear, reference.linear),
        "ssim_linear": ssim(linear, reference.linear),
        "delta_e_ok": oklab_distance(linear_srgb_to_oklab(np.clip(linear, 0, 1)), reference.oklab),
    }
    record.update({f"pred_{k}": v for k, v in banding_stress(pred).items()})
    record["pred_distinct"] = distinct_values(pred_codes)
    record.update(reference.stats)
    source = reference.source
    if source is None:
        return record
    levels, bits, convention = reference.source_levels, source.bits, source.convention
    assert levels is not None  # set together with the source
    record["requant_match"] = requantization_match(pred_codes, levels, bits, convention)
    record.update(bin_adherence(pred_codes, levels, bits, convention))
    if method is not None:
        requantized = requantize_u16(pred_codes, bits, convention)
        again = Image(codes_from_levels(requantized, bits, container_for(bits), convention))
        rerun = upscale_depth(again, None, DepthSettings(method=method, in_bits=bits, convention=convention), device="cpu")
        drift = np.abs(rerun.image.pixels.astype(np.int32) - pred_codes.astype(np.int32))
        record["idempotence_drift_mean"] = float(drift.mean())
        record["idempotence_drift_max"] = int(drift.max())
    return record


def _display_codes(image: Image, what: str) -> None:
    """Depth metrics compare display code values: a float (scene-linear) image has no bins and no common scale."""
    if image.is_float:
        raise BdxError(
            f"the {what} is a float image; depth metrics compare the 8- or 16-bit codes of bins (write it as TIFF or PNG; "
            "HDR metrics compare HDR)"
        )


def _same_shape(image: Image, other: Image, what: str) -> None:
    if image.pixels.shape != other.pixels.shape:
        raise BdxError(
            f"input is {image.width}x{image.height}x{image.channels} but the {what} is {other.width}x{other.height}x{other.channels}"
        )


def _mismatch(prediction: Image, reference: Image) -> BdxError:
    return BdxError(
        f"prediction is {prediction.width}x{prediction.height}x{prediction.channels}, "
        f"the reference is {reference.width}x{reference.height}x{reference.channels}"
    )


def _display(image: Image) -> np.ndarray:
    """(H, W, C) display code values of an image: linear ones sRGB-encoded, as ``enhance-lowlight`` writes its EXR
    output, float display values (a float TIFF) scaled (:func:`display_codes_of`)."""
    codes = display_codes_of(to_float(image.pixels), image.linear) if image.is_float or image.linear else image.pixels
    return codes if codes.ndim == 3 else codes[..., None]


def evaluate_lowlight(prediction: Image, reference: Image | None = None) -> dict:
    """``eval lowlight`` metrics for one enhanced image.

    No-reference figures always: mean brightness, noise in flat regions (8-bit
    code units), clipped-highlight fraction, colour cast, distinct code values and
    banding stress. With a reference (for example the well-exposed frame of the
    same SICE stack): PSNR, SSIM and Oklab ΔE as well. Linear images (an EXR output) are
    read as the display would show them (sRGB-encoded, clipped at 1); a float TIFF holds display values.
    Colour premultiplied by alpha is compared straight.
    """
    prediction = straight_alpha(prediction)
    reference = None if reference is None else straight_alpha(reference)
    codes = _display(prediction)
    pred = to_float(codes)
    record: dict = {
        "mean_brightness": mean_brightness(pred),
        "flat_noise": flat_region_noise(pred),
        "clipped": clipped_fraction(pred),
        "colour_cast": colour_cast(pred),
        "distinct": distinct_values(codes),
    }
    record.update({f"pred_{k}": v for k, v in banding_stress(pred).items()})
    if reference is not None:
        ref = to_float(_display(reference))
        if ref.shape != pred.shape:
            raise _mismatch(prediction, reference)
        record["psnr"] = psnr(pred, ref)
        record["ssim"] = ssim(pred, ref)
        if pred.shape[-1] == 3:
            record["delta_e_ok"] = oklab_distance(linear_srgb_to_oklab(srgb_to_linear(pred)), linear_srgb_to_oklab(srgb_to_linear(ref)))
    return record


def _light(image: Image) -> np.ndarray:
    """A float image's scene-linear RGB: as held (EXR, .hdr), or decoded from display values (a float TIFF, the
    sRGB curve extended above 1 as bdx writes it)."""
    pixels = _rgb_float(straight_alpha(image))
    return pixels if image.linear else srgb_to_linear(pixels)


def evaluate_hdr(prediction: Image, reference: Image, source: Image | None = None) -> dict:
    """``eval hdr`` metrics: PSNR-mu, log-domain PSNR, SSIM on mu-law images, the absolute scale error in
    stops, and (given the LDR input) the error in its clipped regions (the scale error then skips them)."""
    from bdx.metrics import clipped_region_error, psnr_log, psnr_mu, scale_error_ev, ssim_mu

    for image, role in ((prediction, "prediction"), (reference, "reference")):
        if not image.is_float:  # display codes are not radiance: read as linear they would score nonsense
            raise InputError(f"the {role} holds {image.container_bits}-bit display codes; HDR metrics need scene-linear EXR or HDR files")
    if source is not None and source.is_float:  # its clipped pixels are those at the top code of an LDR image
        raise InputError("the input is a float image; the clipped region is found in the 8- or 16-bit LDR input")
    pred, ref = _light(prediction), _light(reference)
    if pred.shape != ref.shape:
        raise _mismatch(prediction, reference)
    if not ref.max(initial=0.0) > 0:  # every measure normalises by the reference's light: there is none to score against
        raise InputError("the reference holds no light (every sample 0 or below): nothing to score against")
    record: dict = {"psnr_mu": psnr_mu(pred, ref), "psnr_log": psnr_log(pred, ref), "ssim_mu": ssim_mu(pred, ref)}
    clipped = None
    if source is not None:
        _same_shape(source, prediction, "prediction")
        ldr = to_float(source.pixels)
        clipped = ldr.reshape(ldr.shape[0], ldr.shape[1], -1).max(axis=-1) >= CLIPPED
        record["clipped_fraction"] = float(clipped.mean())
        error = clipped_region_error(pred, ref, clipped)
        record["clipped_error"] = None if error != error else error  # JSON has no NaN: null when nothing clipped
    scale = scale_error_ev(pred, ref, None if clipped is None else ~clipped)
    record["scale_error_ev"] = None if scale != scale else scale
    return record


def _rgb_float(image: Image) -> np.ndarray:
    pixels = image.pixels.astype(np.float32) if image.is_float else to_float(image.pixels)
    if pixels.ndim == 2:
        pixels = pixels[..., None]
    return np.nan_to_num(pixels)


def exposure_sheet(images: list[tuple[str, Image]], stops: tuple[float, ...] = (-3.0, 0.0, 3.0)) -> np.ndarray:
    """A side-by-side 8-bit RGB sheet: one row per image, one column per exposure (clip, then sRGB)."""
    from bdx.color import linear_to_srgb

    rows = []
    for _, image in images:
        pixels = _rgb_float(image)
        if pixels.shape[-1] == 1:
            pixels = np.repeat(pixels, 3, axis=-1)
        cells = [np.rint(linear_to_srgb(np.clip(pixels * 2.0**stop, 0, 1)) * 255).astype(np.uint8) for stop in stops]
        rows.append(np.concatenate(cells, axis=1))
    width = max(r.shape[1] for r in rows)
    return np.concatenate([np.pad(r, ((0, 0), (0, width - r.shape[1]), (0, 0))) for r in rows], axis=0)
