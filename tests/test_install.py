"""A regular (non-editable) install finds the shipped weights as package data."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_non_editable_install_carries_the_weights(tmp_path):
    # build from a clean copy: a leftover build/ or *.egg-info in the checkout can hide a missing package
    source_copy = tmp_path / "src"
    shutil.copytree(ROOT, source_copy, ignore=shutil.ignore_patterns(
        "build", "*.egg-info", ".venv", "__pycache__", ".git", ".pytest_cache", ".hypothesis", ".mypy_cache", ".ruff_cache",
        "results"))
    site = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation", "--target", str(site),
         str(source_copy)],
        check=True, cwd=tmp_path, capture_output=True,
    )
    probe = (
        "import json; from bdx.assets import weights_folder; from bdx.models import load_model; f = weights_folder(); "
        "models = {t: load_model(None, t).architecture for t in ('depth', 'lowlight', 'hdr')}; "
        "print(json.dumps({'folder': str(f), 'files': sorted(p.name for p in f.iterdir()), 'models': models}))"
    )
    env = {**os.environ, "PYTHONPATH": str(site)}
    result = subprocess.run([sys.executable, "-c", probe], check=True, cwd=tmp_path, env=env, capture_output=True, text=True)
    found = json.loads(result.stdout)
    assert Path(found["folder"]).resolve().is_relative_to(site.resolve())  # not the source checkout
    manifest = json.loads((ROOT / "weights" / "manifest.json").read_text())
    assert "manifest.json" in found["files"]
    for card in manifest["models"]:
        assert card["file"] in found["files"]
    assert sorted(found["models"]) == ["depth", "hdr", "lowlight"]  # every task's default weights load from the install
    # every source module is installed (setup.py finds the packages)
    source = {p.relative_to(ROOT / "bdx").as_posix() for p in (ROOT / "bdx").rglob("*.py")}
    installed = {p.relative_to(site / "bdx").as_posix() for p in (site / "bdx").rglob("*.py") if "weights" not in p.parts}
    assert source == installed, sorted(source ^ installed)
