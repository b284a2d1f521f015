"""Quality of every dequantizer against the bin centre, measured in one run.

Cases, all on images the learned model never trained on when ``--heldout-from``
names its weights (the file-level validation split recorded in their metadata):

- natural photos (../shared/data/photos, 1024x768 area-downscaled 8-bit copies),
  quantized 4->8 and 6->8;
- HDR panoramas (../shared/data/hdr, scene-linear EXR) rendered to 16-bit sRGB
  through a global tone curve, quantized 8->16 (and 4, 6 -> 16); and the same
  panoramas enlarged 4x in linear light first, so they are as smooth as a
  rendered frame, quantized 8->16 and 6->16;
- a synthetic smooth scene rendered in 16 bits, quantized 4, 6 and 8 bits -> 16.

Reports PSNR per image, the gain over ``midpoint`` (the bin centre) and the
banding stress (zero first differences after gamma 0.6). Writes JSON, a
Markdown table and a contact sheet (crops after a gamma 0.4 edit, where banding
shows).

    python benchmarks/compare_depth.py --methods midpoint contour learned --heldout-from weights/depth-contour-gated-v5.safetensors
    python benchmarks/compare_depth.py --methods midpoint learned --ensemble 8 --heldout-from weights/depth-contour-gated-v5.safetensors
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import cv2
import numpy as np

from bdx.color import linear_to_srgb
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


def render_hdr(path: Path, enlarge: int = 1) -> np.ndarray:
    """A scene-linear EXR as 16-bit sRGB: exposure to mid-grey, Reinhard curve, sRGB encoding.

    ``enlarge``: first enlarge the radiance that many times (bicubic, in linear light), which makes the
    panorama as smooth as a rendered frame (the panoramas are only 512 or 1024 px wide).
    """
    linear = read_image(path).pixels.astype(np.float32)
    if enlarge > 1:
        size = (linear.shape[1] * enlarge, linear.shape[0] * enlarge)
        linear = cv2.resize(linear, size, interpolation=cv2.INTER_CUBIC)
    linear = np.clip(linear.astype(np.float64), 0, None)
    exposed = linear * (0.18 / max(float(np.median(linear.mean(axis=-1))), 1e-6))
    return np.rint(linear_to_srgb((exposed / (1 + exposed)).astype(np.float32)) * 65535).astype(np.uint16)


def heldout_names(weights: str | None) -> set[str] | None:
    """File names held out of the learned model's training (None: no restriction)."""
    if weights is None:
        return None
    from safetensors import safe_open

    with safe_open(weights, framework="pt") as handle:
        return set(json.loads(handle.metadata()["validation_files"]))


def cases(photo_count: int, heldout: set[str] | None):
    allowed = lambda p: heldout is None or p.name in heldout  # noqa: E731
    if (SHARED / "photos").is_dir():
        photos = [p for p in sorted((SHARED / "photos").glob("*.jpg")) if allowed(p)][:photo_count]
        for path in photos:
            pixels = cv2.resize(read_image(path).pixels, (1024, 768), interpolation=cv2.INTER_AREA)
            for bits in (4, 6):
                yield f"photo {path.stem.split('__')[-1][:24]}", "photos", pixels, bits
    if (SHARED / "hdr").is_dir():
        for path in [p for p in sorted((SHARED / "hdr").rglob("*.exr")) if allowed(p)]:
            rendered = render_hdr(path)
            for bits in (4, 6, 8):
                yield f"hdr {path.parent.name}/{path.stem}", "hdr renders", rendered, bits
            enlarged = render_hdr(path, enlarge=4)
            for bits in (6, 8):
                yield f"hdr {path.parent.name}/{path.stem} x4", "hdr renders x4 (smooth)", enlarged, bits
    scene = smooth_scene()
    for bits in (4, 6, 8):
        yield "smooth scene (16-bit render)", "smooth", scene, bits


def sheet_box(reference: np.ndarray, size: int = 192) -> tuple[int, int, int]:
    """Where to crop for the sheet: the smoothest mid-tone square of the reference (lowest gradient energy)."""
    grey = reference.mean(axis=-1)
    energy = np.abs(np.diff(grey, axis=0))[:, :-1] + np.abs(np.diff(grey, axis=1))[:-1]
    step = size // 2
    best, best_score = (0, 0), np.inf
    for y in range(0, grey.shape[0] - size, step):
        for x in range(0, grey.shape[1] - size, step):
            window = grey[y : y + size, x : x + size]
            if not 0.12 < window.mean() < 0.75:  # gamma 0.4 washes out bright crops and hides nothing in black ones
                continue
            score = energy[y : y + size - 1, x : x + size - 1].mean()
            if score < best_score:
                best, best_score = (y, x), score
    return best[0], best[1], size


