"""Throughput and peak memory of ``upscale-depth`` on 12 MP and 100 MP images.

Each measurement runs in a fresh subprocess, so its peak RSS is its own. The
12 MP image is run tiled (the default) and as one whole-image tile; the ratio
between the two is measured in the same run. Freed memory is kept for reuse as the ``bdx`` command
keeps it (``--allocators system`` measures malloc as it is). Prints a table and writes JSON.

    python benchmarks/bench_upscale_depth.py                 # 12 MP and 100 MP
    python benchmarks/bench_upscale_depth.py --sizes 12 --methods midpoint contour
    python benchmarks/bench_upscale_depth.py --sizes 12 --methods learned --weights other.safetensors
    python benchmarks/bench_upscale_depth.py --sizes 12 --methods learned midpoint --bits 8 --weights a.safetensors --weights b.safetensors
    python benchmarks/bench_upscale_depth.py --sizes 12 --methods learned --ensembles 1 8 --bits 8
    python benchmarks/bench_upscale_depth.py --sizes 12 100 --methods learned --precisions auto float32 --bits 8
    python benchmarks/bench_upscale_depth.py --sizes 12 --methods learned contour midpoint --bits 8 --self-checks on off
    python benchmarks/bench_upscale_depth.py --sizes 12 100 --methods learned --bits 8 --allocators retained system
    python benchmarks/bench_upscale_depth.py --sizes 12 --methods learned contour midpoint --bits 8 --repeats 3
    python benchmarks/bench_upscale_depth.py --sizes 12 --methods learned --bits 8 --weights a.safetensors --weights b.safetensors --rounds 4 --repeats 2

``--rounds N`` runs every row N times, interleaved (row 1, row 2, ..., row 1, row 2, ...), and reports the
median of each: the machine's speed drifts over minutes, and interleaving spreads the drift over all rows.
``--repeats N`` times N calls on the same image in each process: ``seconds`` is the first (a fresh process, as
one ``bdx upscale-depth`` run), ``warm_seconds`` the median of the others (the same-size images of a folder,
after the first: memory already mapped, kernels already built).
"""

from __future__ import annotations

import argparse
import json
import statistics
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

SIZES = {12: (3000, 4000), 100: (8660, 11547)}


def synthetic_scene(height: int, width: int, bits: int):
    """A smooth scene with mild texture, quantized to ``bits`` in an 8-bit container (built in strips)."""
    import numpy as np

    from bdx.quantization import codes_from_levels, max_level

    rng = np.random.default_rng(0)
    out = np.empty((height, width, 3), np.uint8)
    x = np.linspace(0, 1, width, dtype=np.float32)[None, :]
    for top in range(0, height, 512):
        y = np.linspace(top / height, min(top + 512, height) / height, min(512, height - top), dtype=np.float32)[:, None]
        base = 0.5 + 0.35 * np.sin(6 * x + 2 * y) * np.cos(4 * y)
        noise = rng.normal(0, 0.004, (len(y), width)).astype(np.float32)
        for c, gamma in enumerate((1.0, 1.4, 0.8)):
            value = np.clip(base**gamma + noise, 0, 1)
            levels = np.rint(value * max_level(bits)).astype(np.int32)
            out[top : top + len(y), :, c] = codes_from_levels(levels, bits, 8)
    return out


def measure(
    megapixels: int, method: str, bits: int, tile: int | None = None, weights: str | None = None, ensemble: int = 1,
    precision: str = "auto", device: str = "cpu", self_check: bool = True, allocator: str = "retained", repeats: int = 1,
) -> dict:
    """One run in this process: generate, dequantize, report time and peak RSS (on a GPU after a small warm-up
    run, so that its start-up is not timed). ``allocator``: ``retained`` keeps freed memory for reuse, as the
    ``bdx`` command does (:func:`bdx.memory.retain_freed_memory`), ``system`` leaves malloc as it is."""
    import torch

    from bdx.memory import retain_freed_memory

    if allocator == "retained" and not retain_freed_memory():
        raise SystemExit("this C library keeps no freed memory for reuse: run with --allocators system")

    from bdx.depth import DepthSettings, upscale_depth
    from bdx.io import Image
    from bdx.models import load_model

    height, width = SIZES[megapixels]
    model = load_model(weights, "depth", bits=bits) if method == "learned" else None
    settings = DepthSettings(method=method, tile=tile, ensemble=ensemble, precision=precision, self_check=self_check)
    image = Image(synthetic_scene(height, width, bits), significant_bits=bits)
    if device != "cpu":
        small = Image(synthetic_scene(256, 256, bits), significant_bits=bits)
        upscale_depth(small, model, settings, device=device)
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        result = upscale_depth(image, model, settings, device=device)
        times.append(time.perf_counter() - start)
    seconds = times[0]
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {
        "megapixels": height * width / 1e6,
        "method": method,
        "in_bits": bits,
        "tile": tile or "default",
        "weights": weights or "default",
        "ensemble": ensemble,
        "self_check": result.kept is not None,
        "precision": result.precision,
        "seconds": seconds,
        "mpix_per_s": height * width / 1e6 / seconds,
        "warm_seconds": statistics.median(times[1:]) if repeats > 1 else None,
        "warm_mpix_per_s": height * width / 1e6 / statistics.median(times[1:]) if repeats > 1 else None,
        "peak_rss_mib": peak_kib / 1024,
        "rss_before_run_mib": rss_before / 1024,
        "threads": torch.get_num_threads(),
        "device": device,
        "allocator": allocator,
    }


