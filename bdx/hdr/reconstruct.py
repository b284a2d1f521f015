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
import numbers
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Literal, get_args

import numpy as np
import torch

from bdx.color import luminance
from bdx.depth import DISPLAY_DEQUANTIZERS, DisplayDequantizer, display_codes
from bdx.errors import BdxError, InputError, SettingUsageError, check_number, check_setting, check_tile, plain_scalars
from bdx.io import Image, to_float
from bdx.io.image import straight_alpha

if TYPE_CHECKING:
    from bdx.models import LoadedModel

HdrMethod = Literal["learned", "classical"]
HDR_METHODS: tuple[HdrMethod, ...] = get_args(HdrMethod)


MAX_EXPOSURE_EV = 64  # 2^64 is far past any scene; beyond it float32 results overflow
MAX_PEAK_NITS = 1e6
MAX_ITERATIONS = 16  # feedback iterations; each widens the tiles' halo (the published FHDR runs 1 or 2, bdx's 4)


@dataclass(frozen=True)
class HdrSettings:
    """Options of one reconstruction (checked when made).

    ``method``: ``learned`` (a network) or ``classical`` (highlight expansion). ``dequantize``: the front end
    for inputs below 16 bits. ``iterations``: feedback passes (None: the network's own). ``exposure`` (EV) and
    ``peak_nits`` calibrate the output (see the module's docstring). ``tile``: tile size (None: the network's
    preferred size).
    """

    method: HdrMethod = "learned"
    dequantize: DisplayDequantizer = "auto"
    iterations: int | None = None
    exposure: float = 0.0
    peak_nits: float | None = None
    tile: int | None = None

    def __post_init__(self) -> None:
        plain_scalars(self)
        check_setting("method", self.method, HDR_METHODS)
        check_setting("dequantize", self.dequantize, DISPLAY_DEQUANTIZERS)
        if self.iterations is not None:
            check_number("iterations", self.iterations, 1, MAX_ITERATIONS, whole=True)
        exposure = self.exposure
        number = isinstance(exposure, numbers.Real) and not isinstance(exposure, bool)
        if not (number and math.isfinite(exposure) and abs(exposure) <= MAX_EXPOSURE_EV):
            limit = MAX_EXPOSURE_EV
            raise SettingUsageError(f"{{exposure}} must be a number of stops from -{limit} to {limit}, not {exposure!r}")
        check_tile(self.tile)
        if self.peak_nits is not None:
            check_number("peak_nits", self.peak_nits, 0, MAX_PEAK_NITS, above_low=True)
        if self.peak_nits is not None and self.exposure != 0:
            raise SettingUsageError("{exposure} and {peak_nits} both set the output's scale; give one of them")
        if self.iterations is not None and self.method != "learned":
            raise SettingUsageError("{iterations} applies to the learned method only")


