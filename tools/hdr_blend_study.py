"""Study: can image statistics tell when ``ldr2hdr``'s network should lean towards the naive inverse sRGB curve?

On the HDR suite the default network falls more than 0.5 dB below the naive curve on a few images, most of them
rendered through a plain sRGB clip, where the naive curve is exact below the clip point. This study asks whether a
per-image blend ``exp(alpha * log(learned) + (1 - alpha) * log(naive * s))`` (``s`` matches the naive curve to the
network over well-exposed pixels; alpha = 1 is the network as shipped, 0 the naive curve) chosen from features of
the image could remove those losses without costing the other images.

``--render`` scores training-side images only (the HDR weights' ``train_files``): each panorama through six and each
SICE merge through two random training cameras (:func:`bdx.hdr.tonemap.random_camera`, exposure as in training),
and one real camera frame per training-side SICE stack against its merge (clipped share nearest 5 %). Per image it
stores the PSNR-mu gain over naive at alpha 0, 0.25, 0.5, 0.75, 1 and features: the histogram of the largest
channel near white and black, the share of clipped pixels, how far below white the pixels bordering clipped
regions sit (a hard clip leaves a gap, a shoulder does not), and the network's own boost over the naive curve in
code bands. ``--evaluate`` picks alpha per image by five-fold cross-validation grouped by scene (ridge regression
of the gains, k nearest neighbours) and by a hard-clip rule, and prints the mean gain, images below naive by more
than 0.5 dB and the worst image against alpha = 1.

    python tools/sice_merges.py --sice ../shared/data/sice --out /tmp/sice_merged
    python tools/hdr_blend_study.py --render --out /tmp/hdr_blend.json     # about 8 minutes on 2 threads
    python tools/hdr_blend_study.py --evaluate --out /tmp/hdr_blend.json
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

import hdr_suite as suite  # noqa: E402

from bdx.assets import default_weights  # noqa: E402
from bdx.color import luminance, srgb_to_linear  # noqa: E402
from bdx.hdr.tonemap import random_camera  # noqa: E402
from bdx.io import read_image  # noqa: E402
from bdx.metrics import fit_scale, psnr_mu, trusted_pixels, well_exposed_pixels  # noqa: E402
from bdx.models import load_model  # noqa: E402
from bdx.training.hdr import expose  # noqa: E402

ALPHAS = np.linspace(0.0, 1.0, 5)
MAX_PIXELS = 300_000
FOLDS = 5


def blend(learned: np.ndarray, naive: np.ndarray, codes: np.ndarray, alpha: float) -> np.ndarray:
    """The log-domain blend of the module's docstring."""
    well = well_exposed_pixels(codes.astype(np.float32) / 255)
    scale = np.median(luminance(learned)[well]) / max(float(np.median(luminance(naive)[well])), 1e-9) if well.sum() > 100 else 1.0
    return np.exp(alpha * np.log(np.maximum(learned, 1e-7)) + (1 - alpha) * np.log(np.maximum(naive * scale, 1e-7)))


def features(codes: np.ndarray, learned: np.ndarray) -> dict[str, float]:
    """Whole-image statistics of the 8-bit ``codes`` and of the network's boost over the naive curve."""
    top = codes.max(axis=-1).astype(np.int32)
    clipped = top >= 255
    out = {"p255": float(clipped.mean())}
    for low, high in [(250, 254), (240, 249), (220, 239), (180, 219), (0, 9), (10, 39)]:
        out[f"p{low}_{high}"] = float(((top >= low) & (top <= high)).mean())
    out["shoulder_ratio"] = out["p250_254"] / (out["p250_254"] + out["p255"] + 1e-4)
    border = cv2.dilate(clipped.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool) & ~clipped
    out["border_gap"] = float(np.median(255 - top[border])) / 255 if border.sum() > 20 else 0.0
    out["border_share"] = float(border.sum() / max(int(clipped.sum()), 1))
    naive = srgb_to_linear(codes.astype(np.float32) / 255)
    boost = np.log2(np.maximum(luminance(learned), 1e-7) / np.maximum(luminance(naive), 1e-7))
    middle = (top >= 100) & (top <= 180)
    reference = float(np.median(boost[middle] if middle.sum() > 100 else boost))
    for low, high in [(10, 40), (41, 99), (181, 230), (231, 254), (255, 255)]:
        band = (top >= low) & (top <= high)
        out[f"boost{low}_{high}"] = float(np.median(boost[band]) - reference) if band.sum() > 100 else 0.0
    return out


