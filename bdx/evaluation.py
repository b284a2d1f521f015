"""Evaluation of dequantization results: the core of ``bdx eval depth``."""

from __future__ import annotations

import numpy as np

from bdx.color import srgb_to_linear
from bdx.errors import BdxError
from bdx.io import Image, convert_depth, to_float
from bdx.metrics import (
    banding_stress,
    bin_adherence,
    delta_e_ok,
    distinct_values,
    psnr,
    requantization_match,
    ssim,
)
from bdx.quantization import Convention, codes_from_levels, container_for, requantize_u16


def fidelity(prediction: np.ndarray, reference: np.ndarray) -> dict[str, float]:
    """PSNR and SSIM in sRGB and in linear light, and Oklab colour difference."""
    linear_pred, linear_ref = srgb_to_linear(prediction), srgb_to_linear(reference)
    return {
        "psnr": psnr(prediction, reference),
        "ssim": ssim(prediction, reference),
        "psnr_linear": psnr(linear_pred, linear_ref),
        "ssim_linear": ssim(linear_pred, linear_ref),
        "delta_e_ok": delta_e_ok(prediction, reference),
    }


def evaluate_depth(
    prediction: Image,
    reference: Image,
    source: Image | None = None,
    *,
    bits: int | None = None,
    convention: Convention = "centre",
    method: str | None = None,
) -> dict[str, float | list[int]]:
    """All ``eval depth`` metrics for one prediction against its reference (and its quantized input)."""
    from bdx.depth import input_levels, upscale_depth

    _same_shape(prediction, reference, "reference")
    pred_codes = convert_depth(prediction.pixels, 16)
    pred = to_float(pred_codes)
    ref = to_float(reference.pixels)
    record: dict = fidelity(pred, ref)
    record.update({f"pred_{k}": v for k, v in banding_stress(pred).items()})
    record.update({f"ref_{k}": v for k, v in banding_stress(ref).items()})
    record["pred_distinct"] = distinct_values(pred_codes)
    if source is None:
        return record
    _same_shape(prediction, source, "input")
    levels = input_levels(source, bits, convention)
    input_levels_array = levels.levels()
    record["in_bits"] = levels.bits
    record["requant_match"] = requantization_match(pred_codes, input_levels_array, levels.bits, convention)
    record.update(bin_adherence(pred_codes, input_levels_array, levels.bits, convention))
    record.update({f"input_{k}": v for k, v in banding_stress(to_float(source.pixels)).items()})
    record["input_distinct"] = distinct_values(source.pixels)
    if method is not None:
        requantized = requantize_u16(pred_codes, levels.bits, convention)
        container = container_for(levels.bits)
        again = Image(codes_from_levels(requantized, levels.bits, container, convention))
        rerun = upscale_depth(again, method=method, in_bits=levels.bits, convention=convention, device="cpu")
        drift = np.abs(rerun.image.pixels.astype(np.int32) - pred_codes.astype(np.int32))
        record["idempotence_drift_mean"] = float(drift.mean())
        record["idempotence_drift_max"] = int(drift.max())
    return record


def _same_shape(prediction: Image, other: Image, what: str) -> None:
    if prediction.pixels.shape != other.pixels.shape:
        raise BdxError(
            f"prediction is {prediction.width}x{prediction.height}x{prediction.channels} but the {what} is "
            f"{other.width}x{other.height}x{other.channels}"
        )
