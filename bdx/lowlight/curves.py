"""The light-enhancement curve and the sampling of low-resolution curve maps at full resolution."""

from __future__ import annotations

import torch
from torch.nn import functional as F

ITERATIONS = 8
CACHE_ELEMENTS = 1 << 17  # floats per band of rows in the inference loop (512 KiB)


def apply_curves(x: torch.Tensor, params: torch.Tensor, iterations: int = ITERATIONS) -> torch.Tensor:
    """Apply ``x <- x + a * (x^2 - x)`` ``iterations`` times.

    ``params`` has 3 channels (one map reused every iteration) or 3 * iterations
    (one map per iteration, in order); values of ``a`` lie in [-1, 1], which keeps
    [0, 1] inside [0, 1] and makes the curve monotonic.
    """
    maps = params.shape[1] // 3
    if maps not in (1, iterations):
        raise ValueError(f"expected 3 or {3 * iterations} curve channels, got {params.shape[1]}")
    # x + a (x^2 - x) = x (1 - a + a x): two fused passes per iteration instead of three
    one_minus = 1 - params
    if torch.is_grad_enabled():  # autograd needs every intermediate
        for i in range(iterations):
            a = params if maps == 1 else params[:, 3 * i : 3 * i + 3]
            b = one_minus if maps == 1 else one_minus[:, 3 * i : 3 * i + 3]
            x = x * torch.addcmul(b, a, x)
        return x
    # inference: all iterations on one band of rows at a time, so the 16 passes run in cache (2x faster alone)
    out = x.clone()  # never the caller's tensor
    shape = (params.shape[0], params.shape[1]) + tuple(x.shape[2:])
    params, one_minus = params.expand(shape), one_minus.expand(shape)  # bands slice rows of broadcast maps too
    rows = max(1, CACHE_ELEMENTS // max(1, x.shape[0] * x.shape[1] * x.shape[3]))
    factor = torch.empty_like(out[:, :, :rows])
    for top in range(0, x.shape[2], rows):
        band = out[:, :, top : top + rows]
        scratch = factor[:, :, : band.shape[2]]
        for i in range(iterations):
            a = params if maps == 1 else params[:, 3 * i : 3 * i + 3]
            b = one_minus if maps == 1 else one_minus[:, 3 * i : 3 * i + 3]
            torch.addcmul(b[:, :, top : top + rows], a[:, :, top : top + rows], band, out=scratch)
            band.mul_(scratch)
    return out


def sample_maps(params: torch.Tensor, boxes: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Bilinearly sample (1, C, h, w) curve maps at the pixels of tiles.

    ``boxes`` holds each tile's extent in normalised image coordinates
    (y0, x0, y1, x1) and the tiles are ``height`` x ``width`` pixels; the result
    equals ``F.interpolate(params, size=image size, mode="bilinear")`` cropped to
    each tile, so tiles agree wherever they overlap.
    """
    grids = []
    for y0, x0, y1, x1 in boxes.tolist():
        image_h, image_w = height / (y1 - y0), width / (x1 - x0)
        ys = (2 * y0 - 1 + (2 * torch.arange(height, dtype=torch.float64) + 1) / image_h).to(torch.float32)
        xs = (2 * x0 - 1 + (2 * torch.arange(width, dtype=torch.float64) + 1) / image_w).to(torch.float32)
        grid = torch.empty(height, width, 2)
        grid[..., 0] = xs[None, :]
        grid[..., 1] = ys[:, None]
        grids.append(grid)
    grid = torch.stack(grids).to(params.device)
    expanded = params.expand(len(grids), -1, -1, -1)
    return F.grid_sample(expanded, grid, mode="bilinear", padding_mode="border", align_corners=False)
