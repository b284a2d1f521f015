"""Low-light enhancement in high bit depth: the core of ``bdx enhance-lowlight``.

decode -> dequantize to 16 bits (so dark gradients are smooth before they are
stretched) -> estimate curves (on a downscaled copy, or at full resolution for
Zero-DCE) -> apply them at full resolution in float32 -> optional denoising whose
strength follows the applied gain -> optional gamma or mean-brightness target ->
16-bit output. All full-resolution work runs through the tiling engine.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, cast

import numpy as np
import torch
from torch.nn import functional as F

from bdx.depth import DISPLAY_DEQUANTIZERS, DisplayDequantizer, display_codes
from bdx.errors import InputError, SettingUsageError, check_number, check_setting, check_tile, plain_scalars
from bdx.io import Image, to_float
from bdx.io.image import straight_alpha
from bdx.lowlight.curves import sample_maps
from bdx.lowlight.models import CurveEstimator, fit_long_side
from bdx.models import TileNeeds

if TYPE_CHECKING:
    from bdx.models import LoadedModel


@dataclass(frozen=True)
class EnhanceSettings:
    """Options of one enhancement run.

    ``denoise`` scales the noise level assumed in the input (1.0: about 1.5 codes
    of an 8-bit image); 0 turns denoising off. ``denoise_subsample`` 2 runs the
    fast guided filter on a half-size copy (1: the full-size filter). ``gamma`` brightens (>1) or darkens
    the result (None: the model's own post-step, 1.0 for official checkpoints);
    ``target_mean`` instead picks the gamma that brings the mean brightness to
    that value. ``neutral_shadows`` scales the chroma noise assumed in the input
    (1.0: about :data:`CHROMA_SIGMA`); where the input's local colour is below it, the
    output's colour fades to neutral (:func:`neutral_shadows`); 0 keeps every colour.
    """

    dequantize: DisplayDequantizer = "auto"
    denoise: float = 1.0
    denoise_radius: int = 3
    denoise_subsample: int = 2
    gamma: float | None = None
    target_mean: float | None = None
    neutral_shadows: float = 1.0
    tile: int | None = None

    def __post_init__(self) -> None:
        plain_scalars(self)
        check_setting("dequantize", self.dequantize, DISPLAY_DEQUANTIZERS)
        check_number("denoise", self.denoise, 0, 10)
        check_number("denoise_radius", self.denoise_radius, 1, 64, whole=True)
        check_number("denoise_subsample", self.denoise_subsample, 1, 8, whole=True)
        check_number("neutral_shadows", self.neutral_shadows, 0, 10)
        check_tile(self.tile)
        if self.gamma is not None:
            check_number("gamma", self.gamma, 0.1, 10)
        if self.target_mean is not None:
            check_number("target_mean", self.target_mean, 0, 0.99, above_low=True)
            if self.gamma is not None:
                raise SettingUsageError("{gamma} and {target_mean} both set the brightness: give one")


def _planes_with_opencv(x: torch.Tensor, function, size: tuple[int, int] | None = None) -> torch.Tensor:
    """Apply an OpenCV function to every (H, W) plane of a float32 CPU tensor; ``size`` (h, w) of its output."""
    n, c = x.shape[:2]
    out = torch.empty((n, c) + (size or tuple(x.shape[2:])), dtype=x.dtype)
    for i in range(n):
        for j in range(c):
            out[i, j] = torch.from_numpy(function(x[i, j].contiguous().numpy()))
    return out


def _on_opencv(x: torch.Tensor) -> bool:
    return x.device.type == "cpu" and x.dtype == torch.float32


def box_mean(x: torch.Tensor, radius: int) -> torch.Tensor:
    """Mean over a (2r+1)^2 window of an (N, C, H, W) tensor.

    At the tensor's edge the window is cut (GPU) or reflected (CPU, OpenCV's
    SIMD box filter, several times faster than ``avg_pool2d``); inside the
    tiling engine both fall in the discarded halo.
    """
    import cv2

    size = 2 * radius + 1
    if not _on_opencv(x):
        rows = F.avg_pool2d(x, (1, size), stride=1, padding=(0, radius), count_include_pad=False)
        return F.avg_pool2d(rows, (size, 1), stride=1, padding=(radius, 0), count_include_pad=False)
    return _planes_with_opencv(x, lambda p: cv2.boxFilter(p, -1, (size, size), borderType=cv2.BORDER_REFLECT_101))


def _shrink(x: torch.Tensor, factor: int) -> torch.Tensor:
    """Means of factor x factor blocks (sizes must be multiples of ``factor``)."""
    import cv2

    if not _on_opencv(x):
        return F.avg_pool2d(x, factor)
    size = (x.shape[2] // factor, x.shape[3] // factor)
    return _planes_with_opencv(x, lambda p: cv2.resize(p, size[::-1], interpolation=cv2.INTER_AREA), size)


def _enlarge(x: torch.Tensor, factor: int) -> torch.Tensor:
    """Bilinear upsampling by ``factor`` (pixel centres aligned, edges replicated)."""
    import cv2

    if not _on_opencv(x):
        return F.interpolate(x, scale_factor=factor, mode="bilinear", align_corners=False)
    size = (x.shape[2] * factor, x.shape[3] * factor)
    return _planes_with_opencv(x, lambda p: cv2.resize(p, size[::-1], interpolation=cv2.INTER_LINEAR), size)


def guided_denoise(x: torch.Tensor, eps: torch.Tensor, radius: int, subsample: int = 1) -> torch.Tensor:
    """Self-guided filter (He et al., 2010) with a per-pixel regulariser ``eps``: flat areas smooth, edges kept.

    With ``subsample`` s > 1 it is the fast guided filter (He and Sun, 2015): the
    coefficients are found on an s-times smaller copy (radius / s) and upsampled
    bilinearly; ``eps`` is then given at that smaller size, and ``x``'s height and
    width must be multiples of s.
    """
    guide = x
    if subsample > 1:
        guide = _shrink(x, subsample)
        radius = _working_radius(radius, subsample)
    mean = box_mean(guide, radius)
    variance = (box_mean(guide * guide, radius) - mean * mean).clamp_min(0)
    a = variance / (variance + eps)
    b = mean - a * mean
    a, b = box_mean(a, radius), box_mean(b, radius)
    if subsample > 1:
        a, b = _enlarge(a, subsample), _enlarge(b, subsample)
    return torch.addcmul(b, a, x)


def _working_radius(radius: int, subsample: int) -> int:
    """The box radius on the s-times smaller copy of the fast guided filter."""
    return max(1, round(radius / subsample))


def guided_denoise_reach(radius: int, subsample: int = 1) -> int:
    """Pixels on each side that :func:`guided_denoise` reads: two box filters, plus the pooling and the
    bilinear upsampling of a subsampled filter."""
    return 2 * subsample * _working_radius(radius, subsample) + (2 * subsample if subsample > 1 else 0)


NOISE_SIGMA = 1.5 / 255  # assumed input noise at denoise strength 1, in display units
CHROMA_SIGMA = 2.5 / 255  # colour below this in the input, averaged locally, is taken for noise (display units)
CHROMA_RADIUS = 4  # radius of the local average of the input's colour


def neutral_shadows(x: torch.Tensor, out: torch.Tensor, sigma: float, radius: int = CHROMA_RADIUS) -> torch.Tensor:
    """``out`` with its colour (the difference from the mean of its channels) scaled by ``c^2 / (c^2 + sigma^2)``,
    where ``c`` is the magnitude of the input ``x``'s colour averaged over a (2 radius + 1)^2 window (at half size).

    Near black the input's colour is mostly noise, JPEG chroma subsampling and black-level error: brightened by the
    curves it turns into casts (olive blacks, blotchy night skies). Colour the input can support (``c`` well
    above ``sigma``) is kept. Heights and widths must be even.

    >>> dark = torch.tensor([1.5, 1.5, 0.25]).view(1, 3, 1, 1).expand(1, 3, 8, 8) / 255
    >>> bright = dark * 20
    >>> chroma = lambda t: float((t - t.mean(1, keepdim=True)).abs().max())
    >>> chroma(neutral_shadows(dark, bright, 3 / 255)) < 0.25 * chroma(bright)
    True
    """
    local = _enlarge(box_mean(_shrink(x, 2), max(1, radius // 2)), 2)
    colour = local - local.mean(1, keepdim=True)
    strength = colour.square().sum(1, keepdim=True)
    weight = strength / (strength + sigma * sigma)
    grey = out.mean(1, keepdim=True)
    return torch.addcmul(grey, out - grey, weight)


def neutral_shadows_reach(radius: int = CHROMA_RADIUS) -> int:
    """Pixels on each side that :func:`neutral_shadows` reads."""
    return 2 * max(1, radius // 2) + 4


class CurveEnhancer(torch.nn.Module):
    """Tile model: curves in, enhanced (and denoised) tile out."""

    def __init__(self, net: CurveEstimator, needs: TileNeeds, settings: EnhanceSettings, exponent: float) -> None:
        super().__init__()
        self.net = net
        self.full_resolution = net.context_shape(2, 2) is None
        self.settings = settings
        self.exponent = exponent
        multiple = math.lcm(needs.multiple, settings.denoise_subsample if settings.denoise > 0 else 1)
        reach = guided_denoise_reach(settings.denoise_radius, settings.denoise_subsample) if settings.denoise > 0 else 0
        if settings.neutral_shadows > 0:
            multiple = math.lcm(multiple, 2)
            reach = max(reach, neutral_shadows_reach())
        # the network's needs plus the filters': the filters run on what the network gives
        self.tiling = TileNeeds(halo=needs.halo + reach + 1, multiple=multiple, preferred_tile=needs.preferred_tile)

    def forward(self, x: torch.Tensor, params: torch.Tensor | None = None, boxes: torch.Tensor | None = None) -> torch.Tensor:
        x = x.contiguous()  # the engine's tiles are channels-last views; mixed layouts take a slow path, 5x slower
        if self.full_resolution:
            params = self.net(x)
        else:
            assert params is not None and boxes is not None  # the engine passes the image's maps and the tile's box
            params = sample_maps(params, boxes, x.shape[2], x.shape[3])
        out = self.net.render(x, params)
        if self.settings.denoise > 0:
            sub = self.settings.denoise_subsample
            tone_in, tone_out = x.mean(1, keepdim=True), out.mean(1, keepdim=True)
            if sub > 1:  # the regulariser at the filter's own (smaller) size
                tone_in, tone_out = _shrink(tone_in, sub), _shrink(tone_out, sub)
            eps = (self.settings.denoise * NOISE_SIGMA * (tone_out + 1e-3) / (tone_in + 1e-3)) ** 2
            out = guided_denoise(out, eps, self.settings.denoise_radius, self.settings.denoise_subsample)
        if self.settings.neutral_shadows > 0:
            out = neutral_shadows(x, out, self.settings.neutral_shadows * CHROMA_SIGMA)
        out = out.clamp_(0, 1)
        if self.exponent != 1.0:  # x ** e as exp(e log x): twice as fast as pow here, within 1e-7; 0 stays 0
            out = out.log_().mul_(self.exponent).exp_()
        return out


@dataclass(frozen=True)
class EnhanceResult:
    """The enhanced image (16-bit sRGB codes) and the gamma applied after the curves (the model's own, the one
    asked for, or the one that met the target mean). ``mean``: with a target mean, the mean brightness that gamma
    gives (on the downscaled copy the target is solved on); it differs from the target when no gamma from 0.1 to
    10 reaches it (an image already brighter than the target at gamma 0.1, or black)."""

    image: Image
    gamma: float
    mean: float | None = None


def enhance_lowlight(
    image: Image,
    model: LoadedModel | None = None,
    settings: EnhanceSettings | None = None,
    *,
    device: str = "auto",
    progress: Callable[[int, int], None] | None = None,
) -> EnhanceResult:
    """Brighten a dark image to 16-bit sRGB codes of the input's size, alpha and ICC carried.

    ``model``: bdx's curve network or a published low-light network, loaded with :func:`bdx.models.load_model`
    (batches load it once); None for the shipped weights.
    """
    from bdx.device import for_inference, resolve_device
    from bdx.models import check_device, check_task, check_task_arguments, load_model
    from bdx.tiling import TiledRun, run_tiled

    settings = EnhanceSettings() if settings is None else settings
    check_task_arguments(image, model, settings, EnhanceSettings, device)
    if image.channels == 4 or (image.pixels.ndim == 3 and image.pixels.shape[2] not in (1, 3)):
        raise InputError(f"expected a grayscale or RGB image, got {image.pixels.shape[2]} channels")
    model = model or load_model(None, "lowlight")
    check_task(model, "lowlight")
    torch_device = resolve_device(device)
    check_device(model, torch_device)
    image = straight_alpha(image)  # the curves act on the colour itself, not on colour x alpha
    codes = display_codes(image, settings.dequantize, str(torch_device))
    height, width = codes.shape[:2]
    net = cast(CurveEstimator, for_inference(model.net, torch_device))
    context_shape = net.context_shape(height, width)
    small = None  # the downscaled copy: curves are estimated on it, the mean-brightness target is solved on it
    if context_shape or settings.target_mean is not None:
        small = _downscaled(codes, context_shape or fit_long_side(height, width, 256), torch_device)
    with torch.inference_mode(), _flush_denormals():
        params = net(small) if context_shape else None
    exponent, mean = _exponent(settings, net, small, params)
    enhancer = CurveEnhancer(net, model.tiling, settings, exponent)
    # the halo covers the curve network and the parameter-map interpolation: seams can be cut, not blended; a
    # full-resolution network sees the image's edges as it does when run on a whole image
    run = TiledRun.for_needs(
        enhancer.tiling, settings.tile, blend=0, precision="float32", cut=True, border="inside" if enhancer.full_resolution else "reflect"
    )

    def finalize(block: np.ndarray, top: int, left: int) -> np.ndarray:  # block is the engine's scratch: scaled in place
        np.clip(block, 0.0, 1.0, out=block)
        block *= np.float32(65535)
        return np.rint(block, out=block).astype(np.uint16)

    with _flush_denormals():
        pixels = run_tiled(
            enhancer,
            codes,
            settings=run,
            device=torch_device,
            finalize=finalize,
            out_dtype=np.uint16,
            global_features=params,
            progress=progress,
        )
    if image.channels == 1:
        pixels = np.rint(pixels.astype(np.float32).mean(axis=2, keepdims=True)).astype(np.uint16)
    return EnhanceResult(image.with_pixels(pixels, significant_bits=None, linear=False), 1.0 / exponent, mean)


def _downscaled(codes: np.ndarray, shape: tuple[int, int], device) -> torch.Tensor:
    """The 16-bit codes area-resized to ``shape``, as a (1, 3, h, w) float tensor in [0, 1]."""
    import cv2

    height, width = shape
    small = cv2.resize(codes, (width, height), interpolation=cv2.INTER_AREA) if (height, width) != codes.shape[:2] else codes
    return torch.from_numpy(to_float(small.reshape(height, width, -1))).permute(2, 0, 1)[None].to(device)


def _exponent(settings: EnhanceSettings, net: CurveEstimator, small: torch.Tensor | None, params) -> tuple[float, float | None]:
    """1/gamma, or the exponent that brings the mean brightness to ``target_mean`` (gamma within the 0.1 to 10 that
    ``gamma`` allows) and the mean it gives; decided once per image."""
    if settings.target_mean is None:
        return 1.0 / (settings.gamma if settings.gamma is not None else net.gamma), None
    assert small is not None  # made whenever a target mean is asked for
    with torch.inference_mode(), _flush_denormals():
        curves = params if params is not None else net(small)
        enhanced = net.render(small, curves).clamp(0, 1).double()
    low, high = math.log(0.1), math.log(10.0)  # bisection on log(exponent): the mean falls as the exponent grows
    for _ in range(40):
        middle = 0.5 * (low + high)
        if float(enhanced.pow(math.exp(middle)).mean()) > settings.target_mean:
            low = middle
        else:
            high = middle
    exponent = math.exp(0.5 * (low + high))
    return exponent, float(enhanced.pow(exponent).mean())


def _flushing_denormals() -> bool:
    """Whether torch now flushes subnormal floats to zero (torch has a setter, no getter)."""
    return bool((torch.tensor([1e-40]) * 1.0).item() == 0.0)


class _flush_denormals:
    """Flush subnormal floats to zero while inside (CPU speed; no visible effect); the caller's setting is restored
    on the way out."""

    def __enter__(self):
        self.before = _flushing_denormals()
        torch.set_flush_denormal(True)
        return self

    def __exit__(self, *exc):
        torch.set_flush_denormal(self.before)
        return False
