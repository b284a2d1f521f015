"""Held-out validation suite for ``bdx upscale-depth``: real-use categories, mean and worst image.

Every image comes from files no bdx dequantizer trained on: the photos, panoramas and
SICE merges on the held-out side of the training split (file name hash below
``HELDOUT_FRACTION``, the split every ``depth-*`` weights file used), the SICE stacks
held out for the low-light benchmark (merged by ``tools/sice_merges.py --heldout``)
and the five real high-bit photographs of ``photos16/``, which no training used.

Categories (the ground truth is the high-bit image, the input its quantized copy):

- ``photo 8->16``: photos box-averaged 4x4 (about 12 significant bits), quantized to 8 bits;
- ``camera 8->16``: the same photos through a camera-like pipeline whose noise and sharpening
  are part of the truth (signal-dependent, demosaic-correlated noise; unsharp mask), every
  other image JPEG-compressed at quality 90 after quantization;
- ``real16 8->16``: the five real 16-bit photographs (real sensor noise), quantized to 8 bits;
- ``dark+clipped 8->16``: HDR scenes exposed four stops under mid-grey, and 1.7 stops over with
  clipped highlights, sRGB-encoded;
- ``hdr curves 8->16``: HDR scenes through five published display curves (sRGB clip, Reinhard,
  ACES fit, Hable filmic, a log curve with contrast);
- ``smooth 8->16``: panoramas enlarged 4x in linear light (as smooth as a render) and a
  synthetic sky;
- ``kodak-like 4->8`` and ``6->8``: 24 photographs at 768x512 as 8-bit truth (the protocol of
  bit-depth papers on the Kodak set), quantized to 4 and 6 bits.

Reports per image the PSNR, the gain over the bin centre (``midpoint``), the gain on pixels at
the end codes (0 and the top code; clipped shadows and highlights), the re-quantization match
and, for smooth images, the banding stress after a gamma 0.6 edit. Writes JSON and a Markdown
table.

    python benchmarks/depth_suite.py                                # shipped default, contour, midpoint
    python benchmarks/depth_suite.py --methods midpoint contour learned learned-unchecked   # and without the self-check
    python benchmarks/depth_suite.py --weights new.safetensors --label new --methods midpoint learned
    python benchmarks/depth_suite.py --methods midpoint learned --categories kodak --kodak-bits 3 5   # other depths
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import json
import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bdx.color import linear_to_srgb, srgb_to_linear  # noqa: E402
from bdx.depth import DepthSettings, upscale_depth  # noqa: E402
from bdx.models import load_model  # noqa: E402
from bdx.io import Image, read_image, to_float  # noqa: E402
from bdx.metrics import banding_stress  # noqa: E402
from bdx.training.data import is_validation  # noqa: E402

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
HELDOUT_FRACTION = 0.3  # validation_fraction of every shipped depth-* weights file
MAX_PIXELS = 1_000_000  # larger truths are centre-cropped (keeps the suite to a few minutes)


@dataclass
class Case:
    """One suite image: the high-bit truth (float32 in [0, 1]) and its quantized input codes."""

    category: str
    name: str
    truth: np.ndarray
    codes: np.ndarray  # uint8 (8-bit containers) or uint16
    bits: int
    exact: bool = True  # False when the input is not a plain quantization of the truth (JPEG)
    measure_banding: bool = False
    extra: dict = field(default_factory=dict)


def rng_for(name: str) -> np.random.Generator:
    """A generator seeded by the image's name: the same degradation every run."""
    return np.random.default_rng(int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big"))


def centre_crop(pixels: np.ndarray, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    height, width = pixels.shape[:2]
    scale = min(1.0, math.sqrt(max_pixels / (height * width)))
    h, w = max(8, int(height * scale)), max(8, int(width * scale))
    top, left = (height - h) // 2, (width - w) // 2
    return np.ascontiguousarray(pixels[top : top + h, left : left + w])


def rgb(pixels: np.ndarray) -> np.ndarray:
    return np.repeat(pixels, 3, axis=2) if pixels.shape[2] == 1 else pixels[..., :3]


def quantize(truth: np.ndarray, bits: int, container: int = 16) -> np.ndarray:
    """``bits``-bit bin-centre codes of ``truth`` in a ``container``-bit array."""
    levels = np.rint(np.clip(truth, 0, 1) * ((1 << bits) - 1))
    scale = ((1 << container) - 1) / ((1 << bits) - 1)
    return np.rint(levels * scale).astype(np.uint8 if container == 8 else np.uint16)


# --- sources ------------------------------------------------------------------------------------------

def heldout_photos() -> list[Path]:
    folder = SHARED / "photos"
    return sorted(p for p in folder.glob("*.jpg") if is_validation(p.name, HELDOUT_FRACTION)) if folder.is_dir() else []


def heldout_panoramas() -> list[Path]:
    folder = SHARED / "hdr"
    return sorted(p for p in folder.rglob("*.exr") if is_validation(p.name, HELDOUT_FRACTION)) if folder.is_dir() else []


def heldout_merges(folder: Path, count: int) -> list[Path]:
    return sorted(folder.glob("sice_*.exr"))[:count] if folder.is_dir() else []


def real_high_bit_photos() -> list[Path]:
    folder = SHARED / "photos16"
    names = ["imagemeta_canon_eos_d30_dev16.png", "tinydng_canon_550d_colorchart_dev16.png", "libavif_weld_16bit.png",
             "exampletiffs_spring_16bit.png", "openjpeg_dci_stem24_000_srgb16.png"]
    return [folder / n for n in names if (folder / n).is_file()]


def box_averaged(path: Path) -> np.ndarray:
    """A photo box-averaged 4x4 (16 samples per pixel): about 12 significant bits."""
    pixels = to_float(rgb(read_image(path).pixels))
    small = cv2.resize(pixels, (pixels.shape[1] // 4, pixels.shape[0] // 4), interpolation=cv2.INTER_AREA)
    return centre_crop(small)


def scene_linear(path: Path) -> np.ndarray:
    linear = np.clip(read_image(path).pixels.astype(np.float32), 0, None)
    return rgb(linear) / max(float(np.median(linear.mean(axis=-1))), 1e-6)  # median grey at 1.0


# --- display curves (scene-linear, median 1.0, in; display values in [0, 1] out) ----------------------

def curve_srgb(x: np.ndarray, stops: float = 0.0) -> np.ndarray:
    return linear_to_srgb(np.clip(x * np.float32(0.18 * 2**stops), 0, 1))


def curve_reinhard(x: np.ndarray) -> np.ndarray:
    e = x * np.float32(0.18)
    return linear_to_srgb(e / (1 + e))


def curve_aces(x: np.ndarray) -> np.ndarray:
    """Narkowicz's fit of the ACES filmic tone curve (an S-curve), then sRGB."""
    e = x * np.float32(0.18 * 0.8)
    return linear_to_srgb(np.clip(e * (2.51 * e + 0.03) / (e * (2.43 * e + 0.59) + 0.14), 0, 1))


def curve_hable(x: np.ndarray) -> np.ndarray:
    """Hable's filmic curve (white point 11.2), then sRGB."""
    def f(v):
        a, b, c, d, e, g = 0.15, 0.50, 0.10, 0.20, 0.02, 0.30
        return (v * (a * v + c * b) + d * e) / (v * (a * v + b) + d * g) - e / g
    v = x * np.float32(0.18 * 4.0)
    return linear_to_srgb(np.clip(f(v) / f(11.2), 0, 1))


def curve_log(x: np.ndarray) -> np.ndarray:
    """A log encoding (mid-grey at 0.42, 14 stops) with a display contrast curve on top."""
    encoded = np.clip((np.log2(np.maximum(x, 1e-6)) + 6.0) / 14.0 + 0.0, 0, 1)
    return np.clip(0.5 + (encoded - 0.5) * 1.4 + 0.08, 0, 1).astype(np.float32) ** np.float32(1.1)


CURVES = {"srgb": curve_srgb, "reinhard": curve_reinhard, "aces": curve_aces, "hable": curve_hable, "log": curve_log}


# --- camera-like pipeline for photos ------------------------------------------------------------------

def camera_truth(display: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Sensor-like noise (signal-dependent, in linear light, partly shared by the channels and blurred like a
    demosaic) and an unsharp mask: all of it part of the truth, as in a real camera's 8-bit file."""
    linear = srgb_to_linear(display)
    level = rng.uniform(0.004, 0.012)  # read noise plus shot noise scale, linear units at full scale
    sigma = np.sqrt(level**2 * 0.05 + level * 0.02 * linear).astype(np.float32)
    noise = rng.normal(0, 1, linear.shape).astype(np.float32)
    noise = 0.6 * noise + 0.4 * noise.mean(axis=2, keepdims=True)
    noise = cv2.GaussianBlur(noise, (0, 0), 0.6) * np.float32(1.6)
    noisy = linear_to_srgb(np.clip(linear + sigma * noise, 0, 1))
    blurred = cv2.GaussianBlur(noisy, (0, 0), 1.2)
    return np.clip(noisy + np.float32(0.6) * (noisy - blurred), 0, 1).astype(np.float32)


def jpeg(codes: np.ndarray, quality: int = 90) -> np.ndarray:
    ok, data = cv2.imencode(".jpg", codes[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, quality])
    return cv2.imdecode(data, cv2.IMREAD_UNCHANGED)[..., ::-1].copy()


def smooth_sky(height: int = 768, width: int = 1024) -> np.ndarray:
    """A noise-free sky: vertical gradient, soft sun, horizon glow."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    v, u = y / height, x / width
    sky = np.stack([0.20 + 0.50 * v, 0.40 + 0.40 * v, 0.85 - 0.20 * v], axis=-1)
    sun = np.exp(-(((u - 0.7) ** 2 + (v - 0.35) ** 2) / 0.015))[..., None] * np.array([0.45, 0.35, 0.10])
    glow = np.exp(-((v - 0.9) ** 2) / 0.01)[..., None] * np.array([0.25, 0.12, 0.0])
    return np.clip(sky + sun + glow, 0, 1).astype(np.float32)


# --- the cases ----------------------------------------------------------------------------------------

def build_cases(merges: Path, merge_count: int, kodak_bits: tuple[int, ...] = (4, 6)) -> list[Case]:
    cases: list[Case] = []
    photos = heldout_photos()
    panoramas = heldout_panoramas()
    merged = heldout_merges(merges, merge_count)
    scenes = [(f"{p.parent.name}/{p.stem}", scene_linear(p)) for p in panoramas + merged]
    for path in photos:
        truth = box_averaged(path)
        cases.append(Case("photo 8->16", path.stem, truth, quantize(truth, 8, 8), 8))
        rng = rng_for(path.name)
        camera = camera_truth(truth, rng)
        codes = quantize(camera, 8, 8)
        compressed = len(cases) % 2 == 0
        cases.append(Case("camera 8->16", path.stem + (" jpeg90" if compressed else ""), camera,
                          jpeg(codes) if compressed else codes, 8, exact=not compressed))
    for path in real_high_bit_photos():
        truth = centre_crop(to_float(rgb(read_image(path).pixels)))
        cases.append(Case("real16 8->16", path.stem, truth, quantize(truth, 8, 8), 8))
    for name, linear in scenes:
        for label, truth in (("dark -4EV", curve_srgb(linear, -4.0)), ("clipped +1.7EV", curve_srgb(linear, 1.7))):
            cases.append(Case("dark+clipped 8->16", f"{name} {label}", truth, quantize(truth, 8, 8), 8))
        for curve, function in CURVES.items():
            truth = function(linear).astype(np.float32)
            cases.append(Case("hdr curves 8->16", f"{name} {curve}", truth, quantize(truth, 8, 8), 8, extra={"curve": curve}))
    for path in panoramas:
        linear = scene_linear(path)
        enlarged = cv2.resize(linear, (linear.shape[1] * 4, linear.shape[0] * 4), interpolation=cv2.INTER_CUBIC)
        truth = centre_crop(curve_reinhard(np.clip(enlarged, 0, None)).astype(np.float32), 2 * MAX_PIXELS)
        cases.append(Case("smooth 8->16", f"{path.parent.name}/{path.stem} x4", truth, quantize(truth, 8, 8), 8,
                          measure_banding=True))
    sky = smooth_sky()
    cases.append(Case("smooth 8->16", "synthetic sky", sky, quantize(sky, 8, 8), 8, measure_banding=True))
    for truth8, name in kodak_like(photos, merged):
        for bits in kodak_bits:
            cases.append(Case(f"kodak-like {bits}->8", name, truth8, quantize(truth8, bits, 8), bits))
    return cases


def kodak_like(photos: list[Path], merged: list[Path], count: int = 24) -> list[tuple[np.ndarray, str]]:
    """``count`` photographs at 768x512 (or 512x768) as 8-bit truth: the held-out photos, the real high-bit
    photographs, then held-out SICE merges (Reinhard-rendered) to make up the count."""
    images: list[tuple[np.ndarray, str]] = []
    sources = [(p.stem, lambda p=p: to_float(rgb(read_image(p).pixels))) for p in photos]
    sources += [(p.stem, lambda p=p: to_float(rgb(read_image(p).pixels))) for p in real_high_bit_photos()]
    sources += [(f"{p.stem}", lambda p=p: curve_reinhard(scene_linear(p))) for p in merged]
    for name, load in sources[:count]:
        pixels = load()
        height, width = pixels.shape[:2]
        size = (768, 512) if width >= height else (512, 768)
        scale = max(size[0] / width, size[1] / height)
        resized = cv2.resize(pixels, (max(size[0], round(width * scale)), max(size[1], round(height * scale))),
                             interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC)
        top, left = (resized.shape[0] - size[1]) // 2, (resized.shape[1] - size[0]) // 2
        crop = resized[top : top + size[1], left : left + size[0]]
        images.append((np.rint(np.clip(crop, 0, 1) * 255).astype(np.float32) / 255, name))
    return images


# --- measuring ----------------------------------------------------------------------------------------

def mse(a: np.ndarray, b: np.ndarray, mask: np.ndarray | None = None) -> float:
    d = np.square(a.astype(np.float64) - b)
    return float(d[mask].mean()) if mask is not None else float(d.mean())


def db(before: float, after: float) -> float:
    return 10 * math.log10(max(before, 1e-20) / max(after, 1e-20))


@functools.cache
def _model(weights: str | None, bits: int):
    return load_model(weights, "depth", bits=bits)  # no weights: the shipped network for that input depth


UNCHECKED = "learned-unchecked"  # the learned method without its self-check (bdx.dequant.self_check)


def run_method(case: Case, method: str, weights: str | None, ensemble: int, prior_backend: str = "auto") -> tuple[np.ndarray, float]:
    image = Image(case.codes, significant_bits=case.bits if case.bits < 8 * case.codes.dtype.itemsize else None)
    started = time.perf_counter()
    check = method != UNCHECKED
    method = "learned" if method == UNCHECKED else method
    model = _model(weights, case.bits) if method == "learned" else None
    settings = DepthSettings(method=method, in_bits=case.bits, ensemble=ensemble, prior_backend=prior_backend, self_check=check)
    result = upscale_depth(image, model, settings)
    return result.image.pixels, time.perf_counter() - started


def measure(case: Case, outputs: dict[str, np.ndarray]) -> dict:
    top = (1 << (8 * case.codes.dtype.itemsize)) - 1
    ends = (case.codes == 0) | (case.codes == top)
    centre = outputs["midpoint"].astype(np.float32) / 65535
    base = mse(centre, case.truth)
    record = {"category": case.category, "name": case.name, "bits": case.bits, "exact": case.exact,
              "end_fraction": float(ends.mean()), **case.extra, "methods": {}}
    base_ends = mse(centre, case.truth, ends) if ends.any() else None
    for label, codes in outputs.items():
        out = codes.astype(np.float32) / 65535
        error = mse(out, case.truth)
        entry = {"psnr": db(1.0, error), "gain_db": db(base, error)}
        if base_ends is not None:
            entry["end_gain_db"] = db(base_ends, mse(out, case.truth, ends))
        if case.exact:
            requant = np.rint(out * ((1 << case.bits) - 1))
            entry["requant_match"] = float(np.mean(requant == np.rint(case.codes.astype(np.float32) / top * ((1 << case.bits) - 1))))
        if case.measure_banding:
            entry["banding_g0.6"] = banding_stress(out, (0.6,))["zero_diff_g0.6"]
        record["methods"][label] = entry
    if case.measure_banding:
        record["input_banding_g0.6"] = banding_stress(case.codes.astype(np.float32) / top, (0.6,))["zero_diff_g0.6"]
    return record


def group_of(record: dict) -> list[str]:
    """The summary rows an image counts in: its category, and for HDR curves also its curve's own row."""
    groups = [record["category"]]
    if "curve" in record:
        groups.append(f"{record['category']}, {record['curve']}")
    return groups


def summarize(records: list[dict], labels: list[str]) -> dict:
    summary: dict = {}
    for category in dict.fromkeys(g for r in records for g in group_of(r)):
        rows = [r for r in records if category in group_of(r)]
        entry = {"images": len(rows), "midpoint_psnr": float(np.mean([r["methods"]["midpoint"]["psnr"] for r in rows]))}
        for label in labels:
            gains = [r["methods"][label]["gain_db"] for r in rows]
            worst = int(np.argmin(gains))
            ends = [r["methods"][label]["end_gain_db"] for r in rows
                    if "end_gain_db" in r["methods"][label] and r["end_fraction"] > 1e-3]
            item = {
                "psnr": float(np.mean([r["methods"][label]["psnr"] for r in rows])),
                "gain_db": float(np.mean(gains)), "worst_gain_db": gains[worst], "worst_image": rows[worst]["name"],
                "below_centre": int(sum(g < -0.05 for g in gains)),
                "worst_end_gain_db": min(ends) if ends else None,
            }
            matches = [r["methods"][label]["requant_match"] for r in rows if "requant_match" in r["methods"][label]]
            if matches:
                item["requant_match_min"] = min(matches)
            banded = [r for r in rows if "input_banding_g0.6" in r]
            if banded:
                item["banding_reduction_min"] = min(
                    1 - r["methods"][label]["banding_g0.6"] / max(r["input_banding_g0.6"], 1e-12) for r in banded)
            entry[label] = item
        summary[category] = entry
    return summary


def markdown(summary: dict, labels: list[str]) -> str:
    lines = ["| category | images | bin centre PSNR | " + " | ".join(
        f"{label}: mean gain / worst (image) / below centre" for label in labels) + " |",
        "|---|---:|---:|" + "---|" * len(labels)]
    for category, entry in summary.items():
        cells = []
        for label in labels:
            item = entry[label]
            ends = "" if item["worst_end_gain_db"] is None else f"; end codes worst {item['worst_end_gain_db']:+.2f}"
            requant = f"; requant {100 * item['requant_match_min']:.2f} %" if "requant_match_min" in item else ""
            banding = (f"; banding {-100 * item['banding_reduction_min']:+.0f} % at worst"
                       if "banding_reduction_min" in item else "")
            cells.append(f"{item['gain_db']:+.2f} / {item['worst_gain_db']:+.2f} ({item['worst_image']}) / "
                         f"{item['below_centre']}{ends}{requant}{banding}")
        lines.append(f"| {category} | {entry['images']} | {entry['midpoint_psnr']:.2f} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--methods", nargs="+", default=["midpoint", "contour", "learned"],
                        help=f"midpoint, contour, learned, {UNCHECKED} (learned without its self-check)")
    parser.add_argument("--weights", action="append", default=[], help="learned weights (repeat for several); default shipped")
    parser.add_argument("--label", action="append", default=[], help="a name per --weights")
    parser.add_argument("--ensemble", type=int, default=1)
    parser.add_argument("--prior-backend", default="auto", choices=["auto", "opencv", "torch"],
                        help="how the contour prior is computed (torch: the path other devices take, here on the CPU)")
    parser.add_argument("--merges", type=Path, default=Path("/tmp/sice_heldout"),
                        help="HDR merges of the held-out SICE stacks (tools/sice_merges.py --heldout)")
    parser.add_argument("--merge-count", type=int, default=8)
    parser.add_argument("--categories", nargs="*", help="only these categories (substring match)")
    parser.add_argument("--kodak-bits", type=int, nargs="+", default=[4, 6], help="depths of the kodak-like categories")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "depth_suite")
    args = parser.parse_args()
    if not SHARED.is_dir():
        sys.exit(f"{SHARED} not found: the suite needs the shared data")
    runs: list[tuple[str, str, str | None]] = []  # label, method, weights
    for method in dict.fromkeys(["midpoint", *args.methods]):
        if method == "learned" and args.weights:
            labels = args.label + [Path(w).stem for w in args.weights[len(args.label):]]
            runs += [(label, "learned", w) for label, w in zip(labels, args.weights)]
        else:
            runs.append((method, method, None))
    started = time.perf_counter()
    cases = build_cases(args.merges, args.merge_count, tuple(args.kodak_bits))
    if args.categories:
        cases = [c for c in cases if any(s in c.category for s in args.categories)]
    print(f"{len(cases)} images built in {time.perf_counter() - started:.0f} s", file=sys.stderr)
    records, seconds = [], {label: 0.0 for label, _, _ in runs}
    for index, case in enumerate(cases):
        outputs = {}
        for label, method, weights in runs:
            outputs[label], spent = run_method(case, method, weights, args.ensemble if "learned" in method else 1,
                                                 args.prior_backend)
            seconds[label] += spent
        records.append(measure(case, outputs))
        gains = " ".join(f"{k} {v['gain_db']:+.2f}" for k, v in records[-1]["methods"].items() if k != "midpoint")
        print(f"[{index + 1}/{len(cases)}] {case.category:20s} {case.name[:40]:40s} {gains}", file=sys.stderr)
    labels = [label for label, _, _ in runs if label != "midpoint"]
    summary = summarize(records, labels)
    table = markdown(summary, labels)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    result = {"command": " ".join(sys.argv), "runs": runs, "ensemble": args.ensemble, "seconds": seconds,
              "summary": summary, "images": records}
    Path(str(args.out) + ".json").write_text(json.dumps(result, indent=1))
    Path(str(args.out) + ".md").write_text(table)
    print(table)


if __name__ == "__main__":
    main()
