"""Add (or replace) the model card of a trained weights file in weights/manifest.json.

Loads the file through bdx's registry (its task and architecture must be known), counts parameters, hashes the
file, and takes the rest from the options: the data in words, the training command, wall time and the held-out
figures (a JSON object that names its benchmark command). ``--default`` makes it what its task runs by default.

    python tools/manifest_entry.py weights/depth-contour-gated-v6.safetensors --task depth --default \\
        --data "..." --command "bdx train depth ..." --wall-time-min 95 --figures "$(cat figures.json)"
"""

from __future__ import annotations

import argparse
import hashlib
import json
from pathlib import Path

from bdx.models import TASKS, load_model, parameter_count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("weights", type=Path)
    parser.add_argument("--task", required=True, choices=TASKS)
    parser.add_argument("--data", required=True, help="the training data, in words (no local paths)")
    parser.add_argument("--command", required=True, help="the training command (all runs, in order)")
    parser.add_argument("--wall-time-min", type=float, required=True)
    parser.add_argument("--figures", required=True, help='JSON object of held-out figures, with a "benchmark" command')
    parser.add_argument("--note", default="")
    parser.add_argument("--default", action="store_true", help="make this file its task's default")
    parser.add_argument("--manifest", type=Path, default=Path("weights/manifest.json"))
    args = parser.parse_args()
    model = load_model(args.weights, args.task)
    figures = json.loads(args.figures)
    if "benchmark" not in figures:
        parser.error('--figures needs a "benchmark" entry: the command that measured them')
    card = {
        "file": args.weights.name, "task": args.task, "default": args.default, "architecture": model.architecture,
        "parameters": parameter_count(model.net), "sha256": hashlib.sha256(args.weights.read_bytes()).hexdigest(),
        "data": args.data, "command": args.command, "steps": model.metadata.get("steps"),
        "wall_time_min": args.wall_time_min, "figures": figures,
    }
    if args.note:
        card["note"] = args.note
    manifest = json.loads(args.manifest.read_text())
    cards = [c for c in manifest["models"] if c["file"] != card["file"]]
    if args.default:
        cards = [{**c, "default": False} if c["task"] == args.task else c for c in cards]
    manifest["models"] = cards + [card]
    args.manifest.write_text(json.dumps(manifest, indent=1) + "\n")
    print(f"{card['file']}: {card['parameters']} parameters, sha256 {card['sha256'][:16]}...")


if __name__ == "__main__":
    main()
