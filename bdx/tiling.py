"""Tiled inference with overlap blending, for any NCHW float model of any image size.

Geometry, per axis: the image is (virtually) padded at the end to a multiple of
``multiple``; tiles of one size start at multiples of ``multiple`` and are spread
evenly so the last one ends exactly at the padded edge. Every tile is fed with a
``halo`` of real (reflect-padded at the borders) context on each side, which is
discarded from the output; with ``border="inside"`` tiles are cropped to the image
instead, so the model's own padding applies at its edges. Where two tiles overlap, each is weighted by a
raised-cosine ramp across the overlap, and the output is sum(w * pred) / sum(w)
accumulated in float32. Image borders get no ramp. With ``cut`` set, overlaps
are instead split at their middle and every output pixel comes from one tile,
written straight to the output (no float accumulator).

For a model whose receptive field fits inside the halo (and that is
translation-equivariant on the ``multiple`` grid) the tiled output equals the
whole-image output to float precision.

Memory: the image stays in host memory in its own dtype; only one batch of tiles
goes to the device, and the float accumulator covers one band of tile rows, so
peak memory grows with the tile batch and the image width, not the image area;
cut seams need no accumulator, so there it grows with the tile batch alone.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Literal, get_args

import numpy as np
import torch

from bdx.device import EnginePrecision
from bdx.errors import LARGEST_TILE, BdxError, InputError, WeightsError, check_flag, check_number, check_setting, plain_scalars

if TYPE_CHECKING:
    from bdx.models import TileNeeds

Border = Literal["reflect", "inside"]
Prepare = Callable[[np.ndarray], np.ndarray]
Finalize = Callable[[np.ndarray, int, int], np.ndarray]
Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class TileLayout:
    """Where tiles go along one axis."""

    length: int  # real image length
    padded: int  # length padded to the multiple
    tile: int  # tile length (without halo)
    starts: tuple[int, ...]

    def ramp_weights(self, index: int) -> np.ndarray:
        """Blend weight of tile ``index`` along this axis (raised cosine over each overlap)."""
        weight = np.ones(self.tile, dtype=np.float32)
        start = self.starts[index]
        if index > 0:
            overlap = self.starts[index - 1] + self.tile - start
            weight[:overlap] *= _raised_cosine(overlap)
        if index + 1 < len(self.starts):
            overlap = start + self.tile - self.starts[index + 1]
            weight[self.tile - overlap :] *= _raised_cosine(overlap)[::-1]
        return weight

    def owned(self, index: int) -> tuple[int, int]:
        """The image positions [start, stop) that tile ``index`` alone writes when seams are cut."""

        def seam(i: int) -> int:  # the middle of the overlap between tiles i - 1 and i
            return (self.starts[i - 1] + self.tile + self.starts[i]) // 2

        start = 0 if index == 0 else seam(index)
        stop = self.length if index + 1 == len(self.starts) else seam(index + 1)
        return min(start, self.length), min(stop, self.length)


def _raised_cosine(length: int) -> np.ndarray:
    i = np.arange(length, dtype=np.float64)
    return (0.5 - 0.5 * np.cos(np.pi * (i + 0.5) / length)).astype(np.float32)


def layout_axis(length: int, tile: int, blend: int, multiple: int = 1) -> TileLayout:
    """Tile starts along one axis: equal tiles, evenly spread, overlapping by at least ``blend``."""
    if length < 1:
        raise ValueError("length must be positive")
    padded = round_up(length, multiple)
    tile = max(multiple, min(round_up(tile, multiple), padded))
    if tile >= padded:
        return TileLayout(length, padded, padded, (0,))
    stride = max(multiple, tile - blend)
    count = 1 + -(-(padded - tile) // stride)
    # the smallest tile that still covers the axis with this many tiles and the required overlap
    tile = min(tile, max(multiple, round_up(-(-(padded + (count - 1) * blend) // count), multiple)))
    span = padded - tile
    starts = sorted({int(round(k * span / (count - 1) / multiple)) * multiple for k in range(count)})
    return TileLayout(length, padded, tile, tuple(starts))


def round_up(value: int, multiple: int) -> int:
    """The smallest multiple of ``multiple`` not below ``value`` (halos and tiles on a model's grid)."""
    return -(-value // multiple) * multiple


def border_indices(start: int, stop: int, length: int) -> np.ndarray:
    """Source indices for positions start..stop-1 of an axis of ``length``, reflect-padded.

    Reflection excludes the edge sample (like ``np.pad(mode="reflect")``); when the
    axis is too short to reflect that far, indices are replicated from the edge.
    """
    positions = np.arange(start, stop)
    if length == 1:
        return np.zeros_like(positions)
    period = 2 * (length - 1)
    reflected = np.abs(positions) % period
    reflected = np.where(reflected >= length, period - reflected, reflected)
    too_far = (positions < -(length - 1)) | (positions > 2 * (length - 1))
    return np.where(too_far, np.clip(positions, 0, length - 1), reflected)


def pad_image(image: np.ndarray, top: int, bottom: int, left: int, right: int) -> np.ndarray:
    """Pad an (H, W, C) array with the same rule the tiler uses at image borders."""
    height, width = image.shape[:2]
    rows = border_indices(-top, height + bottom, height)
    cols = border_indices(-left, width + right, width)
    return image[rows][:, cols]


def _is_oom(exc: BaseException) -> bool:
    oom_type = getattr(torch, "OutOfMemoryError", None)
    if oom_type is not None and isinstance(exc, oom_type):
        return True
    return isinstance(exc, (RuntimeError, MemoryError)) and "out of memory" in str(exc).lower()


def available_memory(device: torch.device) -> int:
    """Bytes a tile batch may use on ``device`` (a fraction of what is free)."""
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(free * 0.6)
    try:
        with open("/proc/meminfo") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024 // 4
    except OSError:
        pass
    return 2 << 30


def choose_tile(device: torch.device, bytes_per_pixel: int, batch_size: int, halo: int, multiple: int) -> int:
    """Largest tile (a multiple of ``multiple``) whose batch fits the memory budget."""
    budget = available_memory(device)
    cap = 1024 if device.type == "cuda" else 512
    side = int(math.sqrt(budget / max(1, bytes_per_pixel * batch_size))) - 2 * halo
    return max(multiple, min(cap, side // multiple * multiple))


@dataclass
class TiledRun:
    """Settings of one tiled inference run (see :func:`run_tiled`)."""

    tile: int | None = None
    halo: int = 16
    blend: int = 16
    multiple: int = 1
    batch_size: int | None = None
    precision: EnginePrecision = "auto"  # auto: float16 autocast on CUDA, float32 elsewhere
    residual: bool = False
    bytes_per_pixel: int = 2048
    min_tile: int = 32
    cut: bool = False  # split overlaps at their middle instead of blending: for models whose receptive field fits the halo
    # "reflect": tiles are reflect-padded beyond the image; "inside": the model sees only the image (tiles are cropped
    # at its edges, so the network's own padding applies there, as in a whole-image run)
    border: Border = "reflect"

    def __post_init__(self) -> None:
        """Each field checked when made: a bad value is a :class:`SettingUsageError` naming it."""
        plain_scalars(self)
        for name, low in (("halo", 0), ("blend", 0), ("multiple", 1), ("bytes_per_pixel", 1), ("min_tile", 1)):
            check_number(name, getattr(self, name), low, LARGEST_TILE, whole=True)
        for name in ("tile", "batch_size"):
            if getattr(self, name) is not None:
                check_number(name, getattr(self, name), 1, LARGEST_TILE, whole=True)
        check_setting("precision", self.precision, get_args(EnginePrecision))
        check_setting("border", self.border, get_args(Border))
        check_flag("residual", self.residual)
        check_flag("cut", self.cut)

    @classmethod
    def for_needs(cls, needs: TileNeeds, tile: int | None = None, **settings: Any) -> TiledRun:
        """Settings for a model with tiling ``needs`` (a :class:`bdx.models.LoadedModel`'s ``tiling``): its halo,
        its grid, and its preferred tile size unless ``tile`` is given; ``settings``: the other fields."""
        return cls(tile=tile or needs.preferred_tile, halo=needs.halo, multiple=needs.multiple, **settings)


def run_tiled(
    model: Callable[..., torch.Tensor],
    image: np.ndarray,
    *,
    settings: TiledRun | None = None,
    device: torch.device | str = "cpu",
    out_channels: int | None = None,
    prepare: Prepare | None = None,
    finalize: Finalize | None = None,
    out_dtype: np.dtype | type = np.float32,
    context: Callable[[torch.Tensor], Any] | None = None,
    context_size: int = 256,
    global_features: Any | None = None,
    progress: Progress | None = None,
) -> np.ndarray:
    """Run ``model`` over an (H, W, C) image tile by tile and return the blended (H, W, C_out) result.

    ``prepare`` turns a raw tile (image dtype) into float32 model input (default:
    codes to [0, 1]); ``finalize(block, y0, x0)`` turns a finished float block
    whose top-left pixel is (y0, x0) into the output dtype (for example bin-clamped
    uint16; it may overwrite ``block``). ``context``, when given, is run
    once on a copy of the prepared image downscaled to ``context_size`` on its
    long side; the model is then called as ``model(x, ctx, boxes)`` with each
    tile's input box in normalised image coordinates (y0, x0, y1, x1).
    ``global_features`` passes that context ready-made (computed by the caller)
    instead.

    The model may return its output trimmed by the same number of pixels on each
    side, up to the halo (context it reads but does not predict); the engine takes
    each tile's region from the centre of what it returns.

    With ``residual`` set, the model predicts a correction that is added to the
    exact float32 input outside autocast, so low-precision inference never
    rounds the image itself. An out-of-memory error halves the batch, then the
    tile, and starts over.
    """
    settings = settings or TiledRun()
    device = torch.device(device)
    if not isinstance(image, np.ndarray) or image.ndim not in (2, 3) or 0 in image.shape:
        shape = getattr(image, "shape", type(image).__name__)
        raise InputError(f"run_tiled takes an (H, W) or (H, W, C) NumPy array of at least 1x1, not {shape}")
    if image.ndim == 2:
        image = image[..., None]
    prepare = prepare or _default_prepare
    batch = settings.batch_size or (4 if device.type == "cuda" else 1)
    tile = settings.tile or choose_tile(device, settings.bytes_per_pixel, batch, settings.halo, settings.multiple)
    if global_features is None and context is not None:
        global_features = _global_context(model, context, image, prepare, context_size, device)
    while True:
        try:
            return _run(model, image, settings, tile, batch, device, out_channels, prepare, finalize, out_dtype, global_features, progress)
        except BaseException as exc:
            if not _is_oom(exc):
                raise
            if device.type == "cuda":
                torch.cuda.empty_cache()
            if batch > 1:
                batch //= 2
            elif tile // 2 >= max(settings.min_tile, settings.multiple):
                tile = tile // 2 // settings.multiple * settings.multiple
            else:
                raise BdxError(f"out of memory on {device} even with one {tile}px tile") from None


def _default_prepare(tile: np.ndarray) -> np.ndarray:
    from bdx.io.image import to_float

    return to_float(tile)


def _global_context(model, context, image, prepare, size, device):
    import cv2

    height, width = image.shape[:2]
    scale = min(1.0, size / max(height, width))
    small = image
    if scale < 1.0:
        target = (max(1, round(width * scale)), max(1, round(height * scale)))
        small = cv2.resize(image, target, interpolation=cv2.INTER_AREA)
        if small.ndim == 2:
            small = small[..., None]
    tensor = torch.from_numpy(np.ascontiguousarray(prepare(small))).permute(2, 0, 1)[None].to(device)
    with torch.inference_mode():
        return context(tensor)


def _apply_ramps(pred: np.ndarray, row_weight: np.ndarray, col_weight: np.ndarray) -> None:
    """Multiply an (h, w, C) prediction by its blend weights in place, touching only the ramps (weights below 1)."""
    for weight, axis in ((row_weight, 0), (col_weight, 1)):
        ramp = np.flatnonzero(weight < 1)
        if ramp.size == 0:
            continue
        head = ramp[ramp < weight.size // 2]
        tail = ramp[ramp >= weight.size // 2]
        for part in (head, tail):
            if part.size:
                lo, hi = part[0], part[-1] + 1
                shape = (-1, 1, 1) if axis == 0 else (1, -1, 1)
                view = pred[lo:hi] if axis == 0 else pred[:, lo:hi]
                view *= weight[lo:hi].reshape(shape)


def _tile_with_halo(image: np.ndarray, rows: TileLayout, cols: TileLayout, r: int, c: int, halo: int) -> np.ndarray:
    """Tile (r, c) of the image with its halo: a plain slice inside, reflected indices at the borders."""
    height, width = image.shape[:2]
    y0, x0 = rows.starts[r] - halo, cols.starts[c] - halo
    y1, x1 = rows.starts[r] + rows.tile + halo, cols.starts[c] + cols.tile + halo
    inner = image[max(y0, 0) : min(y1, height), max(x0, 0) : min(x1, width)]
    pads = ((max(0, -y0), max(0, y1 - height)), (max(0, -x0), max(0, x1 - width)))
    if not any(pads[0] + pads[1]):
        return inner
    if max(pads[0]) < inner.shape[0] and max(pads[1]) < inner.shape[1]:
        return np.pad(inner, pads + ((0, 0),) * (image.ndim - 2), mode="reflect")
    return image[np.ix_(border_indices(y0, y1, height), border_indices(x0, x1, width))]


def _autocast_dtype(precision: EnginePrecision, device: torch.device) -> torch.dtype | None:
    if precision == "auto":
        return torch.float16 if device.type == "cuda" else None
    return {"float32": None, "float16": torch.float16, "bfloat16": torch.bfloat16}[precision]


@dataclass
class _Grid:
    """Everything one pass over the tiles needs besides the model's output handling."""

    image: np.ndarray
    rows: TileLayout
    cols: TileLayout
    halo: int

    @property
    def jobs(self) -> list[tuple[int, int]]:
        return [(r, c) for r in range(len(self.rows.starts)) for c in range(len(self.cols.starts))]


def _predict(model, grid: _Grid, chunk, settings, device, prepare, global_features) -> np.ndarray:
    """Predictions (n, tile rows, tile cols, C) for the tiles in ``chunk``, halos removed."""
    rows, cols, halo = grid.rows, grid.cols, grid.halo
    tiles = [prepare(_tile_with_halo(grid.image, rows, cols, r, c, halo)) for r, c in chunk]
    batch_np = np.stack(tiles) if len(tiles) > 1 else tiles[0][None]  # one tile: no copy
    x = torch.from_numpy(batch_np).permute(0, 3, 1, 2).to(device)
    if device.type == "cuda":
        x = x.contiguous(memory_format=torch.channels_last)
    crops = [_outside(grid, r, c, settings.multiple) for r, c in chunk] if settings.border == "inside" else []
    amp_dtype = _autocast_dtype(settings.precision, device)
    with torch.inference_mode():
        with torch.autocast(device.type, dtype=amp_dtype or torch.float32, enabled=amp_dtype is not None):
            if not any(any(crop) for crop in crops):
                pred = _call(model, x, grid, chunk, [(0, 0, 0, 0)] * len(chunk), global_features)
            else:  # tiles cropped to the image differ in size: one at a time, padded back to the tile's size
                preds = []
                for i, (top, bottom, left, right) in enumerate(crops):
                    inside = x[i : i + 1, :, top : x.shape[2] - bottom, left : x.shape[3] - right]
                    out = _call(model, inside, grid, chunk[i : i + 1], crops[i : i + 1], global_features)
                    if out.shape[2:] != inside.shape[2:]:
                        raise ValueError("a model run with border='inside' must return its input's size")
                    preds.append(torch.nn.functional.pad(out.float(), (left, right, top, bottom)))
                pred = torch.cat(preds)
        pred = pred.float()
        # NaN written as an image would be black, or a cast's garbage; the extremes hold any NaN or infinity (one
        # reduction instead of a mask of the whole output)
        if not all(math.isfinite(float(extreme)) for extreme in torch.aminmax(pred)):
            raise WeightsError("the model's output is not finite (NaN or infinity): its weights are broken (a training that diverged?)")
        # a model may return its output trimmed evenly on each side (context it read but does not predict)
        trim_y, trim_x = (x.shape[2] - pred.shape[2]) // 2, (x.shape[3] - pred.shape[3]) // 2
        if not (0 <= trim_y <= halo and 0 <= trim_x <= halo):
            raise ValueError(f"model output {tuple(pred.shape[2:])} does not fit its input {tuple(x.shape[2:])} less the halo")
        if settings.residual:
            pred = x[:, : pred.shape[1], trim_y : trim_y + pred.shape[2], trim_x : trim_x + pred.shape[3]].float() + pred
        pred = pred[:, :, halo - trim_y : halo - trim_y + rows.tile, halo - trim_x : halo - trim_x + cols.tile]
        return pred.permute(0, 2, 3, 1).contiguous().cpu().numpy()


def _outside(grid: _Grid, r: int, c: int, multiple: int) -> tuple[int, int, int, int]:
    """Pixels of tile (r, c) with its halo that lie beyond the image (top, bottom, left, right), less what the
    tile keeps at its far ends so that what remains is still a multiple of ``multiple``."""
    height, width = grid.image.shape[:2]
    crop = []
    for start, length, extent in ((grid.rows.starts[r], height, grid.rows.tile), (grid.cols.starts[c], width, grid.cols.tile)):
        first, stop = start - grid.halo, start + extent + grid.halo
        before, after = max(0, -first), max(0, stop - length)
        short = -(stop - first - before - after) % multiple  # the tile with halo is a multiple: short <= before + after
        kept_after = min(short, after)
        after, before = after - kept_after, before - (short - kept_after)
        crop.append((before, after))
    (top, bottom), (left, right) = crop
    return top, bottom, left, right


def _call(model, x: torch.Tensor, grid: _Grid, chunk, crops, global_features) -> torch.Tensor:
    """``model(x)``, or ``model(x, global_features, boxes)`` with each tile's box in normalised image coordinates
    (y0, x0, y1, x1): the extent of ``x`` (the tile, its halo, less ``crops``)."""
    if global_features is None:
        return model(x)
    rows, cols, halo = grid.rows, grid.cols, grid.halo
    height, width = grid.image.shape[:2]
    boxes = torch.tensor(
        [
            [
                (rows.starts[r] - halo + top) / height,
                (cols.starts[c] - halo + left) / width,
                (rows.starts[r] + rows.tile + halo - bottom) / height,
                (cols.starts[c] + cols.tile + halo - right) / width,
            ]
            for (r, c), (top, bottom, left, right) in zip(chunk, crops)
        ],
        dtype=torch.float64,  # float32 misplaces a tile by a pixel on image sides beyond 2^24 pixels
    )  # on the CPU: every model reads the boxes as numbers (.tolist()), and float64 is not on every device
    return model(x, global_features, boxes)


def _run(model, image, settings, tile, batch, device, out_channels, prepare, finalize, out_dtype, global_features, progress):
    halo, multiple = settings.halo, settings.multiple
    if halo % multiple:
        halo = round_up(halo, multiple)
    height, width = image.shape[:2]
    grid = _Grid(image, layout_axis(height, tile, settings.blend, multiple), layout_axis(width, tile, settings.blend, multiple), halo)
    jobs = grid.jobs
    writer = (_CutWriter if settings.cut else _BlendWriter)(grid, out_channels, finalize, out_dtype)
    for first in range(0, len(jobs), batch):
        chunk = jobs[first : first + batch]
        writer.add(chunk, _predict(model, grid, chunk, settings, device, prepare, global_features))
        if progress is not None:
            progress(first + len(chunk), len(jobs))
    assert writer.out is not None
    return writer.out


class _Writer:
    """Turns tile predictions into the output array (allocated on the first tile, when its channels are known)."""

    def __init__(self, grid: _Grid, out_channels: int | None, finalize: Finalize | None, out_dtype) -> None:
        self.grid = grid
        self.out_channels = out_channels
        self.finalize = finalize
        self.out_dtype = out_dtype
        self.out: np.ndarray | None = None

    def _store(self, block: np.ndarray, y0: int, x0: int) -> None:
        done = self.finalize(block, y0, x0) if self.finalize else block
        if self.out is None:
            channels = self.out_channels or done.shape[-1]
            self.out = np.empty(self.grid.image.shape[:2] + (channels,), dtype=self.out_dtype)
        if done.shape[-1] != self.out.shape[-1]:  # numpy would broadcast one channel into three
            raise BdxError(f"the model's output has {done.shape[-1]} channels, not the {self.out.shape[-1]} of out_channels")
        rows, cols = block.shape[:2]
        self.out[y0 : y0 + rows, x0 : x0 + cols] = done


class _CutWriter(_Writer):
    """Writes each tile's own region (overlaps split at their middle) straight to the output."""

    def add(self, chunk: list[tuple[int, int]], preds: np.ndarray) -> None:
        rows, cols = self.grid.rows, self.grid.cols
        for (r, c), pred in zip(chunk, preds):
            (y0, y1), (x0, x1) = rows.owned(r), cols.owned(c)
            if y1 > y0 and x1 > x0:
                self._store(pred[y0 - rows.starts[r] : y1 - rows.starts[r], x0 - cols.starts[c] : x1 - cols.starts[c]], y0, x0)


class _BlendWriter(_Writer):
    """Blends tiles (which arrive in row-major order) in a float band of rows and
    finalizes rows as soon as no later tile touches them."""

    def __init__(self, grid: _Grid, out_channels: int | None, finalize: Finalize | None, out_dtype) -> None:
        super().__init__(grid, out_channels, finalize, out_dtype)
        rows, cols = grid.rows, grid.cols
        self.col_weights = [cols.ramp_weights(i) for i in range(len(cols.starts))]
        self.row_weights = [rows.ramp_weights(i) for i in range(len(rows.starts))]
        self.jobs = grid.jobs
        self.done = 0
        self.band_top = 0  # image row of band[0]
        self.band: np.ndarray | None = None
        self.band_weight = np.zeros((0, cols.padded), dtype=np.float32)

    def add(self, chunk: list[tuple[int, int]], preds: np.ndarray) -> None:
        rows, cols = self.grid.rows, self.grid.cols
        if self.band is None:
            self.band = np.zeros((0, cols.padded, preds.shape[-1]), dtype=np.float32)
        for (r, c), tile_pred in zip(chunk, preds):
            top = rows.starts[r]
            needed = top + rows.tile - self.band_top
            if needed > self.band.shape[0]:
                extra = needed - self.band.shape[0]
                self.band = np.concatenate([self.band, np.zeros((extra,) + self.band.shape[1:], np.float32)])
                self.band_weight = np.concatenate([self.band_weight, np.zeros((extra, cols.padded), np.float32)])
            row_weight, col_weight = self.row_weights[r], self.col_weights[c]
            y0, x0 = top - self.band_top, cols.starts[c]
            _apply_ramps(tile_pred, row_weight, col_weight)
            self.band[y0 : y0 + rows.tile, x0 : x0 + cols.tile] += tile_pred
            self.band_weight[y0 : y0 + rows.tile, x0 : x0 + cols.tile] += row_weight[:, None] * col_weight[None, :]
        self.done += len(chunk)
        # rows above the next unprocessed tile row are final
        height, width = self.grid.image.shape[:2]
        next_top = rows.starts[self.jobs[self.done][0]] if self.done < len(self.jobs) else rows.padded
        ready = min(next_top, height) - self.band_top
        if ready > 0:
            self._store(self.band[:ready, :width] / self.band_weight[:ready, :width, None], self.band_top, 0)
            self.band = self.band[ready:]
            self.band_weight = self.band_weight[ready:]
            self.band_top += ready
