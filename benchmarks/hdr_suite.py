"""LDR to HDR on held-out HDR references, per camera curve: overall fidelity and the clipped highlights.

References no HDR weights trained on: the panoramas on the held-out side of the shipped
weights' split (``validation_files`` in their metadata) and merges of the SICE stacks held out
for the low-light benchmark (``tools/sice_merges.py --heldout``; checked against the
weights' ``train_files``). Each is exposed with its median luminance at 0.18, one stop brighter
(as photographers expose for the shadows), through a camera curve, clipped and quantized to 8
bits. Curves: a plain sRGB clip and the S-shaped ones of the dequantizer suite (ACES fit, Hable
filmic) plus a log-with-contrast curve. A fifth set needs no curve at all (``camera``): for every merged
held-out SICE stack, one real camera JPEG of the stack (the frame with about 5 % clipped pixels) against the
HDR merge of the whole stack, so the camera's own response, noise and compression are what the methods face.

Rows: the naive inverse sRGB curve, ``ldr2hdr --method classical``, the default learned model, and the
published FHDR (2 iterations) and ExpandNet checkpoints found under ``--peers``, run as published
(``--dequantize none``).
Pixels within two of resampling ringing in a reference (a channel below -0.1 x the median luminance:
some photographed panoramas ring round the sun and lamps, and their clipped truth is black there) are
left out of every figure, and so are
the pixels of a SICE merge saturated even in its darkest frame, whose truth is only a lower bound (its
``.known.png``, :data:`bdx.training.hdr.KNOWN_SUFFIX`). Each prediction's scale is fitted as the median
luminance ratio to the reference over
well-exposed pixels (input channels all within 0.1 to 0.9), then: PSNR-mu, PSNR of log2 values,
and over the clipped pixels (any channel at 255) the PSNR-mu (normalised by the reference's
brightest pixel) and the bias in stops (mean log2 luminance ratio; negative: too dark). Summaries over everything,
over the four synthetic curves, and per curve: mean, the worst image's gain over the
naive curve, how many images fall more than 0.5 dB below it.

    python tools/sice_merges.py --sice ../shared/data/sice --out /tmp/sice_heldout --heldout
    python benchmarks/hdr_suite.py          # writes benchmarks/results/hdr_suite.{json,md}
    python benchmarks/hdr_suite.py --weights new.safetensors --out /tmp/hdr_suite_new --peers /nonexistent
    python benchmarks/hdr_suite.py --compare other.safetensors   # one more learned row, measured in the same run
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from depth_suite import curve_aces, curve_hable, curve_log  # noqa: E402

from bdx.assets import default_weights  # noqa: E402
from bdx.color import linear_to_srgb, luminance, srgb_to_linear  # noqa: E402
from bdx.hdr.reconstruct import HdrSettings, ldr_to_hdr  # noqa: E402
from bdx.io import Image, read_image  # noqa: E402
from bdx.metrics import (  # noqa: E402
    CLIPPED,
    RINGING,
    RINGING_REACH,
    clipped_region_bias_stops,
    clipped_region_psnr_mu,
    fit_scale,
    psnr_log,
    psnr_mu,
    well_exposed_pixels,
)
from bdx.training.hdr import reference_trust  # noqa: E402

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
MAX_PIXELS = 600_000  # larger references are downscaled (area) to keep the suite to minutes
STOPS_OVER = 1.0


def curve_srgb_clip(x: np.ndarray) -> np.ndarray:
    return linear_to_srgb(np.clip(x * np.float32(0.18), 0, 1))


CURVES = {"srgb clip": curve_srgb_clip, "aces": curve_aces, "hable": curve_hable, "log": curve_log}
REAL_CAMERA = "camera"  # real frames of held-out SICE stacks against their merge (:func:`camera_frames`)


def references(weights: Path, merges: Path, merge_count: int) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """(name, scene-linear RGB with median luminance 1, trusted pixels) of every held-out reference."""
    from safetensors import safe_open

    with safe_open(str(weights), framework="pt") as handle:
        metadata = handle.metadata()
    heldout = set(json.loads(metadata["validation_files"]))
    trained = {Path(name).name for name in json.loads(metadata["train_files"])}
    paths = [p for p in sorted((SHARED / "hdr").glob("*/*.exr")) if f"{p.parent.name}/{p.name}" in heldout]
    merged = sorted(merges.glob("sice_*.exr"))[:merge_count] if merges.is_dir() else []
    seen = [p.name for p in merged if p.name in trained]
    if seen:
        raise SystemExit(f"the weights trained on {', '.join(seen[:5])}")
    out = []
    for path in paths + merged:
        linear, trusted = load_reference(path)
        out.append((f"{path.parent.name}/{path.stem}", linear / max(float(np.median(luminance(linear))), 1e-6), trusted))
    return out


def load_reference(path: Path, max_pixels: int = MAX_PIXELS) -> tuple[np.ndarray, np.ndarray]:
    """(scene-linear RGB, trusted pixels) of an HDR file, area-downscaled to at most ``max_pixels`` and cropped to a
    multiple of 4 a side; a pixel is trusted when all it was averaged from was (:func:`bdx.training.hdr.reference_trust`)."""
    import cv2

    raw = np.nan_to_num(read_image(path).pixels.astype(np.float32))[..., :3]
    trusted = reference_trust(path, raw).astype(np.float32)
    linear = np.clip(raw, 0, None)
    scale = min(1.0, (max_pixels / (linear.shape[0] * linear.shape[1])) ** 0.5)
    if scale < 1:
        size = (round(linear.shape[1] * scale), round(linear.shape[0] * scale))
        linear = cv2.resize(linear, size, interpolation=cv2.INTER_AREA)
        trusted = cv2.resize(trusted, size, interpolation=cv2.INTER_AREA)
    crop = (slice(0, linear.shape[0] // 4 * 4), slice(0, linear.shape[1] // 4 * 4))
    return linear[crop], trusted[crop] >= 1.0


FRAME_CLIPPED = (0.01, 0.25, 0.05)  # a real frame qualifies with this share of clipped pixels (low, high, preferred)


def camera_frames(weights: Path, merges: Path, sice: Path) -> list[tuple[str, np.ndarray, np.ndarray, np.ndarray]]:
    """(name, 8-bit frame, scene-linear reference with median luminance 1, trusted pixels) for every merged
    held-out SICE stack:
    one real camera JPEG of the stack (the frame whose clipped share is nearest 5 %, between 1 and 25 %) against
    the HDR merge of the whole stack. The camera's own curve, noise and JPEG: nothing is synthesized."""
    from safetensors import safe_open

    with safe_open(str(weights), framework="pt") as handle:
        trained = {Path(name).name for name in json.loads(handle.metadata()["train_files"])}
    sequences = json.loads((sice / "sequences.json").read_text()) if (sice / "sequences.json").is_file() else []
    out = []
    for stack in sequences:
        merge = merges / f"sice_{stack['frames'][0]}.exr"
        if not merge.is_file() or merge.name in trained:
            continue
        reference = np.clip(np.nan_to_num(read_image(merge).pixels.astype(np.float32))[..., :3], 0, None)
        trusted = reference_trust(merge, reference)
        chosen = choose_frame([sice / f"{frame}.jpg" for frame in stack["frames"]], reference.shape[:2])
        if chosen:
            path, codes = chosen
            linear = reference[: codes.shape[0], : codes.shape[1]]
            crop = trusted[: codes.shape[0], : codes.shape[1]]
            out.append((f"sice_frames/{path.stem}", codes, linear / max(float(np.median(luminance(linear))), 1e-6), crop))
    return out


