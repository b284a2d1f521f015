"""How much of the held-out suite's sub-bin error a linear filter of the codes predicts: two reference rows
for ``benchmarks/depth_suite.py``.

For every image of the chosen categories, the error of the bin centre (truth minus centre, in steps) is
predicted from the 7x7 neighbourhood of centre differences (clipped to +-3 steps; one filter for the three
channels) and clamped into the bin:

- ``own``: the filter fitted by least squares on the image's own truth. It knows the answer: a reference for how
  much of the error is linear in the neighbourhood, not a method;
- ``others``: the filter fitted on the other images of the same category (leave one out): a linear method
  learned from data, as a baseline for the network.

    python tools/depth_linear_reference.py --categories "photo 8->16" "real16 8->16" --out runs/linear_reference
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

import depth_suite  # noqa: E402

RADIUS = 3
CLIP_STEPS = 3.0


def neighbourhood(codes: np.ndarray) -> np.ndarray:
    """(H W, 49) design matrix of one channel (in steps): the 48 neighbours' differences from the pixel, and 1."""
    height, width = codes.shape
    padded = np.pad(codes, RADIUS, mode="edge")
    columns = [padded[RADIUS + dy : RADIUS + dy + height, RADIUS + dx : RADIUS + dx + width] - codes
               for dy in range(-RADIUS, RADIUS + 1) for dx in range(-RADIUS, RADIUS + 1) if dy or dx]
    differences = np.clip(np.stack(columns, -1).reshape(-1, len(columns)), -CLIP_STEPS, CLIP_STEPS)
    return np.concatenate([differences, np.ones((len(differences), 1), np.float32)], 1)


def design(case: depth_suite.Case) -> tuple[np.ndarray, np.ndarray]:
    """The design matrix and the bin-centre errors (in steps) of a case's three channels, stacked."""
    levels = (1 << case.bits) - 1
    top = (1 << (8 * case.codes.dtype.itemsize)) - 1
    codes = np.rint(case.codes.astype(np.float32) / top * levels)
    truth = case.truth * np.float32(levels)
    rows = [neighbourhood(codes[..., c]) for c in range(3)]
    errors = [(truth[..., c] - codes[..., c]).reshape(-1) for c in range(3)]
    return np.concatenate(rows), np.concatenate(errors)


def gain_db(x: np.ndarray, error: np.ndarray, coefficients: np.ndarray) -> float:
    predicted = np.clip(x @ coefficients, -0.5, 0.5)
    before = np.mean(error.astype(np.float64) ** 2)
    return float(10 * np.log10(before / np.mean((error - predicted).astype(np.float64) ** 2)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--categories", nargs="+", default=["photo 8->16", "real16 8->16"])
    parser.add_argument("--merges", type=Path, default=Path("/tmp/sice_heldout"))
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "linear_reference")
    args = parser.parse_args()
    cases = [c for c in depth_suite.build_cases(args.merges, 8) if c.category in args.categories]
    records = []
    for category in args.categories:
        members = [c for c in cases if c.category == category]
        systems = []
        for case in members:  # normal equations on every 7th row (the fit is the same to the second decimal)
            x, error = design(case)
            systems.append((x, error, x[::7].T @ x[::7], x[::7].T @ error[::7]))
        ridge = 1e-3 * np.eye(systems[0][2].shape[0]) if systems else None
        for i, (case, (x, error, gram, moment)) in enumerate(zip(members, systems)):
            own = np.linalg.solve(gram + ridge, moment)
            others = [s for j, s in enumerate(systems) if j != i]
            record = {"category": category, "name": case.name, "own": gain_db(x, error, own)}
            if others:
                learned = np.linalg.solve(sum(s[2] for s in others) + ridge, sum(s[3] for s in others))
                record["others"] = gain_db(x, error, learned)
            records.append(record)
            print(f"{category:20s} {case.name[:48]:48s} own {record['own']:+.2f} others {record.get('others', float('nan')):+.2f}",
                  flush=True)
    lines = ["| category | images | own filter (knows the truth): mean / worst | filter of the other images: mean / worst |",
             "|---|---:|---|---|"]
    for category in args.categories:
        rows = [r for r in records if r["category"] == category]
        if not rows:
            continue
        cells = []
        for key in ("own", "others"):
            values = [r[key] for r in rows if key in r]
            cells.append(f"{np.mean(values):+.2f} / {min(values):+.2f}" if values else "-")
        lines.append(f"| {category} | {len(rows)} | " + " | ".join(cells) + " |")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps({"command": " ".join(sys.argv), "images": records}, indent=1))
    args.out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
