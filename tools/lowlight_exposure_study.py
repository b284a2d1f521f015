"""Can the brightness of a SICE reference be predicted from its dark frame? A study behind enhance-lowlight.

The low-light benchmark's PSNR against the SICE references is limited by brightness: with a per-image gamma
fitted to the reference (an oracle) the default would gain about 2.3 dB. This asks whether a per-image gamma
predicted from simple statistics of the dark frame and of bdx's output (log mean, median and percentiles of
luminance, clipped share, contrast) captures any of that: a ridge regression of the oracle's log gamma is fitted
on the training pairs (five folds grouped by stack, so that frames of one scene never sit on both sides) and
scored there and on the held-out test pairs. Prints and writes JSON.

    python tools/sice_split.py --sice ../shared/data/sice --out /tmp/sice_split
    python tools/lowlight_exposure_study.py --train /tmp/sice_split/train_pairs.json --out /tmp/exposure.json   # ~4 min
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from bdx.io import read_image, to_float
from bdx.lowlight.enhance import EnhanceSettings, enhance_lowlight
from bdx.models import load_model

ROOT = Path(__file__).resolve().parents[1]
GAMMAS = np.exp(np.linspace(np.log(0.4), np.log(2.5), 60))
FEATURES = ["log mean out", "log median out", "log p90 out", "log p10 out", "log mean in", "log p99 in", "clipped out",
            "std out", "log median in"]
FEATURE_SETS = {"mean out": [0], "mean in": [4], "means": [0, 4], "output percentiles": [0, 1, 2, 3], "all": list(range(9))}


def score_pair(model, dark_path: Path, reference_path: Path) -> dict:
    """MSE of the output under every gamma of :data:`GAMMAS`, and the features."""
    dark = read_image(dark_path)
    reference = to_float(read_image(reference_path).pixels).astype(np.float64)
    out = to_float(enhance_lowlight(dark, model, EnhanceSettings(), device="cpu").image.pixels).astype(np.float64)
    errors = [float(np.mean((np.clip(out, 1e-6, 1) ** g - reference) ** 2)) for g in GAMMAS]
    lum, dark_lum = out.mean(-1), to_float(dark.pixels).astype(np.float64).mean(-1)
    features = [np.log(lum.mean()), np.log(np.median(lum) + 1e-3), np.log(np.percentile(lum, 90)),
                np.log(np.percentile(lum, 10) + 1e-3), np.log(dark_lum.mean()), np.log(np.percentile(dark_lum, 99) + 1e-3),
                float((lum > 0.95).mean()), float(lum.std()), np.log(np.median(dark_lum) + 1e-3)]
    return {"stack": str(reference_path), "errors": errors, "features": [float(f) for f in features]}


def load(pairs_file: Path, base: Path, model) -> list[dict]:
    return [score_pair(model, base / p["input"], base / p["reference"]) for p in json.loads(pairs_file.read_text())]


def psnr_at(records: list[dict], log_gammas: np.ndarray) -> tuple[float, float]:
    """Mean and worst PSNR with each record's gamma the grid's nearest to exp(log_gamma)."""
    values = [-10 * np.log10(r["errors"][int(np.argmin(np.abs(np.log(GAMMAS) - g)))]) for r, g in zip(records, log_gammas)]
    return float(np.mean(values)), float(np.min(values))


def ridge(x: np.ndarray, y: np.ndarray, strength: float):
    mean, scale = x.mean(0), x.std(0) + 1e-9
    design = np.c_[np.ones(len(x)), (x - mean) / scale]
    weights = np.linalg.solve(design.T @ design + strength * np.diag([0.0] + [1.0] * x.shape[1]), design.T @ y)
    return lambda z: np.c_[np.ones(len(z)), (z - mean) / scale] @ weights


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train", type=Path, required=True, help="train_pairs.json of tools/sice_split.py")
    parser.add_argument("--test", type=Path, default=ROOT / "benchmarks" / "results" / "sice" / "test_pairs.json")
    parser.add_argument("--sice", type=Path, default=ROOT.parent / "shared" / "data" / "sice")
    parser.add_argument("--out", type=Path, default=Path("/tmp/exposure_study.json"))
    args = parser.parse_args()
    model = load_model(None, "lowlight")
    train, test = load(args.train, args.train.parent, model), load(args.test, args.sice, model)
    best = lambda records: np.array([np.log(GAMMAS[int(np.argmin(r["errors"]))]) for r in records])  # noqa: E731
    rows = {"gamma 1 (default)": {"train": psnr_at(train, np.zeros(len(train))), "test": psnr_at(test, np.zeros(len(test)))},
            "oracle gamma per image": {"train": psnr_at(train, best(train)), "test": psnr_at(test, best(test))}}
    stacks = sorted({r["stack"] for r in train})
    fold_of = dict(zip(stacks, np.random.default_rng(0).integers(0, 5, len(stacks))))
    folds = np.array([fold_of[r["stack"]] for r in train])
    x_train, x_test = np.array([r["features"] for r in train]), np.array([r["features"] for r in test])
    y = best(train)
    for name, columns in FEATURE_SETS.items():
        predicted = np.zeros(len(train))
        for fold in range(5):
            fit = ridge(x_train[folds != fold][:, columns], y[folds != fold], 10.0)
            predicted[folds == fold] = fit(x_train[folds == fold][:, columns])
        fit = ridge(x_train[:, columns], y, 10.0)
        rows[f"ridge on {name}"] = {"train (5-fold, by stack)": psnr_at(train, predicted), "test": psnr_at(test, fit(x_test[:, columns]))}
    for name, row in rows.items():
        print(f"{name:30s} " + "  ".join(f"{k}: {v[0]:.2f} (worst {v[1]:.2f})" for k, v in row.items()))
    args.out.write_text(json.dumps({"command": "python tools/lowlight_exposure_study.py", "features": FEATURES, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
