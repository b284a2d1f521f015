"""Published LDR-to-HDR networks that ``bdx ldr2hdr --weights`` runs from their own checkpoints.

Each is bdx's own implementation of the published architecture, recognised from the checkpoint's keys (never its
file name) and loaded without unpickling code:

- ``fhdr``: FHDR (Khan, Khanna and Raman, "FHDR: HDR Image Reconstruction from a Single LDR Image using Feedback
  Network", GlobalSIP 2019): a feedback block of dilated dense blocks run ``iterations`` times at full resolution.
  Its state starts afresh for every image (and every tile), so nothing leaks from one image to the next. The
  iteration count is not stored in the checkpoint: the two published files are known by their SHA-256 (1 and 2
  iterations), any other file runs 1 unless told otherwise. Input ``2x - 1``; output BGR in (-1, 1), ``(y + 1) / 2``
  being linear HDR on its training targets' scale.
- ``expandnet``: ExpandNet (Marnerides et al., Eurographics 2018): local, dilated and global branches with SELU.
  The input is stretched to [0, 1] by the image's own minimum and maximum (as its authors' ``expand.py`` does),
  the global branch sees the whole image resized to 256 x 256, and the image is zero-padded by 10 px as its
  authors' patch-wise ``predict`` does. Output: relative linear HDR in (0, 1).

Both give HDR of unknown scale: :func:`bdx.hdr.reconstruct.match_input_scale` brings it to the input's
(unclipped pixels keep the linearized input's values, as with bdx's own model). They run with their own padding
at the image's edges (the tiling engine's ``inside`` border), so tiles join exactly.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from bdx.checkpoints import load_matching, sha256
from bdx.models import Architecture, TileNeeds

# the published FHDR checkpoints (mukulkhanna/FHDR's release) and the feedback iterations each was trained with
FHDR_ITERATIONS = {
    "bccc03b8d04c3c950998302bfff37c6a8f2f11038ed1cb128a5b5932980504f8": 1,  # FHDR-iter-1.ckpt
    "89c3d57e2b9ebbb477ae9235b9aa728761e143228aa1183bd0a86d0eb8f53057": 2,  # FHDR-iter-2.ckpt
}
EXPANDNET_PAD = 10  # zero padding its authors' predict() adds around the image
EXPANDNET_GLOBAL_SIZE = 256


class _DilatedDenseBlock(nn.Module):
    """FHDR's dilated dense block with its own hidden state: ``compress(cat[input, state])``, four densely
    connected dilated 3x3 convolutions, a 1x1 fusion; the result is the new state."""

    def __init__(self, width: int = 64, growth: int = 32, layers: int = 4) -> None:
        super().__init__()
        self.compress = nn.Conv2d(2 * width, width, 1)
        self.dense_layers = nn.ModuleList(_DenseLayer(width + i * growth, growth) for i in range(layers))
        self.conv_1x1 = nn.Conv2d(width + layers * growth, width, 1, bias=False)

    def forward(self, x: torch.Tensor, state: torch.Tensor) -> torch.Tensor:
        out = self.compress(torch.cat([x, state], 1))
        for layer in self.dense_layers:
            out = torch.cat([out, F.relu(layer(out))], 1)
        return self.conv_1x1(out)


class _DenseLayer(nn.Module):
    def __init__(self, inputs: int, growth: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(inputs, growth, 3, padding=2, dilation=2, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


class _FeedbackBlock(nn.Module):
    def __init__(self, width: int = 64) -> None:
        super().__init__()
        self.compress_in = nn.Conv2d(2 * width, width, 1)
        self.DRDB1 = _DilatedDenseBlock(width)
        self.DRDB2 = _DilatedDenseBlock(width)
        self.DRDB3 = _DilatedDenseBlock(width)
        self.GFF_3x3 = nn.Conv2d(width, width, 3, padding=1)


class FHDRNet(nn.Module):
    """FHDR's network; ``forward(x, iterations)`` maps sRGB [0, 1] to relative linear RGB (N, 3, H, W).

    >>> FHDRNet()(torch.rand(1, 3, 12, 12), 2).shape
    torch.Size([1, 3, 12, 12])
    """

    dense_radius = 3 * 4 * 2  # three dense blocks of four dilation-2 convolutions

    def __init__(self, iterations: int = 1) -> None:
        super().__init__()
        self.iterations = iterations  # the default when none is asked for
        self.feb1 = nn.Conv2d(3, 64, 3)
        self.feb2 = nn.Conv2d(64, 64, 3, padding=1)
        self.feedback_block = _FeedbackBlock()
        self.hrb1 = nn.Conv2d(64, 64, 3, padding=1)
        self.hrb2 = nn.Conv2d(64, 3, 3)

    def receptive_radius(self, iterations: int) -> int:
        """Pixels on each side that can change an output pixel after ``iterations`` passes."""
        return 2 + iterations * (self.dense_radius + 1) + 2

    def forward(self, x: torch.Tensor, iterations: int | None = None) -> torch.Tensor:
        block = self.feedback_block
        drdbs = (block.DRDB1, block.DRDB2, block.DRDB3)
        first = F.relu(self.feb1(_reflect_one(2 * x - 1)))
        features = F.relu(self.feb2(first))
        hidden, states = None, [None] * len(drdbs)  # every image starts afresh: each state is its block's first input
        out = x
        for _ in range(iterations or self.iterations):
            hidden = features if hidden is None else hidden
            o = block.compress_in(torch.cat([features, hidden], 1))
            for i, drdb in enumerate(drdbs):
                states[i] = o if states[i] is None else states[i]
                o = states[i] = drdb(o, states[i])
            hidden = F.relu(block.GFF_3x3(o))
            h = F.relu(self.hrb1(hidden + first))
            out = torch.tanh(self.hrb2(_reflect_one(h)))
        return (out.flip(1) + 1) / 2  # trained on BGR targets


def _reflect_one(x: torch.Tensor) -> torch.Tensor:
    """One pixel of reflection padding on each side (a side one pixel long is replicated: it has nothing to
    reflect, where FHDR's own code fails)."""
    return F.pad(x, (1, 1, 1, 1), mode="reflect" if min(x.shape[2:]) > 1 else "replicate")


def _selu_conv(inputs: int, outputs: int, kernel: int, **kwargs) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(inputs, outputs, kernel, **kwargs), nn.SELU())


