"""A depth network with fewer residual blocks, narrower levels or a 1x1 head, from a trained one: the start of a
fine-tune to a faster network.

Each level keeps the blocks named by number (the rest become the identity), for example the 1/4 level's two
blocks and the middle two of the 1/8 level's four:

    git show 007d0bc:weights/depth-contour-gated-v5.safetensors > depth-contour-gated-v5.safetensors
    python tools/prune_depth.py depth-contour-gated-v5.safetensors --keep 0,1 1,2 -o pruned.safetensors
    bdx train depth ... --init pruned.safetensors ...
    git show a061d9b:weights/depth-contour-gated-v7.safetensors > depth-contour-gated-v7.safetensors
    python tools/prune_depth.py depth-contour-gated-v7.safetensors --widths 32,64 --head-kernel 1 -o narrow.safetensors

``--report DATA...`` prints the training validation (4, 6 and 8 bits, on the split ``bdx train depth`` holds
out with ``--validation-fraction 0.3``) of the network before and after, to choose which blocks to keep.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import cast

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bdx.dequant.learned import HEAD_KERNELS, DequantNet, narrowed, without_blocks  # noqa: E402
from bdx.models import load_model, save_model  # noqa: E402
from bdx.training.depth import DepthTrainConfig, load_references, split_references, validation_gain  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("weights", type=Path)
    parser.add_argument("--keep", nargs="+", help="per level, the block numbers to keep (comma-separated)")
    parser.add_argument("--widths", help="channels per level, comma-separated (the first level's unchanged)")
    parser.add_argument("--head-kernel", type=int, choices=HEAD_KERNELS, help="1: a 1x1 head (the sum of the 3x3 head's taps)")
    parser.add_argument("-o", "--out", type=Path, required=True)
    parser.add_argument("--report", type=Path, nargs="*", default=[], help="training data folders: print validation before and after")
    args = parser.parse_args()
    if not (args.keep or args.widths or args.head_kernel):
        parser.error("give --keep, --widths or --head-kernel: what to remove")
    net = cast(DequantNet, load_model(args.weights, "depth").net)
    smaller, record = net, {"pruned_from": args.weights.name}
    if args.keep:
        keep = tuple(tuple(int(i) for i in level.split(",")) for level in args.keep)
        smaller = without_blocks(smaller, keep)
        record["kept_blocks"] = [list(level) for level in keep]
    if args.widths or args.head_kernel:
        widths = tuple(int(w) for w in args.widths.split(",")) if args.widths else smaller.config.widths
        smaller = narrowed(smaller, widths, args.head_kernel)
        record.update(widths=list(widths), head_kernel=smaller.config.head_kernel)
    save_model(smaller, args.out, record)
    print(f"{args.out}: {net.config} -> {smaller.config}")
    if args.report:
        _, held_out = split_references(load_references(args.report), 0.3)
        config = DepthTrainConfig(prior=net.config.prior)  # the networks are given: only the data settings are read
        for name, candidate in ((args.weights.name, net), (args.out.name, smaller)):
            gains = validation_gain(candidate.eval(), held_out, config)
            print(name, ", ".join(f"{key} {value:+.3f}" for key, value in gains.items()))


if __name__ == "__main__":
    main()
