"""Low-light enhancement on held-out real photographs: fidelity, neutral shadows, noise, and CPU throughput.

Two held-out sets, neither used by any bdx training:

- **pairs**: the dark frame of each held-out SICE tripod stack (``sice_split.py``; those stacks
  were excluded from training) against the stack's well-exposed reference frame: PSNR, SSIM,
  Oklab ΔE, mean brightness, clipped fraction, distinct output levels where the input holds its
  darkest 20 codes, and the PSNR with the output's brightness matched to the reference (the best
  per-image gamma from 0.4 to 2.0: what is left once the exposure is right);
- **dicm**: the 64 DICM low-light photographs (no reference): in *near-black* regions (input's
  largest channel at most 6 of 255) the output's mean Oklab chroma and lightness, per image and
  the worst image; flat-region noise of the input and of the output (8-bit code units); clipped
  fraction; the spread of Oklab chroma within 16 px blocks over the flattest fifth of blocks (colour
  noise and blotches).

Rows: bdx's default, bdx's curves alone, and the published checkpoints found under ``--peers``
(Zero-DCE, Zero-DCE++, Zero-DCE-improved, SCI easy / medium / difficult), run as published (no
dequantization, no denoising, no neutral shadows; Zero-DCE-improved with its gamma 1.15). Speed (same run; median of 3 after a warm-up):
bdx's default model at 12 MP, curves alone, with denoising, and the whole default pipeline.

    python tools/sice_split.py --sice ../shared/data/sice --out benchmarks/results/sice
    python benchmarks/lowlight_suite.py                  # writes benchmarks/results/lowlight_suite.{json,md}
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np
import torch

from bdx.color import srgb_to_oklab
from bdx.evaluation import evaluate_lowlight
from bdx.io import Image, read_image, to_float
from bdx.lowlight.enhance import EnhanceSettings, enhance_lowlight
from bdx.models import LoadedModel, load_model
from bdx.metrics import clipped_fraction, flat_region_chroma_noise, flat_region_noise, psnr

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
NEAR_BLACK_CODE = 6  # near-black: the input's largest channel at most this (8-bit codes)
NEAR_BLACK_MIN_SHARE = 0.002  # images with fewer near-black pixels get no near-black figures
PAIR_METRICS = ("psnr", "ssim", "delta_e_ok", "mean_brightness", "clipped", "distinct_in_dark_region", "psnr_matched")
MATCHING_GAMMAS = np.arange(0.4, 2.001, 0.05)
DICM_METRICS = ("near_black_chroma", "near_black_lightness", "flat_noise_out", "flat_chroma_noise", "clipped")

Method = tuple[LoadedModel, EnhanceSettings]


def score_pairs(method: Method, sice: Path, pairs: list[dict]) -> list[dict]:
    """One record per dark/reference pair."""
    model, settings = method
    records = []
    for pair in pairs:
        dark = read_image(sice / pair["input"])
        reference = read_image(sice / pair["reference"])
        out = enhance_lowlight(dark, model, settings, device="cpu").image
        record = evaluate_lowlight(out, reference)
        record["distinct_in_dark_region"] = distinct_in_dark(dark, out)
        record["psnr_matched"] = brightness_matched_psnr(out, reference)
        records.append({"image": pair["input"], **{k: record[k] for k in PAIR_METRICS}})
    return records


def brightness_matched_psnr(out: Image, reference: Image) -> float:
    """PSNR after the gamma (of :data:`MATCHING_GAMMAS`) that brings ``out`` closest to ``reference``."""
    prediction, truth = to_float(out.pixels).astype(np.float64), to_float(reference.pixels).astype(np.float64)
    return max(psnr(prediction ** gamma, truth) for gamma in MATCHING_GAMMAS)


def distinct_in_dark(dark: Image, out: Image) -> float:
    """Distinct output green values where the input's green is in its darkest 20 codes."""
    green = dark.pixels[..., 1]
    present = np.unique(green)
    mask = np.isin(green, present[: min(20, present.size)])
    return float(np.unique(out.pixels[..., 1][mask]).size) if mask.any() else 0.0


def near_black_mask(codes: np.ndarray) -> np.ndarray:
    """Pixels whose largest channel is at most :data:`NEAR_BLACK_CODE` (8-bit codes)."""
    return codes[..., :3].max(axis=-1) <= NEAR_BLACK_CODE