def run_child(**spec) -> dict:
    """:func:`measure` in a fresh process, so that its peak RSS is its own."""
    args = [sys.executable, __file__, "--child", json.dumps(spec)]
    done = subprocess.run(args, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def _median_row(results: list[dict]) -> dict:
    """One row from the rounds of the same measurement: median times, the largest peak RSS."""
    row = dict(results[0])
    if len(results) > 1:
        for key in ("seconds", "warm_seconds"):
            if row[key] is not None:
                row[key] = statistics.median(r[key] for r in results)
                row[f"{key}_each"] = [r[key] for r in results]
        row["mpix_per_s"] = row["megapixels"] / row["seconds"]
        if row["warm_seconds"] is not None:
            row["warm_mpix_per_s"] = row["megapixels"] / row["warm_seconds"]
        row["peak_rss_mib"] = max(r["peak_rss_mib"] for r in results)
    row["rounds"] = len(results)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[12, 100], choices=sorted(SIZES))
    parser.add_argument("--methods", nargs="+", default=["contour", "midpoint"])
    parser.add_argument("--bits", type=int, default=6, help="content bit depth of the synthetic input")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "upscale_depth.json")
    parser.add_argument("--weights", action="append", default=[],
                        help="weights file for the learned method (default: the shipped weights); repeat to time several in one run")
    parser.add_argument("--ensembles", type=int, nargs="+", default=[1], help="ensemble sizes to run the learned method with")
    parser.add_argument("--precisions", nargs="+", default=["auto"], help="precisions to run the learned method with")
    parser.add_argument("--device", default="cpu", help="cpu, cuda, ... (all of the work runs there)")
    parser.add_argument("--self-checks", nargs="+", default=["on"], choices=["on", "off"],
                        help="run the learned method with its self-check on, off, or both")
    parser.add_argument("--allocators", nargs="+", default=["retained"], choices=["retained", "system"],
                        help="freed memory kept for reuse as the bdx command does (retained), or malloc as it is (system)")
    parser.add_argument("--repeats", type=int, default=1, help="calls per process: the first is timed cold, the others warm")
    parser.add_argument("--rounds", type=int, default=1, help="run every row this many times, interleaved, and report medians")
    parser.add_argument("--child", help=argparse.SUPPRESS)  # measure()'s arguments as JSON
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(**json.loads(args.child))))
        return

    specs = []
    runs = [(method, weights) for method in args.methods for weights in ((args.weights or [None]) if method == "learned" else [None])]
    for allocator, megapixels in [(a, m) for a in args.allocators for m in args.sizes]:
        for method, weights in runs:
            common = dict(
                megapixels=megapixels, method=method, bits=args.bits, weights=weights, device=args.device, allocator=allocator, repeats=args.repeats
            )
            checks = [c == "on" for c in args.self_checks]
            variants = [(1, args.precisions[0] if method == "learned" else "auto", checks[0])]  # precision: learned only
            if method == "learned":
                variants += [(1, p, checks[0]) for p in args.precisions[1:]] + [(e, args.precisions[0], checks[0]) for e in args.ensembles if e != 1]
                variants += [(1, args.precisions[0], c) for c in checks[1:]]
            for ensemble, precision, check in variants:
                specs.append(dict(common, ensemble=ensemble, precision=precision, self_check=check))
            if megapixels == 12:  # one whole-image tile
                specs.append(dict(common, tile=max(SIZES[12]), precision=args.precisions[0]))
    measured: list[list[dict]] = [[] for _ in specs]
    for _ in range(args.rounds):
        for spec, results in zip(specs, measured):
            results.append(run_child(**spec))
    rows = [_median_row(results) for results in measured]
    header = f"{'MP':>6} {'method':>9} {'weights':>24} {'ens':>4} {'check':>5} {'precision':>9} {'tile':>8} {'malloc':>8} {'s':>8}"
    print(header + f" {'MPix/s':>8} {'warm MPix/s':>12} {'peak RSS MiB':>13}")
    for row in rows:
        print(
            f"{row['megapixels']:6.1f} {row['method']:>9} {Path(row['weights']).name[-24:]:>24} {row['ensemble']:>4} "
            f"{str(row['self_check']):>5} {row['precision']:>9} {str(row['tile']):>8} {row['allocator']:>8} {row['seconds']:8.2f} {row['mpix_per_s']:8.2f} "
            f"{row['warm_mpix_per_s'] or float('nan'):12.2f} {row['peak_rss_mib']:13.0f}"
        )
    ratios = {}
    for method, weights in runs:  # the first tiled row of each run is the first precision, one pass: as the whole-image row
        mine = [r for r in rows if r["method"] == method and r["weights"] == (weights or "default") and r["allocator"] == args.allocators[0]]
        tiled = [r for r in mine if r["tile"] == "default" and r["megapixels"] < 20 and r["ensemble"] == 1]
        whole = [r for r in mine if r["tile"] != "default"]
        if tiled and whole:
            name = method if weights is None else f"{method} ({Path(weights).name})"
            ratios[name] = whole[0]["seconds"] / tiled[0]["seconds"]
            print(f"{name}: whole-image time / tiled time at 12 MP = {ratios[name]:.2f}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    report = {
        "benchmark": "upscale_depth",
        "machine": {"cpu_count": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()},
        "rows": rows,
        "whole_over_tiled_time": ratios,
    }
    args.out.write_text(json.dumps(report, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
