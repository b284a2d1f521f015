"""Study: the HDR curve head with one tone curve per image instead of one per 4x4 block.

Runs the default ``ldr2hdr`` network on the HDR suite's references (benchmarks/hdr_suite.py: four camera curves
and the real SICE frames) as one whole-image tile, with its per-block curve knots as they are and replaced by
their median over the image (``all``), over every knot but the last (``lo``: the highlight knot stays local) or
the last two (``lo2``), and prints per curve the mean gain over the naive inverse sRGB curve, the worst gain,
how many images fall more than 0.5 dB below naive and the clipped pixels' bias in stops.

    python tools/sice_merges.py --sice ../shared/data/sice --out /tmp/sice_heldout --heldout
    python tools/hdr_global_curve.py            # about 15 minutes on 2 threads
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import hdr_suite as suite  # noqa: E402

import bdx.hdr.models as hdr_models  # noqa: E402
from bdx.hdr.reconstruct import HdrSettings, ldr_to_hdr  # noqa: E402
from bdx.io import Image  # noqa: E402
from bdx.metrics import trusted_pixels  # noqa: E402
from bdx.models import load_model  # noqa: E402

VARIANTS = ["per block", "all", "lo", "lo2"]


def main() -> None:
    torch.set_num_threads(2)
    per_block = hdr_models._curve_correction
    mode = {"variant": "per block"}

    def correction(knots: torch.Tensor, highlight: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        if mode["variant"] == "per block":
            return per_block(knots, highlight, x)
        shared = knots.flatten(2).median(dim=2).values[:, :, None, None].expand_as(knots).clone()
        local = {"all": 0, "lo": 1, "lo2": 2}[mode["variant"]]
        if local:
            shared[:, -local:] = knots[:, -local:]
        return per_block(shared, highlight, x)

    hdr_models._curve_correction = correction
    weights = suite.default_weights("hdr")
    net = load_model(weights, "hdr")
    merges = Path("/tmp/sice_heldout")
    rows = []

    def score(name: str, curve: str, codes: np.ndarray, reference: np.ndarray, trusted: np.ndarray) -> None:
        ldr = codes.astype(np.float32) / 255
        record = {"naive": suite.measure(suite.srgb_to_linear(ldr), reference, ldr, trusted)}
        for variant in VARIANTS:
            mode["variant"] = variant
            prediction = ldr_to_hdr(Image(codes), net, HdrSettings(method="learned", tile=4096), device="cpu").image.pixels
            record[variant] = suite.measure(prediction, reference, ldr, trusted)
        rows.append((curve, record))
        gains = " ".join(f"{v} {record[v]['psnr_mu'] - record['naive']['psnr_mu']:+.2f}" for v in VARIANTS)
        print(f"{name:28s} {curve:10s} {gains}", flush=True)

    for name, linear, trusted in suite.references(weights, merges, 8):
        exposed = linear * np.float32(2**suite.STOPS_OVER)
        for curve, function in suite.CURVES.items():
            codes = np.clip(np.rint(function(exposed) * 255), 0, 255).astype(np.uint8)
            score(name, curve, codes, exposed * np.float32(0.18), trusted)
    for name, codes, reference in suite.camera_frames(weights, merges, suite.SHARED / "sice"):
        score(name, suite.REAL_CAMERA, codes, reference, trusted_pixels(reference))
    for curve in [*suite.CURVES, suite.REAL_CAMERA, "all"]:
        chosen = [record for c, record in rows if curve in ("all", c)]
        line = f"{curve:10s} n={len(chosen):3d}"
        for variant in VARIANTS:
            gains = [r[variant]["psnr_mu"] - r["naive"]["psnr_mu"] for r in chosen]
            bias = [r[variant]["clipped_bias_stops"] for r in chosen if r[variant]["clipped_bias_stops"] is not None]
            line += f" | {variant}: {np.mean(gains):+.2f} / {min(gains):+.2f} / {sum(g < -0.5 for g in gains)} bias {np.mean(bias):+.2f}"
        print(line)


if __name__ == "__main__":
    main()
