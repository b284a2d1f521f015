"""How the neutral-shadows step trades fidelity for neutral blacks, on training data only.

For the first ``--pairs`` training pairs of ``tools/sice_split.py`` whose dark frame is as dark as the benchmark's
test pairs (mean below 0.15): the default pipeline's PSNR against the reference frame, and the near-black
chroma of its output on the same dark frames (as ``benchmarks/lowlight_suite.py`` measures it on DICM), for
each noise floor ``sigma`` (8-bit codes; 0 turns the step off). The default's 2.5 codes was chosen here:

    python tools/lowlight_neutral_study.py --pairs <train_pairs.json> --sigmas 5 3.5 2.5 1.75 0
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

from bdx.evaluation import evaluate_lowlight
from bdx.io import read_image, to_float
from bdx.lowlight.enhance import CHROMA_SIGMA, EnhanceSettings, enhance_lowlight
from bdx.models import load_model

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from lowlight_suite import score_dicm  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=Path, required=True, help="train_pairs.json of tools/sice_split.py")
    parser.add_argument("--count", type=int, default=60)
    parser.add_argument("--sigmas", type=float, nargs="+", default=[5.0, 3.5, 2.5, 1.75, 0.0])
    args = parser.parse_args()
    torch.set_num_threads(2)
    model = load_model(None, "lowlight")
    chosen: list[tuple] = []
    for pair in json.loads(args.pairs.read_text()):
        path = (args.pairs.parent / pair["input"]).resolve()
        dark = read_image(path)
        if to_float(dark.pixels).mean() < 0.15 and path not in [c[0] for c in chosen]:
            chosen.append((path, dark, read_image((args.pairs.parent / pair["reference"]).resolve())))
        if len(chosen) == args.count:
            break
    for sigma in args.sigmas:
        settings = EnhanceSettings(neutral_shadows=sigma / 255 / CHROMA_SIGMA)
        psnrs = [evaluate_lowlight(enhance_lowlight(d, model, settings, device="cpu").image, r)["psnr"] for _, d, r in chosen]
        records = score_dicm((model, settings), [path for path, _, _ in chosen])
        chroma = [r["near_black_chroma"] for r in records if r["near_black_chroma"] is not None]
        print(f"sigma {sigma:4.2f} codes: pairs PSNR {np.mean(psnrs):.2f} dB ({len(psnrs)} pairs); near-black chroma mean "
              f"{np.mean(chroma):.4f}, worst {np.max(chroma):.4f} ({len(chroma)} frames)", flush=True)


if __name__ == "__main__":
    main()
