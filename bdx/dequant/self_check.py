"""Self-check of the learned dequantizer on the image itself: keep its offsets only where it helps there.

At 8 bits and up the quantization step is close to the noise of real photographs, and a network that restores
smooth gradients well can also smooth away sub-step texture that is part of the truth. Nothing in a single
pixel tells the two apart; the image can. The input, decimated 4x4 (every fourth pixel along each axis: the
same noise per pixel, a sixteenth of the work), is quantized once more to one bit fewer and restored by the
same network; where, block by block, that restoration comes closer to the input than the bin centre does, the
network's offsets are kept at full resolution, and where it does worse they fade to the bin centre:

    alpha = clip(1/2 + gain_dB / RAMP_DB, 0, 1)   per 128x128 block, interpolated bilinearly between blocks

and the output is ``centre + alpha * (network - centre)``, still inside every bin. On the held-out depth suite
this keeps the mean 8->16 gain within 0.02 dB and lifts the worst image from -0.09 to about -0.01 dB
(docs/benchmarks.md). Below 8 bits the network's gains are large and a test one bit coarser misjudges them
(4->8 lost 0.1 to 0.3 dB), so the check runs from :data:`MIN_BITS` up.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

MIN_BITS = 8  # inputs of fewer bits are not checked
DECIMATION = 4  # the check runs on every DECIMATION-th pixel along each axis
BLOCK = 128  # pixels (full resolution) per side of the blocks whose gain decides their alpha
RAMP_DB = 0.5  # alpha goes from 0 to 1 as the block's gain goes from -RAMP_DB / 2 to +RAMP_DB / 2


class BlockErrors:
    """Squared errors of the check's restoration and of the bin centre, summed per block of the decimated
    image; filled tile by tile (:meth:`add`) as the tiling engine finishes them."""

    def __init__(self, height: int, width: int) -> None:
        cell = BLOCK // DECIMATION
        self.cell = cell
        shape = (-(-height // cell), -(-width // cell))
        self.restored = np.zeros(shape, np.float64)
        self.centre = np.zeros(shape, np.float64)

    def add(self, restored: np.ndarray, centre: np.ndarray, truth: np.ndarray, top: int, left: int) -> None:
        """Add the errors of one (h, w, C) region whose top-left pixel is (top, left) in the decimated image."""
        height, width = truth.shape[:2]
        rows = slice(top // self.cell, (top + height - 1) // self.cell + 1)
        cols = slice(left // self.cell, (left + width - 1) // self.cell + 1)
        for total, values in ((self.restored, restored), (self.centre, centre)):
            error = np.square(values - truth, dtype=np.float64).sum(axis=-1)
            by_rows = np.add.reduceat(error, _cell_starts(top, height, self.cell), axis=0)
            total[rows, cols] += np.add.reduceat(by_rows, _cell_starts(left, width, self.cell), axis=1)

    def alpha(self) -> np.ndarray:
        """Per block: how much of the network's offsets to keep, in [0, 1]."""
        gain = 10 * np.log10((self.centre + 1e-12) / (self.restored + 1e-12))
        return np.clip(0.5 + gain / RAMP_DB, 0.0, 1.0).astype(np.float32)


def _cell_starts(start: int, length: int, cell: int) -> np.ndarray:
    """Offsets inside a region of ``length`` pixels from ``start`` where a new cell begins (0 always)."""
    first = -start % cell
    return np.concatenate([[0], np.arange(first or cell, length, cell)]).astype(np.intp)


def alpha_region(alpha: np.ndarray, top: int, left: int, height: int, width: int) -> torch.Tensor:
    """The per-block ``alpha`` (one value per :data:`BLOCK` pixels) interpolated bilinearly at the full-resolution
    pixels of a (height, width) region whose top-left pixel is (top, left); constant beyond the outer block
    centres (float32; computed in float64).

    >>> alpha_region(np.array([[0.0, 1.0]], np.float32), 0, 0, 1, 256)[0, [0, 64, 128, 191, 255]].double().round(decimals=3).tolist()
    [0.0, 0.004, 0.504, 0.996, 1.0]
    """
    rows = _interpolation(top, height, alpha.shape[0])
    cols = _interpolation(left, width, alpha.shape[1])
    return (rows @ torch.from_numpy(alpha).double() @ cols.T).float()


@dataclass(frozen=True)
class ImageAlpha:
    """The self-check's alpha of a whole (height, width) image, handed to the dequantizer of its tiles (the tiling
    engine's ``global_features``), which blends each tile's output with the bin centres by it."""

    alpha: np.ndarray  # (rows, cols) float32, one value per BLOCK pixels
    height: int
    width: int

    def region(self, box: torch.Tensor, rows: int, cols: int, trim: int = 0) -> torch.Tensor:
        """:func:`alpha_region` of a tile's output: ``box`` is the tile's input extent in normalised image
        coordinates (y0, x0, y1, x1), its output is (rows, cols) pixels less ``trim`` on each side of it."""
        top = round(float(box[0]) * self.height) + trim
        left = round(float(box[1]) * self.width) + trim
        return alpha_region(self.alpha, top, left, rows, cols)


def _interpolation(start: int, length: int, cells: int) -> torch.Tensor:
    """(length, cells) weights of linear interpolation between block centres at pixels start..start+length-1."""
    position = ((start + torch.arange(length, dtype=torch.float64) + 0.5) / BLOCK - 0.5).clamp(0, cells - 1)
    low = position.floor().long()
    high = (low + 1).clamp(max=cells - 1)
    fraction = position - low
    weights = torch.zeros((length, cells), dtype=torch.float64)
    index = torch.arange(length)
    weights.index_put_((index, low), 1 - fraction, accumulate=True)
    weights.index_put_((index, high), fraction, accumulate=True)
    return weights
