"""Non-learned dequantizers, as torch modules the tiling engine can run.

Both take quantization levels (as float32 integers, N x C x H x W) and return
values in [0, 1].

``midpoint`` returns each bin's centre.

``contour`` is content-adaptive contour-distance interpolation, after
Cheng, Au, Liu and Yip, "Bit-depth expansion by contour region reconstruction",
ISCAS 2009, and Liu, Zhai et al., "IPAD: Intensity Potential for Adaptive
De-quantization", IEEE TIP 2018. Inside a flat region of level q, a pixel's value
moves from the bottom of the bin at the contour with level q-1 to the top of the
bin at the contour with level q+1, in proportion to its distances to the two
contours. Plateaus bounded on one side only (local extrema) rise from the bin
edge towards the bin centre over the plateau's own width; tiny plateaus (texture)
keep the bin centre. Jumps of two levels or more are real edges and are not
contours. Every value stays inside its bin.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import cv2
import numpy as np
import torch
from torch import nn

from bdx.quantization import Convention, bin_centres, max_level, step_size

CONTOUR_RADIUS = 128  # contours farther than this are ignored (and set the tiling halo)
PLATEAU_WINDOW = 9  # window over which a plateau's width is estimated
PLATEAU_MIN_WIDTH = 2.5  # narrower extremal plateaus keep the bin centre
RESIDUE_CLASSES = 4  # levels are split by q mod 4 so 4 distance transforms serve every level


class MidpointDequantizer(nn.Module):
    """Bin centre of every level."""

    def __init__(self, bits: int, convention: Convention = "centre") -> None:
        super().__init__()
        table = torch.from_numpy(bin_centres(np.arange(max_level(bits) + 1), bits, convention))
        self.register_buffer("table", table, persistent=False)
        self.divisor = float(max_level(bits)) if convention == "centre" else None

    def forward(self, levels: torch.Tensor) -> torch.Tensor:
        if self.divisor is not None and levels.dtype == torch.float32:
            return levels / self.divisor  # the same float32 division that built the table
        return self.table[levels.long()]


class ContourDequantizer(nn.Module):
    """Contour-distance interpolation inside each bin (CPU; NumPy and OpenCV inside)."""

    halo = CONTOUR_RADIUS + PLATEAU_WINDOW
    preferred_tile = 2048  # the 137 px halo costs 60 % extra work on 1024 px tiles, 29 % on 2048 px tiles

    def __init__(self, bits: int, convention: Convention = "centre") -> None:
        super().__init__()
        self.bits = bits
        self.convention = convention

    def forward(self, levels: torch.Tensor) -> torch.Tensor:
        array = contiguous_levels(levels)
        values = contour_values(array, contour_fractions(array), self.bits, self.convention)
        return torch.from_numpy(values).to(levels.device)


def contiguous_levels(levels: torch.Tensor) -> np.ndarray:
    """(N, C, H, W) levels as a C-contiguous int32 array (one copy, whatever the tensor's memory layout),
    so every plane is a view."""
    return levels.detach().to("cpu").to(torch.int32, memory_format=torch.contiguous_format).numpy()


def contour_fractions(levels: np.ndarray) -> np.ndarray:
    """:func:`contour_fraction` of every plane of (N, C, H, W) integer levels.

    The work runs on threads (OpenCV and NumPy release the GIL) split by plane and
    residue group, so three colour planes keep two or four threads evenly busy.
    """
    levels = levels.astype(np.int32, copy=False)
    planes = [np.ascontiguousarray(levels[n, c]) for n in range(levels.shape[0]) for c in range(levels.shape[1])]
    out = np.empty(levels.shape, dtype=np.float32)
    distances = [_no_distances(plane.shape) for plane in planes]
    residues = [(plane % RESIDUE_CLASSES).astype(np.uint8) for plane in planes]
    workers = max(1, min(len(planes) * RESIDUE_CLASSES, torch.get_num_threads()))
    with ThreadPoolExecutor(max_workers=workers) as pool:
        # each group writes only pixels whose level is one off its own, so groups never write the same element
        jobs = [
            pool.submit(_group_distances, plane, residue, group, CONTOUR_RADIUS, *distance)
            for plane, residue, distance in zip(planes, residues, distances)
            for group in range(RESIDUE_CLASSES)
        ]
        for job in jobs:
            job.result()
        fractions = pool.map(lambda d: _fraction_from_distances(*d), distances)
        for index, fraction in enumerate(fractions):
            out[divmod(index, levels.shape[1])] = fraction
    return out


def contour_values(levels: np.ndarray, fraction: np.ndarray, bits: int, convention: Convention) -> np.ndarray:
    """Values in [0, 1] at position ``fraction`` (0 = bottom, 1 = top) inside each level's bin."""
    step = np.float32(step_size(bits, convention))
    values = levels.astype(np.float32)  # float32 throughout (int32 with a float32 scalar would promote to float64)
    if convention != "truncate":
        values -= np.float32(0.5)
    values += fraction
    values *= step
    return values


def contour_fraction(levels: np.ndarray) -> np.ndarray:
    """Position of each pixel inside its bin (0..1) from its distances to the neighbouring-level contours."""
    return _fraction_from_distances(*neighbour_level_distances(levels, CONTOUR_RADIUS))


def _fraction_from_distances(below: np.ndarray, above: np.ndarray) -> np.ndarray:
    has_below, has_above = below <= CONTOUR_RADIUS, above <= CONTOUR_RADIUS
    with np.errstate(invalid="ignore", divide="ignore"):
        fraction = np.where(has_below & has_above, below / (below + above), np.float32(0.5)).astype(np.float32, copy=False)
    kernel = cv2.getStructuringElement(cv2.MORPH_RECT, (PLATEAU_WINDOW, PLATEAU_WINDOW))
    for only, distance, rising in ((has_below & ~has_above, below, True), (has_above & ~has_below, above, False)):
        if not only.any():
            continue
        width = cv2.dilate(np.where(only, distance, np.float32(0)), kernel)
        with np.errstate(invalid="ignore", divide="ignore"):
            ramp = np.float32(0.5) * np.minimum(np.float32(1.0), distance / width)
        plateau = only & (width >= PLATEAU_MIN_WIDTH)
        fraction = np.where(plateau, ramp if rising else np.float32(1.0) - ramp, fraction)
    return fraction


def neighbour_level_distances(levels: np.ndarray, radius: float) -> tuple[np.ndarray, np.ndarray]:
    """Distance from each pixel to the nearest pixel one level below, and one level above.

    Distances beyond ``radius`` are infinite. Levels are grouped by q mod 4: one
    distance transform per group finds, for every pixel at level q, the nearest
    pixel of its group q-1 (or q+1); the seed's own level is checked, so a pixel
    of level q+3 in the same group never counts as a contour.
    """
    levels = levels.astype(np.int32, copy=False)
    residue = (levels % RESIDUE_CLASSES).astype(np.uint8)
    below, above = _no_distances(levels.shape)
    for group in range(RESIDUE_CLASSES):
        _group_distances(levels, residue, group, radius, below, above)
    return below, above


def _no_distances(shape: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    return np.full(shape, np.inf, dtype=np.float32), np.full(shape, np.inf, dtype=np.float32)


def _group_distances(
    levels: np.ndarray, residue: np.ndarray, group: int, radius: float, below: np.ndarray, above: np.ndarray
) -> None:
    """Fill ``below`` / ``above`` for the pixels whose level is one above / below a level of residue ``group``."""
    non_seeds = (residue != group).view(np.uint8)
    if non_seeds.all():
        return
    distance, labels = cv2.distanceTransformWithLabels(non_seeds, cv2.DIST_L2, 5, labelType=cv2.DIST_LABEL_PIXEL)
    seeds = non_seeds == 0
    # one label per seed pixel: OpenCV numbers them 1..count in raster order (tests/test_depth.py checks it)
    seed_level = np.concatenate([np.zeros(1, np.int32), levels[seeds]])
    # the nearest seed's level is in this group, so only pixels one level off it can match
    offset = np.take(seed_level, labels, out=labels)  # the labels' buffer is reused: a plane-sized copy less per thread
    np.subtract(levels, offset, out=offset)
    within = distance <= radius
    match = np.empty(levels.shape, dtype=bool)
    for difference, result in ((1, below), (-1, above)):
        np.equal(offset, difference, out=match)
        match &= within
        np.copyto(result, distance, where=match)  # writes only where match holds: other groups' pixels stay untouched
