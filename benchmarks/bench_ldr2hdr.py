"""Throughput and peak memory of ``ldr2hdr`` at 12 MP on 2 threads (library call, one process).

A synthetic smooth 12 MP 8-bit scene with mild noise; rows: the default learned model with and without the
dequantizing front end, and ``--method classical``, timed in the same run (with ``--compare``, more learned
weights without the front end). Freed memory is kept for reuse, as the ``bdx`` command keeps it. Writes JSON.

    python benchmarks/bench_ldr2hdr.py          # writes benchmarks/results/bench_ldr2hdr.json
    python benchmarks/bench_ldr2hdr.py --weights new.safetensors --out /tmp/bench_new.json
"""

from __future__ import annotations

import argparse
import json
import resource
import time
from pathlib import Path

import numpy as np
import torch

from bdx.hdr.reconstruct import HdrSettings, ldr_to_hdr
from bdx.io import Image


def scene(height: int = 3000, width: int = 4000) -> Image:
    """A smooth 8-bit gradient scene with mild noise."""
    rng = np.random.default_rng(0)
    y = np.linspace(0, 1, height, dtype=np.float32)[:, None, None]
    x = np.linspace(0, 1, width, dtype=np.float32)[None, :, None]
    pixels = np.clip(0.3 + 0.6 * x * y + rng.normal(0, 0.01, (height, width, 3)).astype(np.float32), 0, 1)
    return Image(np.rint(pixels * 255).astype(np.uint8))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "bench_ldr2hdr.json")
    parser.add_argument("--weights", type=Path, help="learned weights (default: the shipped ones)")
    parser.add_argument("--compare", type=Path, nargs="*", default=[], help="more learned weights, timed without the front end")
    args = parser.parse_args()
    torch.set_num_threads(2)
    from bdx.memory import retain_freed_memory
    from bdx.models import load_model

    retain_freed_memory()  # as the bdx command does

    image = scene()
    megapixels = image.width * image.height / 1e6
    model = load_model(args.weights, "hdr")
    rows = {"learned (default)": (model, HdrSettings()), "learned, no dequantization": (model, HdrSettings(dequantize="none")),
            "classical, no dequantization": (None, HdrSettings(method="classical", dequantize="none")),
            **{f"learned ({path.stem}), no dequantization": (load_model(path, "hdr"), HdrSettings(dequantize="none"))
               for path in args.compare}}
    result = {"weights": (args.weights.name if args.weights else "shipped")}
    for label, (net, settings) in rows.items():
        start = time.perf_counter()
        ldr_to_hdr(image, net, settings, device="cpu")
        seconds = time.perf_counter() - start
        result[label] = {"seconds": round(seconds, 2), "mpix_per_s": round(megapixels / seconds, 2)}
        print(f"{label:30s} {seconds:6.1f} s  {megapixels / seconds:.2f} MPix/s", flush=True)
    result["peak_rss_gib"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"megapixels": megapixels, "threads": 2, "torch": torch.__version__, **result}, indent=1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
