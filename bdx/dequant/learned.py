"""Learned bit-depth dequantizer: one small network for every input depth, bin-safe by construction.

The network sees the bin centres of the input and the quantization step (as a
constant conditioning channel), and predicts an offset bounded to half a step
less one 16-bit code (``(step / 2 - 1 / 65535) * tanh``), so its output never
leaves the input's bin, even after rounding to 16 bits. The head starts at zero,
so an untrained network is the bin centre. Weights are stored
as safetensors with the architecture in the file's metadata.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from bdx.errors import BdxError
from bdx.safetensor_io import load_state, read_model, save_model
from bdx.dequant.classical import MidpointDequantizer
from bdx.quantization import Convention, step_size

ARCHITECTURE = "bdx-dequant-unet-v3"
LEGACY_ARCHITECTURES = {
    "bdx-dequant-unet-v2": {"quarter.": "tiled.blocks.0.", "eighth.": "tiled.blocks.1.", "down.": "tiled.downs.0.", "up.": "tiled.ups.0.", "merge.": "tiled.merges.0."}
}


@dataclass(frozen=True)
class DequantNetConfig:
    """Shape of the network.

    ``widths``/``blocks``: width and residual-block count of each tiled level,
    the first at 1/4 resolution, each next at half the last. ``context_widths``/
    ``context_blocks``: the same for the context branch, whose first level has
    cells of twice the coarsest tiled level's pixel size; empty means no context
    branch.
    """

    widths: tuple[int, ...] = (16, 32)
    blocks: tuple[int, ...] = (0, 2)
    channels: int = 3
    context_widths: tuple[int, ...] = (32, 48, 64)
    context_blocks: tuple[int, ...] = (1, 2, 2)


def _act(x: torch.Tensor) -> torch.Tensor:
    return F.leaky_relu(x, 0.1)


def _conv(inputs: int, outputs: int, kernel: int = 3) -> nn.Conv2d:
    return nn.Conv2d(inputs, outputs, kernel, padding=kernel // 2)


class _Residual(nn.Module):
    def __init__(self, width: int) -> None:
        super().__init__()
        self.first = _conv(width, width)
        self.second = _conv(width, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.second(_act(self.first(x)))


class _UNet(nn.Module):
    """Residual levels, each at half the resolution of the last; returns the finest level after decoding."""

    def __init__(self, widths: tuple[int, ...], blocks: tuple[int, ...]) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(nn.Sequential(*[_Residual(w) for _ in range(b)]) for w, b in zip(widths, blocks))
        self.downs = nn.ModuleList(_conv(4 * fine, coarse) for fine, coarse in zip(widths, widths[1:]))
        self.ups = nn.ModuleList(_conv(coarse, 4 * fine, 1) for fine, coarse in zip(widths, widths[1:]))
        self.merges = nn.ModuleList(_conv(fine, fine) for fine in widths[:-1])

    def forward(self, x: torch.Tensor, inject: torch.Tensor | None = None) -> torch.Tensor:
        """``inject`` (already at the coarsest level's size and width) is added to that level's input."""
        levels = [self.blocks[0](x)]
        for index, (down, blocks) in enumerate(zip(self.downs, self.blocks[1:])):
            coarse = _act(down(F.pixel_unshuffle(levels[-1], 2)))
            if inject is not None and index == len(self.downs) - 1:
                coarse = coarse + inject
            levels.append(blocks(coarse))
        x = levels[-1]
        for fine, up, merge in zip(reversed(levels[:-1]), reversed(self.ups), reversed(self.merges)):
            x = _act(merge(fine + F.pixel_shuffle(up(x), 2)))
        return x

    @staticmethod
    def convs_per_level(blocks: tuple[int, ...]) -> list[int]:
        """3x3 convolutions each level adds along any path (residual blocks, down, merge)."""
        return [2 * b + (i > 0) + (i < len(blocks) - 1) for i, b in enumerate(blocks)]


class DequantNet(nn.Module):
    """A small U-Net at 1/4 and 1/8 resolution, plus a context branch at 1/16 and coarser.

    The full-resolution input is pixel-unshuffled 4x4 (so each 1/4-resolution
    feature sees its 16 pixels exactly) and the head pixel-shuffles 16 offsets per
    feature back to full resolution: no convolution runs at full resolution.

    Flat bands at 4 bits can be hundreds of pixels wide, far beyond what a tile
    halo can afford. The context branch sees them: it runs on per-cell statistics
    (16x16 cells by default: mean tone, and the spread of levels in steps) of the
    whole image once, and its features are added to the coarsest tiled level. Tiles
    therefore need only the tiled levels' receptive field as halo, and tiled output
    equals whole-image output.

    Input: bin centres (C channels, in [0, 1]) and the quantization step per
    sample. Output: offsets in units of half a step, in (-1, 1).
    """

    def __init__(self, config: DequantNetConfig = DequantNetConfig()) -> None:
        super().__init__()
        if len(config.widths) != len(config.blocks) or not config.widths:
            raise ValueError("widths and blocks need one entry per level")
        if len(config.context_widths) != len(config.context_blocks):
            raise ValueError("context_widths and context_blocks need one entry per level")
        self.config = config
        widths, c = config.widths, config.channels
        self.stem = _conv(18 * c + 1, widths[0])
        self.tiled = _UNet(widths, config.blocks)
        self.head = _conv(widths[0], 16 * c)
        if config.context_widths:
            self.context_stem = _conv(2 * c + 1, config.context_widths[0])
            self.context = _UNet(config.context_widths, config.context_blocks)
            self.context_out = _conv(config.context_widths[0], 4 * widths[-1], 1)
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)

    @property
    def has_context(self) -> bool:
        return bool(self.config.context_widths)

    @property
    def cell(self) -> int:
        """Pixel size of one context cell (twice the coarsest tiled level's pixel)."""
        return 8 * 2 ** (len(self.config.widths) - 1)

    @property
    def multiple(self) -> int:
        """Input sizes (and tile positions) must be multiples of this."""
        return self.cell if self.has_context else self.cell // 2

    @property
    def receptive_radius(self) -> int:
        """Pixels of tiled context on each side that can influence an output pixel (an upper bound).

        The context branch is excluded: it runs once on the whole image.
        """
        radius = 4 * 3  # contrast pool, stem, head at 1/4
        for level, convs in enumerate(_UNet.convs_per_level(self.config.blocks)):
            radius += 4 * 2**level * convs
        return radius + self.multiple - 1  # plus the position inside a cell

    def context_input(self, centres: torch.Tensor, step: torch.Tensor) -> torch.Tensor:
        """Per-cell statistics of (N, C, H, W) bin centres (sizes multiples of :attr:`cell`): mean tone,
        standard deviation in steps (clamped to 8), and the depth condition."""
        mean, deviation = cell_statistics(centres, self.cell)
        return self.context_from_statistics(mean, deviation, step)

    def context_from_statistics(self, mean: torch.Tensor, deviation: torch.Tensor, step: torch.Tensor) -> torch.Tensor:
        """Context input from :func:`cell_statistics` of a whole image, computed in any number of row bands."""
        n = mean.shape[0]
        step = step.to(mean.dtype).view(n, 1, 1, 1)
        condition = _condition(step).expand(n, 1, mean.shape[2], mean.shape[3])
        return torch.cat([mean, (deviation / step).clamp_max(8), condition], dim=1)

    def context_features(self, context_input: torch.Tensor) -> torch.Tensor:
        """Context features per cell, from :meth:`context_input` of a whole image (or training crop)."""
        height, width = context_input.shape[2:]
        multiple = 2 ** (len(self.config.context_widths) - 1)
        padded = F.pad(context_input, (0, -width % multiple, 0, -height % multiple), mode="replicate")
        return self.context_out(self.context(_act(self.context_stem(padded))))[:, :, :height, :width]

    def forward(self, centres: torch.Tensor, step: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        """Offsets for (N, C, H, W) bin centres quantized with ``step`` (one value per sample, shape (N,)).

        ``context``: :meth:`context_features` cells covering exactly this input; None computes them
        from the input itself (the whole image is the input).
        """
        return F.pixel_shuffle(self.block_offsets(centres, step, context), 4)

    def block_offsets(self, centres: torch.Tensor, step: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        """:meth:`forward` before the final pixel shuffle: (N, 16 C, H / 4, W / 4), channel ``16 c + 4 dy + dx``."""
        n, c = centres.shape[:2]
        step = step.to(centres.dtype).view(n, 1, 1, 1)
        # the 16 pixels of every 4x4 block, in steps, less their mean: one pass over the full-resolution input
        pixels = F.pixel_unshuffle(centres / step, 4)
        h, w = pixels.shape[2:]
        block_steps = pixels.view(n, c, 16, h, w).mean(2)
        detail = (pixels.view(n, c, 16, h, w) - block_steps.unsqueeze(2)).view(n, 16 * c, h, w)
        blocks = block_steps * step  # tone of each 4x4 block, in [0, 1]
        contrast = (blocks - F.avg_pool2d(blocks, 3, stride=1, padding=1, count_include_pad=False)) / step
        condition = _condition(step).expand(n, 1, h, w)
        small = torch.cat([blocks, contrast.clamp(-8, 8), condition], dim=1)
        # the stem on [detail, small] as two convolutions, so the large detail tensor is never copied by a cat
        weight = self.stem.weight
        stem = F.conv2d(detail, weight[:, : 16 * c], None, padding=1) + F.conv2d(small, weight[:, 16 * c :], self.stem.bias, padding=1)
        inject = None
        if self.has_context:
            if context is None:
                context = self.context_features(self.context_input(centres, step.view(n)))
            inject = F.pixel_shuffle(context, 2)
        x = self.tiled(_act(stem), inject)
        return torch.tanh(self.head(x))


def cell_statistics(x: torch.Tensor, cell: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and standard deviation of each ``cell`` x ``cell`` block of (N, C, H, W) ``x``.

    Deviations are taken from each cell's first pixel before squaring, so a flat
    cell gets exactly zero (no cancellation between two large means of squares).
    """
    n, c, height, width = x.shape
    cells = x.unflatten(3, (width // cell, cell)).unflatten(2, (height // cell, cell))  # a view, for any strides
    shift = cells[:, :, :, :1, :, :1]
    offsets = cells - shift
    mean_offset = offsets.mean((3, 5))
    variance = (offsets * offsets).mean((3, 5)) - mean_offset * mean_offset
    return shift[:, :, :, 0, :, 0] + mean_offset, variance.clamp_min(0).sqrt()


def _cell_statistics_hwc(x: np.ndarray, cell: int) -> tuple[np.ndarray, np.ndarray]:
    """:func:`cell_statistics` of an (H, W, C) float32 array, returned as (H / cell, W / cell, C) arrays
    (the same formula with OpenCV's box means, several times faster on a CPU)."""
    import cv2

    height, width, channels = x.shape
    cells = torch.from_numpy(x).view(height // cell, cell, width // cell, cell, channels)
    shift = cells[:, :1, :, :1]
    offsets = (cells - shift).view(height, width, channels)  # torch: the element-wise work runs on all threads
    size = (width // cell, height // cell)
    shape = (height // cell, width // cell, channels)
    mean_offset = cv2.resize(offsets.numpy(), size, interpolation=cv2.INTER_AREA).reshape(shape)
    mean_square = cv2.resize(offsets.square_().numpy(), size, interpolation=cv2.INTER_AREA).reshape(shape)
    shift = shift.numpy()
    variance = np.maximum(mean_square - mean_offset * mean_offset, 0)
    return shift[:, 0, :, 0] + mean_offset, np.sqrt(variance)


def _condition(step: torch.Tensor) -> torch.Tensor:
    """log2 of the number of levels, / 16."""
    return torch.log2(1.0 / step + 1.0) / 16.0


def dequantize_levels(
    net: nn.Module, centres: torch.Tensor, step: float | list[float], context: torch.Tensor | None = None
) -> torch.Tensor:
    """Values in [0, 1] from bin centres (N, C, H, W): centre plus a bounded offset, added in float32.

    Any size works (the input is padded to the network's multiple and the output cropped).

    ``step`` (the quantization step, 1 / (2^N - 1) for N-bit levels) is one value
    for the batch or one per sample; ``net`` may be wrapped (DistributedDataParallel).
    ``context``: see :meth:`DequantNet.forward` (it must cover the padded input).
    """
    channels = getattr(net, "module", net).config.channels
    count = centres.shape[0]
    steps = [step] * count if isinstance(step, (int, float)) else list(step)
    x = centres if centres.shape[1] == channels else centres.expand(-1, channels, -1, -1)
    step_values = torch.tensor(steps, dtype=torch.float32, device=x.device)
    height, width = x.shape[2], x.shape[3]
    multiple = getattr(net, "module", net).multiple
    pad_h, pad_w = -height % multiple, -width % multiple
    inputs = x
    if pad_h or pad_w:
        mode = "reflect" if pad_h < height and pad_w < width else "replicate"
        inputs = F.pad(x, (0, pad_w, 0, pad_h), mode=mode)
    # half a step less one 16-bit code, so rounding to 16 bits can never cross into the next bin
    reach = step_values.view(count, 1, 1, 1) * 0.5 - 1.0 / 65535
    if isinstance(net, DequantNet) and not torch.is_grad_enabled():
        # inference: add the offsets in their 4x4-block layout, which saves a pass over the image
        blocks = net.block_offsets(inputs, step_values, context).float()
        n, _, h, w = blocks.shape
        out = torch.empty((n, channels, 4 * h, 4 * w), dtype=torch.float32, device=inputs.device)
        as_blocks = lambda t: t.view(n, channels, h, 4, w, 4)  # noqa: E731
        torch.addcmul(
            as_blocks(inputs.float()), reach.view(n, 1, 1, 1, 1, 1),
            blocks.view(n, channels, 4, 4, h, w).permute(0, 1, 4, 2, 5, 3), out=as_blocks(out),
        )
        return out[:, : centres.shape[1], :height, :width]
    offset = net(inputs, step_values, context)
    if pad_h or pad_w:
        offset = offset[:, :, :height, :width]
    out = torch.addcmul(x.float(), reach, offset.float())
    return out[:, : centres.shape[1]]


class LearnedDequantizer(nn.Module):
    """Adapter for the tiling engine: N-bit levels in, values in [0, 1] out.

    With a context branch, call :meth:`image_context` once on the whole image's
    levels and pass its result to the engine as ``global_features``.
    """

    def __init__(self, net: DequantNet, bits: int, convention: Convention = "centre") -> None:
        super().__init__()
        self.net = net
        self.bits = bits
        self.step = step_size(bits, convention)
        self.centres = MidpointDequantizer(bits, convention)
        self.multiple = net.multiple
        self.halo = -(-net.receptive_radius // self.multiple) * self.multiple
        self.preferred_tile = 1024
        self._size = (0, 0)

    def image_context(self, codes: np.ndarray, level_of_code: np.ndarray, band: int = 128) -> torch.Tensor | None:
        """Context features of a whole (H, W, C) image of codes (edges padded like the tiler's); None without a
        branch. ``level_of_code`` maps every code to its float level.

        Rows are read in bands, so memory stays bounded by one band and the (1/cell²-sized) statistics.
        """
        if not self.net.has_context:
            return None
        from bdx.tiling import border_indices

        centre_of_code = self.centres(torch.from_numpy(level_of_code)).numpy()
        height, width = codes.shape[:2]
        cell = self.net.cell
        padded_h, padded_w = -(-height // cell) * cell, -(-width // cell) * cell
        band = max(cell, band // cell * cell)
        means, deviations = [], []
        for top in range(0, padded_h, band):
            bottom = min(top + band, padded_h)
            chunk = codes[top:bottom] if bottom <= height else codes[border_indices(top, bottom, height)]
            if padded_w != width:
                chunk = np.concatenate([chunk, chunk[:, border_indices(width, padded_w, width)]], axis=1)
            mean, deviation = _cell_statistics_hwc(centre_of_code[chunk].reshape(chunk.shape[0], chunk.shape[1], -1), cell)
            means.append(mean)
            deviations.append(deviation)
        device = next(self.net.parameters()).device
        to_tensor = lambda parts: torch.from_numpy(np.concatenate(parts)).permute(2, 0, 1)[None].to(device)  # noqa: E731
        mean, deviation = to_tensor(means), to_tensor(deviations)
        channels = self.net.config.channels
        if mean.shape[1] != channels:
            mean, deviation = mean.expand(-1, channels, -1, -1), deviation.expand(-1, channels, -1, -1)
        self._size = (height, width)
        with torch.inference_mode():
            step = torch.tensor([self.step], device=device)
            return self.net.context_features(self.net.context_from_statistics(mean, deviation, step))

    def forward(self, levels: torch.Tensor, context: torch.Tensor | None = None, boxes: torch.Tensor | None = None) -> torch.Tensor:
        centres = self.centres(levels)
        if context is not None:
            context = torch.cat([self._cells(context, box, centres.shape[2:]) for box in boxes.tolist()])
        return dequantize_levels(self.net, centres, self.step, context)

    def _cells(self, context: torch.Tensor, box: list[float], size: tuple[int, int]) -> torch.Tensor:
        """The context cells under one tile (edge cells repeated beyond the image)."""
        cell, (height, width) = self.net.cell, self._size
        padded_h, padded_w = -(-size[0] // cell) * cell, -(-size[1] // cell) * cell
        top, left = round(box[0] * height) // cell, round(box[1] * width) // cell
        rows = torch.arange(top, top + padded_h // cell).clamp(0, context.shape[2] - 1).to(context.device)
        cols = torch.arange(left, left + padded_w // cell).clamp(0, context.shape[3] - 1).to(context.device)
        return context[:, :, rows][:, :, :, cols]


def save_weights(net: DequantNet, path: str | Path, extra: dict | None = None) -> None:
    """Write the network as safetensors, its architecture and ``extra`` in the metadata."""
    save_model(net, path, ARCHITECTURE, extra)


def load_weights(path: str | Path) -> DequantNet:
    """Load a network saved by :func:`save_weights`; anything else is a one-line error."""
    config, state = read_model(path, ARCHITECTURE, "bdx dequantizer", LEGACY_ARCHITECTURES)
    try:
        net = DequantNet(
            DequantNetConfig(
                widths=tuple(config["widths"]), blocks=tuple(config["blocks"]), channels=int(config["channels"]),
                context_widths=tuple(config.get("context_widths", ())), context_blocks=tuple(config.get("context_blocks", ())),
            )
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise BdxError(f"{Path(path).name}: weights do not match the architecture (config: {exc})") from None
    return load_state(net, state, path)
