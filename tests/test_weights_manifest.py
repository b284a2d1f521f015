"""Every file in weights/ is listed in weights/manifest.json with its provenance and sha256."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

WEIGHTS = Path(__file__).resolve().parents[1] / "weights"
REQUIRED = {"file", "architecture", "parameters", "training_data", "command", "steps", "sha256", "eval"}


def test_manifest_lists_every_weight_file_with_matching_sha256():
    manifest = json.loads((WEIGHTS / "manifest.json").read_text())
    entries = {entry["file"]: entry for entry in manifest["weights"]}
    files = sorted(p.name for p in WEIGHTS.iterdir() if p.is_file() and p.name not in {"manifest.json", "README.md"})
    assert sorted(entries) == files
    for name, entry in entries.items():
        assert REQUIRED <= set(entry), f"{name}: missing {sorted(REQUIRED - set(entry))}"
        assert hashlib.sha256((WEIGHTS / name).read_bytes()).hexdigest() == entry["sha256"]
