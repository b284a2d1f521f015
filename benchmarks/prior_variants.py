"""Cheaper variants of the contour prior against the shipped one: quality and speed, in one run.

The contour method (and the learned model's prior) spends most of its time in
labelled distance transforms. This script measures two ways to cut that cost,
neither of which is in the library, against the exact method:

- ``unlabelled``: one unlabelled distance transform per level class q mod 8
  instead of a labelled one per group q mod 4 (labels cost about 4x). It cannot
  tell a jump of 7 or 9 levels from a contour; ties count as edges.
- ``subsampled xF``: the exact method on every F-th pixel, the values resized
  back (bilinear) and clamped into each pixel's bin.

Quality: the contour method's PSNR gain over the bin centre on the held-out
cases of ``compare_depth.py``. Speed: the bin fractions of a 12 MP 8-bit
synthetic scene, three planes one after another, each variant in the same run.

    python benchmarks/prior_variants.py --heldout-from weights/depth-contour-gated-v5.safetensors
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import cv2
import numpy as np

from bdx.dequant.classical import CONTOUR_RADIUS, _fraction_from_distances, contour_fraction
from bdx.io import Image
from bdx.metrics import psnr
from bdx.quantization import max_level
from bdx.reduce import quantize_image
from bench_upscale_depth import synthetic_scene
from compare_depth import cases, heldout_names

SUBSAMPLE_FACTORS = (2, 4)


def unlabelled_fraction(levels: np.ndarray) -> np.ndarray:
    """Bin fractions from unlabelled distance transforms, one per class q mod 8 (OpenCV's element-wise
    operations throughout, as in the library's labelled version)."""
    classes = (levels & 7).astype(np.uint8)
    below = np.full(levels.shape, np.inf, np.float32)
    above = below.copy()
    missing = np.full(levels.shape, np.inf, np.float32)
    for group in range(4):
        first, second = (
            missing if (classes != k).all() else cv2.distanceTransform((classes != k).view(np.uint8), cv2.DIST_L2, 5)
            for k in (group, group + 4)
        )
        for near, far, level_class in ((first, second, group), (second, first, group + 4)):
            usable = cv2.bitwise_and(cv2.compare(near, far, cv2.CMP_LT), cv2.compare(near, CONTOUR_RADIUS, cv2.CMP_LE))
            for step, result in ((1, below), (-1, above)):
                at_level = cv2.compare(classes, (level_class + step) % 8, cv2.CMP_EQ)
                cv2.copyTo(near, cv2.bitwise_and(at_level, usable), result)
    return _fraction_from_distances(below, above)


def subsampled_fraction(levels: np.ndarray, factor: int) -> np.ndarray:
    """Bin fractions of the exact method run on every ``factor``-th pixel, resized back and kept in each bin."""
    small = np.ascontiguousarray(levels[factor // 2 :: factor, factor // 2 :: factor])
    values = (small - 0.5 + contour_fraction(small)).astype(np.float32)  # in level units
    shift = factor // 2
    warp = np.float32([[factor, 0, shift], [0, factor, shift]])
    resized = cv2.warpAffine(values, warp, levels.shape[::-1], flags=cv2.INTER_LINEAR,
                             borderMode=cv2.BORDER_REPLICATE)
    return np.clip(resized - (levels - 0.5), 0.0, 1.0)


VARIANTS = {"exact": contour_fraction, "unlabelled": unlabelled_fraction} | {
    f"subsampled x{f}": (lambda levels, f=f: subsampled_fraction(levels, f)) for f in SUBSAMPLE_FACTORS
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--heldout-from", help="use only files held out of training by these weights")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "prior_variants.json")
    args = parser.parse_args()
    cv2.setNumThreads(2)

    scene = synthetic_scene(3000, 4000, 8).astype(np.int32)
    seconds = {}
    for name, fraction in VARIANTS.items():
        start = time.perf_counter()
        for channel in range(3):
            fraction(np.ascontiguousarray(scene[..., channel]))
        seconds[name] = time.perf_counter() - start
    print("12 MP, 3 planes: " + ", ".join(f"{n} {s:.2f} s" for n, s in seconds.items()), flush=True)

    gains: dict[str, dict[str, list[float]]] = {}
    for name, group, reference, bits in cases(12, heldout_names(args.heldout_from)):
        truth = reference.astype(np.float64) / (255 if reference.dtype == np.uint8 else 65535)
        codes = quantize_image(Image(reference), bits).pixels
        top = max_level(bits)
        level_map = np.rint(codes / np.iinfo(codes.dtype).max * top).astype(np.int32)  # codes back to levels
        centre_psnr = psnr(level_map / top, truth)
        case = f"{group} {bits}->{8 if reference.dtype == np.uint8 else 16}"
        for variant, fraction in VARIANTS.items():
            planes = [fraction(np.ascontiguousarray(level_map[..., c])) for c in range(level_map.shape[2])]
            values = (level_map - 0.5 + np.stack(planes, axis=-1)) / top
            gains.setdefault(case, {}).setdefault(variant, []).append(psnr(np.clip(values, 0, 1), truth) - centre_psnr)
        print(name, case, {v: round(g[-1], 2) for v, g in gains[case].items()}, flush=True)

    lines = ["| case | n | " + " | ".join(VARIANTS) + " |", "|---|---" + "|---" * len(VARIANTS) + "|"]
    summary = {}
    for case, by_variant in gains.items():
        summary[case] = {v: {"gain_db": float(np.mean(g)), "worst_gain_db": float(np.min(g))} for v, g in by_variant.items()}
        cells = [f"{summary[case][v]['gain_db']:+.2f} ({summary[case][v]['worst_gain_db']:+.2f})" for v in VARIANTS]
        lines.append(f"| {case} | {len(by_variant['exact'])} | " + " | ".join(cells) + " |")
    lines.append("| seconds, 12 MP (3 planes) | | " + " | ".join(f"{seconds[v]:.2f}" for v in VARIANTS) + " |")
    table = "\n".join(lines)
    print(table)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    meta = {"heldout_from": args.heldout_from, "quality": "contour method's PSNR gain over the bin centre (worst image)"}
    args.out.write_text(json.dumps({"meta": meta, "seconds_12mp": seconds, "summary": summary}, indent=2))
    args.out.with_suffix(".md").write_text(table + "\n")
    print(f"wrote {args.out} and .md")


if __name__ == "__main__":
    main()