def score_dicm(method: Method, photos: list[Path]) -> list[dict]:
    """One record per DICM photograph: near-black chroma and lightness (None without near-black pixels),
    flat-region noise of the input and of the output, clipped fraction."""
    model, settings = method
    records = []
    for path in photos:
        image = read_image(path)
        out = to_float(enhance_lowlight(image, model, settings, device="cpu").image.pixels)
        mask = near_black_mask(image.pixels)
        record = {"image": path.name, "near_black_share": float(mask.mean()),
                  "flat_noise_in": flat_region_noise(to_float(image.pixels)), "flat_noise_out": flat_region_noise(out),
                  "flat_chroma_noise": flat_region_chroma_noise(out),
                  "clipped": clipped_fraction(out), "near_black_chroma": None, "near_black_lightness": None}
        if mask.mean() >= NEAR_BLACK_MIN_SHARE:
            lab = srgb_to_oklab(out[mask][:, None, :])[:, 0]
            record["near_black_chroma"] = float(np.hypot(lab[:, 1], lab[:, 2]).mean())
            record["near_black_lightness"] = float(lab[:, 0].mean())
        records.append(record)
    return records


def summarize(records: list[dict], metrics: tuple[str, ...], worst_is_low: set[str]) -> dict:
    """Mean and worst image of each metric (worst: lowest for ``worst_is_low``, else highest)."""
    summary = {}
    for metric in metrics:
        scored = [(r[metric], r["image"]) for r in records if r.get(metric) is not None]
        if not scored:
            continue
        worst = min(scored) if metric in worst_is_low else max(scored)
        summary[metric] = {"mean": float(np.mean([v for v, _ in scored])), "worst": worst[0], "worst_image": worst[1],
                           "images": len(scored)}
    return summary


def markdown(report: dict) -> str:
    lines = [f"Pairs: {report['pairs']} held-out SICE dark/reference pairs. DICM: {report['dicm']} photographs "
             f"(near-black figures over those with at least {NEAR_BLACK_MIN_SHARE:.1%} near-black pixels).", ""]
    lines += ["| method | pairs PSNR mean / worst | brightness-matched PSNR | SSIM mean / worst | mean brightness | "
              "pairs clipped | near-black chroma mean / worst | near-black lightness | flat noise in → out | "
              "flat chroma noise | DICM clipped |",
              "|---|---|---|---|---|---|---|---|---|---|---|"]
    for label, result in report["quality"].items():
        p, d = result["pairs"], result["dicm"]
        cell = lambda s, k, f: f"{s[k]['mean']:{f}} / {s[k]['worst']:{f}}" if k in s else "—"  # noqa: E731
        lines.append(
            f"| {label} | {cell(p, 'psnr', '.2f')} | {p['psnr_matched']['mean']:.2f} | {cell(p, 'ssim', '.3f')} | {p['mean_brightness']['mean']:.3f} | "
            f"{p['clipped']['mean']:.4f} | {cell(d, 'near_black_chroma', '.4f')} | {d['near_black_lightness']['mean']:.3f} | "
            f"{d['flat_noise_in']['mean']:.2f} → {d['flat_noise_out']['mean']:.2f} | {d['flat_chroma_noise']['mean']:.4f} | "
            f"{d['clipped']['mean']:.4f} |"
        )
    if "speed" in report:
        lines += ["", "| pipeline at 12 MP, 2 threads | MPix/s |", "|---|---:|"]
        lines += [f"| {label} | {t['mpix_per_s']:.2f} |" for label, t in report["speed"].items()]
    return "\n".join(lines) + "\n"


def _timed(call, repeats: int = 3) -> dict:
    """Median and every wall time of ``repeats`` calls after one warm-up call (this machine is noisy)."""
    call()
    seconds = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        seconds.append(time.perf_counter() - start)
    return {"seconds": float(np.median(seconds)), "runs": seconds}


