"""Add (or replace) a weights/manifest.json entry for a trained weights file.

Reads what the training run recorded in the file's metadata (architecture,
configuration, steps, how many training and validation files, last validation figures),
counts parameters, hashes the file, and merges the figures of an evaluation
JSON given with ``--eval``.

    python tools/manifest_entry.py weights/depth-contour-gated-v5.safetensors \\
        --command "bdx train depth ..." --training-data "..." --wall-time-min 95 --eval "$(cat figures.json)"
"""

from __future__ import annotations

import argparse
import hashlib
import json
from pathlib import Path

from safetensors import safe_open


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("weights", type=Path)
    parser.add_argument("--command", required=True, help="the exact training command (all runs, in order)")
    parser.add_argument("--training-data", required=True)
    parser.add_argument("--wall-time-min", type=float, required=True)
    parser.add_argument("--eval", default="{}", help="JSON object of evaluation figures reached")
    parser.add_argument("--notes", default="")
    parser.add_argument("--manifest", type=Path, default=Path("weights/manifest.json"))
    args = parser.parse_args()
    with safe_open(str(args.weights), framework="pt") as handle:
        metadata = handle.metadata() or {}
        parameters = sum(handle.get_tensor(k).numel() for k in handle.keys())
    meta = {k: json.loads(v) if k != "architecture" else v for k, v in metadata.items()}
    entry = {
        "file": args.weights.name,
        "architecture": meta.get("architecture"),
        "config": meta.get("config"),
        "parameters": parameters,
        "training_data": args.training_data,
        # the file names themselves stay in the weights' own metadata (the benchmarks read the split there)
        "split": {"train_files": len(meta["train_files"]), "validation_files": len(meta.get("validation_files") or []),
                  "listed_in": "the file's safetensors metadata (train_files, validation_files)"} if meta.get("train_files") else None,
        "command": args.command,
        "steps": meta.get("steps"),
        "wall_time_min": args.wall_time_min,
        "train_config": meta.get("train_config"),
        "last_validation": meta.get("history"),
        "sha256": hashlib.sha256(args.weights.read_bytes()).hexdigest(),
        "eval": json.loads(args.eval),
        "notes": args.notes,
    }
    entry = {key: value for key, value in entry.items() if value is not None}
    manifest = json.loads(args.manifest.read_text())
    manifest["weights"] = [e for e in manifest["weights"] if e["file"] != entry["file"]] + [entry]
    args.manifest.write_text(json.dumps(manifest, indent=2) + "\n")
    print(f"{entry['file']}: {parameters} parameters, sha256 {entry['sha256'][:16]}...")


if __name__ == "__main__":
    main()
