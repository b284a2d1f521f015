"""Held-out SICE stacks for low-light training and evaluation.

A stack is held out when the hash of its first frame number falls below
``--fraction``; only aligned stacks with a dark frame (mean < 0.15) and a
reference frame qualify as test pairs. Writes the names of every frame of the
held-out stacks (to pass to ``bdx train lowlight --exclude-from``) and a JSON of
test pairs (dark input, reference), and the training pairs of every other aligned
stack (each frame whose mean is below ``--train-dark-mean``, 0.3 by default, against the
stack's reference; paths relative to the file) for ``bdx train lowlight --pairs``.

    python tools/sice_split.py --sice ../shared/data/sice --out benchmarks/results/sice
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
from pathlib import Path

import cv2

DARK_MEAN = 0.15
TRAIN_DARK_MEAN = 0.3  # with only frames below 0.15, DICM photos clipped 5 % of their pixels instead of 2 %


def held_out(stack: dict, fraction: float) -> bool:
    digest = hashlib.sha256(str(stack["frames"][0]).encode()).digest()
    return int.from_bytes(digest[:4], "big") / 2**32 < fraction


def frame_mean(path: Path) -> float:
    return float(cv2.imread(str(path), cv2.IMREAD_COLOR).mean() / 255.0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sice", type=Path, default=Path("../shared/data/sice"))
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/sice"))
    parser.add_argument("--fraction", type=float, default=0.2)
    parser.add_argument("--train-dark-mean", type=float, default=TRAIN_DARK_MEAN, help="training frames darker than this")
    args = parser.parse_args()
    stacks = json.loads((args.sice / "sequences.json").read_text())
    excluded, pairs, training = [], [], []
    relative = lambda n: os.path.relpath(args.sice / f"{n}.jpg", args.out)  # noqa: E731
    for stack in stacks:
        if not held_out(stack, args.fraction):
            if stack.get("aligned") and stack.get("ref") is not None:
                training.extend(
                    {"input": relative(n), "reference": relative(stack["ref"])}
                    for n in stack["frames"] if n != stack["ref"] and frame_mean(args.sice / f"{n}.jpg") < args.train_dark_mean
                )
            continue
        excluded.extend(f"{n}.jpg" for n in stack["frames"])
        if not stack.get("aligned") or stack.get("ref") is None:
            continue
        means = {n: frame_mean(args.sice / f"{n}.jpg") for n in stack["frames"] if n != stack["ref"]}
        dark = [n for n, m in means.items() if m < DARK_MEAN]
        if dark:
            chosen = max(dark, key=means.get)  # the brightest frame that is still dark
            pairs.append({"input": f"{chosen}.jpg", "reference": f"{stack['ref']}.jpg", "input_mean": round(means[chosen], 4)})
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "heldout_frames.txt").write_text("\n".join(excluded) + "\n")
    (args.out / "test_pairs.json").write_text(json.dumps(pairs, indent=1))
    (args.out / "train_pairs.json").write_text(json.dumps(training, indent=1))
    print(f"{len(excluded)} frames held out; {len(pairs)} dark/reference test pairs, {len(training)} training pairs -> {args.out}")


if __name__ == "__main__":
    main()
