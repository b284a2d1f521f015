"""Low-light enhancement: quality on held-out SICE pairs and CPU throughput.

Quality: every method enhances the dark frame of each held-out test pair (see
``sice_split.py``; those stacks were excluded from training) and is scored
against the stack's reference frame (PSNR, SSIM, Oklab ΔE) plus no-reference
figures. The official Zero-DCE and Zero-DCE++ checkpoints run through bdx as
published (no dequantization, no denoising).

Speed (same run, same machine; median of 3 after a warm-up): bdx's default
model on a 12 MP image (curves + gamma, then with denoise, then with the
default learned dequantization in front), and the official Zero-DCE on
1200x900 as published (denormal weights as shipped, default memory layout)
versus through bdx (denormals flushed, channels-last weights).

    python benchmarks/sice_split.py --sice ../shared/data/sice --out benchmarks/results/sice
    python benchmarks/lowlight_sice.py --weights weights/lowlight-curvenet-v1.safetensors \\
        --peers ../shared/peers --sice ../shared/data/sice --pairs benchmarks/results/sice/test_pairs.json
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np
import torch

from bdx.device import for_inference
from bdx.evaluation import evaluate_lowlight
from bdx.io import Image, read_image
from bdx.lowlight.enhance import EnhanceSettings, enhance_lowlight
from bdx.lowlight.models import DCENet, load_curve_model

METRICS = ("psnr", "ssim", "delta_e_ok", "mean_brightness", "flat_noise", "clipped", "colour_cast")


def quality(methods: dict, sice: Path, pairs: list[dict]) -> dict:
    results = {}
    for label, (model, settings) in methods.items():
        records = []
        for pair in pairs:
            dark = read_image(sice / pair["input"])
            reference = read_image(sice / pair["reference"])
            out = enhance_lowlight(dark, model, settings, device="cpu")
            record = evaluate_lowlight(out, reference)
            record["distinct_in_dark_region"] = _distinct_in_dark(dark, out)
            records.append({"pair": pair["input"], **record})
        summary = {k: float(np.mean([r[k] for r in records])) for k in METRICS}
        summary["distinct_in_dark_region"] = float(np.mean([r["distinct_in_dark_region"] for r in records]))
        results[label] = {"summary": summary, "images": records}
        print(f"{label:28s} " + "  ".join(f"{k} {summary[k]:.4f}" for k in METRICS), flush=True)
    return results


def _distinct_in_dark(dark: Image, out: Image) -> float:
    """Distinct output green values where the input's green is in its darkest 20 codes (mean over nothing = 0)."""
    green = dark.pixels[..., 1]
    present = np.unique(green)
    darkest = present[: min(20, present.size)]
    mask = np.isin(green, darkest)
    return float(np.unique(out.pixels[..., 1][mask]).size) if mask.any() else 0.0


def _timed(call, repeats: int = 3) -> dict:
    """Median and every wall time of ``repeats`` calls after one warm-up call (this machine is noisy)."""
    call()
    seconds = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        seconds.append(time.perf_counter() - start)
    return {"seconds": float(np.median(seconds)), "runs": seconds}


def speed(weights: Path, peers: Path | None) -> dict:
    torch.set_num_threads(2)
    rng = np.random.default_rng(0)
    result: dict = {}
    big = np.clip(rng.normal(40, 12, (3000, 4000, 3)), 0, 255).astype(np.uint8)
    big = Image(np.ascontiguousarray(np.clip(big.astype(np.int32) + np.linspace(0, 30, 4000)[None, :, None], 0, 255).astype(np.uint8)))
    model = load_curve_model(weights)
    for label, settings in (
        ("bdx model: curves + gamma (no dequantization, no denoise)", EnhanceSettings(dequantize="none", denoise=0)),
        ("bdx curves + default denoise (no dequantization)", EnhanceSettings(dequantize="none")),
        ("bdx default pipeline (learned dequantization + curves + denoise)", EnhanceSettings()),
    ):
        timing = _timed(lambda: enhance_lowlight(big, model, settings, device="cpu"))
        timing.update(megapixels=12.0, mpix_per_s=12.0 / timing["seconds"])
        result[label] = timing
        print(f"{label}: {timing['mpix_per_s']:.2f} MPix/s (median of {len(timing['runs'])})", flush=True)
    if peers is not None and (peers / "zero-dce" / "Epoch99.pth").is_file():
        state = torch.load(peers / "zero-dce" / "Epoch99.pth", map_location="cpu", weights_only=True)
        x = torch.from_numpy(big.pixels[:900, :1200].astype(np.float32) / 255).permute(2, 0, 1)[None]
        published = DCENet()
        published.load_state_dict(state)  # as published: denormals as shipped, default memory layout
        through_bdx = for_inference(load_curve_model(peers / "zero-dce" / "Epoch99.pth").net, "cpu")
        timings = {}
        for label, net, flush in (("as published (denormals kept)", published.eval(), False), ("through bdx", through_bdx, True)):
            torch.set_flush_denormal(flush)
            with torch.inference_mode():
                timings[label] = _timed(lambda: net(x), repeats=2)["seconds"]
            torch.set_flush_denormal(False)
            print(f"Zero-DCE 1200x900 {label}: {timings[label]:.2f} s", flush=True)
        timings["speedup"] = timings["as published (denormals kept)"] / timings["through bdx"]
        result["zero-dce 1200x900 curve estimation"] = timings
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", type=Path, default=Path("weights/lowlight-curvenet-v1.safetensors"))
    parser.add_argument("--peers", type=Path, default=Path("../shared/peers"))
    parser.add_argument("--sice", type=Path, default=Path("../shared/data/sice"))
    parser.add_argument("--pairs", type=Path, default=Path("benchmarks/results/sice/test_pairs.json"))
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/lowlight_sice.json"))
    parser.add_argument("--skip-speed", action="store_true")
    parser.add_argument("--skip-quality", action="store_true")
    args = parser.parse_args()
    pairs = json.loads(args.pairs.read_text())
    published = EnhanceSettings(dequantize="none", denoise=0)
    methods = {"bdx (default)": (load_curve_model(args.weights), EnhanceSettings())}
    methods["bdx (curves only)"] = (load_curve_model(args.weights), published)
    for name, label in (("zero-dce", "Zero-DCE (official)"), ("zero-dce-pp", "Zero-DCE++ (official)")):
        checkpoint = args.peers / name / "Epoch99.pth"
        if checkpoint.is_file():
            methods[label] = (load_curve_model(checkpoint), published)
    report = {
        "machine": {"platform": platform.platform(), "torch": torch.__version__, "threads": torch.get_num_threads()},
        "pairs": len(pairs),
    }
    if not args.skip_quality:
        report["quality"] = quality(methods, args.sice, pairs)
    if not args.skip_speed:
        report["speed"] = speed(args.weights, args.peers)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
