"""Scene-linear HDR references from the aligned SICE stacks, for ``bdx train hdr``.

Each aligned stack is merged with :func:`bdx.hdr.merge.merge_brackets` (response
and exposure ratios estimated jointly; SICE files carry no exposure times). The
joint estimate has a power-law ambiguity, and on some stacks it settles on
implausible brackets (a median step of 6x, 2.6 EV, across 7 frames whose
brightest is nearly white). Only stacks whose median ratio between consecutive
frames lies in ``--ratio-range`` (default 1.4 to 4.5, about 0.5 to 2.2 EV, the
steps bracketing cameras offer) are written; the rest are listed as rejected.
Stacks held out for the low-light benchmark (``--exclude-from``) are skipped;
with ``--heldout`` only those are merged, as HDR references no model trained on.

    python tools/sice_merges.py --sice ../shared/data/sice --out /tmp/sice_merged
    python tools/sice_merges.py --sice ../shared/data/sice --out /tmp/sice_heldout --heldout

Writes ``<out>/sice_<first frame>.exr`` (float32) with its map of known pixels ``sice_<first frame>.known.png``
(0 where even the darkest frame is saturated, so the merge is only a lower bound of the truth: training and the
HDR benchmark leave those pixels out), ``<out>/merges.json`` and ``<out>/pairs.json``: every
frame of each merged stack against its merge, for ``bdx train hdr --pairs`` (real camera frames).
``--pairs-only`` writes ``pairs.json`` for merges made before, from their ``merges.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bdx.errors import InputError  # noqa: E402
from bdx.hdr.merge import merge_brackets  # noqa: E402
from bdx.io import Image, read_image, write_image  # noqa: E402
from bdx.training.hdr import write_known_truth  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sice", type=Path, default=Path("../shared/data/sice"))
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--exclude-from", type=Path, default=Path(__file__).resolve().parents[1] / "benchmarks" / "results" / "sice" / "heldout_frames.txt")
    parser.add_argument("--ratio-range", type=float, nargs=2, default=(1.4, 4.5))
    parser.add_argument("--heldout", action="store_true", help="merge only the held-out stacks")
    parser.add_argument("--pairs-only", action="store_true", help="only write pairs.json for the merges in --out")
    args = parser.parse_args()
    if args.pairs_only:
        write_pairs(args.out, args.sice, json.loads((args.out / "merges.json").read_text())["stacks"])
        return
    excluded = set(args.exclude_from.read_text().split()) if args.exclude_from else set()
    stacks = [s for s in json.loads((args.sice / "sequences.json").read_text()) if s.get("aligned")]
    args.out.mkdir(parents=True, exist_ok=True)
    records, started = [], time.perf_counter()
    for stack in stacks:
        names = [f"{n}.jpg" for n in stack["frames"]]
        record = {"first": stack["frames"][0], "frames": len(names)}
        if bool(excluded & set(names)) != args.heldout:
            records.append({**record, "status": "not heldout" if args.heldout else "held out"})
            continue
        try:
            merged = merge_brackets([read_image(args.sice / n).pixels for n in names])
        except InputError as error:  # e.g. a stack that holds one frame twice
            records.append({**record, "status": "rejected", "reason": str(error)})
            continue
        steps = np.diff(np.log(merged.times))
        ratio = float(np.exp(np.median(steps)))
        accepted = args.ratio_range[0] <= ratio <= args.ratio_range[1]
        record.update(median_step_ratio=round(ratio, 3), range_ev=round(float(np.log2(merged.times[-1])), 2),
                      peak=round(float(merged.linear.max()), 2), status="accepted" if accepted else "rejected")
        if accepted:
            reference = args.out / f"sice_{stack['frames'][0]}.exr"
            write_image(reference, Image(merged.linear, linear=True), fmt="exr", exr_half=False)
            write_known_truth(reference, ~merged.saturated)
            record["saturated_share"] = round(merged.saturated_share, 5)
        records.append(record)
    counts = {s: sum(r["status"] == s for r in records) for s in ("accepted", "rejected", "held out", "not heldout")}
    (args.out / "merges.json").write_text(json.dumps({"ratio_range": args.ratio_range, "counts": counts, "stacks": records}, indent=1))
    write_pairs(args.out, args.sice, records)
    print(f"{counts} in {time.perf_counter() - started:.0f} s -> {args.out}")


def write_pairs(out: Path, sice: Path, records: list[dict]) -> None:
    """``<out>/pairs.json``: each frame of every accepted stack (absolute path) against its merge."""
    frames = {s["frames"][0]: s["frames"] for s in json.loads((sice / "sequences.json").read_text())}
    pairs = [
        {"input": str((sice / f"{frame}.jpg").resolve()), "reference": f"sice_{record['first']}.exr"}
        for record in records
        if record.get("status") == "accepted" and (out / f"sice_{record['first']}.exr").is_file()
        for frame in frames[record["first"]]
    ]
    (out / "pairs.json").write_text(json.dumps(pairs, indent=1))
    print(f"{len(pairs)} frames of {len({p['reference'] for p in pairs})} merges -> {out / 'pairs.json'}")


if __name__ == "__main__":
    main()
