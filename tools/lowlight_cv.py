"""Cross-validation of low-light curve-network designs on the training pairs (never the test pairs).

The training pairs of ``tools/sice_split.py`` are split into folds by a hash of the reference frame's name
(a stack's frames stay in one fold); each design is trained from scratch on all folds but one and scored on
that one: mean and worst per-image PSNR of the curves alone at the frames' loaded size (256 px), the network
run at its context size as at inference. This is how the image-wide branch and the three members of lowlight-curvenet-v5 were chosen:

    python tools/lowlight_cv.py --pairs <train_pairs.json> --designs plain global global-ctx32 --steps 3000

``--members 3`` trains three networks per fold (seeds differ) and scores the mean maps of the first one, two
and three: with the image-wide design, 23.38, 23.56 and 23.65 dB over three folds.
"""

from __future__ import annotations

import argparse
import json
import zlib
from pathlib import Path

import numpy as np
import torch

from bdx.lowlight.models import CurveNet, CurveNetConfig
from bdx.training.lowlight import load_pairs, pair_errors, reference_loss, sample_pairs

DESIGNS = {
    "plain": CurveNetConfig(context_size=16),
    "global": CurveNetConfig(context_size=16, global_context=True),
    "global-ctx32": CurveNetConfig(context_size=32, global_context=True),
    "global-w24": CurveNetConfig(width=24, context_size=16, global_context=True),
}


def fold_of(name: str, folds: int) -> int:
    """The fold of a pair, by a hash of its reference frame's name."""
    return zlib.crc32(name.encode()) % folds


def psnrs(net: CurveNet, pairs: list) -> list[float]:
    """Per-pair PSNR of the curves alone."""
    return [-10 * float(np.log10(e)) for e in pair_errors(net, pairs, net.config.context_size, 1.0)]


class Averaged(torch.nn.Module):
    """Curve networks of one design whose maps are averaged."""

    def __init__(self, nets: list[CurveNet]) -> None:
        super().__init__()
        self.nets, self.config = torch.nn.ModuleList(nets), nets[0].config

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.stack([net(x) for net in self.nets]).mean(0)


class Flipped(torch.nn.Module):
    """A curve network's maps averaged over the four flips of its input (each flipped back)."""

    def __init__(self, net: torch.nn.Module) -> None:
        super().__init__()
        self.net, self.config = net, net.config

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        flips = ((), (-1,), (-2,), (-2, -1))
        return torch.stack([self.net(x.flip(f)).flip(f) if f else self.net(x) for f in flips]).mean(0)


def train(config: CurveNetConfig, pairs: list, steps: int, lr: float, seed: int) -> CurveNet:
    """The recipe of ``bdx train lowlight --pairs`` (batch 8, psnr loss), with a one-cycle schedule."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    net = CurveNet(config)
    optimizer = torch.optim.Adam(net.parameters(), lr=lr)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, lr, total_steps=steps, pct_start=0.05)
    for _ in range(steps):
        dark, reference = sample_pairs(pairs, 8, rng)
        loss = reference_loss(net, dark, reference, config.context_size, 1.0)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        schedule.step()
    return net.eval()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=Path, required=True, help="train_pairs.json of tools/sice_split.py")
    parser.add_argument("--designs", nargs="+", choices=sorted(DESIGNS), default=["plain", "global"])
    parser.add_argument("--folds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--members", type=int, default=1, help="networks per fold (seeds); their mean maps are scored too")
    parser.add_argument("--flips", action="store_true", help="also score each mean map averaged over the input's four flips")
    parser.add_argument("--train-dark-mean", type=float, help="train only on pairs whose dark frame's mean is below this")
    parser.add_argument("--score-dark-mean", type=float, default=0.15,
                        help="also score the held pairs whose dark frame's mean is below this (the benchmark's test pairs: 0.15)")
    parser.add_argument("--out", type=Path, help="JSON report")
    args = parser.parse_args()
    loaded = load_pairs(args.pairs, 256)
    if args.train_dark_mean is not None:
        print(f"training on {sum(float(d.mean()) < args.train_dark_mean for _, d, _ in loaded)} of {len(loaded)} pairs", flush=True)
    report = {}
    for design in args.designs:
        rows = []
        for k in range(args.folds):
            train_side = [(d, r) for name, d, r in loaded if fold_of(name, args.folds) != k
                          and (args.train_dark_mean is None or float(d.mean()) < args.train_dark_mean)]
            held = [(d, r) for name, d, r in loaded if fold_of(name, args.folds) == k]
            dark = [(d, r) for d, r in held if float(d.mean()) < args.score_dark_mean]
            nets = [train(DESIGNS[design], train_side, args.steps, args.lr, seed=10 * (m + 1) + k) for m in range(args.members)]
            row: dict = {"fold": k, "pairs": len(held)}
            for m in range(1, args.members + 1):  # the first network alone, then the mean maps of the first m
                scores = psnrs(Averaged(nets[:m]), held)
                dark_scores = psnrs(Averaged(nets[:m]), dark) if dark else [float("nan")]
                row[f"members_{m}"] = {"psnr_mean": float(np.mean(scores)), "psnr_worst": float(np.min(scores)),
                                       "dark_pairs": len(dark), "dark_psnr_mean": float(np.mean(dark_scores))}
                print(f"{design:14s} fold {k}, {m} network(s): {np.mean(scores):.2f} dB (worst {np.min(scores):.2f}); "
                      f"{len(dark)} dark pairs {np.mean(dark_scores):.2f} dB", flush=True)
                if args.flips:
                    scores = psnrs(Flipped(Averaged(nets[:m])), held)
                    dark_scores = psnrs(Flipped(Averaged(nets[:m])), dark) if dark else [float("nan")]
                    row[f"members_{m}_flips"] = {"psnr_mean": float(np.mean(scores)), "psnr_worst": float(np.min(scores)),
                                                 "dark_pairs": len(dark), "dark_psnr_mean": float(np.mean(dark_scores))}
                    print(f"{design:14s} fold {k}, {m} network(s) + flips: {np.mean(scores):.2f} dB (worst {np.min(scores):.2f}); "
                          f"{len(dark)} dark pairs {np.mean(dark_scores):.2f} dB", flush=True)
            rows.append(row)
        report[design] = {"folds": rows}
        for m in [f"{m}{tag}" for m in range(1, args.members + 1) for tag in ("", "_flips") if tag == "" or args.flips]:
            report[design][f"members_{m}_psnr_mean"] = float(np.mean([r[f"members_{m}"]["psnr_mean"] for r in rows]))
            report[design][f"members_{m}_dark_psnr_mean"] = float(np.mean([r[f"members_{m}"]["dark_psnr_mean"] for r in rows]))
            print(f"{design:14s} {m} network(s), mean over folds: {report[design][f'members_{m}_psnr_mean']:.2f} dB, "
                  f"dark pairs {report[design][f'members_{m}_dark_psnr_mean']:.2f} dB", flush=True)
    if args.out:
        args.out.write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
