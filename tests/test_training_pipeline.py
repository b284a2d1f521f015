"""Dequantizer training pairs: noise and sharpening belong to the truth, JPEG only at 8 bits, pinned ends unscored."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from bdx.dequant.learned import DequantNet, DequantNetConfig
from bdx.training.depth import Batch, DepthTrainConfig, Reference, batch_loss, sample_batch
from bdx.training.pipeline import PipelineSettings, display_from_linear, render_truth


def _smooth_reference(linear: bool = False) -> Reference:
    y, x = np.mgrid[0:160, 0:160].astype(np.float32) / 160
    pixels = np.stack([0.2 + 0.5 * x, 0.3 + 0.4 * y, 0.5 + 0.2 * x * y], axis=-1).astype(np.float32)
    return Reference("smooth", pixels * 4 if linear else pixels, linear=linear)


def _config(**changes) -> DepthTrainConfig:
    base = dict(batch_size=6, crop=64, prior="none", truth_noise_probability=0.0, sharpen_probability=0.0,
                clip_probability=0.0, tone_probability=0.0, jpeg_probability=0.0, eight_bit_fraction=1.0)
    return DepthTrainConfig(**{**base, **changes})


def _roughness(targets: torch.Tensor) -> float:
    return float(targets.diff(dim=-1).diff(dim=-1).abs().mean())


def test_sensor_noise_is_part_of_the_truth_and_the_input_is_its_quantization():
    clean = sample_batch([_smooth_reference()], _config(), np.random.default_rng(0))
    noisy = sample_batch([_smooth_reference()], _config(truth_noise_probability=1.0), np.random.default_rng(0))
    assert _roughness(noisy.targets) > 10 * _roughness(clean.targets)  # the target keeps the noise
    for batch in (clean, noisy):  # and the input is exactly the truth's 8-bit bin centre (no JPEG here)
        torch.testing.assert_close(batch.centres, torch.round(batch.targets * 255) / 255, atol=1e-6, rtol=0)


def test_jpeg_touches_only_8_bit_crops():
    config = _config(jpeg_probability=1.0, eight_bit_fraction=0.0, min_bits=4, max_bits=6)
    batch = sample_batch([_smooth_reference()], config, np.random.default_rng(1))
    for index, bits in enumerate(batch.bits):
        top = (1 << bits) - 1
        torch.testing.assert_close(batch.centres[index], torch.round(batch.targets[index] * top) / top, atol=1e-6, rtol=0)
    eight = sample_batch([_smooth_reference()], _config(jpeg_probability=1.0), np.random.default_rng(1))
    assert not torch.allclose(eight.centres, torch.round(eight.targets * 255) / 255, atol=1e-6)


def test_eight_bit_share_follows_the_config():
    batch = sample_batch([_smooth_reference()], _config(batch_size=200, crop=8, eight_bit_fraction=0.35),
                         np.random.default_rng(2))
    share = np.mean([b == 8 for b in batch.bits])
    assert 0.3 < share < 0.5  # 0.35 plus the uniform draws that land on 8 (1 in 8 of the rest)


def test_scene_linear_references_go_through_a_camera_with_clipping():
    rng = np.random.default_rng(3)
    reference = _smooth_reference(linear=True).pixels
    displays = [display_from_linear(reference, rng) for _ in range(40)]
    assert all(d.min() >= 0 and d.max() <= 1 for d in displays)
    assert any(np.mean(d == 1) > 0.05 for d in displays)  # some exposures clip the highlights
    assert np.std([d.mean() for d in displays]) > 0.05  # exposures vary


def test_render_truth_keeps_display_references_in_range():
    settings = PipelineSettings(noise_probability=1.0, sharpen_probability=1.0, clip_probability=1.0)
    truth = render_truth(_smooth_reference().pixels, False, settings, np.random.default_rng(4))
    assert truth.dtype == np.float32 and truth.min() >= 0 and truth.max() <= 1


def test_pinned_end_codes_are_not_scored():
    net = DequantNet(DequantNetConfig(widths=(4, 8), blocks=(0, 0)))
    centres = torch.rand(2, 3, 16, 16)
    centres[:, :, :4] = 1.0  # a clipped band
    centres = torch.round(centres * 255) / 255
    targets = centres.clone()
    moved = targets.clone()
    moved[:, :, :4] = 0.9  # a different truth where the input is at the top code
    loss = lambda t, bits: batch_loss(net, Batch(centres, t, [bits] * 2)).item()  # noqa: E731
    assert loss(targets, 8) == loss(moved, 8)  # from 7 bits up the end codes keep their centre: not scored
    assert loss(targets, 4) != loss(moved, 4)  # below, they are


def test_targets_beyond_the_reach_count_as_the_limit_inside_it():
    """A truth several steps away (JPEG) or at a bin's edge (clipping) is scored as TARGET_LIMIT of the reach, a
    finite optimum for the offsets' tanh: training cannot gain by driving its input without bound."""
    from bdx.dequant.learned import offset_reach
    from bdx.training.depth import TARGET_LIMIT

    net = DequantNet(DequantNetConfig(widths=(4, 8), blocks=(0, 0)))  # untrained: the bin centre
    step = 1 / 15
    centres = torch.full((1, 3, 16, 16), 7 * step)
    limit = float(offset_reach(torch.tensor(step))) * TARGET_LIMIT
    loss = lambda target: batch_loss(net, Batch(centres, torch.full_like(centres, target), [4])).item()  # noqa: E731
    at_limit = loss(7 * step + limit)
    assert at_limit == pytest.approx((limit / step) ** 2, rel=1e-4)
    assert loss(7 * step + step / 2) == pytest.approx(at_limit, rel=1e-6)  # the bin's edge
    assert loss(9 * step) == pytest.approx(at_limit, rel=1e-6)  # two steps away
    assert loss(7 * step + limit / 2) < at_limit


def test_training_data_takes_files_folders_and_globs(tmp_path):
    """--data may name files, folders (recursive) or glob patterns; a pattern that matches nothing is one line."""
    import pytest

    from bdx.errors import BdxError
    from bdx.training.data import find_files

    for name in ("a/x1.png", "a/x2.png", "a/y.png", "a/notes.txt", "b.png"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"")
    suffixes = {".png"}
    assert find_files([tmp_path / "a"], suffixes) == [tmp_path / "a" / n for n in ("x1.png", "x2.png", "y.png")]
    assert find_files([tmp_path / "a" / "x*.png", tmp_path / "b.png"], suffixes) == [
        tmp_path / "a" / "x1.png", tmp_path / "a" / "x2.png", tmp_path / "b.png"]
    with pytest.raises(BdxError, match="no files match"):
        find_files([tmp_path / "z*.png"], suffixes)


def test_a_depth_training_folder_of_small_8_bit_photos_says_why_none_is_used(tmp_path):
    """The run failed with "need at least one usable reference image", the files skipped without a reason."""
    from bdx.errors import BdxError
    from bdx.io import Image, write_image
    from bdx.training.depth import load_references

    for name in ("a.png", "b.png"):
        write_image(tmp_path / name, Image(np.full((64, 64, 3), 90, np.uint8)), bits=8)
    with pytest.raises(BdxError, match=r"no usable reference image: a.png, b.png hold fewer than 16 bits and have fewer than 1,000,000 pixels"):
        load_references([tmp_path])
    write_image(tmp_path / "c.png", Image(np.full((64, 64, 3), 9000, np.uint16)))
    assert [r.name for r in load_references([tmp_path])] == ["c.png"]  # a true 16-bit file serves; the others are left out
