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
    files = sorted(p.name for p in WEIGHTS.iterdir() if p.is_file() and p.name not in {"manifest.json", "README.md", "__init__.py"})
    assert sorted(entries) == files
    for name, entry in entries.items():
        assert REQUIRED <= set(entry), f"{name}: missing {sorted(REQUIRED - set(entry))}"
        assert hashlib.sha256((WEIGHTS / name).read_bytes()).hexdigest() == entry["sha256"]


def test_shipped_weights_load_and_match_their_entries():
    from bdx.assets import DEFAULT_WEIGHTS, weights_folder
    from bdx.dequant.learned import load_weights
    from bdx.hdr.models import load_hdr_net
    from bdx.lowlight.models import load_curve_model

    loaders = {"depth": load_weights, "lowlight": lambda p: load_curve_model(p).net, "hdr": load_hdr_net}
    manifest = {e["file"]: e for e in json.loads((WEIGHTS / "manifest.json").read_text())["weights"]}
    for task, name in DEFAULT_WEIGHTS.items():
        path = weights_folder() / name
        if name not in manifest:
            continue
        net = loaders[task](path)
        assert sum(p.numel() for p in net.parameters()) == manifest[name]["parameters"]