class ExpandNet(nn.Module):
    """ExpandNet's three branches; ``forward(x, features)`` maps min-max-stretched [0, 1] RGB and the global
    vector of :meth:`global_features` to relative linear RGB in (0, 1).

    >>> net = ExpandNet()
    >>> net(torch.rand(1, 3, 20, 20), net.global_features(torch.rand(1, 3, 256, 256))).shape
    torch.Size([1, 3, 20, 20])
    """

    receptive_radius = 8  # the dilated branch: four dilation-2 3x3 convolutions

    def __init__(self) -> None:
        super().__init__()
        self.local_net = nn.Sequential(_selu_conv(3, 64, 3, padding=1), _selu_conv(64, 128, 3, padding=1))
        self.mid_net = nn.Sequential(
            _selu_conv(3, 64, 3, padding=2, dilation=2),
            _selu_conv(64, 64, 3, padding=2, dilation=2),
            _selu_conv(64, 64, 3, padding=2, dilation=2),
            nn.Conv2d(64, 64, 3, padding=2, dilation=2),
        )
        self.glob_net = nn.Sequential(
            _selu_conv(3, 64, 3, stride=2, padding=1),
            *[_selu_conv(64, 64, 3, stride=2, padding=1) for _ in range(5)],
            nn.Conv2d(64, 64, 4),
        )
        self.end_net = nn.Sequential(_selu_conv(256, 64, 1), nn.Conv2d(64, 3, 1))

    def global_features(self, whole: torch.Tensor) -> torch.Tensor:
        """The global vector (N, 64, 1, 1) from the whole image resized to 256 x 256."""
        return self.glob_net(whole)

    def forward(self, x: torch.Tensor, features: torch.Tensor) -> torch.Tensor:
        local, mid = self.local_net(x), self.mid_net(x)
        glob = features.expand(x.shape[0], -1, x.shape[2], x.shape[3])
        return torch.sigmoid(self.end_net(torch.cat([local, mid, glob], 1)))


_FHDR_KEYS = {"feb1.weight", "feedback_block.compress_in.weight", "feedback_block.DRDB1.compress.weight", "hrb2.weight"}
_EXPANDNET_KEYS = {"local_net.0.0.weight", "mid_net.3.weight", "glob_net.6.weight", "end_net.1.weight"}


def _fhdr(state: dict[str, torch.Tensor], path: Path) -> FHDRNet:
    return load_matching(FHDRNet(FHDR_ITERATIONS.get(sha256(path), 1)), state, path, "FHDR")