def crop_for_sheet(values: np.ndarray, box: tuple[int, int, int]) -> np.ndarray:
    """The box after a gamma 0.4 edit (where banding shows), 8-bit BGR."""
    y, x, size = box
    crop = values[y : y + size, x : x + size]
    return (np.clip(crop, 0, 1) ** 0.4 * 255 + 0.5).astype(np.uint8)[..., ::-1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--photos", type=int, default=12)
    parser.add_argument("--methods", nargs="+", default=["midpoint", "contour", "learned"], choices=DEPTH_METHODS)
    parser.add_argument("--weights", help="weights file for the learned method (default: the shipped weights)")
    parser.add_argument("--ensemble", type=int, default=1, help="ensemble size for the learned method (1, 2, 4 or 8)")
    parser.add_argument("--precision", default="auto", help="the learned method's precision: auto, float32 or bfloat16")
    parser.add_argument("--heldout-from", help="use only files held out of training by these weights")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "compare_depth")
    args = parser.parse_args()
    heldout = heldout_names(args.heldout_from)
    rows, sheet_rows, sheet_groups = [], [], []
    for name, group, reference, bits in cases(args.photos, heldout):
        truth = reference.astype(np.float64) / (255 if reference.dtype == np.uint8 else 65535)
        quantized = quantize_image(Image(reference), bits)
        row = {"image": name, "group": group, "bits": f"{bits}->{8 if reference.dtype == np.uint8 else 16}"}
        row["input_zero_diff_g0.6"] = banding_stress(quantized.pixels / 255.0)["zero_diff_g0.6"]
        outputs = {}
        for method in args.methods:
            start = time.perf_counter()
            ensemble = args.ensemble if method == "learned" else 1
            result = upscale_depth(
                quantized, method=method, device="cpu", weights=args.weights, ensemble=ensemble, precision=args.precision
            )
            out = result.image.pixels / 65535.0
            row[f"{method}_precision"] = result.precision
            row[f"{method}_seconds"] = time.perf_counter() - start
            row[f"{method}_psnr"] = psnr(out, truth)
            row[f"{method}_zero_diff_g0.6"] = banding_stress(out)["zero_diff_g0.6"]
            outputs[method] = out
        rows.append(row)
        print(json.dumps(row), flush=True)
        quota = {("photos", 4): 3, ("hdr renders", 8): 2, ("smooth", 6): 1}.get((group, bits), 0)
        if sum(1 for g in sheet_groups if g == (group, bits)) < quota:
            sheet_groups.append((group, bits))
            box = sheet_box(truth)
            sheet_rows.append([crop_for_sheet(truth, box)] + [crop_for_sheet(outputs[m], box) for m in args.methods])
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
            gain = "" if m["gain_over_midpoint_db"] is None else f" ({m['gain_over_midpoint_db']:+.2f}, {m['worst_gain_db']:+.2f})"
            cells.append(f"{m['psnr']:.2f}{gain}")
        bands = " / ".join(f"{entry[m]['zero_diff_g0.6']:.3f}" for m in args.methods)
        lines.append(f"| {case} | {entry['images']} | " + " | ".join(cells) + f" | {entry['input_zero_diff_g0.6']:.3f} → {bands} |")
    table = "\n".join(lines)
    print(table)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    meta = {"methods": args.methods, "heldout_from": args.heldout_from, "weights": args.weights, "ensemble": args.ensemble,
            "precision": args.precision}
    args.out.with_suffix(".json").write_text(json.dumps({"meta": meta, "rows": rows, "summary": summary}, indent=2))
    args.out.with_suffix(".md").write_text(table + "\n")
    if sheet_rows:
        sheet = np.concatenate([np.concatenate(r, axis=1) for r in sheet_rows], axis=0)
        header = np.full((28, sheet.shape[1], 3), 255, np.uint8)
        for i, label in enumerate(["reference"] + args.methods):
            cv2.putText(header, label, (i * 192 + 6, 20), cv2.FONT_HERSHEY_SIMPLEX, 0.55, (0, 0, 0), 1, cv2.LINE_AA)
        cv2.imwrite(str(args.out.with_name(args.out.name + "_sheet.png")), np.concatenate([header, sheet], axis=0))
    print(f"wrote {args.out}.json, .md and _sheet.png")


if __name__ == "__main__":
    main()