class _TileModel(torch.nn.Module):
    def __init__(self, net, iterations: int | None) -> None:
        super().__init__()
        self.net = net
        self.iterations = iterations

    def forward(self, x: torch.Tensor, context: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
        return self.net.to_linear(self.net(x, context, iterations=self.iterations))


@dataclass(frozen=True)
class HdrResult:
    """Scene-linear HDR and its brightest value (``peak``, 1.0 being the input's white): how far above the input's
    range the highlights were reconstructed."""

    image: Image
    peak: float


def ldr_to_hdr(
    image: Image,
    model: LoadedModel | None = None,
    settings: HdrSettings | None = None,
    *,
    device: str = "auto",
    progress: Callable[[int, int], None] | None = None,
) -> HdrResult:
    """Reconstruct scene-linear HDR (float32 RGB, alpha and ICC carried) from an 8/16-bit image.

    ``model`` (method ``learned``): bdx's network or a published FHDR or ExpandNet checkpoint, loaded with
    :func:`bdx.models.load_model` (batches load it once); None for the shipped weights.
    """
    from bdx.device import resolve_device
    from bdx.models import check_task_arguments

    settings = HdrSettings() if settings is None else settings
    check_task_arguments(image, model, settings, HdrSettings, device)
    if image.is_float:
        raise InputError("input is already a float (HDR) image; HDR reconstruction needs an 8- or 16-bit LDR image")
    if model is not None and settings.method != "learned":
        raise SettingUsageError("a model applies to {method} learned only")
    torch_device = resolve_device(device)
    image = straight_alpha(image)  # the curves act on the colour itself, not on colour x alpha
    codes = display_codes(image, settings.dequantize, str(torch_device))
    if settings.method == "classical":
        from bdx.hdr.classical import expand_highlights

        linear = expand_highlights(to_float(codes))
    else:
        linear = _learned(codes, settings, model, torch_device, progress)
    linear = calibrate(linear, settings.exposure, settings.peak_nits, in_place=linear.dtype == np.float32)
    if image.channels == 1:
        linear = linear.mean(axis=2, keepdims=True)
    linear = linear.astype(np.float32, copy=False)
    peak = float(linear.max()) if linear.size else 0.0
    return HdrResult(image.with_pixels(linear, significant_bits=None, linear=True), peak)


def _learned(codes: np.ndarray, settings: HdrSettings, model: LoadedModel | None, device, progress) -> np.ndarray:
    from bdx.device import for_inference
    from bdx.hdr.models import FeedbackHDRNet, hdr_tiling
    from bdx.models import check_device, check_task, load_model
    from bdx.tiling import TiledRun, run_tiled

    model = model or load_model(None, "hdr")
    check_task(model, "hdr")
    check_device(model, device)
    net = for_inference(model.net, device)
    if not isinstance(net, FeedbackHDRNet):
        return match_input_scale(_published(net, codes, settings, device, progress), codes)
    # the halo covers the network's receptive field (more iterations see farther) and every tile shares one global
    # context: seams can be cut
    needs = hdr_tiling(net, settings.iterations) if settings.iterations else model.tiling
    run = TiledRun.for_needs(needs, settings.tile, blend=0, precision="float32", cut=True)
    linear = run_tiled(
        _TileModel(net, settings.iterations),
        codes,
        settings=run,
        device=device,
        context=net.global_features,
        context_size=net.config.context_size,
        progress=progress,
    )
    return match_input_scale(linear, codes)  # the network's scale is close to it; this makes it exact


def _published(net: torch.nn.Module, codes: np.ndarray, settings: HdrSettings, device, progress) -> np.ndarray:
    """A published network's relative linear HDR, tiled with the network's own padding at the image's edges."""
    from bdx.hdr.published import tile_model
    from bdx.tiling import TiledRun, run_tiled

    model, features = tile_model(net, codes, settings.iterations, device)
    run = TiledRun.for_needs(model.tiling, settings.tile, blend=0, precision="float32", cut=True, border="inside")
    return run_tiled(model, codes, settings=run, device=device, global_features=features, progress=progress)


FIT_PIXELS = 2_000_000  # larger images are sampled on a regular grid for the fit


def match_input_scale(linear: np.ndarray, codes: np.ndarray) -> np.ndarray:
    """``linear`` (float32 HDR of unknown scale) scaled in place so that, over the input's well-exposed pixels
    (every channel within :data:`bdx.metrics.WELL_EXPOSED`, else over all pixels), its median luminance ratio to
    the linearized input is 1: unclipped regions keep the input's values and 1.0 stays the input's clip point."""
    from bdx.metrics import input_scale_ev

    stride = max(1, int(math.sqrt(codes.shape[0] * codes.shape[1] / FIT_PIXELS)))  # a sample suffices for a median
    stops = input_scale_ev(linear[::stride, ::stride], to_float(codes[::stride, ::stride])[..., :3])
    if math.isfinite(stops) and stops != 0:
        linear *= np.float32(2.0**stops)
    return linear


def calibrate(
    linear: np.ndarray,
    exposure: float = 0.0,
    peak_nits: float | None = None,
    *,
    in_place: bool = False,
) -> np.ndarray:
    """Negative values to 0, then scale by 2^exposure, then (when given) so the brightest 0.01 % of luminance sits
    at ``peak_nits`` (which makes the exposure irrelevant: the peak scales with it). A scale that takes values
    beyond 32-bit float is an error, never a file of infinities or NaNs. ``in_place``: work on ``linear`` itself
    (float32) instead of a copy."""
    out = np.clip(linear, 0.0, None, out=linear) if in_place else np.clip(linear, 0.0, None, dtype=np.float32)
    try:
        factor = 2.0**exposure
    except OverflowError:
        factor = math.inf
    if peak_nits is not None:
        peak = float(np.quantile(luminance(out), 0.9999))
        factor = peak_nits / peak if peak > 0 else 1.0
    if not math.isfinite(factor) or not np.isfinite(out.max(initial=0.0) * factor) or factor * 3.4e38 < 1e-30:
        raise BdxError(f"scaling by {factor:g} takes the result beyond 32-bit float (exposure {exposure:+g} EV)")
    if factor != 1.0:
        out *= np.float32(factor)
    return out