def choose_frame(paths: list[Path], shape: tuple[int, ...]) -> tuple[Path, np.ndarray] | None:
    """(path, 8-bit RGB codes cropped to a multiple of 4 a side) of the frame of ``shape`` (height, width) whose
    clipped share is nearest :data:`FRAME_CLIPPED`'s preferred one, within its bounds; None if no frame qualifies."""
    low, high, preferred = FRAME_CLIPPED
    best = None
    for path in paths:
        codes = read_image(path).pixels
        share = float((codes.max(axis=-1) >= 255).mean())
        if low <= share <= high and codes.shape[:2] == tuple(shape) and (best is None or abs(share - preferred) < best[0]):
            best = (abs(share - preferred), path, codes)
    if best is None:
        return None
    _, path, codes = best
    h, w = codes.shape[0] // 4 * 4, codes.shape[1] // 4 * 4
    return path, np.ascontiguousarray(codes[:h, :w, :3])


def measure(prediction: np.ndarray, reference: np.ndarray, ldr: np.ndarray, trusted: np.ndarray) -> dict:
    """The suite's figures for one prediction over the ``trusted`` pixels (see the module's docstring)."""
    well_exposed = well_exposed_pixels(ldr) & trusted
    clipped = (ldr.max(axis=-1) >= CLIPPED) & trusted
    scaled = fit_scale(prediction, reference, well_exposed)
    record = {"psnr_mu": psnr_mu(scaled[trusted], reference[trusted]), "psnr_log2": psnr_log(scaled[trusted], reference[trusted]),
              "clipped_share": float(clipped.mean()), "clipped_psnr_mu": None, "clipped_bias_stops": None}
    if clipped.sum() >= 16:
        record["clipped_psnr_mu"] = clipped_region_psnr_mu(scaled, reference, clipped)
        record["clipped_bias_stops"] = clipped_region_bias_stops(scaled, reference, clipped)
    return record


