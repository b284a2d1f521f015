"""Bit-depth upscaling (dequantization) of images: the core of ``bdx upscale-depth``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Literal, cast, get_args

import numpy as np

from bdx.color import display_codes_of
from bdx.dequant.self_check import MIN_BITS as SELF_CHECK_MIN_BITS
from bdx.dequant.self_check import ImageAlpha
from bdx.errors import InputError, SettingError, SettingUsageError, check_flag, check_setting, check_tile, plain_scalars
from bdx.io import Image, to_float
from bdx.io.image import non_finite
from bdx.quantization import (
    Convention,
    bin_centres,
    check_depth,
    clamp_codes_to_bins,
    detect_bits,
    effective_bits,
    end_bins_pinned,
    levels_from_codes,
    lookup,
    present_codes,
)

if TYPE_CHECKING:
    from bdx.dequant.classical import PriorBackend
    from bdx.device import Precision
    from bdx.models import LoadedModel

DepthMethod = Literal["contour", "midpoint", "learned"]
DEPTH_METHODS: tuple[DepthMethod, ...] = get_args(DepthMethod)
DEFAULT_DEPTH_METHOD: DepthMethod = "learned"
DisplayDequantizer = Literal["auto", "learned", "contour", "midpoint", "none"]
DISPLAY_DEQUANTIZERS: tuple[DisplayDequantizer, ...] = get_args(DisplayDequantizer)


@dataclass
class DepthSource:
    """What the dequantizer knows about an input: its code values and their bit depth."""

    codes: np.ndarray  # (H, W, C) uint8 or uint16, as stored
    container_bits: int
    bits: int
    convention: Convention
    content_bits: int  # the fewest bits that reproduce every code: above ``bits``, finer detail is rounded away

    def levels(self, codes: np.ndarray | None = None) -> np.ndarray:
        """Quantization levels of ``codes`` (default: the whole input), as int32."""
        return levels_from_codes(self.codes if codes is None else codes, self.bits, self.container_bits, self.convention)


def input_levels(image: Image, bits: int | None = None, convention: Convention = "centre") -> DepthSource:
    """Quantization levels of an 8/16-bit image; ``bits`` None means sBIT, else detection."""
    if image.is_float:
        raise InputError("dequantization needs an integer (8- or 16-bit) input, not a float image")
    container = image.container_bits
    content = effective_bits(image.pixels, container, convention)
    if bits is None:
        bits = image.significant_bits or content
    if not 1 <= bits <= container:
        raise SettingError(f"{{in_bits}} {bits} does not fit an input of {container} bits")
    if bits >= 16:
        hint = _truncate_hint(image, convention)
        raise SettingError(hint) if hint else InputError("input already holds 16 significant bits; nothing to dequantize")
    return DepthSource(codes=image.pixels, container_bits=container, bits=bits, convention=convention, content_bits=content)


def _truncate_hint(image: Image, convention: Convention) -> str:
    """The error for a file whose codes need every bit as bin centres but hold fewer as top bits (zero-filled);
    empty for any other file."""
    if image.significant_bits:
        return ""
    levels = truncated_levels(image, image.container_bits - 1, convention)
    if levels is None:
        return ""
    return (
        f"read as bin centres the codes need all 16 bits, but they are {levels}-bit levels with zero-filled low bits: "
        "add {convention} truncate"
    )


def truncated_levels(image: Image, bits: int, convention: Convention) -> int | None:
    """The depth of codes that need more than ``bits`` bits as bin centres but are ``bits``-bit levels (or fewer)
    with zero-filled low bits (what the ``truncate`` convention reads); None when ``convention`` is not ``centre``
    or the codes do not read that way."""
    if convention != "centre":
        return None
    levels = effective_bits(image.pixels, image.container_bits, "truncate")
    return levels if levels <= bits else None


def _distinct_codes(image: Image) -> int:
    """How many distinct codes the integer image holds."""
    return int(present_codes(image.pixels).size)


@dataclass(frozen=True)
class DepthMismatch:
    """An input read at ``bits`` whose codes need ``content_bits``: the convention that reads them is another
    (``truncated_levels``: they are levels of that depth with zero-filled low bits), or their finer detail is
    rounded away by the reading (``truncated_levels`` None)."""

    bits: int
    content_bits: int
    truncated_levels: int | None


def depth_mismatch(image: Image, bits: int, content_bits: int, convention: Convention) -> DepthMismatch | None:
    """The :class:`DepthMismatch` of an input read at ``bits`` whose codes need ``content_bits``, or whose codes fit
    but are coarser levels with zero-filled low bits (an 8-bit file of 4-bit levels read as 8-bit bin centres
    stays banded); None when the reading fits the codes."""
    if content_bits <= bits:
        levels = truncated_levels(image, bits - 1, convention) if bits > 1 else None
        if levels is None or _distinct_codes(image) < 3:  # a flat image has one level, not a coarse depth
            return None
        return DepthMismatch(bits, content_bits, levels)
    return DepthMismatch(bits, content_bits, truncated_levels(image, bits, convention))


@dataclass(frozen=True)
class DepthSettings:
    """Options of one dequantization (checked when made: a bad choice is a :class:`SettingUsageError`).

    ``method``: ``learned`` (the contour method refined by a network), ``contour`` (classical, content-adaptive)
    or ``midpoint`` (the bin centre). ``in_bits``: the input's depth (None: its sBIT, else detected).
    ``relax`` lets outputs leave their input bins (for methods that may). ``ensemble`` (learned only): average
    over 1, 2, 4 or 8 flips and transposes of the input. ``precision`` (learned only): ``float32``, ``bfloat16``
    (the network's convolutions) or ``auto`` (bfloat16 where the device runs it natively). ``prior_backend``:
    how the contour fractions are computed (:func:`bdx.dequant.classical.level_fractions`). ``tile``: tile size
    (None: the method's preferred size). ``self_check`` (learned, inputs of 8 bits and more): keep the network's
    offsets only where a test of the network on the image itself finds they help (:mod:`bdx.dequant.self_check`).

    >>> DepthSettings(method="midpoint", in_bits=4).convention
    'centre'
    """

    method: DepthMethod = DEFAULT_DEPTH_METHOD
    in_bits: int | None = None
    convention: Convention = "centre"
    relax: bool = False
    ensemble: int = 1
    precision: Precision = "auto"
    prior_backend: PriorBackend = "auto"
    tile: int | None = None
    self_check: bool = True

    def __post_init__(self) -> None:
        plain_scalars(self)
        from bdx.dequant.classical import PRIOR_BACKENDS
        from bdx.dequant.learned import ENSEMBLE_SIZES
        from bdx.device import PRECISIONS
        from bdx.quantization import CONVENTIONS

        check_setting("method", self.method, DEPTH_METHODS)
        check_setting("convention", self.convention, CONVENTIONS)
        check_setting("precision", self.precision, PRECISIONS)
        check_setting("prior_backend", self.prior_backend, PRIOR_BACKENDS)
        check_tile(self.tile)
        check_flag("relax", self.relax)
        check_flag("self_check", self.self_check)
        if isinstance(self.ensemble, bool) or not isinstance(self.ensemble, int) or self.ensemble not in ENSEMBLE_SIZES:
            raise SettingUsageError(f"{{ensemble}} must be one of {', '.join(map(str, ENSEMBLE_SIZES))}, not {self.ensemble!r}")
        if self.ensemble != 1 and self.method != "learned":
            raise SettingUsageError("{ensemble} applies to {method} learned only")
        if self.precision != "auto" and self.method != "learned":  # the classical methods are exact in float32
            raise SettingUsageError("{precision} applies to {method} learned only")
        if self.in_bits is not None:
            check_depth("in_bits", self.in_bits)


def build_dequantizer(settings: DepthSettings, bits: int, container_bits: int = 16, model: LoadedModel | None = None):
    """The torch module implementing ``settings.method`` for ``bits``-bit input: levels in, values in [0, 1] out.

    ``container_bits``: the input's container (with ``truncate``, N-bit levels zero-filled in 8 bits span other
    values than in 16). ``model`` (learned only): a dequantizer loaded with :func:`bdx.models.load_model` (batches
    load it once), or None for the shipped weights for ``bits``-bit input.
    """
    from bdx.dequant.classical import ContourDequantizer, MidpointDequantizer

    check_depth("bits", bits)
    if settings.method == "learned":
        from bdx.dequant.learned import DequantNet, LearnedDequantizer
        from bdx.models import check_task, load_model

        model = model or load_model(None, "depth", bits=bits)
        check_task(model, "depth")
        return LearnedDequantizer(
            cast(DequantNet, model.net), bits, settings.convention, settings.ensemble, container_bits, settings.prior_backend
        )
    if model is not None:
        raise SettingUsageError("a model applies to {method} learned only")
    if settings.method == "midpoint":
        return MidpointDequantizer(bits, settings.convention, container_bits)
    return ContourDequantizer(bits, settings.convention, container_bits, settings.prior_backend)


def _level_of_code_table(source: DepthSource) -> np.ndarray:
    """float32 level of every possible container code, for one gather per tile."""
    size = 1 << (8 * source.codes.dtype.itemsize)
    codes = np.arange(size, dtype=np.uint8 if size == 256 else np.uint16)
    return source.levels(codes).astype(np.float32)


@dataclass
class DepthResult:
    """A dequantized 16-bit image, the input depth it was restored from, and whether the input's codes need more
    bits than that depth (``mismatch``; None when they fit)."""

    image: Image
    in_bits: int
    convention: Convention
    precision: Literal["float32", "bfloat16"] = "float32"  # of the network's convolutions (learned only)
    mismatch: DepthMismatch | None = None
    kept: float | None = None  # share of the network's offsets the self-check kept (None: no check ran)
    weights: str | None = None  # name of the weights file that ran (learned only; None for a model built in memory)


def upscale_depth(
    image: Image,
    model: LoadedModel | None = None,
    settings: DepthSettings | None = None,
    *,
    device: str = "auto",
    progress: Callable[[int, int], None] | None = None,
) -> DepthResult:
    """Dequantize an image to 16 bits per sample.

    ``model``: the dequantizer for ``learned`` (:func:`bdx.models.load_model`; None: the shipped weights for the
    input's depth, :func:`bdx.assets.default_weights`).
    By default every output code re-quantizes to its input level (the result
    stays inside each quantization bin), and from 7 bits up with the ``centre``
    convention the end codes (0 and the top level, whose bins are half-bins) keep their
    centre, the end of the range, where clipped shadows and highlights are
    (:func:`bdx.quantization.end_bins_pinned`); ``settings.relax`` lifts both for methods that
    may leave the bin. An ensemble averages the model over flips and transposes of the input (the contour
    prior is computed once: 8 orientations are about 3 times slower on this project's CPU). bfloat16 makes the
    whole call faster on this project's AVX512-BF16 CPU, with the same held-out quality.

    >>> from bdx.io import Image
    >>> import numpy as np
    >>> ramp = Image(np.repeat(np.arange(0, 256, 16, dtype=np.uint8)[None, :, None], 4, axis=0))
    >>> result = upscale_depth(ramp, settings=DepthSettings(method="midpoint", in_bits=4))
    >>> result.image.pixels.dtype, result.in_bits
    (dtype('uint16'), 4)
    """
    from bdx.device import for_inference, resolve_device, resolve_precision
    from bdx.models import check_task_arguments
    from bdx.tiling import TiledRun, run_tiled

    settings = DepthSettings() if settings is None else settings
    check_task_arguments(image, model, settings, DepthSettings, device)
    source = input_levels(image, settings.in_bits, settings.convention)
    torch_device = resolve_device(device)
    if settings.method == "learned":
        from bdx.models import check_device, load_model

        model = model or load_model(None, "depth", bits=source.bits)
        check_device(model, torch_device)
    # only a model that declares bfloat16 support runs in it; the classical methods are exact in any precision
    used = resolve_precision(settings.precision, torch_device) if model is not None and model.bfloat16 else "float32"
    module = build_dequantizer(settings, source.bits, source.container_bits, model)
    dequantizer = for_inference(module, torch_device)
    # every depth method's support fits its halo, so tiles meet at cut seams and no float copy of the image is kept
    run = TiledRun.for_needs(module.tiling, settings.tile, blend=0, cut=True, precision=used)

    level_of_code = _level_of_code_table(source)
    centre_of_code = bin_centres(level_of_code, source.bits, source.convention, source.container_bits)
    alpha = None
    if settings.method == "learned" and settings.self_check and source.bits >= SELF_CHECK_MIN_BITS:
        alpha = _self_check(source, centre_of_code, module, torch_device, run)

    def finalize(block: np.ndarray, top: int, left: int) -> np.ndarray:
        codes = source.codes[top : top + block.shape[0], left : left + block.shape[1]]
        if settings.relax:
            return np.rint(np.clip(block, 0.0, 1.0) * 65535).astype(np.uint16)
        return clamp_codes_to_bins(
            block,
            codes,
            source.bits,
            source.container_bits,
            source.convention,
            overwrite=True,
            pin_ends=end_bins_pinned(source.bits, source.convention),
        )

    output = run_tiled(
        dequantizer,
        source.codes,
        settings=run,
        device=torch_device,
        out_channels=image.channels,
        prepare=lambda tile_codes: lookup(level_of_code, tile_codes),
        finalize=finalize,
        out_dtype=np.uint16,
        global_features=None if alpha is None else ImageAlpha(alpha, image.height, image.width),  # the blend per tile
        progress=progress,
    )
    return DepthResult(
        image.with_pixels(output, significant_bits=None),
        source.bits,
        source.convention,
        used,
        depth_mismatch(image, source.bits, source.content_bits, source.convention),
        None if alpha is None else float(alpha.mean()),
        model.path.name if model is not None and model.path is not None else None,
    )


def _self_check(source: DepthSource, value_of_code: np.ndarray, dequantizer, device, run) -> np.ndarray:
    """Per-block alpha of :mod:`bdx.dequant.self_check`: the input decimated, quantized one bit coarser and
    restored by ``dequantizer``'s network in a tiled run of the same settings, against the input's own values
    (``value_of_code``: the bin centre of every container code)."""
    from bdx.dequant.learned import LearnedDequantizer
    from bdx.dequant.self_check import DECIMATION, BlockErrors
    from bdx.device import for_inference
    from bdx.quantization import max_level
    from bdx.tiling import TiledRun, run_tiled

    codes = source.codes[::DECIMATION, ::DECIMATION]
    bits = source.bits - 1
    coarse_of_code = np.rint(value_of_code * max_level(bits)).astype(np.float32)  # the check's input levels
    coarse_centre_of_code = coarse_of_code / np.float32(max_level(bits))  # and their bin centres
    check = LearnedDequantizer(dequantizer.net, bits, "centre", backend=dequantizer.backend)
    errors = BlockErrors(codes.shape[0], codes.shape[1])

    def score(block: np.ndarray, top: int, left: int) -> np.ndarray:
        tile_codes = codes[top : top + block.shape[0], left : left + block.shape[1]]
        errors.add(block, coarse_centre_of_code[tile_codes], value_of_code[tile_codes], top, left)
        return np.zeros(block.shape[:2] + (1,), np.uint8)  # the scores are all the check keeps

    settings = TiledRun.for_needs(check.tiling, run.tile, blend=0, cut=True, precision=run.precision)
    run_tiled(
        for_inference(check, device),
        codes,
        settings=settings,
        device=device,
        out_channels=1,
        prepare=lambda tile_codes: coarse_of_code[tile_codes],
        finalize=score,
        out_dtype=np.uint8,
    )
    return errors.alpha()


def display_codes(image: Image, method: DisplayDequantizer, device: str, progress: Callable[[int, int], None] | None = None) -> np.ndarray:
    """An image as (H, W, 3) display codes for enhancement (read them with :func:`bdx.io.to_float`):
    16-bit, dequantized by ``method`` (``auto`` or a depth method) when it holds fewer than 16 bits; an
    8-bit input with ``none`` stays 8-bit (the same values, half the memory traffic). Linear inputs are
    sRGB-encoded, float display values (a float TIFF) scaled (both clipped to [0, 1]); grey is replicated to
    RGB. A 16-bit file's depth is its sBIT, else what its codes hold (8-bit codes stored as 16-bit are
    dequantized as the 8-bit file would be). A declared depth (sBIT) the codes contradict (an 8-bit photo marked
    3-bit) is left out: the codes say what the image holds, and reading them at the declared depth would move them
    by whole steps."""
    convention: Convention = "centre"
    full_depth = False
    if image.significant_bits and not image.is_float and detect_bits(image.pixels, image.container_bits)[0] > image.significant_bits:
        image = image.with_pixels(image.pixels, significant_bits=None)
    if image.container_bits == 16 and not image.significant_bits and not image.linear:
        bits, convention = detect_bits(image.pixels, 16)
        full_depth = bits >= 16
    bad = non_finite(image)
    if bad is not None:  # NaN would become garbage codes without a word
        raise InputError(f"the image holds {bad}")
    if image.is_float or image.linear:
        pixels = display_codes_of(to_float(image.pixels), image.linear)
    elif full_depth:
        pixels = image.pixels
    elif method == "none" and image.container_bits == 8:
        pixels = image.pixels
    elif method == "none":  # each code to the 16-bit code of the same value
        pixels = _to_16bit_table(image.container_bits)[image.pixels]
    else:
        chosen = _display_dequantizer() if method == "auto" else method
        settings = DepthSettings(method=cast(DepthMethod, chosen), convention=convention)
        pixels = upscale_depth(image.with_pixels(image.pixels, alpha=None), None, settings, device=device, progress=progress).image.pixels
    if pixels.ndim == 2:
        pixels = pixels[..., None]
    if pixels.shape[2] == 1:
        pixels = np.repeat(pixels, 3, axis=2)
    return np.ascontiguousarray(pixels[..., :3])


def _display_dequantizer() -> str:
    """``auto`` before enhancement: the learned model when its weights are installed, else ``contour``."""
    from bdx.assets import has_default_weights

    return "learned" if has_default_weights("depth") else "contour"


def _to_16bit_table(container_bits: int) -> np.ndarray:
    codes = np.arange(1 << container_bits, dtype=np.float64)
    return np.rint(codes * (65535 / ((1 << container_bits) - 1))).astype(np.uint16)
