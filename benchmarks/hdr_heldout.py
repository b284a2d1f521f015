"""LDR to HDR on held-out HDR references, and throughput at 12 MP.

Quality: each HDR panorama the weights held out of training (the file-level
split recorded in their metadata) is exposed twice (90th and 98th luminance
percentile at the clip point), passed through a random camera curve, clipped
and quantized to 8 bits (fixed seed). Methods: the classical baseline, the
network's first iteration (feed-forward output of the same weights) and its
last iteration. Figures: PSNR-mu, log PSNR, SSIM-mu, mu-law error in the
clipped regions, the absolute scale error in stops outside them, and PSNR-mu
after rescaling by that error (what a perfect global exposure would reach).

Speed: ``ldr_to_hdr`` on a synthetic 12 MP image (2 threads, dequantization off
and on), with peak RSS.

    python benchmarks/hdr_heldout.py --weights weights/hdr-feedback-v2.safetensors
"""

from __future__ import annotations

import argparse
import json
import resource
import time
from pathlib import Path

import numpy as np
import torch

from bdx.hdr.classical import expand_highlights
from bdx.hdr.models import load_hdr_net
from bdx.hdr.reconstruct import HdrSettings, ldr_to_hdr

from bdx.io import Image
from bdx.metrics import clipped_region_error, psnr_log, psnr_mu, scale_ratio_ev, ssim_mu
from bdx.training.hdr import find_scenes, heldout_cases, predict_iterations

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


def quality(
    weights: Path, data: Path, never_trained: bool = False, cameras: int = 1, camera: tuple[float, float] | None = None
) -> dict:
    from safetensors import safe_open

    with safe_open(str(weights), framework="pt") as handle:
        heldout = set(json.loads(handle.metadata()["validation_files"]))
        trained = {Path(name).name for name in json.loads(handle.metadata()["train_files"])}
    scenes = find_scenes([data])
    if never_trained:  # a folder no weights trained on (e.g. merges of the held-out SICE stacks); checked by file name
        seen = sorted(s.name for s in scenes if Path(s.name).name in trained)
        if seen:
            raise SystemExit(f"--never-trained, but the weights trained on {', '.join(seen[:5])}")
    else:
        scenes = [s for s in scenes if s.name in heldout]
    net = load_hdr_net(weights)
    rows = []
    for case in heldout_cases(scenes, seed=7, cameras=cameras, camera=camera):
        clipped = case.ldr.max(axis=-1) >= 254.5 / 255
        outputs = predict_iterations(net, case.ldr, net.config.context_size)
        results = {
            "classical": expand_highlights(case.ldr),
            "network, iteration 1": outputs[0],
            f"network, iteration {len(outputs)}": outputs[-1],
        }
        for method, pred in results.items():
            target = case.target
            rows.append({
                "scene": case.scene, "percentile": case.percentile, "method": method,
                "psnr_mu": psnr_mu(pred, target), "psnr_log": psnr_log(pred, target), "ssim_mu": ssim_mu(pred, target),
                "clipped_fraction": float(clipped.mean()),
                "clipped_error": clipped_region_error(pred, target, clipped),
                "scale_error_ev": abs(ratio := scale_ratio_ev(pred, target, ~clipped)),
                # what a perfect global exposure would give: the prediction rescaled by that ratio
                "psnr_mu_scale_fixed": psnr_mu(pred * np.float32(2.0 ** np.nan_to_num(ratio)), target),
            })
    summary = {}
    for method in dict.fromkeys(r["method"] for r in rows):
        picked = [r for r in rows if r["method"] == method]
        summary[method] = {k: float(np.nanmean([r[k] for r in picked])) for k in ("psnr_mu", "psnr_log", "ssim_mu", "clipped_error", "scale_error_ev", "psnr_mu_scale_fixed")}
        summary[method]["images"] = len(picked)
    return {"scenes": sorted(heldout), "summary": summary, "rows": rows}


def speed(weights: Path) -> dict:
    torch.set_num_threads(2)
    rng = np.random.default_rng(0)
    y = np.linspace(0, 1, 3000, dtype=np.float32)[:, None, None]
    x = np.linspace(0, 1, 4000, dtype=np.float32)[None, :, None]
    pixels = np.clip(0.3 + 0.6 * x * y + rng.normal(0, 0.01, (3000, 4000, 3)).astype(np.float32), 0, 1)
    image = Image(np.rint(pixels * 255).astype(np.uint8))
    result = {}
    for label, settings in (("learned, no dequantization", HdrSettings(dequantize="none")),
                            ("classical, no dequantization", HdrSettings(method="classical", dequantize="none"))):
        start = time.perf_counter()
        ldr_to_hdr(image, settings, weights=str(weights), device="cpu")
        seconds = time.perf_counter() - start
        result[label] = {"seconds": seconds, "mpix_per_s": 12.0 / seconds}
        print(f"{label}: {12.0 / seconds:.2f} MPix/s", flush=True)
    result["peak_rss_gib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", type=Path, default=Path("weights/hdr-feedback-v2.safetensors"))
    parser.add_argument("--data", type=Path, default=SHARED / "hdr")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/hdr_heldout.json"))
    parser.add_argument("--skip-speed", action="store_true")
    parser.add_argument("--never-trained", action="store_true",
                        help="score every file in --data (a folder the weights never trained on) instead of their validation files")
    parser.add_argument("--cameras", type=int, default=1,
                        help="random camera curves per scene and exposure (default 1)")
    parser.add_argument("--camera", type=float, nargs=2, metavar=("GAMMA", "SHOULDER"),
                        help="render every case through this one camera curve instead (for weights trained with --camera)")
    args = parser.parse_args()
    camera = tuple(args.camera) if args.camera else None
    report = {"quality": quality(args.weights, args.data, args.never_trained, args.cameras, camera),
              "cameras": args.cameras, "camera": camera}
    for method, row in report["quality"]["summary"].items():
        print(f"{method:24s} PSNR-mu {row['psnr_mu']:.2f}  log {row['psnr_log']:.2f}  SSIM-mu {row['ssim_mu']:.4f}  "
              f"clipped err {row['clipped_error']:.4f}  scale err {row['scale_error_ev']:.2f} EV  (rescaled: {row['psnr_mu_scale_fixed']:.2f})  (n={row['images']})")
    if not args.skip_speed:
        report["speed"] = speed(args.weights)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