PUBLISHED = {"FHDR (iter 2)": "fhdr/FHDR-iter-2.ckpt", "ExpandNet": "expandnet/weights.pth"}


def predict(method: str, codes: np.ndarray, weights=None) -> np.ndarray:
    """``naive``, ``classical``, ``learned`` (with ``weights``), or a published checkpoint (``weights``; as published:
    no dequantization)."""
    if method == "naive":
        return srgb_to_linear(codes.astype(np.float32) / 255)
    if method in PUBLISHED:
        return ldr_to_hdr(Image(codes), weights, HdrSettings(dequantize="none"), device="cpu").image.pixels
    if method.startswith("learned"):
        return ldr_to_hdr(Image(codes), weights, HdrSettings(method="learned"), device="cpu").image.pixels
    return ldr_to_hdr(Image(codes), None, HdrSettings(method=method), device="cpu").image.pixels


def score_image(name: str, curve: str, codes: np.ndarray, reference: np.ndarray, trusted: np.ndarray,
                methods: list[str], nets: dict) -> dict:
    """One image's record: every method's figures (:func:`measure`), printed as a line as it is scored."""
    ldr = codes.astype(np.float32) / 255
    record = {"name": name, "curve": curve, "trusted_share": float(trusted.mean()),
              "methods": {m: measure(predict(m, codes, nets.get(m)), reference, ldr, trusted) for m in methods}}
    print(f"{name:28s} {curve:10s} " + "  ".join(f"{m} {record['methods'][m]['psnr_mu']:.2f}" for m in methods), flush=True)
    return record


def summarize(records: list[dict], methods: list[str]) -> dict:
    summary = {}
    naive = [r["methods"]["naive"] for r in records]
    for method in methods:
        scores = [r["methods"][method] for r in records]
        gains = [(s["psnr_mu"] - n["psnr_mu"], r["name"]) for s, n, r in zip(scores, naive, records)]
        clipped = [(s, n) for s, n in zip(scores, naive) if s["clipped_psnr_mu"] is not None]
        summary[method] = {
            "images": len(records),
            "psnr_mu": float(np.mean([s["psnr_mu"] for s in scores])),
            "psnr_log2": float(np.mean([s["psnr_log2"] for s in scores])),
            "gain_over_naive": float(np.mean([g for g, _ in gains])),
            "worst_gain": min(gains)[0], "worst_image": min(gains)[1],
            "below_naive_by_0.5": int(sum(g < -0.5 for g, _ in gains)),
            "clipped_psnr_mu": float(np.mean([s["clipped_psnr_mu"] for s, _ in clipped])) if clipped else None,
            "clipped_gain_over_naive":
                float(np.mean([s["clipped_psnr_mu"] - n["clipped_psnr_mu"] for s, n in clipped])) if clipped else None,
            "clipped_bias_stops": float(np.mean([s["clipped_bias_stops"] for s, _ in clipped])) if clipped else None,
        }
    return summary