def render(out: Path, merges: Path, limit: int | None) -> None:
    path = default_weights("hdr")
    model = load_model(path, "hdr")
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as handle:
        train = json.loads(handle.metadata()["train_files"])
    rng = np.random.default_rng(123)
    rows: list[dict] = []

    def score(name: str, family: str, codes: np.ndarray, reference: np.ndarray, trusted: np.ndarray) -> None:
        well = well_exposed_pixels(codes.astype(np.float32) / 255) & trusted
        if well.sum() < 1000:
            return
        naive, learned = suite.predict("naive", codes), suite.predict("learned", codes, model)
        base = psnr_mu(fit_scale(naive, reference, well)[trusted], reference[trusted])
        gains = [psnr_mu(fit_scale(blend(learned, naive, codes, a), reference, well)[trusted], reference[trusted]) - base for a in ALPHAS]
        rows.append({"name": name, "family": family, "gains": gains, "features": features(codes, learned)})
        print(len(rows), name, family, " ".join(f"{g:+.2f}" for g in gains), flush=True)

    for name in train[:limit]:
        file = merges.parent / name if name.startswith("sice_merged/") else suite.SHARED / "hdr" / name
        linear, trusted = suite.load_reference(file, MAX_PIXELS)
        for _ in range(2 if name.startswith("sice") else 6):
            camera = random_camera(rng)
            exposed = linear * np.float32(expose(linear, rng.uniform(85, 99.5)))
            score(name, camera.family, np.clip(np.rint(camera(exposed) * 255), 0, 255).astype(np.uint8), exposed, trusted)
    frames: dict[str, list[Path]] = {}
    for pair in json.loads((merges / "pairs.json").read_text()) if limit is None else []:
        frames.setdefault(pair["reference"], []).append(Path(pair["input"]))
    for reference_name, inputs in frames.items():
        if f"sice_merged/{reference_name}" not in train:
            continue
        reference = np.clip(np.nan_to_num(read_image(merges / reference_name).pixels.astype(np.float32))[..., :3], 0, None)
        chosen = suite.choose_frame(inputs, reference.shape[:2])
        if chosen:
            path, codes = chosen
            linear = reference[: codes.shape[0], : codes.shape[1]]
            score(str(path), "camera", codes, linear, trusted_pixels(linear))
    out.write_text(json.dumps({"alphas": ALPHAS.tolist(), "rows": rows}))


def evaluate(out: Path) -> None:
    data = json.loads(out.read_text())
    rows = data["rows"]
    gains = np.array([r["gains"] for r in rows])
    family = np.array([r["family"] for r in rows])
    keys = list(rows[0]["features"])
    x = np.array([[r["features"][k] for k in keys] for r in rows])
    folds = np.array([sum(map(ord, Path(r["name"]).stem)) % FOLDS for r in rows])
    relative = gains - gains[:, -1:]
    shipped = gains[:, -1]

    def report(label: str, choice: np.ndarray) -> None:
        real = gains[np.arange(len(gains)), choice]
        plain = family == "plain"
        print(
            f"{label:34s} mean {real.mean():+.2f} (alpha 1: {shipped.mean():+.2f}), below naive by > 0.5 dB {int((real < -0.5).sum())} "
            f"({int((shipped < -0.5).sum())}), worst {real.min():+.2f} ({shipped.min():+.2f}), plain {real[plain].mean():+.2f} "
            f"({shipped[plain].mean():+.2f}), alpha changed on {np.mean(choice != len(ALPHAS) - 1):.0%}"
        )

    def cross_validated(predict) -> np.ndarray:
        predicted = np.zeros_like(relative)
        for fold in range(FOLDS):
            train, test = folds != fold, folds == fold
            mean, std = x[train].mean(0), x[train].std(0) + 1e-9
            predicted[test] = predict((x[train] - mean) / std, relative[train], (x[test] - mean) / std)
        return predicted

    def ridge(lam: float):
        def predict(xt: np.ndarray, yt: np.ndarray, xs: np.ndarray) -> np.ndarray:
            z = np.c_[np.ones(len(xt)), xt]
            weights = np.linalg.solve(z.T @ z + lam * np.diag([0.0] + [1.0] * xt.shape[1]), z.T @ yt)
            return np.c_[np.ones(len(xs)), xs] @ weights

        return predict

    def neighbours(k: int):
        def predict(xt: np.ndarray, yt: np.ndarray, xs: np.ndarray) -> np.ndarray:
            nearest = np.argsort(((xs[:, None] - xt[None]) ** 2).sum(-1), axis=1)[:, :k]
            return np.median(yt[nearest], axis=1)

        return predict

    print(f"{len(rows)} training-side images; per family, mean gain over naive at alpha {ALPHAS.tolist()}:")
    for name in sorted(set(family)):
        print(f"  {name:9s} {int((family == name).sum()):3d}  " + " ".join(f"{g:+.2f}" for g in gains[family == name].mean(0)))
    report("alpha 1 (as shipped)", np.full(len(rows), len(ALPHAS) - 1))
    report("oracle (the truth picks alpha)", gains.argmax(1))
    for margin in (0.0, 1.0):
        for lam in (1.0, 10.0, 100.0):
            predicted = cross_validated(ridge(lam))
            predicted[:, -1] = margin
            report(f"ridge {lam:g}, margin {margin:g} dB", predicted.argmax(1))
        for k in (5, 15, 40):
            predicted = cross_validated(neighbours(k))
            predicted[:, -1] = margin
            report(f"{k} nearest, margin {margin:g} dB", predicted.argmax(1))
    hard_clip = (x[:, keys.index("shoulder_ratio")] < 0.1) & (x[:, keys.index("border_gap")] > 0.04) & (x[:, keys.index("p255")] > 0.005)
    report("hard clip -> alpha 0.5", np.where(hard_clip, 2, len(ALPHAS) - 1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--render", action="store_true", help="score the training-side images (slow)")
    parser.add_argument("--evaluate", action="store_true", help="choose alpha per image, cross-validated")
    parser.add_argument("--merges", type=Path, default=Path("/tmp/sice_merged"), help="training-side SICE merges")
    parser.add_argument("--limit", type=int, help="only this many references, no camera frames (a quick check)")
    parser.add_argument("--out", type=Path, default=Path("/tmp/hdr_blend.json"))
    args = parser.parse_args()
    if not (args.render or args.evaluate):
        parser.error("give --render, --evaluate or both")
    if args.render:
        render(args.out, args.merges, args.limit)
    if args.evaluate:
        evaluate(args.out)


if __name__ == "__main__":
    main()