class FHDRTiles(nn.Module):
    """Tile model for :class:`FHDRNet` (its state is made afresh for every tile)."""

    def __init__(self, net: FHDRNet, iterations: int | None) -> None:
        super().__init__()
        self.net, self.iterations = net, iterations or net.iterations
        self.tiling: TileNeeds = TileNeeds(halo=net.receptive_radius(self.iterations), preferred_tile=384)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x, self.iterations)


class ExpandNetTiles(nn.Module):
    """Tile model for :class:`ExpandNet`: stretches each tile by the image's range and zero-pads the sides that
    lie on the image's edges, as its authors' ``predict`` pads the whole image."""

    tiling = TileNeeds(halo=ExpandNet.receptive_radius, preferred_tile=384)

    def __init__(self, net: ExpandNet, low: float, high: float, height: int, width: int) -> None:
        super().__init__()
        self.net, self.low, self.span = net, low, max(high - low, 1e-12)
        self.height, self.width = height, width

    def stretch(self, x: torch.Tensor) -> torch.Tensor:
        """Values in [0, 1] stretched by the image's own minimum and maximum, as ExpandNet's authors do."""
        return (x - self.low) / self.span

    def forward(self, x: torch.Tensor, features: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
        outs = []
        for tile, (y0, x0, y1, x1) in zip(self.stretch(x), boxes.tolist()):
            edges = [
                EXPANDNET_PAD * int(edge)
                for edge in (
                    round(x0 * self.width) <= 0,
                    round(x1 * self.width) >= self.width,
                    round(y0 * self.height) <= 0,
                    round(y1 * self.height) >= self.height,
                )
            ]
            out = self.net(F.pad(tile[None], edges), features)
            outs.append(out[:, :, edges[2] : out.shape[2] - edges[3], edges[0] : out.shape[3] - edges[1]])
        return torch.cat(outs)


def tile_model(net: nn.Module, codes: np.ndarray, iterations: int | None, device: torch.device):
    """(tile model, its global features or None) to run a published network on ``codes`` (H, W, C integer) with
    :func:`bdx.tiling.run_tiled` and the ``inside`` border."""
    if isinstance(net, FHDRNet):
        return FHDRTiles(net, iterations), None
    assert isinstance(net, ExpandNet)
    peak = float(np.iinfo(codes.dtype).max)  # the tiling engine gives the model codes / peak
    tiles = ExpandNetTiles(net, float(codes.min()) / peak, float(codes.max()) / peak, codes.shape[0], codes.shape[1])
    resized = resize_bilinear(codes, EXPANDNET_GLOBAL_SIZE, EXPANDNET_GLOBAL_SIZE) / np.float32(peak)
    with torch.inference_mode():
        features = net.global_features(tiles.stretch(torch.from_numpy(resized).permute(2, 0, 1)[None].to(device)))
    return tiles, features


def resize_bilinear(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """(H, W, C) ``image`` resized to (height, width, C) float32 as ``F.interpolate(mode="bilinear",
    align_corners=False)`` without antialiasing: each output sample blends the two nearest rows and columns, so
    only those rows are read (a 100 MP image is never converted to float whole)."""

    def taps(size: int, length: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        source = np.maximum((np.arange(size, dtype=np.float64) + 0.5) * (length / size) - 0.5, 0)
        first = np.minimum(np.floor(source).astype(np.int64), length - 1)
        return first, np.minimum(first + 1, length - 1), (source - first).astype(np.float32)

    top, bottom, row_weight = taps(height, image.shape[0])
    left, right, col_weight = taps(width, image.shape[1])
    rows = image[top].astype(np.float32) * (1 - row_weight)[:, None, None]
    rows += image[bottom].astype(np.float32) * row_weight[:, None, None]
    return rows[:, left] * (1 - col_weight)[None, :, None] + rows[:, right] * col_weight[None, :, None]


FHDR = Architecture(
    "fhdr",
    "hdr",
    FHDRNet,
    lambda net: FHDRTiles(net, None).tiling,
    detect=lambda state: _FHDR_KEYS <= set(state),
    from_state=_fhdr,
    title="FHDR",
)
EXPANDNET = Architecture(
    "expandnet",
    "hdr",
    ExpandNet,
    lambda net: ExpandNetTiles.tiling,
    detect=lambda state: _EXPANDNET_KEYS <= set(state),
    title="ExpandNet",
    from_state=lambda state, path: load_matching(ExpandNet(), state, path, "ExpandNet"),
)