def markdown(report: dict, methods: list[str]) -> str:
    lines = ["| curve | method | PSNR-mu | gain over naive: mean / worst (image) / below by > 0.5 dB | PSNR log2 | "
             "clipped: PSNR-mu / gain over naive / bias (stops) |", "|---|---|---|---|---|---|"]
    for curve, summary in report["summary"].items():
        for method in methods:
            s = summary[method]
            clipped = (f"{s['clipped_psnr_mu']:.2f} / {s['clipped_gain_over_naive']:+.2f} / {s['clipped_bias_stops']:+.2f}"
                       if s["clipped_psnr_mu"] is not None else "—")
            lines.append(f"| {curve} | {method} | {s['psnr_mu']:.2f} | {s['gain_over_naive']:+.2f} / {s['worst_gain']:+.2f} "
                         f"({s['worst_image']}) / {s['below_naive_by_0.5']} | {s['psnr_log2']:.2f} | {clipped} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--merges", type=Path, default=Path("/tmp/sice_heldout"))
    parser.add_argument("--merge-count", type=int, default=8)
    parser.add_argument("--weights", type=Path, help="learned weights (default: the shipped ones)")
    parser.add_argument("--compare", type=Path, nargs="*", default=[], help="more learned weights, a row each (same split)")
    parser.add_argument("--peers", type=Path, default=SHARED.parent / "peers", help="published checkpoints")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "hdr_suite")
    parser.add_argument("--sice", type=Path, default=SHARED / "sice", help="SICE frames for the real-camera rows")
    args = parser.parse_args()
    import torch

    torch.set_num_threads(2)
    from bdx.models import load_model

    weights = args.weights or default_weights("hdr")
    nets = {"learned": load_model(weights, "hdr")}
    scenes = references(weights, args.merges, args.merge_count)
    for other in args.compare:
        if [n for n, _, _ in references(other, args.merges, args.merge_count)] != [n for n, _, _ in scenes]:
            raise SystemExit(f"{other.name} holds out other references than {weights.name}")
        nets[f"learned ({other.stem})"] = load_model(other, "hdr")
    nets.update({label: load_model(args.peers / name, "hdr") for label, name in PUBLISHED.items() if (args.peers / name).is_file()})
    methods = ["naive", "classical", *nets]
    records = []
    for name, linear, trusted in scenes:
        exposed = linear * np.float32(2**STOPS_OVER)
        reference = exposed * np.float32(0.18)  # the scene in units of the sRGB clip's exposure
        for curve, function in CURVES.items():
            codes = np.clip(np.rint(function(exposed) * 255), 0, 255).astype(np.uint8)
            records.append(score_image(name, curve, codes, reference, trusted, methods, nets))
    frames = camera_frames(weights, args.merges, args.sice)
    for name, codes, reference, trusted in frames:
        records.append(score_image(name, REAL_CAMERA, codes, reference, trusted, methods, nets))
    curves = [*CURVES, *([REAL_CAMERA] if frames else [])]
    report = {"weights": weights.name, "references": [n for n, _, _ in scenes], "camera_frames": [frame[0] for frame in frames],
              "stops_over": STOPS_OVER,
              "ringing": {"below_median_times": -RINGING, "reach_px": RINGING_REACH},
              "summary": {"all curves": summarize(records, methods),
                          "synthetic curves": summarize([r for r in records if r["curve"] in CURVES], methods),
                          **{c: summarize([r for r in records if r["curve"] == c], methods) for c in curves}},
              "images": records}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(report, indent=1))
    args.out.with_suffix(".md").write_text(markdown(report, methods))
    print(markdown(report, methods))


if __name__ == "__main__":
    main()
