"""The contour method's fractions as tensor operations, for devices other than the CPU.

:func:`bdx.dequant.classical.contour_fractions` finds, for every pixel of level q, the nearest pixel of level
q - 1 and of level q + 1 with OpenCV's labelled distance transforms (one per residue class q mod 4). This module
finds the same nearest pixels by jump flooding (Rong and Tan, "Jump Flooding in GPU with Applications to Voronoi
Diagram and Distance Transform", I3D 2006): every pixel keeps the coordinates of the nearest seed it has heard
of, and passes with strides 128, 64, ..., 1 (and one more at 1) let each pixel look at nine others. Distances are
exact Euclidean to the seed found (OpenCV's 5x5 chamfer is within 2 % of it); ties between equally near seeds may
be broken differently, so a few pixels can differ from the CPU path. City-block distances (``metric="l1"``) need
no search: two separable passes of doubling steps give them exactly, equal to OpenCV's.
"""

from __future__ import annotations

import torch
from torch.nn import functional as F

from bdx.dequant.classical import CONTOUR_RADIUS, PLATEAU_MIN_WIDTH, PLATEAU_WINDOW, RESIDUE_CLASSES, Metric, check_margin, check_metric

NONE = -(1 << 20)  # coordinate of "no seed yet": far enough that its distance exceeds any radius


def nearest_seeds(seeds: torch.Tensor, reach: int = CONTOUR_RADIUS) -> tuple[torch.Tensor, torch.Tensor]:
    """Row and column of the nearest ``seeds`` pixel (a (P, H, W) bool tensor) to every pixel, found by jump
    flooding with strides from the power of two at or above ``reach`` down to 1, then 1 again; pixels with no seed
    within reach may keep :data:`NONE`.

    >>> seeds = torch.zeros(1, 5, 5, dtype=torch.bool); seeds[0, 2, 2] = True
    >>> rows, cols = nearest_seeds(seeds, 4)
    >>> int(rows[0, 0, 4]), int(cols[0, 0, 4])
    (2, 2)
    """
    planes, height, width = seeds.shape
    device = seeds.device
    ys = torch.arange(height, device=device, dtype=torch.int32).view(1, height, 1).expand(planes, height, width)
    xs = torch.arange(width, device=device, dtype=torch.int32).view(1, 1, width).expand(planes, height, width)
    none = torch.full_like(ys, NONE)
    rows, cols = torch.where(seeds, ys, none), torch.where(seeds, xs, none)
    best = _squared(rows, cols, ys, xs)
    stride = 1 << max(0, (max(1, reach) - 1).bit_length())
    strides = []
    while stride >= 1:
        strides.append(stride)
        stride //= 2
    for step in strides + [1]:
        padded_rows = F.pad(rows, (step, step, step, step), value=NONE)
        padded_cols = F.pad(cols, (step, step, step, step), value=NONE)
        for dy in (-step, 0, step):
            for dx in (-step, 0, step):
                if dy == 0 and dx == 0:
                    continue
                window = (slice(None), slice(step + dy, step + dy + height), slice(step + dx, step + dx + width))
                candidate_rows, candidate_cols = padded_rows[window], padded_cols[window]
                distance = _squared(candidate_rows, candidate_cols, ys, xs)
                closer = distance < best
                rows = torch.where(closer, candidate_rows, rows)
                cols = torch.where(closer, candidate_cols, cols)
                best = torch.where(closer, distance, best)
    return rows, cols


def city_block_distances(seeds: torch.Tensor, reach: int = CONTOUR_RADIUS) -> torch.Tensor:
    """City-block distance from every pixel to the nearest ``seeds`` pixel (a (P, H, W) bool tensor), exact up to
    ``reach`` (int32; farther pixels get some larger value): along the rows, then the columns, each pixel takes the
    least of its own distance and its neighbours' at 1, 2, 4, ... pixels plus that step, so every distance is a
    sum of distinct steps.

    >>> seeds = torch.zeros(1, 5, 5, dtype=torch.bool); seeds[0, 2, 2] = True
    >>> city_block_distances(seeds, 4)[0, 0].tolist()
    [4, 3, 2, 3, 4]
    """
    far = 4 * max(1, reach) + 4  # larger than any sum of steps, small enough never to overflow
    distance = torch.where(seeds, 0, far).to(torch.int32)
    for dim in (2, 1):
        length = distance.shape[dim]
        step = 1
        while step <= reach and step < length:
            later, earlier = distance.narrow(dim, step, length - step), distance.narrow(dim, 0, length - step)
            nearer = distance.clone()
            head, tail = nearer.narrow(dim, 0, length - step), nearer.narrow(dim, step, length - step)
            head.copy_(torch.minimum(head, later + step))
            tail.copy_(torch.minimum(tail, earlier + step))
            distance = nearer.clamp_(max=far)
            step *= 2
    return distance


