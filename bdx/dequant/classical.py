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

The contours are found per residue class q mod 4: one distance transform per class finds,
for every pixel, the nearest pixel whose level is one below (or above) its own modulo 4.
The ``contour`` method checks that pixel's level (OpenCV's labelled distance transform
names it): a pixel four levels off, across an edge, hides the contour behind it. The
learned model's prior (``check_levels=False``) takes the nearest pixel of the class
whatever its level: four plain distance transforms, several times faster, and the
network tells edges from contours itself. Its distances may also be city-block ones
(``metric="l1"``: exact integers, half the work again), which a network trained on
them reads as well as Euclidean ones, and its levels may be split into three residue
classes instead of four (``classes=3``: three transforms; the nearest pixel of class
q - 1 mod 3 may then be level q + 2, which on an even gradient lies beyond the q + 1
band and so farther than q - 1).
"""

from __future__ import annotations

import contextlib
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Literal, get_args

import cv2
import numpy as np
import torch
from torch import nn

from bdx.models import TileNeeds
from bdx.quantization import Convention, bin_centres, max_level, step_size

CONTOUR_RADIUS = 128  # contours farther than this are ignored (and set the tiling halo)
PLATEAU_WINDOW = 9  # window over which a plateau's width is estimated
# pixels of context, along each axis, that can change a pixel's value: contours within the radius (OpenCV's 5x5
# chamfer distance is within 2 % of Euclidean, and exact along the axes), then half the plateau window
CONTOUR_SUPPORT = CONTOUR_RADIUS + PLATEAU_WINDOW // 2
PLATEAU_MIN_WIDTH = 2.5  # narrower extremal plateaus keep the bin centre
RESIDUE_CLASSES = 4  # levels are split by q mod 4 so 4 distance transforms serve every level
# unchecked contours may also use 3 classes (3 transforms): the nearest pixel of class q - 1 mod 3 is then level q - 1
# or q + 2, and on a gradient of even steps q + 2 lies beyond the q + 1 band, farther than q - 1
CLASS_COUNTS = (3, 4)


class MidpointDequantizer(nn.Module):
    """Bin centre of every level."""

    table: torch.Tensor
    tiling = TileNeeds()  # each pixel on its own

    def __init__(self, bits: int, convention: Convention = "centre", container_bits: int = 16) -> None:
        super().__init__()
        table = torch.from_numpy(bin_centres(np.arange(max_level(bits) + 1), bits, convention, container_bits))
        self.register_buffer("table", table, persistent=False)
        self.divisor = float(max_level(bits)) if convention == "centre" else None

    def forward(self, levels: torch.Tensor) -> torch.Tensor:
        if self.divisor is not None and levels.dtype == torch.float32:
            return levels / self.divisor  # the same float32 division that built the table
        return self.table[levels.long()]


class ContourDequantizer(nn.Module):
    """Contour-distance interpolation inside each bin (:func:`level_fractions`: OpenCV on the CPU, tensor
    operations on other devices, or as ``backend`` says)."""

    # the 137 px halo costs 60 % extra work on 1024 px tiles, 29 % on 2048 px tiles
    tiling = TileNeeds(halo=CONTOUR_RADIUS + PLATEAU_WINDOW, preferred_tile=2048)

    def __init__(self, bits: int, convention: Convention = "centre", container_bits: int = 16, backend: PriorBackend = "auto") -> None:
        super().__init__()
        self.bits = bits
        self.convention = convention
        self.container_bits = container_bits
        self.backend = backend

    def forward(self, levels: torch.Tensor) -> torch.Tensor:
        # values in [0, 1] at the fraction's place inside each level's bin, in float32 throughout
        values = levels.to(torch.float32, copy=True)
        if self.convention != "truncate":
            values -= 0.5
        values += level_fractions(levels, self.backend)
        return values.mul_(float(np.float32(step_size(self.bits, self.convention, self.container_bits))))


PriorBackend = Literal["auto", "opencv", "torch"]
PRIOR_BACKENDS: tuple[PriorBackend, ...] = get_args(PriorBackend)
Metric = Literal["l2", "l1"]  # contour distances: Euclidean (OpenCV's 5x5 chamfer, within 2 %) or city-block (exact)


def level_fractions(
    levels: torch.Tensor,
    backend: PriorBackend = "auto",
    check_levels: bool = True,
    metric: Metric = "l2",
    margin: int = 0,
    classes: int = RESIDUE_CLASSES,
) -> torch.Tensor:
    """:func:`contour_fractions` of (N, C, H, W) levels as a float32 tensor on their device: with ``auto``, OpenCV's
    distance transforms on the CPU and tensor operations (:mod:`bdx.dequant.jump_flood`) elsewhere."""
    if backend not in PRIOR_BACKENDS:
        raise ValueError(f"unknown backend {backend!r}")
    if backend == "opencv" or (backend == "auto" and levels.device.type == "cpu"):
        return torch.from_numpy(contour_fractions(contiguous_levels(levels), check_levels, metric, margin, classes)).to(levels.device)
    from bdx.dequant.jump_flood import contour_fractions as flooded_fractions

    return flooded_fractions(levels, check_levels, metric, margin, classes)


def contiguous_levels(levels: torch.Tensor) -> np.ndarray:
    """(N, C, H, W) levels as a C-contiguous integer array (one copy, whatever the tensor's memory layout), so every
    plane is a view: uint8 when they fit (a quarter of the memory traffic of int32), else int32."""
    levels = levels.detach().to("cpu")
    small = levels.numel() == 0 or float(levels.max()) <= 255
    return levels.to(torch.uint8 if small else torch.int32, memory_format=torch.contiguous_format).numpy()


def contour_fractions(
    levels: np.ndarray, check_levels: bool = True, metric: Metric = "l2", margin: int = 0, classes: int = RESIDUE_CLASSES
) -> np.ndarray:
    """:func:`contour_fraction` of every plane of (N, C, H, W) integer levels (``check_levels``, ``metric`` and
    ``classes``: see the module's docstring), less ``margin`` pixels on each side (context whose contours count, but whose own
    fractions are not needed: they are not computed).

    The work runs on threads (OpenCV and NumPy release the GIL) split by plane and
    residue group, so three colour planes keep two or four threads evenly busy.
    """
    check_metric(check_levels, metric, classes)
    height, width = levels.shape[2:]
    check_margin(margin, height, width)
    if check_levels or levels.dtype != np.uint8:  # the checked contours read levels; unchecked ones only residues
        levels = levels.astype(np.int32, copy=False)
    planes = [np.ascontiguousarray(levels[n, c]) for n in range(levels.shape[0]) for c in range(levels.shape[1])]
    out = np.empty(levels.shape[:2] + (height - 2 * margin, width - 2 * margin), dtype=np.float32)
    # plane-sized arrays are allocated on this thread: allocated on the workers, they raised the peak RSS at
    # 100 MP by about 170 MiB (glibc keeps per-thread arenas)
    distances = [_no_distances(plane.shape, metric) for plane in planes]
    residues = [_residues(plane, classes) for plane in planes]
    locks = [threading.Lock() for _ in planes]
    workers = max(1, min(len(planes) * classes, torch.get_num_threads()))
    with ThreadPoolExecutor(max_workers=workers) as pool:
        # each group fills only pixels whose level is one off its own; the lock serializes the writes into one plane
        jobs = [
            pool.submit(_group_distances, plane, residue, group, CONTOUR_RADIUS, *distance, lock, check_levels, metric, classes)
            for plane, residue, distance, lock in zip(planes, residues, distances, locks)
            for group in range(classes)
        ]
        for job in jobs:
            job.result()
        fractions: list[Future | None] = [pool.submit(_inner_fraction, *distance, margin) for distance in distances]
        del distances, jobs  # each plane's distances are freed once its fraction is done
        for index, fraction in enumerate(fractions):
            assert fraction is not None
            out[divmod(index, levels.shape[1])] = fraction.result()
            fractions[index] = None
    return out


def contour_fraction(levels: np.ndarray, check_levels: bool = True, metric: Metric = "l2") -> np.ndarray:
    """Position of each pixel inside its bin (0..1) from its distances to the neighbouring-level contours."""
    return _fraction_from_distances(*neighbour_level_distances(levels, CONTOUR_RADIUS, check_levels, metric))


def check_metric(check_levels: bool, metric: Metric, classes: int = RESIDUE_CLASSES) -> None:
    """A ValueError for an unknown ``metric`` or class count, or city-block distances or 3 classes asked of
    checked contours."""
    if metric not in get_args(Metric):
        raise ValueError(f"unknown metric {metric!r}")
    if classes not in CLASS_COUNTS:
        raise ValueError(f"levels are split into {' or '.join(map(str, CLASS_COUNTS))} residue classes, not {classes}")
    if classes != RESIDUE_CLASSES and check_levels:
        raise ValueError(f"{classes} residue classes serve the unchecked contours only (check_levels=False)")
    if metric == "l1" and check_levels:
        raise ValueError("city-block distances serve the unchecked contours only (check_levels=False)")


def check_margin(margin: int, height: int, width: int) -> None:
    """A ValueError unless ``margin`` pixels off each side of a (height, width) plane leave some of it."""
    if not 0 <= 2 * margin < min(height, width):
        raise ValueError(f"a margin of {margin} leaves nothing of {height}x{width} levels")


def _inner_fraction(below: np.ndarray, above: np.ndarray, margin: int) -> np.ndarray:
    """:func:`_fraction_from_distances` less ``margin`` pixels on each side, computed on the inner part and the
    plateau window around it only (the same values: a pixel's fraction reads its distances within that window)."""
    reach = PLATEAU_WINDOW // 2
    extra = min(margin, reach)  # of the window's reach, what the margin holds
    start = margin - extra
    height, width = below.shape
    region = (slice(start, height - start), slice(start, width - start))
    fraction = _fraction_from_distances(below[region], above[region])
    return fraction[extra : fraction.shape[0] - extra, extra : fraction.shape[1] - extra]


def _fraction_from_distances(below: np.ndarray, above: np.ndarray) -> np.ndarray:
    # OpenCV's element-wise operations (several times faster than NumPy's where and masked copies here):
    # masks are uint8 with 255 for true, and masked copies write in place; city-block distances come as uint8
    below, above = below.astype(np.float32, copy=False), above.astype(np.float32, copy=False)
    has_below = cv2.compare(below, CONTOUR_RADIUS, cv2.CMP_LE)
    has_above = cv2.compare(above, CONTOUR_RADIUS, cv2.CMP_LE)
    fraction = np.full(below.shape, 0.5, dtype=np.float32)
    cv2.copyTo(cv2.divide(below, cv2.add(below, above)), cv2.bitwise_and(has_below, has_above), fraction)
    kernel = cv2.getStructuringElement(cv2.MORPH_RECT, (PLATEAU_WINDOW, PLATEAU_WINDOW))
    for has, has_not, distance, rising in ((has_below, has_above, below, True), (has_above, has_below, above, False)):
        only = cv2.bitwise_and(has, cv2.bitwise_not(has_not))
        if not cv2.countNonZero(only):
            continue
        width = cv2.dilate(cv2.copyTo(distance, only, np.zeros_like(distance)), kernel)
        # the ramp is read only where the width is at least PLATEAU_MIN_WIDTH, so OpenCV's x / 0 = 0 never shows
        ramp = cv2.min(cv2.divide(distance, width), 1.0)
        ramp *= np.float32(0.5)
        if not rising:
            np.subtract(np.float32(1.0), ramp, out=ramp)
        plateau = cv2.bitwise_and(only, cv2.compare(width, PLATEAU_MIN_WIDTH, cv2.CMP_GE))
        cv2.copyTo(ramp, plateau, fraction)
    return fraction


def neighbour_level_distances(
    levels: np.ndarray, radius: float, check_levels: bool = True, metric: Metric = "l2"
) -> tuple[np.ndarray, np.ndarray]:
    """Distance from each pixel to the nearest pixel one level below, and one level above.

    Distances beyond ``radius`` are infinite. Levels are grouped by q mod 4: one
    distance transform per group finds, for every pixel at level q, the nearest
    pixel of its group q-1 (or q+1); with ``check_levels`` the seed's own level is
    checked, so a pixel of level q+3 in the same group never counts as a contour.
    """
    check_metric(check_levels, metric)
    levels = levels.astype(np.int32, copy=False)
    residue = _residues(levels, RESIDUE_CLASSES)
    below, above = _no_distances(levels.shape, metric)
    for group in range(RESIDUE_CLASSES):
        _group_distances(levels, residue, group, radius, below, above, check_levels=check_levels, metric=metric)
    far = lambda d: np.where(d <= radius, d.astype(np.float32), np.float32(np.inf))  # noqa: E731
    return far(below), far(above)


def _residues(levels: np.ndarray, classes: int) -> np.ndarray:
    """Each level's residue group, q mod ``classes`` (a bit mask for 4; a table for uint8 levels), as uint8."""
    if classes == 4:
        return (levels & 3).astype(np.uint8, copy=False)
    if levels.dtype == np.uint8:
        return cv2.LUT(levels, _RESIDUE_TABLES[classes])
    return np.remainder(levels, classes).astype(np.uint8)


_RESIDUE_TABLES = {count: (np.arange(256) % count).astype(np.uint8) for count in CLASS_COUNTS}


def _no_distances(shape: tuple[int, ...], metric: Metric = "l2") -> tuple[np.ndarray, np.ndarray]:
    """Distances below and above before any contour is found: infinite, or for city-block distances (uint8, exact
    to 254) the saturated 255."""
    if metric == "l1":
        return np.full(shape, 255, dtype=np.uint8), np.full(shape, 255, dtype=np.uint8)
    return np.full(shape, np.inf, dtype=np.float32), np.full(shape, np.inf, dtype=np.float32)


def _group_distances(
    levels: np.ndarray,
    residue: np.ndarray,
    group: int,
    radius: float,
    below: np.ndarray,
    above: np.ndarray,
    lock: threading.Lock | None = None,
    check_levels: bool = True,
    metric: Metric = "l2",
    classes: int = RESIDUE_CLASSES,
) -> None:
    """Fill ``below`` / ``above`` for the pixels whose level is one above / below a level of residue ``group``
    (without ``check_levels``: whose residue is one above / below ``group``).

    ``lock`` guards the writes when other threads fill the same plane: OpenCV's masked copy
    rewrites unmasked pixels with their old values, so concurrent copies would race.
    """
    non_seeds = (residue != group).view(np.uint8)
    if non_seeds.all():
        return
    if not check_levels:
        if metric == "l1":  # exact city-block distances as uint8 (saturated at 255; the radius is below it)
            distance = cv2.distanceTransform(non_seeds, cv2.DIST_L1, 3, dstType=cv2.CV_8U)
        else:
            distance = cv2.distanceTransform(non_seeds, cv2.DIST_L2, 5)
        within = cv2.compare(distance, radius, cv2.CMP_LE)
        masks = [cv2.bitwise_and(cv2.compare(residue, (group + d) % classes, cv2.CMP_EQ), within) for d in (1, -1)]
        with lock or contextlib.nullcontext():
            for mask, result in zip(masks, (below, above)):
                cv2.copyTo(distance, mask, result)
        return
    distance, labels = cv2.distanceTransformWithLabels(non_seeds, cv2.DIST_L2, 5, labelType=cv2.DIST_LABEL_PIXEL)
    seeds = non_seeds == 0
    # one label per seed pixel: OpenCV numbers them 1..count in raster order (tests/test_depth.py checks it)
    seed_level = np.concatenate([np.zeros(1, np.int32), np.compress(seeds.ravel(), levels.ravel())])  # 3x a mask index
    # the nearest seed's level is in this group, so only pixels one level off it can match
    # the labels' buffer is reused (a plane-sized copy less per thread); labels lie in 0..seed count, so mode="clip"
    # changes nothing but skips the bounds check, which makes NumPy buffer the output (several times slower)
    offset = np.take(seed_level, labels, out=labels, mode="clip")
    np.subtract(levels, offset, out=offset)
    within = cv2.compare(distance, radius, cv2.CMP_LE)
    masks = [cv2.bitwise_and(cv2.compare(offset, difference, cv2.CMP_EQ), within) for difference in (1, -1)]
    with lock or contextlib.nullcontext():
        # each mask holds only pixels whose level is one off this group's: other groups' pixels keep their values
        for mask, result in zip(masks, (below, above)):
            cv2.copyTo(distance, mask, result)
