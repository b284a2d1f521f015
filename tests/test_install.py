"""A regular (non-editable) install finds the shipped weights as package data."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_non_editable_install_carries_the_weights(tmp_path):
    site = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation", "--target", str(site), str(ROOT)],
        check=True, cwd=tmp_path, capture_output=True,
    )
    probe = (
        "import json; from bdx.assets import weights_folder, DEFAULT_WEIGHTS; f = weights_folder(); "
        "print(json.dumps({'folder': str(f), 'files': sorted(p.name for p in f.iterdir())}))"
    )
    env = {**os.environ, "PYTHONPATH": str(site)}
    result = subprocess.run([sys.executable, "-c", probe], check=True, cwd=tmp_path, env=env, capture_output=True, text=True)
    found = json.loads(result.stdout)
    assert Path(found["folder"]).resolve().is_relative_to(site.resolve())  # not the source checkout
    manifest = json.loads((ROOT / "weights" / "manifest.json").read_text())
    assert "manifest.json" in found["files"]
    for entry in manifest["weights"]:
        assert entry["file"] in found["files"]
