"""Quality of every dequantizer against the bin centre, measured in one run.

Cases: natural photos (../shared/data/photos, 1024x768 area-downscaled copies,
quantized 4->8 and 6->8) and a synthetic smooth scene rendered in 16 bits
(quantized 4, 6 and 8 bits -> 16). Reports PSNR per image, the gain over
``midpoint`` and the banding stress (zero first differences after gamma 0.6).
Writes JSON and a Markdown table.

    python benchmarks/compare_depth.py [--photos N] [--methods midpoint contour]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import cv2
import numpy as np

from bdx.depth import DEPTH_METHODS, upscale_depth
from bdx.io import Image, read_image
from bdx.metrics import banding_stress, psnr
from bdx.reduce import quantize_image

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


def smooth_scene(height: int = 768, width: int = 1024) -> np.ndarray:
    """A 16-bit smooth scene: sky gradient, soft sun, shaded hill."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    v, u = y / height, x / width
    sky = np.stack([0.25 + 0.45 * v, 0.45 + 0.35 * v, 0.85 - 0.15 * v], axis=-1)
    sun = np.exp(-(((u - 0.7) ** 2 + (v - 0.3) ** 2) / 0.02))[..., None] * np.array([0.5, 0.4, 0.1])
    shade = 0.5 + 0.4 * np.sin(u * 4.0 + v * 2.0) * np.cos(v * 3.0)
    scene = np.where((v > 0.7)[..., None], shade[..., None] * np.array([0.6, 0.8, 0.4]), sky + sun)
    return np.rint(np.clip(scene, 0, 1) * 65535).astype(np.uint16)


def cases(photo_count: int):
    if (SHARED / "photos").is_dir():
        for path in sorted((SHARED / "photos").glob("*.jpg"))[:photo_count]:
            pixels = cv2.resize(read_image(path).pixels, (1024, 768), interpolation=cv2.INTER_AREA)
            for bits in (4, 6):
                yield f"photo {path.stem.split('__')[-1][:24]}", "photos", pixels, bits
    scene = smooth_scene()
    for bits in (4, 6, 8):
        yield "smooth scene (16-bit render)", "smooth", scene, bits


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--photos", type=int, default=8)
    parser.add_argument("--methods", nargs="+", default=["contour", "midpoint"], choices=DEPTH_METHODS)
    parser.add_argument("--weights", help="weights file for the learned method")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "compare_depth")
    args = parser.parse_args()
    rows = []
    for name, group, reference, bits in cases(args.photos):
        truth = reference.astype(np.float64) / (255 if reference.dtype == np.uint8 else 65535)
        quantized = quantize_image(Image(reference), bits)
        row = {"image": name, "group": group, "bits": f"{bits}->{8 if reference.dtype == np.uint8 else 16}"}
        row["input_zero_diff_g0.6"] = banding_stress(quantized.pixels / 255.0)["zero_diff_g0.6"]
        for method in args.methods:
            start = time.perf_counter()
            out = upscale_depth(quantized, method=method, device="cpu", weights=args.weights).image.pixels / 65535.0
            row[f"{method}_seconds"] = time.perf_counter() - start
            row[f"{method}_psnr"] = psnr(out, truth)
            row[f"{method}_zero_diff_g0.6"] = banding_stress(out)["zero_diff_g0.6"]
        rows.append(row)
        print(json.dumps(row))
    summary = {}
    for group in sorted({r["group"] for r in rows}):
        for bits in sorted({r["bits"] for r in rows if r["group"] == group}):
            picked = [r for r in rows if r["group"] == group and r["bits"] == bits]
            entry = {"images": len(picked)}
            for method in args.methods:
                gains = [r[f"{method}_psnr"] - r["midpoint_psnr"] for r in picked] if "midpoint" in args.methods else []
                entry[method] = {
                    "psnr": float(np.mean([r[f"{method}_psnr"] for r in picked])),
                    "gain_over_midpoint_db": float(np.mean(gains)) if gains else None,
                    "worst_gain_db": float(np.min(gains)) if gains else None,
                    "zero_diff_g0.6": float(np.mean([r[f"{method}_zero_diff_g0.6"] for r in picked])),
                }
            entry["input_zero_diff_g0.6"] = float(np.mean([r["input_zero_diff_g0.6"] for r in picked]))
            summary[f"{group} {bits}"] = entry
    lines = ["| case | n | " + " | ".join(f"{m} PSNR (gain, worst)" for m in args.methods) + " | zero Δ γ0.6 input → " + " / ".join(args.methods) + " |"]
    lines.append("|---" * (3 + len(args.methods)) + "|")
    for case, entry in summary.items():
        cells = []
        for method in args.methods:
            m = entry[method]
            cells.append(f"{m['psnr']:.2f} ({m['gain_over_midpoint_db']:+.2f}, {m['worst_gain_db']:+.2f})")
        bands = " / ".join(f"{entry[m]['zero_diff_g0.6']:.3f}" for m in args.methods)
        lines.append(f"| {case} | {entry['images']} | " + " | ".join(cells) + f" | {entry['input_zero_diff_g0.6']:.3f} → {bands} |")
    table = "\n".join(lines)
    print(table)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps({"rows": rows, "summary": summary}, indent=2))
    args.out.with_suffix(".md").write_text(table + "\n")
    print(f"wrote {args.out}.json and .md")


if __name__ == "__main__":
    main()
