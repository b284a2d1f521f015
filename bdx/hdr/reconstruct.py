"""Single-image LDR to scene-linear HDR: the core of ``bdx ldr2hdr``.

decode -> dequantize to 16 bits -> the network (tiled, one global context for
every tile) predicts HDR in the mu-law domain -> inverse mu-law -> calibration ->
float32 scene-linear RGB. Scale: by default 1.0 is the input's clip point and
unclipped regions keep the linearized input's values; ``exposure`` (EV) and
``peak_nits`` (the brightest 0.01 % of pixels set to that many cd/m^2, with
1.0 = 1 cd/m^2) calibrate it.
"""

from __future__ import annotations

import math

from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

from bdx.color import luminance
from bdx.depth import display_codes
from bdx.errors import BdxError
from bdx.io import Image, to_float
from bdx.tiling import round_up

HDR_METHODS: tuple[str, ...] = ("learned", "classical")


@dataclass(frozen=True)
class HdrSettings:
    """Options of one reconstruction."""

    method: str = "learned"
    dequantize: str = "auto"
    iterations: int | None = None
    exposure: float = 0.0
    peak_nits: float | None = None
    tile: int | None = None


class _TileModel(torch.nn.Module):
    def __init__(self, net, iterations: int | None) -> None:
        super().__init__()
        self.net = net
        self.iterations = iterations
        self.multiple = net.multiple
        self.halo = round_up(net.receptive_radius, net.multiple)

    def forward(self, x: torch.Tensor, context: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
        from bdx.hdr.tonemap import inverse_mu_law

        return inverse_mu_law(self.net(x, context, iterations=self.iterations).float().clamp(0, 1))


def ldr_to_hdr(
    image: Image,
    settings: HdrSettings = HdrSettings(),
    *,
    weights: str | torch.nn.Module | None = None,
    device: str = "auto",
    progress: Callable[[int, int], None] | None = None,
) -> Image:
    """Reconstruct scene-linear HDR (float32 RGB, alpha and ICC carried) from an 8/16-bit image.

    ``weights`` is a weights file, a network already loaded with
    :func:`bdx.hdr.models.load_hdr_net` (batches load it once), or None for the
    shipped weights.
    """
    from bdx.device import resolve_device

    if image.is_float:
        raise BdxError("input is already a float (HDR) image; ldr2hdr needs an 8- or 16-bit LDR image")
    torch_device = resolve_device(device)
    codes = display_codes(image, settings.dequantize, str(torch_device))
    if settings.method == "classical":
        from bdx.hdr.classical import expand_highlights

        linear = expand_highlights(to_float(codes))
    elif settings.method == "learned":
        linear = _learned(codes, settings, weights, torch_device, progress)
    else:
        raise BdxError(f"unknown method {settings.method!r} (choose from {', '.join(HDR_METHODS)})")
    linear = calibrate(linear, settings.exposure, settings.peak_nits)
    if image.channels == 1:
        linear = linear.mean(axis=2, keepdims=True)
    return image.with_pixels(linear.astype(np.float32), significant_bits=None, linear=True)


def _learned(codes: np.ndarray, settings: HdrSettings, weights, device, progress) -> np.ndarray:
    from bdx.assets import default_weights
    from bdx.device import for_inference
    from bdx.hdr.models import load_hdr_net
    from bdx.tiling import TiledRun, run_tiled

    net = weights if isinstance(weights, torch.nn.Module) else load_hdr_net(weights or default_weights("hdr"))
    net = for_inference(net, device)
    model = _TileModel(net, settings.iterations)
    # the halo covers the network's receptive field and every tile shares one global context: seams can be cut
    run = TiledRun(tile=settings.tile or 1024, halo=model.halo, blend=0, multiple=model.multiple, precision="fp32", cut=True)
    return run_tiled(
        model, codes, settings=run, device=device, context=net.global_features,
        context_size=net.config.context_size, progress=progress,
    )


def calibrate(linear: np.ndarray, exposure: float = 0.0, peak_nits: float | None = None) -> np.ndarray:
    """Scale by 2^exposure, then (when given) so the brightest 0.01 % of luminance sits at ``peak_nits`` (which
    makes the exposure irrelevant: the peak scales with it). A scale that takes values beyond 32-bit float is an
    error, never a file of infinities or NaNs."""
    out = np.clip(linear, 0.0, None)
    try:
        factor = 2.0**exposure
    except OverflowError:
        factor = math.inf
    if peak_nits is not None:
        peak = float(np.quantile(luminance(out), 0.9999))
        factor = peak_nits / peak if peak > 0 else 1.0
    if not math.isfinite(factor) or not np.isfinite(out.max(initial=0.0) * factor) or factor * 3.4e38 < 1e-30:
        raise BdxError(f"scaling by {factor:g} takes the result beyond 32-bit float (exposure {exposure:+g} EV)")
    return (out * np.float32(factor)).astype(np.float32)
