"""Where the learned dequantizer's time goes at 12 MP (8->16): contour prior, network, the rest.

Wraps the two stages with timers and runs ``bdx.depth.upscale_depth`` (default
weights, tiles, precision) on the 12 MP synthetic 8-bit scene of
``bench_upscale_depth.py``, ``--repeats`` times in one process. Prints each run and
writes JSON. The 5 MPix/s target leaves 2.4 s for the whole call.

    python benchmarks/depth_stages.py --repeats 2
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import bdx.dequant.learned as learned
from bdx.depth import upscale_depth
from bdx.io import Image
from bench_upscale_depth import SIZES, synthetic_scene

STAGES = {"contour prior": (learned, "contour_prior"), "network": (learned.DequantNet, "block_offsets")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "depth_stages.json")
    args = parser.parse_args()
    spent: dict[str, float] = {}
    for stage, (owner, name) in STAGES.items():
        original = getattr(owner, name)

        def timed(*a, _original=original, _stage=stage, **k):
            start = time.perf_counter()
            try:
                return _original(*a, **k)
            finally:
                spent[_stage] = spent.get(_stage, 0.0) + time.perf_counter() - start

        setattr(owner, name, timed)
    height, width = SIZES[12]
    image = Image(synthetic_scene(height, width, 8), significant_bits=8)
    runs = []
    for _ in range(args.repeats):
        spent.clear()
        start = time.perf_counter()
        result = upscale_depth(image, method="learned", device="cpu")
        total = time.perf_counter() - start
        run = {**{f"{s}_seconds": spent.get(s, 0.0) for s in STAGES}, "total_seconds": total,
               "rest_seconds": total - sum(spent.values()), "mpix_per_s": height * width / 1e6 / total,
               "precision": result.precision}
        runs.append(run)
        print(json.dumps({k: round(v, 2) if isinstance(v, float) else v for k, v in run.items()}), flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"megapixels": height * width / 1e6, "in_bits": 8, "runs": runs}, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
