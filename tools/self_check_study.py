"""How the learned dequantizer's self-check was chosen: its rules scored on training-side images.

For every image of the depth suite's categories, built from the files on the *training* side of the
dequantizer's split (``--side tune``: photos, panoramas and SICE merges the shipped model trained on, never the
held-out ones) or from the held-out suite itself (``--side suite``, to report, not to choose), this runs the
shipped network once at full depth and once on the input decimated 2x2 and quantized one bit coarser, both
without the self-check, keeps per-block sums, and scores every rule ``alpha = clip(1/2 + gain_dB / ramp, 0, 1)``
over blocks of 32, 64 or 128 px, constant per block or interpolated between block centres, and the rules that
scale the offsets by the check's least-squares fit of its own offsets to the input (``fit``: per block, or one
scale for the image; ``fit*gain``: both). Prints mean / worst image / images below -0.05 dB per category and
writes JSON.

    python tools/sice_merges.py --sice ../shared/data/sice --out /tmp/sice_merged      # training-side merges
    python tools/self_check_study.py --side tune --out /tmp/self_check_tune.json        # 1 to 4 minutes
    python tools/self_check_study.py --side tune --decimation 2 --out /tmp/self_check_tune_2.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

import depth_suite as suite  # noqa: E402

from bdx.depth import DepthSettings, upscale_depth  # noqa: E402
from bdx.io import Image  # noqa: E402
from bdx.training.data import is_validation  # noqa: E402

DECIMATION = 4  # as bdx.dequant.self_check (--decimation 2 for the other design measured)
RULES: list[tuple] = [(block, ramp, smooth) for block in (32, 64, 128) for ramp in (0.25, 0.5, 1.0, "fit", "fit*gain")
                      for smooth in (False, True)] + [("image", "fit", False)]


def training_side(merges: Path) -> None:
    """Point the suite's sources at files the shipped dequantizer trained on."""
    photos = sorted(p for p in (suite.SHARED / "photos").glob("*.jpg") if not is_validation(p.name, suite.HELDOUT_FRACTION))
    panoramas = sorted(p for p in (suite.SHARED / "hdr").rglob("*.exr") if not is_validation(p.name, suite.HELDOUT_FRACTION))
    merged = sorted(p for p in merges.glob("sice_*.exr") if not is_validation(p.name, suite.HELDOUT_FRACTION))
    suite.heldout_photos = lambda: photos[:12]
    suite.heldout_panoramas = lambda: panoramas[:8]
    suite.real_high_bit_photos = lambda: []
    suite.heldout_merges = lambda folder, count: merged[::12][:8]


