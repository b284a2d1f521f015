"""Every file in weights/ has a model card in weights/manifest.json: provenance, sha256 and figures."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from bdx.errors import SettingError, SettingUsageError

WEIGHTS = Path(__file__).resolve().parents[1] / "weights"
REQUIRED = {"file", "task", "architecture", "parameters", "data", "command", "steps", "wall_time_min", "sha256", "figures"}


def _cards() -> list[dict]:
    return json.loads((WEIGHTS / "manifest.json").read_text())["models"]


def test_manifest_lists_every_weight_file_with_matching_sha256():
    cards = {card["file"]: card for card in _cards()}
    files = sorted(p.name for p in WEIGHTS.iterdir() if p.is_file() and p.name not in {"manifest.json", "README.md", "__init__.py"})
    assert sorted(cards) == files
    for name, card in cards.items():
        assert REQUIRED <= set(card), f"{name}: missing {sorted(REQUIRED - set(card))}"
        assert hashlib.sha256((WEIGHTS / name).read_bytes()).hexdigest() == card["sha256"]
        assert "benchmark" in card["figures"], f"{name}: figures without the command that measures them"


def test_manifest_is_a_compact_model_card_per_file_without_development_paths():
    text = (WEIGHTS / "manifest.json").read_text()
    assert len(text) < 2500 * len(_cards())
    assert "../shared" not in text and "/tmp/" not in text


def test_every_task_has_one_default_and_every_card_loads_as_it_says():
    from bdx.assets import default_weights
    from bdx.models import TASKS, load_model, parameter_count

    for task in TASKS:
        general = [card for card in _cards() if card["task"] == task and card.get("default") and "input_bits" not in card]
        assert len(general) == 1 and default_weights(task).name == general[0]["file"]
    for card in _cards():
        model = load_model(WEIGHTS / card["file"], card["task"])
        assert model.architecture == card["architecture"]
        assert parameter_count(model.net) == card["parameters"]


def test_depth_defaults_follow_the_input_depth_without_overlap():
    from bdx.assets import default_weights

    ranges = [card["input_bits"] for card in _cards() if "input_bits" in card]
    assert all(card.get("default") for card in _cards() if "input_bits" in card)  # a range only means something on a default
    covered = [bits for low, high in ranges for bits in range(low, high + 1)]
    assert len(covered) == len(set(covered))  # one network per depth
    general = default_weights("depth")
    for bits in range(1, 16):
        chosen = default_weights("depth", bits)
        assert (chosen != general) == (bits in covered), bits


def test_default_weights_prefer_the_card_for_the_depth(monkeypatch, tmp_path):
    import bdx.assets as assets

    for name in ("any.safetensors", "low.safetensors", "other.safetensors"):
        (tmp_path / name).write_bytes(b"")
    cards = (
        {"file": "low.safetensors", "task": "depth", "default": True, "input_bits": [3, 6]},
        {"file": "any.safetensors", "task": "depth", "default": True},
        {"file": "other.safetensors", "task": "depth"},
    )
    monkeypatch.setattr(assets, "model_cards", lambda: cards)
    monkeypatch.setattr(assets, "weights_folder", lambda: tmp_path)
    assert [assets.default_weights("depth", bits).name for bits in (None, 2, 3, 6, 7, 8)] == [
        "any.safetensors", "any.safetensors", "low.safetensors", "low.safetensors", "any.safetensors", "any.safetensors"]
    for bad in (0, 16, True, "4", 4.0):
        with pytest.raises(SettingUsageError, match="must be a whole number between 1 and 15"):
            assets.default_weights("depth", bad)
    (tmp_path / "low.safetensors").unlink()  # an install without the file for the depth runs the one for any depth
    assert assets.default_weights("depth", 4).name == "any.safetensors"
    (tmp_path / "any.safetensors").unlink()
    with pytest.raises(SettingError, match=r"^the shipped depth weights any.safetensors are missing from this install"):
        assets.default_weights("depth", 4)
    (tmp_path / "any.safetensors").write_bytes(b"")
    monkeypatch.setattr(assets, "model_cards", lambda: ({**cards[0], "input_bits": [3]}, cards[1]))
    with pytest.raises(SettingError, match=r"low.safetensors: input_bits must be \[lowest, highest\], not \[3\]"):
        assets.default_weights("depth", 8)