def speed(model: LoadedModel) -> dict:
    """bdx's pipelines on a synthetic dark 12 MP image (noise and a gradient), 2 threads."""
    torch.set_num_threads(2)
    rng = np.random.default_rng(0)
    base = rng.normal(40, 12, (3000, 4000, 3)) + np.linspace(0, 30, 4000)[None, :, None]
    big = Image(np.ascontiguousarray(np.clip(base, 0, 255).astype(np.uint8)))
    result = {}
    for label, settings in (
        ("curves + gamma (no dequantization, no denoise)", EnhanceSettings(dequantize="none", denoise=0)),
        ("curves + default denoise (no dequantization)", EnhanceSettings(dequantize="none")),
        ("default pipeline (learned dequantization + curves + denoise)", EnhanceSettings()),
    ):
        timing = _timed(lambda: enhance_lowlight(big, model, settings, device="cpu"))
        timing.update(megapixels=12.0, mpix_per_s=12.0 / timing["seconds"])
        result[label] = timing
        print(f"{label}: {timing['mpix_per_s']:.2f} MPix/s", flush=True)
    return result


def methods(weights: Path | None, peers: Path) -> dict[str, Method]:
    """The rows: bdx's default, bdx's curves alone, and the published checkpoints found under ``peers``."""
    model = load_model(weights, "lowlight")
    published = EnhanceSettings(dequantize="none", denoise=0, neutral_shadows=0)
    rows = {"bdx (default)": (model, EnhanceSettings()), "bdx (curves only)": (model, published)}
    for name, label in (("zero-dce/Epoch99.pth", "Zero-DCE (official)"), ("zero-dce-pp/Epoch99.pth", "Zero-DCE++ (official)"),
                        ("zero-dce-improved/pre-train.pth", "Zero-DCE-improved"), ("sci/easy.pt", "SCI easy"),
                        ("sci/medium.pt", "SCI medium"), ("sci/difficult.pt", "SCI difficult")):
        checkpoint = peers / name
        if checkpoint.is_file():
            rows[label] = (load_model(checkpoint, "lowlight"), published)
    return rows


def evaluate(rows: dict[str, Method], sice: Path, pairs: list[dict], photos: list[Path]) -> dict:
    """Pairs and DICM records and summaries for every row."""
    results = {}
    for label, method in rows.items():
        pair_records, dicm_records = score_pairs(method, sice, pairs), score_dicm(method, photos)
        results[label] = {
            "pairs": summarize(pair_records, PAIR_METRICS, {"psnr", "ssim", "distinct_in_dark_region", "psnr_matched"}),
            "dicm": summarize(dicm_records, DICM_METRICS + ("flat_noise_in",), set()),
            "pair_images": pair_records, "dicm_images": dicm_records,
        }
        p, d = results[label]["pairs"], results[label]["dicm"]
        print(f"{label:24s} PSNR {p['psnr']['mean']:.2f} (worst {p['psnr']['worst']:.2f})  SSIM {p['ssim']['mean']:.3f}  "
              f"near-black chroma {d['near_black_chroma']['mean']:.4f} (worst {d['near_black_chroma']['worst']:.4f})  "
              f"L {d['near_black_lightness']['mean']:.3f}  noise {d['flat_noise_out']['mean']:.2f}", flush=True)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", type=Path, help="curve model (default: the shipped one)")
    parser.add_argument("--peers", type=Path, default=SHARED / "peers")
    parser.add_argument("--sice", type=Path, default=SHARED / "data" / "sice")
    parser.add_argument("--dicm", type=Path, default=SHARED / "data" / "lowlight" / "DICM")
    parser.add_argument("--pairs", type=Path, default=ROOT / "benchmarks" / "results" / "sice" / "test_pairs.json")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "lowlight_suite")
    parser.add_argument("--skip-speed", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(2)
    pairs = json.loads(args.pairs.read_text())
    photos = sorted(args.dicm.glob("*.jpg"))
    rows = methods(args.weights, args.peers)
    report = {"machine": {"platform": platform.platform(), "torch": torch.__version__, "threads": 2},
              "pairs": len(pairs), "dicm": len(photos), "quality": evaluate(rows, args.sice, pairs, photos)}
    if not args.skip_speed:
        report["speed"] = speed(rows["bdx (default)"][0])
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(report, indent=1))
    args.out.with_suffix(".md").write_text(markdown(report))
    print(f"wrote {args.out}.json and .md")


if __name__ == "__main__":
    main()