def block_sums(values: np.ndarray, size: int) -> np.ndarray:
    height, width = values.shape
    padded = np.zeros((-(-height // size) * size, -(-width // size) * size))
    padded[:height, :width] = values
    return padded.reshape(padded.shape[0] // size, size, padded.shape[1] // size, size).sum((1, 3))


def measure(case: suite.Case) -> dict:
    """Per 8x8 block: sums of o*o, o*t, t*t (o: network offset, t: truth offset, both from the bin centre), and
    per 4x4 block of the decimated check: squared errors of its restoration and of its bin centre."""
    bits, codes = case.bits, case.codes
    top = (1 << 8 * codes.dtype.itemsize) - 1
    unchecked = DepthSettings(in_bits=bits, self_check=False)
    image = Image(codes, significant_bits=bits if bits < 8 * codes.dtype.itemsize else None)
    out = upscale_depth(image, settings=unchecked).image.pixels / 65535.0
    value = np.rint(codes / top * ((1 << bits) - 1)) / ((1 << bits) - 1)
    offset, truth = (out - value).transpose(2, 0, 1), (case.truth - value).transpose(2, 0, 1)
    small = value[::DECIMATION, ::DECIMATION]
    coarse = suite.quantize(small.astype(np.float32), bits - 1, 8)
    checked = DepthSettings(in_bits=bits - 1, self_check=False)
    restored = upscale_depth(Image(coarse, significant_bits=bits - 1), settings=checked).image.pixels / 65535.0
    centre = np.rint(small * ((1 << (bits - 1)) - 1)) / ((1 << (bits - 1)) - 1)
    return {
        "category": case.category, "name": case.name, "bits": bits,
        "oo": block_sums((offset * offset).sum(0), 8), "ot": block_sums((offset * truth).sum(0), 8),
        "tt": block_sums((truth * truth).sum(0), 8),
        "restored": block_sums(((restored - small) ** 2).sum(-1), 8 // DECIMATION),
        "centre": block_sums(((centre - small) ** 2).sum(-1), 8 // DECIMATION),
        "moved": block_sums(((restored - centre) ** 2).sum(-1), 8 // DECIMATION),
    }


def fitted_alpha(record: dict, factor: int | None) -> np.ndarray:
    """The check's least-squares scale of its offsets (the a minimising |a d - r|^2, d the check's offsets from its
    bin centre, r the input's), in [0, 1], per block of ``factor`` x ``factor`` cells, or for the whole image."""
    sums = {key: block_sums(record[key], factor) if factor else np.array([[record[key].sum()]])
            for key in ("centre", "restored", "moved")}
    across = (sums["moved"] + sums["centre"] - sums["restored"]) / 2  # sum of d r
    return np.clip(across / (sums["moved"] + 1e-12), 0, 1)


def alpha_map(record: dict, block: int | str, ramp: float | str, smooth: bool) -> np.ndarray:
    """Alpha per 8x8 cell: ``ramp`` a number for the gain rule, "fit" for :func:`fitted_alpha` (``block`` "image":
    one scale for the whole image), "fit*gain" for both multiplied."""
    height, width = record["oo"].shape
    if block == "image":
        return np.full((height, width), float(fitted_alpha(record, None)[0, 0]))
    assert isinstance(block, int)
    factor = block // 8
    gain = 10 * np.log10((block_sums(record["centre"], factor) + 1e-9) / (block_sums(record["restored"], factor) + 1e-9))
    if ramp == "fit":
        alpha = fitted_alpha(record, factor)
    elif ramp == "fit*gain":
        alpha = fitted_alpha(record, factor) * np.clip(0.5 + gain / 0.5, 0, 1)
    else:
        alpha = np.clip(0.5 + gain / float(ramp), 0, 1)
    if smooth:
        size = (alpha.shape[1] * factor, alpha.shape[0] * factor)
        return cv2.resize(alpha.astype(np.float32), size, interpolation=cv2.INTER_LINEAR)[:height, :width]
    return np.kron(alpha, np.ones((factor, factor)))[:height, :width]


def gain_db(record: dict, alpha: np.ndarray | float) -> float:
    error = (alpha * alpha * record["oo"] - 2 * alpha * record["ot"] + record["tt"]).sum()
    return float(10 * np.log10(record["tt"].sum() / error))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--side", choices=["tune", "suite"], default="tune")
    parser.add_argument("--merges", type=Path, help="SICE merges (default: /tmp/sice_merged for tune, /tmp/sice_heldout for suite)")
    parser.add_argument("--out", type=Path, default=Path("/tmp/self_check_study.json"))
    parser.add_argument("--decimation", type=int, default=4, choices=[2, 4], help="as bdx.dequant.self_check: 4")
    args = parser.parse_args()
    global DECIMATION
    DECIMATION = args.decimation
    merges = args.merges or Path("/tmp/sice_merged" if args.side == "tune" else "/tmp/sice_heldout")
    if args.side == "tune":
        training_side(merges)
    records = [measure(case) for case in suite.build_cases(merges, 8)]
    table: dict[str, dict[str, list[float]]] = {}
    for record in records:
        for rule in [None, *RULES]:
            use = rule is not None and record["bits"] >= 4  # the 4- and 6-bit rows show why the product checks from 8 bits
            gain = gain_db(record, alpha_map(record, *rule) if use else 1.0)
            table.setdefault(str(rule or "no check"), {}).setdefault(record["category"], []).append(gain)
    summary = {}
    for rule, categories in table.items():
        eight = [g for category, gains in categories.items() if "8->16" in category for g in gains]
        row = {"8->16": [float(np.mean(eight)), float(min(eight)), int(sum(g < -0.05 for g in eight))]}
        row.update({category: [float(np.mean(g)), float(min(g))] for category, g in sorted(categories.items())})
        summary[rule] = row
        cells = " | ".join(f"{c.replace(' 8->16', '')} {v[0]:+.3f}/{v[1]:+.2f}" for c, v in row.items() if c != "8->16")
        print(f"{rule:22s} 8->16 {row['8->16'][0]:+.3f} / {row['8->16'][1]:+.3f} / {row['8->16'][2]} below | {cells}")
    args.out.write_text(json.dumps({"side": args.side, "command": " ".join(sys.argv), "rules": summary}, indent=1))


if __name__ == "__main__":
    main()