def _squared(rows: torch.Tensor, cols: torch.Tensor, ys: torch.Tensor, xs: torch.Tensor) -> torch.Tensor:
    """Squared distance from (ys, xs) to (rows, cols), as int64 (no overflow for :data:`NONE`)."""
    dy, dx = (rows - ys).long(), (cols - xs).long()
    return dy * dy + dx * dx


def neighbour_level_distances(
    levels: torch.Tensor,
    radius: float = CONTOUR_RADIUS,
    check_levels: bool = True,
    metric: Metric = "l2",
    classes: int = RESIDUE_CLASSES,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Distance from each pixel of (P, H, W) integer ``levels`` to the nearest pixel one level below and one level
    above, infinite beyond ``radius``: as :func:`bdx.dequant.classical.neighbour_level_distances`, the nearest
    pixel of the neighbouring level's residue class counts only when its level is the neighbouring one (with
    ``check_levels``; without, whatever its level; ``metric`` and ``classes``: see :mod:`bdx.dequant.classical`)."""
    check_metric(check_levels, metric, classes)
    levels = levels.long()
    residue = levels % classes
    gather = lambda maps, index: torch.gather(maps, 0, index.unsqueeze(0)).squeeze(0)  # noqa: E731
    ys = torch.arange(levels.shape[1], device=levels.device).view(1, -1, 1)
    xs = torch.arange(levels.shape[2], device=levels.device).view(1, 1, -1)
    distances, seed_levels = [], []
    for group in range(classes):
        if metric == "l1":
            distances.append(city_block_distances(residue == group, int(radius)).float())
            continue
        rows, cols = nearest_seeds(residue == group, int(radius))
        found = rows != NONE
        distances.append(torch.where(found, torch.sqrt(_squared(rows, cols, ys, xs).float()), torch.inf))
        if check_levels:  # the level of each pixel's nearest seed, read only to check it
            index = (rows.clamp(0, levels.shape[1] - 1) * levels.shape[2] + cols.clamp(0, levels.shape[2] - 1)).long()
            seed_levels.append(torch.where(found, torch.gather(levels.flatten(1), 1, index.flatten(1)).view_as(levels), -1))
    distance = torch.stack(distances)
    seed_level = torch.stack(seed_levels) if check_levels else None
    out = []
    for difference in (-1, 1):
        wanted = levels + difference
        wanted_group = wanted % classes  # (of level -1: classes - 1, as in the CPU path)
        nearest = gather(distance, wanted_group)
        counts = nearest <= radius
        if seed_level is not None:
            counts &= gather(seed_level, wanted_group) == wanted
        out.append(torch.where(counts, nearest, torch.inf))
    return out[0], out[1]


def contour_fractions(
    levels: torch.Tensor, check_levels: bool = True, metric: Metric = "l2", margin: int = 0, classes: int = RESIDUE_CLASSES
) -> torch.Tensor:
    """Position of each pixel inside its bin (0 = bottom, 1 = top) for (N, C, H, W) integer levels, less ``margin``
    pixels on each side: the tensor form of :func:`bdx.dequant.classical.contour_fractions`."""
    n, c, height, width = levels.shape
    check_margin(margin, height, width)
    planes = levels.reshape(n * c, height, width)
    below, above = neighbour_level_distances(planes, check_levels=check_levels, metric=metric, classes=classes)
    has_below, has_above = below <= CONTOUR_RADIUS, above <= CONTOUR_RADIUS
    fraction = torch.full_like(below, 0.5)
    both = has_below & has_above
    fraction = torch.where(both, below / torch.where(both, below + above, 1.0), fraction)
    for has, has_not, distance, rising in ((has_below, has_above, below, True), (has_above, has_below, above, False)):
        only = has & ~has_not
        masked = torch.where(only, distance, 0.0)
        plateau_width = F.max_pool2d(masked.unsqueeze(1), PLATEAU_WINDOW, stride=1, padding=PLATEAU_WINDOW // 2).squeeze(1)
        ramp = torch.where(plateau_width > 0, distance / plateau_width.clamp_min(1e-12), 0.0).clamp(max=1.0) * 0.5
        if not rising:
            ramp = 1.0 - ramp
        fraction = torch.where(only & (plateau_width >= PLATEAU_MIN_WIDTH), ramp, fraction)
    return fraction.view(n, c, height, width)[:, :, margin : height - margin, margin : width - margin]
