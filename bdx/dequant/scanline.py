"""Contour fractions from runs along rows and columns: a pure-torch prior for the learned dequantizer.

Along one row, pixels of equal level form runs. A pixel's run ends at two boundaries; the level just past each
boundary tells what the boundary is: one level below (a contour the truth rises from), one level above (a contour
it rises to), or neither (an edge, the image border, or farther than :data:`SCANLINE_RADIUS`). The pixel's place
inside its bin follows from its distances to the two boundaries:

- below on one side, above on the other (a ramp): the distance to the lower contour over the run's length;
- below on both sides (a crest): rising from the bin's bottom at the contours to its centre midway;
  above on both sides (a trough) the mirror image;
- one contour only: from the bin edge at the contour towards the centre, over the run's length.

Rows and columns each give such a fraction; they are averaged with weights 1 / length² (the shorter run crosses
the band more squarely, and for a straight band both give the same fraction). Runs are followed at full resolution
along every ``subsample``-th row and column, and read where those cross: each such sample's tone (its level plus
the fraction, less a half) is interpolated bilinearly to every pixel, and each pixel's fraction is where that tone
falls in its own bin, clamped to it. A smooth gradient's tone is linear, so the interpolation loses nothing there.

Only torch operations, on any device: runs are found with cumulative maxima of change positions over the sampled
rows and columns, and the rest is a few dozen passes over the samples.
"""

from __future__ import annotations

import torch
from torch.nn import functional as F

SCANLINE_RADIUS = 128  # boundaries farther than this, in full-resolution pixels, are ignored
SCANLINE_SUBSAMPLE = 4  # runs are followed along every fourth row and column
# pixels of context, along each axis, that can change a pixel's fraction: the boundaries within the radius, the
# level just past them, and the samples that interpolate the pixel's tone
SCANLINE_SUPPORT = SCANLINE_RADIUS + 2 * SCANLINE_SUBSAMPLE


def scanline_fractions(levels: torch.Tensor, subsample: int = SCANLINE_SUBSAMPLE) -> torch.Tensor:
    """Place of each pixel inside its bin (0: bottom, 1: top) from the runs of (N, C, H, W) integer levels
    (any dtype holding whole numbers), as float32 on their device.

    Runs are followed along every ``subsample``-th row and column at full resolution, and their fractions read at
    the samples where those rows and columns cross. A pixel's fraction depends only on pixels within
    :data:`SCANLINE_SUPPORT` along each axis, and samples sit at multiples of ``subsample`` from the tensor's origin:
    tiles whose origins are multiples of ``subsample`` give the same fractions as the whole image.

    >>> ramp = torch.arange(64.0).div(8).floor().view(1, 1, 1, 64).expand(1, 1, 4, 64)
    >>> fractions = scanline_fractions(ramp, subsample=1)
    >>> [round(float(f), 3) for f in fractions[0, 0, 0, 16:24]]
    [0.062, 0.188, 0.312, 0.438, 0.562, 0.688, 0.812, 0.938]
    """
    levels = levels.to(torch.float32)
    step = subsample
    rows_fraction, rows_weight = _along_rows(levels[:, :, ::step, :], step)
    cols_fraction, cols_weight = (t.transpose(2, 3) for t in _along_rows(levels[:, :, :, ::step].transpose(2, 3).contiguous(), step))
    weight = rows_weight + cols_weight
    fraction = rows_fraction.mul_(rows_weight).add_(cols_fraction.mul_(cols_weight))
    fraction = torch.where(weight > 0, fraction / weight.clamp_min(1e-12), 0.5)
    if step == 1:
        return fraction
    tone = fraction.add_(levels[:, :, ::step, ::step]).sub_(0.5)
    return _interpolated(tone, step, levels.shape[2:]).sub_(levels).add_(0.5).clamp_(0.0, 1.0)


def _interpolated(tone: torch.Tensor, subsample: int, size: torch.Size) -> torch.Tensor:
    """Samples at multiples of ``subsample`` interpolated bilinearly to every pixel of ``size``; pixels past the
    last sample take the nearest one's value."""
    height, width = tone.shape[2:]
    exact = F.interpolate(tone, size=((height - 1) * subsample + 1, (width - 1) * subsample + 1), mode="bilinear", align_corners=True)
    pad_h, pad_w = size[0] - exact.shape[2], size[1] - exact.shape[3]
    if pad_h or pad_w:
        exact = F.pad(exact, (0, pad_w, 0, pad_h), mode="replicate")
    return exact


def _along_rows(levels: torch.Tensor, step: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Fraction and weight (0: no contour within reach) from each pixel's run along the last axis, for every
    ``step``-th pixel of each row."""
    width = levels.shape[-1]
    index = torch.arange(width, device=levels.device, dtype=torch.int32).expand(levels.shape)
    changes = torch.ones(levels.shape, dtype=torch.bool, device=levels.device)
    torch.ne(levels[..., 1:], levels[..., :-1], out=changes[..., 1:])
    start = torch.where(changes, index, 0).cummax(-1).values[..., ::step]
    ends = torch.ones_like(changes)
    ends[..., :-1] = changes[..., 1:]
    end = torch.where(ends, index, width - 1).flip(-1).cummin(-1).values.flip(-1)[..., ::step]
    own = levels[..., ::step]
    position = index[..., ::step]
    # what lies past each boundary: -1 below, +1 above, 0 neither (another level, the border, beyond reach)
    # distances beyond the radius are only known to be that far: clamped, so that nothing outside the support counts
    to_start = (position - start).to(torch.float32).add_(0.5).clamp_(max=SCANLINE_RADIUS + 1)
    to_end = (end - position).to(torch.float32).add_(0.5).clamp_(max=SCANLINE_RADIUS + 1)
    before = torch.gather(levels, -1, (start - 1).clamp_(min=0).long()).sub_(own)
    after = torch.gather(levels, -1, (end + 1).clamp_(max=width - 1).long()).sub_(own)
    before = torch.where((start > 0) & (to_start <= SCANLINE_RADIUS) & (before.abs() == 1), before, 0.0)
    after = torch.where((end < width - 1) & (to_end <= SCANLINE_RADIUS) & (after.abs() == 1), after, 0.0)
    length = to_start + to_end
    # the fraction when the truth rises away from the start's contour (before -1), else from the end's (after -1)
    rising_from_start = to_start / length
    nearer = torch.minimum(to_start, to_end) / length
    ramp = torch.where(before == -after, torch.where(before < 0, rising_from_start, 1 - rising_from_start), nearer)
    ramp = torch.where((before == 0) ^ (after == 0), 0.5 * torch.where(before != 0, to_start, to_end) / length, ramp)
    below = (before < 0) | (after < 0)
    fraction = torch.where(below, ramp, 1 - ramp)
    weight = torch.where((before != 0) | (after != 0), length.reciprocal().square_(), 0.0)
    return fraction, weight
