"""The learned dequantizer: identity at start, bin-safe always, trainable, resumable, DDP, weight errors."""

from __future__ import annotations

import json
import os
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.nn import functional as F
from safetensors import safe_open

from bdx.assets import default_weights
from bdx.cli import app
from bdx.dequant.classical import CONTOUR_SUPPORT, ContourDequantizer
from bdx.dequant.learned import (
    ARCHITECTURE, DequantNet, DequantNetConfig, LearnedDequantizer, contour_prior, dequantize_levels, grow_from,
    narrowed, offset_reach, without_blocks,
)
from bdx.depth import DepthSettings, upscale_depth
from bdx.models import load_model, save_model
from bdx.errors import BdxError
from bdx.io import Image, read_image, write_image
from bdx.quantization import levels_from_codes, max_level, requantize_u16
from bdx.reduce import quantize_image
from bdx.training.depth import DepthTrainConfig, train_depth

from conftest import gradient16
from ddp import train_on_two_processes


def _random_centres(bits: int, shape=(2, 3, 16, 20)) -> torch.Tensor:
    levels = torch.randint(0, max_level(bits) + 1, shape)
    return levels.float() / max_level(bits)


def test_untrained_network_is_the_bin_centre():
    net = DequantNet().eval()
    centres = _random_centres(6)
    with torch.no_grad():
        out = dequantize_levels(net, centres, 1 / 63)
    assert torch.equal(out, centres)


def _randomized(net: DequantNet, std: float, seed: int) -> DequantNet:
    torch.manual_seed(seed)
    for parameter in net.parameters():
        torch.nn.init.normal_(parameter, std=std)
    return net


CONTOUR = DequantNetConfig(prior="contour")


def _prior_of(centres: torch.Tensor, bits: int) -> torch.Tensor:
    return contour_prior(torch.round(centres * max_level(bits)).int().numpy(), 1 / max_level(bits))


@pytest.mark.parametrize("gate", [False, True])
@pytest.mark.parametrize("prior", ["none", "contour", "contour-l1", "tone"])
@pytest.mark.parametrize("bits", [3, 4, 8, 10])
def test_any_weights_stay_inside_the_bin(bits, prior, gate):
    config = DequantNetConfig(tone_head=True, gate=gate) if prior == "tone" else DequantNetConfig(prior=prior, gate=gate)
    net = _randomized(DequantNet(config).eval(), 1.0, bits)
    centres = _random_centres(bits)
    step = 1 / max_level(bits)
    with torch.no_grad():
        out = dequantize_levels(net, centres, step, _prior_of(centres, bits) if prior.startswith("contour") else None)
    assert (out - centres).abs().max().item() <= 0.5 * step + 1e-7
    assert (out - centres).abs().max().item() > 0.1 * step  # the offsets really move


@pytest.mark.parametrize("bits", [4, 8])
def test_untrained_prior_network_is_the_contour_method(bits):
    """Its contours found without checking their levels (the prior's definition)."""
    from bdx.dequant.classical import contour_fractions

    quantized = quantize_image(Image(gradient16(61, 90)), bits)
    levels = torch.from_numpy(levels_from_codes(quantized.pixels, bits, 8)).permute(2, 0, 1)[None].float()
    with torch.no_grad():
        learned = LearnedDequantizer(DequantNet(CONTOUR).eval(), bits)(levels)
    contour = (levels - 0.5 + torch.from_numpy(contour_fractions(levels.int().numpy(), check_levels=False))) / max_level(bits)
    step = torch.tensor(1 / max_level(bits))
    clamp_error = (0.5 * step - 0.999 * offset_reach(step)).item()  # prior offsets are clamped to 0.999 of the reach
    assert (learned - contour).abs().max().item() <= clamp_error + 1e-6
    assert (contour - levels / max_level(bits)).abs().max().item() > 0.3 * step.item()  # the contour really moves values


def test_a_gated_network_grown_from_an_ungated_one_starts_near_it_and_its_gate_closes_to_the_bin_centre():
    old = _randomized(DequantNet(CONTOUR).eval(), 0.05, 11)
    gated = DequantNet(replace(CONTOUR, gate=True)).eval()
    grow_from(gated, old)
    centres = _random_centres(6, (1, 3, 32, 32))
    prior = _prior_of(centres, 6)
    step = torch.tensor([1 / 63])
    with torch.no_grad():
        before, after = old(centres, step, prior), gated(centres, step, prior)
        assert (after - before).abs().max().item() < 0.03  # sigmoid(GATE_START) = 0.98 of the old offsets
        gated.head.bias[48:] = -30.0  # a closed gate
        assert gated(centres, step, prior).abs().max().item() < 1e-9  # the bin centre, whatever the prior says
    with pytest.raises(ValueError, match="cannot grow"):
        grow_from(DequantNet(CONTOUR), gated)  # a gate cannot be dropped


def test_prior_network_refuses_a_missing_prior():
    with pytest.raises(ValueError, match="prior"):
        DequantNet(CONTOUR)(_random_centres(4, (1, 3, 16, 16)), torch.tensor([1 / 15]))


def _reference_folder(tmp_path: Path, count: int = 3) -> Path:
    folder = tmp_path / "refs"
    folder.mkdir()
    for i in range(count):
        pixels = np.roll(gradient16(80, 112), 13 * i, axis=1)
        write_image(folder / f"ref{i}.png", Image(pixels), bits=16)
    return folder


def test_training_step_resume_and_weights(tmp_path):
    data = _reference_folder(tmp_path)
    output = tmp_path / "d.safetensors"
    config = DepthTrainConfig(steps=2, batch_size=2, crop=32, validate_every=1, checkpoint_every=1)
    state = train_depth([data], output, config)
    assert state.step == 2 and state.history and "gain_db_4bit" in state.history[-1]
    checkpoint = Path(str(output) + ".ckpt.pt")
    saved = torch.load(checkpoint, weights_only=True)
    assert saved["step"] == 2
    before = load_model(output, "depth").net.state_dict()
    assert any(v.abs().sum() > 0 for k, v in before.items() if k.startswith("head"))  # the head has moved
    resumed = train_depth([data], output, DepthTrainConfig(steps=4, batch_size=2, crop=32, validate_every=2), resume=checkpoint)
    assert resumed.step == 4
    after = load_model(output, "depth").net.state_dict()
    assert any(not torch.equal(before[k], after[k]) for k in before)


@pytest.mark.parametrize("prior", ["none", "contour"])
def test_learned_method_through_the_engine_is_bin_safe(tmp_path, prior):
    net = _randomized(DequantNet(DequantNetConfig(prior=prior)), 0.5, 0)
    weights = tmp_path / "w.safetensors"
    save_model(net, weights)
    quantized = quantize_image(Image(gradient16(67, 93)), 5)
    for relax in (False, True):
        out = upscale_depth(quantized, load_model(str(weights), "depth"), DepthSettings(method="learned", relax=relax, tile=32), device="cpu")
        np.testing.assert_array_equal(
            requantize_u16(out.image.pixels, 5), levels_from_codes(quantized.pixels, 5, 8)
        )


def test_receptive_field_fits_the_halo():
    torch.manual_seed(1)
    net = DequantNet()
    for parameter in net.parameters():
        torch.nn.init.normal_(parameter, std=0.05)
    reach = 0
    for offset in range(8):  # every position inside an 8x8 block
        x = torch.rand(1, 3, 240, 240, requires_grad=True)
        centre = 120 + offset
        net(x, torch.tensor([1 / 15]))[0, 0, centre, centre].backward()
        ys, xs = torch.nonzero(x.grad.abs().sum((0, 1)), as_tuple=True)
        reach = max(reach, centre - ys.min().item(), ys.max().item() - centre, centre - xs.min().item(), xs.max().item() - centre)
    assert reach > 40  # the net really sees far
    assert reach <= net.receptive_radius <= LearnedDequantizer(net, 4).tiling.halo
    refining = DequantNet(CONTOUR)
    assert LearnedDequantizer(refining, 4).tiling.halo >= refining.receptive_radius + ContourDequantizer.tiling.halo


def test_unshuffled_matches_pixel_unshuffle_for_views_of_any_layout_with_and_without_gradients():
    from torch.nn import functional as F

    from bdx.dequant.learned import unshuffled

    tile = torch.randn(2, 3, 40, 36, generator=torch.Generator().manual_seed(0))
    step = torch.tensor([0.25, 0.5])
    for x in (tile, tile.contiguous(memory_format=torch.channels_last)[:, :, 4:-4, 8:-8], tile.transpose(2, 3)[:, :, :32]):
        expected = F.pixel_unshuffle(x.contiguous(), 4)
        assert torch.equal(unshuffled(x, torch.div, step.view(2, 1, 1, 1, 1, 1)), expected / step.view(2, 1, 1, 1))
        assert torch.equal(unshuffled(x, torch.clamp, -0.5, 0.5), expected.clamp(-0.5, 0.5))
    leaf = tile.clone().requires_grad_()
    unshuffled(leaf, torch.mul, 3.0).sum().backward()
    assert torch.equal(leaf.grad, torch.full_like(tile, 3.0))


def test_tones_interpolated_within_blocks_match_a_full_size_bilinear_interpolation():
    from torch.nn import functional as F

    from bdx.dequant.learned import interpolated_within_blocks

    blocks = torch.randn(2, 3, 9, 13, generator=torch.Generator().manual_seed(0))
    full = F.interpolate(blocks, scale_factor=4, mode="bilinear", align_corners=False)
    expected = F.pixel_unshuffle(full, 4) - blocks.repeat_interleave(16, 1)
    torch.testing.assert_close(interpolated_within_blocks(blocks), expected, atol=1e-6, rtol=0)
    one = torch.randn(1, 1, 1, 1)  # a single block: every pixel is the block's own value
    assert interpolated_within_blocks(one).abs().max() < 1e-6


def test_a_tone_head_interpolates_its_block_tones_as_the_prior_within_its_declared_reach():
    """With its weight open, an untrained tone-head network's pixels follow the block means interpolated between
    block centres, clamped to their bins: a smooth ramp quantized to 4 bits comes back closer to the truth than its
    bin centres. Fresh, the weight is low (texture would lose): the output starts near the centres."""
    net = DequantNet(DequantNetConfig(widths=(8, 8), blocks=(0, 0), tone_head=True)).eval()
    truth = torch.linspace(0.2, 0.6, 128).view(1, 1, 1, 128).expand(1, 3, 64, 128)
    centres = torch.round(truth * 15) / 15
    with torch.no_grad():
        fresh = dequantize_levels(net, centres.clone(), 1 / 15)
        net.head.bias[-3:] = 20.0
        out = dequantize_levels(net, centres.clone(), 1 / 15)
    assert ((out - truth) ** 2).mean() < 0.8 * ((centres - truth) ** 2).mean()
    assert (fresh - centres).abs().max() < 0.25 * (out - centres).abs().max()
    randomized = _randomized(DequantNet(DequantNetConfig(widths=(8, 8), blocks=(0, 0), tone_head=True)), 0.05, 4)
    x = torch.rand(1, 3, 160, 160, requires_grad=True)
    randomized(x, torch.tensor([1 / 15]))[0, 0, 80, 80].backward()
    ys, xs = torch.nonzero(x.grad.abs().sum((0, 1)), as_tuple=True)
    assert max(80 - ys.min().item(), ys.max().item() - 80, 80 - xs.min().item(), xs.max().item() - 80) <= randomized.receptive_radius
    with pytest.raises(ValueError, match="takes no contour prior"):
        DequantNet(DequantNetConfig(tone_head=True, prior="contour"))


@pytest.mark.parametrize("prior", ["none", "contour", "contour-l1", "tone"])
def test_learned_tiled_equals_whole_image(tmp_path, prior):
    config = DequantNetConfig(tone_head=True, gate=True) if prior == "tone" else DequantNetConfig(prior=prior)
    net = _randomized(DequantNet(config), 0.05, 2)
    weights = tmp_path / "w.safetensors"
    save_model(net, weights)
    quantized = quantize_image(Image(gradient16(203, 317)), 4)
    run = lambda tile: upscale_depth(quantized, load_model(str(weights), "depth"), DepthSettings(method="learned", relax=True, tile=tile, precision="float32"), device="cpu")
    whole, tiled = run(4096), run(64)
    assert len(np.unique(whole.image.pixels[..., 0])) > 256
    difference = np.abs(whole.image.pixels.astype(int) - tiled.image.pixels.astype(int))
    assert difference.max() <= 1  # float32 summation order may flip a rounding


def test_weight_loading_errors(tmp_path):
    with pytest.raises(BdxError, match="not found"):
        load_model(tmp_path / "missing.safetensors", "depth").net
    corrupt = tmp_path / "corrupt.safetensors"
    corrupt.write_bytes(os.urandom(256))
    with pytest.raises(BdxError, match="not a readable"):
        load_model(corrupt, "depth").net
    from safetensors.torch import save_file

    other = tmp_path / "other.safetensors"
    save_file({"x": torch.zeros(2)}, str(other), metadata={"architecture": "resnet"})
    with pytest.raises(BdxError, match="not bdx dequantizer"):
        load_model(other, "depth").net
    refining = tmp_path / "refining.safetensors"
    save_model(DequantNet(CONTOUR), refining)
    assert load_model(refining, "depth").net.has_prior
    wrong = tmp_path / "wrong.safetensors"
    save_model(DequantNet(DequantNetConfig(widths=(8, 16))), wrong)
    state = {k: v for k, v in load_model(wrong, "depth").net.state_dict().items() if not k.startswith("head")}
    save_file(state, str(wrong), metadata={"architecture": ARCHITECTURE, "config": '{"widths": [8, 16], "blocks": [1, 3], "channels": 3}'})
    with pytest.raises(BdxError, match="do not match"):
        load_model(wrong, "depth").net


def test_cli_learned_without_or_with_bad_weights(runner, make_png, tmp_path):
    source = make_png("x.png", np.full((8, 8, 3), 34, np.uint8), sbit=4)
    result = runner.invoke(app, ["upscale-depth", str(source), "--method", "learned", "-o", str(tmp_path / "x.tiff")])
    assert result.exit_code == 0, result.output  # the shipped weights
    assert requantize_u16(read_image(tmp_path / "x.tiff").pixels, 4).max() == 2
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"garbage")
    result = runner.invoke(app, ["upscale-depth", str(source), "--method", "learned", "--weights", str(bad)])
    assert result.exit_code == 1 and len([l for l in result.stderr.splitlines() if l]) == 1


def test_cli_train_depth(runner, tmp_path):
    data = _reference_folder(tmp_path)
    output = tmp_path / "cli.safetensors"
    result = runner.invoke(
        app, ["train", "depth", "--data", str(data), "-o", str(output), "--steps", "2", "--batch-size", "2", "--crop", "32",
              "--validate-every", "1", "--device", "cpu"],
    )
    assert result.exit_code == 0, result.stderr
    assert output.exists() and "val gain" in result.stderr
    assert load_model(output, "depth").net.has_prior  # contour is the default prior
    plain = tmp_path / "plain.safetensors"
    result = runner.invoke(
        app, ["train", "depth", "--data", str(data), "-o", str(plain), "--steps", "1", "--batch-size", "2", "--crop", "32",
              "--prior", "none", "--balance-folders", "--eight-bit-fraction", "0.9", "--bits", "4", "6", "--device", "cpu",
              "--truth-noise-probability", "0.25",
              "--workers", "1"],
    )
    assert result.exit_code == 0, result.stderr
    assert not load_model(plain, "depth").net.has_prior
    with safe_open(str(plain), "pt") as handle:
        recorded = json.loads(handle.metadata()["train_config"])
    assert recorded["balance_folders"] is True
    assert (recorded["eight_bit_fraction"], recorded["min_bits"], recorded["max_bits"]) == (0.9, 4, 6)
    assert recorded["truth_noise_probability"] == 0.25
    result = runner.invoke(app, ["train", "depth", "--data", str(data), "--prior", "bogus"])
    assert result.exit_code == 2 and "--prior" in result.stderr


def test_two_process_ddp_training(tmp_path):
    replicas = train_on_two_processes("depth", _reference_folder(tmp_path), tmp_path)
    assert all(torch.equal(replicas[0][k], replicas[1][k]) for k in replicas[0])  # gradients were averaged
    assert any(replicas[0][k].abs().sum() > 0 for k in replicas[0] if k.startswith("head"))


@pytest.mark.parametrize("prior", ["none", "contour"])
def test_inference_fast_path_equals_the_training_path(prior):
    """Offsets added in 4x4-block layout (inference) equal the pixel-shuffled forward (training), any size."""
    net = _randomized(DequantNet(DequantNetConfig(prior=prior)).eval(), 0.05, 4)
    centres = _random_centres(5, (2, 3, 37, 50))
    offsets = _prior_of(centres, 5) if prior == "contour" else None
    with torch.no_grad():
        fast = dequantize_levels(net, centres, 1 / 31, offsets)
    slow = dequantize_levels(net, centres, 1 / 31, offsets)  # gradients on: the plain forward
    torch.testing.assert_close(fast, slow.detach(), rtol=0, atol=1e-6)


@pytest.mark.parametrize("shape", [(2, 3, 37, 50), (1, 3, 40, 48)])
def test_overwriting_the_centres_gives_the_same_result(shape):
    net = _randomized(DequantNet(DequantNetConfig(prior="contour")).eval(), 0.05, 4)
    centres = _random_centres(5, shape)
    offsets = _prior_of(centres, 5)
    with torch.no_grad():
        kept = dequantize_levels(net, centres, 1 / 31, offsets)
        scratch = centres.clone()
        overwritten = dequantize_levels(net, scratch, 1 / 31, offsets, overwrite=True)
    torch.testing.assert_close(overwritten, kept, rtol=0, atol=0)


def test_synthetic_smooth_fields_replace_crops():
    from bdx.training.depth import Reference, sample_batch

    texture = Reference("noise", np.random.default_rng(0).random((160, 160, 3), dtype=np.float32))
    config = DepthTrainConfig(batch_size=4, crop=64, synthetic_fraction=1.0, noise_probability=0.0, dither_probability=0.0)
    batch = sample_batch([texture], config, np.random.default_rng(1))
    targets = batch.targets.numpy()
    assert targets.min() >= 0 and targets.max() <= 1 and targets.std() > 0.01
    curvature = np.abs(np.diff(targets, 2, axis=-1)).max()
    assert curvature < 1e-3  # smooth fields, not crops of the noise reference
    assert batch.prior is not None and batch.prior.abs().max() > 0.3  # the contour prior sees their ramps


def test_enlarged_regions_are_smooth_crops_of_the_reference():
    from bdx.training.depth import Reference, enlarged_region, sample_batch

    rng = np.random.default_rng(2)
    texture = rng.random((160, 160, 3), dtype=np.float32)
    region = enlarged_region(texture, 96, rng)
    assert region.shape[0] == region.shape[1] >= 96
    # bicubic enlargement at 2-4x: neighbouring pixels differ far less than in the source texture
    assert np.abs(np.diff(region, axis=1)).mean() < 0.5 * np.abs(np.diff(texture, axis=1)).mean()
    config = DepthTrainConfig(batch_size=4, crop=64, upscale_fraction=1.0, noise_probability=0.0, dither_probability=0.0)
    batch = sample_batch([Reference("noise", texture)], config, np.random.default_rng(1))
    assert batch.targets.shape == (4, 3, 64, 64)
    assert np.abs(np.diff(batch.targets.numpy(), axis=-1)).mean() < 0.5 * np.abs(np.diff(texture, axis=1)).mean()


def test_balanced_folders_give_every_folder_the_same_share_of_crops():
    from bdx.training.depth import Reference, sample_batch, sampling_weights

    big = Reference("big", np.zeros((300, 300, 3), np.float32), source=0)
    also_big = Reference("also_big", np.zeros((300, 100, 3), np.float32), source=0)
    small = Reference("small", np.ones((100, 100, 3), np.float32), source=1)
    by_pixels = sampling_weights([big, also_big, small])
    np.testing.assert_allclose(by_pixels, [9 / 13, 3 / 13, 1 / 13])
    balanced = sampling_weights([big, also_big, small], balance_folders=True)
    np.testing.assert_allclose(balanced, [0.375, 0.125, 0.5])
    # the small folder (all ones) fills about half the batch when balanced, about 1 in 13 crops otherwise
    config = DepthTrainConfig(batch_size=64, crop=64, noise_probability=0.0, dither_probability=0.0, prior="none")
    share = lambda balance: float((sample_batch(  # noqa: E731
        [big, also_big, small], replace(config, balance_folders=balance), np.random.default_rng(3)
    ).targets.mean(dim=(1, 2, 3)) > 0.5).float().mean())
    assert 0.35 < share(True) < 0.65 and share(False) < 0.2


def test_training_from_initial_weights(runner, tmp_path):
    data = _reference_folder(tmp_path)
    start = tmp_path / "start.safetensors"
    net = _randomized(DequantNet(DequantNetConfig(prior="contour")), 0.05, 7)
    save_model(net, start)
    output = tmp_path / "tuned.safetensors"
    config = DepthTrainConfig(steps=1, batch_size=2, crop=32, lr=1e-12, validate_every=1)
    train_depth([data], output, config, init=start)
    tuned = load_model(output, "depth").net.state_dict()
    assert all(torch.allclose(tuned[k], v, atol=1e-6) for k, v in net.state_dict().items())  # started from them
    with pytest.raises(BdxError, match="not both"):
        train_depth([data], output, config, init=start, resume=Path(str(output) + ".ckpt.pt"))
    result = runner.invoke(
        app, ["train", "depth", "--data", str(data), "-o", str(tmp_path / "x.safetensors"), "--steps", "1",
              "--prior", "none", "--init", str(start), "--device", "cpu"],
    )
    assert result.exit_code == 1 and "does not fit in the one to train" in result.stderr
    result = runner.invoke(
        app, ["train", "depth", "--data", str(data), "-o", str(output), "--steps", "1", "--batch-size", "2", "--crop", "32",
              "--lr", "1e-12", "--init", "shipped", "--device", "cpu", "--overwrite"],  # the file exists: replaced
    )
    assert result.exit_code == 0, result.stderr
    shipped = load_model(default_weights("depth"), "depth").net.state_dict()
    tuned = load_model(output, "depth").net.state_dict()
    assert all(torch.allclose(tuned[k], v, atol=1e-6) for k, v in shipped.items())


def test_a_grown_network_starts_as_the_smaller_one_and_its_new_weights_learn():
    small = _randomized(DequantNet(CONTOUR), 0.05, 3).eval()
    big = DequantNet(DequantNetConfig(widths=(24, 80), blocks=(2, 4), prior="contour"))
    grow_from(big, small)
    big.eval()
    centres = _random_centres(5, (2, 3, 32, 40))
    prior = _prior_of(centres, 5)
    with torch.no_grad():
        torch.testing.assert_close(big(centres.clone(), torch.full((2,), 1 / 31), prior.clone()),
                                   small(centres.clone(), torch.full((2,), 1 / 31), prior.clone()), atol=1e-6, rtol=0)
    loss = big(centres.clone(), torch.full((2,), 1 / 31), prior.clone()).square().mean()
    loss.backward()
    # the zeroed weights from the new channels into the old ones get a gradient, so they can grow
    assert big.head.weight.grad[:, 16:].abs().sum() > 0
    assert big.eighth[3].second.weight.grad.abs().sum() > 0  # a new block, starting as the identity
    with pytest.raises(ValueError, match="cannot grow"):
        grow_from(small, big)
    with pytest.raises(ValueError, match="cannot grow"):
        grow_from(DequantNet(DequantNetConfig(prior="none")), small)


def test_dropping_blocks_that_add_nothing_keeps_the_output_and_the_kept_blocks_weights():
    net = _randomized(DequantNet(DequantNetConfig(widths=(8, 16), blocks=(2, 4), prior="contour", gate=True)), 0.05, 4).eval()
    with torch.no_grad():
        for dropped in (net.quarter[0], net.eighth[0], net.eighth[3]):  # blocks that add nothing: the identity
            dropped.second.weight.zero_()
            dropped.second.bias.zero_()
    smaller = without_blocks(net, ((1,), (1, 2))).eval()
    assert smaller.config.blocks == (1, 2)
    assert torch.equal(smaller.eighth[1].first.weight, net.eighth[2].first.weight)
    centres = _random_centres(5, (2, 3, 32, 40))
    prior = _prior_of(centres, 5)
    with torch.no_grad():
        torch.testing.assert_close(smaller(centres.clone(), torch.full((2,), 1 / 31), prior.clone()),
                                   net(centres.clone(), torch.full((2,), 1 / 31), prior.clone()), atol=1e-6, rtol=0)
    for keep in (((0, 1),), ((0, 1), ()), ((0, 1), (4,)), ((1, 0), (0,))):
        with pytest.raises(ValueError, match="keep one or more"):
            without_blocks(net, keep)


def test_narrowing_away_channels_that_carry_nothing_keeps_the_output():
    net = _randomized(DequantNet(DequantNetConfig(widths=(8, 16, 12), blocks=(1, 2, 1), prior="contour", gate=True)), 0.05, 6).eval()
    dead_stream, dead_inner, dead_deeper = [1, 5, 9, 14], [0, 3, 8, 10], [2, 7]
    with torch.no_grad():
        for conv in (net.down, net.eighth[0].second, net.eighth[1].second):  # everything that writes the dead channels
            conv.weight[dead_stream] = 0
            conv.bias[dead_stream] = 0
        net.deeper[0].merge.weight[dead_stream] = 0
        net.deeper[0].merge.bias[dead_stream] = 0
        net.deeper[0].up.weight[(4 * torch.tensor(dead_stream)[:, None] + torch.arange(4)).flatten()] = 0
        net.deeper[0].up.bias[(4 * torch.tensor(dead_stream)[:, None] + torch.arange(4)).flatten()] = 0
        for block in net.eighth:
            block.first.weight[dead_inner] = 0
            block.first.bias[dead_inner] = 0
        for conv in (net.deeper[0].down, net.deeper[0].blocks[0].second):
            conv.weight[dead_deeper] = 0
            conv.bias[dead_deeper] = 0
        net.deeper[0].blocks[0].first.weight[[4, 11]] = 0  # and two of its block's inner channels
        net.deeper[0].blocks[0].first.bias[[4, 11]] = 0
        net.head.weight[:, :, [0, 0, 2, 2], [0, 2, 0, 2]] = 0  # a head whose 3x3 taps beyond the cross add nothing...
        net.head.weight[:, :, [0, 1, 1, 2], [1, 0, 2, 1]] = 0  # ...nor the cross: a 1x1 head in a 3x3 kernel
    small = narrowed(net, (8, 12, 10), head_kernel=1).eval()
    assert small.config.widths == (8, 12, 10) and small.config.head_kernel == 1
    assert small.receptive_radius == net.receptive_radius - 4
    centres = _random_centres(5, (2, 3, 32, 48))
    prior = _prior_of(centres, 5)
    with torch.no_grad():
        torch.testing.assert_close(small(centres.clone(), torch.full((2,), 1 / 31), prior.clone()),
                                   net(centres.clone(), torch.full((2,), 1 / 31), prior.clone()), atol=1e-6, rtol=0)
    same = narrowed(net, net.config.widths)
    assert all(torch.equal(a, b) for a, b in zip(same.state_dict().values(), net.state_dict().values()))
    for widths, kernel in (((8, 20, 12), None), ((6, 16, 12), None), ((8, 16), None), ((8, 16, 12), 3), ((8, 16, 12), 5)):
        with pytest.raises(ValueError, match="cannot narrow"):
            narrowed(small if kernel == 3 else net, widths, kernel)


@pytest.mark.parametrize("old_prior,new_prior,bits,shape", [("contour", "contour-l1", 5, (1, 3, 40, 48)), ("contour-l1", "contour-l1-3", 8, (1, 3, 48, 40))])
def test_a_network_starts_from_another_priors_weights_and_reads_its_own_prior(old_prior, new_prior, bits, shape):
    old = _randomized(DequantNet(DequantNetConfig(widths=(8, 16), blocks=(1, 1), prior=old_prior, gate=True)), 0.05, bits).eval()
    new = DequantNet(replace(old.config, prior=new_prior))
    grow_from(new, old)
    new.eval()
    assert all(torch.equal(a, b) for a, b in zip(new.state_dict().values(), old.state_dict().values()))
    levels = torch.round(_random_centres(bits, shape) * max_level(bits))
    with torch.no_grad():
        out = LearnedDequantizer(new, bits)(levels)
        prior = contour_prior(levels.int().numpy(), 1 / max_level(bits), prior=new_prior)
        want = dequantize_levels(new, levels / max_level(bits), 1 / max_level(bits), prior)
        other = LearnedDequantizer(old, bits)(levels)
    torch.testing.assert_close(out, want, atol=1e-6, rtol=0)
    assert not torch.allclose(out, other)  # the same weights on the other prior
    with pytest.raises(ValueError, match="cannot grow"):
        grow_from(DequantNet(DequantNetConfig(widths=(8, 16), blocks=(1, 1), prior="none", gate=True)), old)


def test_training_a_wider_network_from_the_shipped_one(runner, tmp_path):
    data = _reference_folder(tmp_path)
    output = tmp_path / "wide.safetensors"
    result = runner.invoke(
        app, ["train", "depth", "--data", str(data), "-o", str(output), "--steps", "1", "--batch-size", "2", "--crop", "32",
              "--widths", "34,96", "--blocks", "2,5", "--init", "shipped", "--device", "cpu"],
    )
    assert result.exit_code == 0, result.stderr
    shipped = load_model(default_weights("depth"), "depth").net.config  # the gate, prior and head, like the size, come from --init
    assert load_model(output, "depth").net.config == DequantNetConfig(
        widths=(34, 96), blocks=(2, 5), prior=shipped.prior, gate=shipped.gate, head_kernel=shipped.head_kernel)
    for option, value in (("--widths", "0,64"), ("--widths", "16,100000"), ("--blocks", "1,1000")):
        result = runner.invoke(app, ["train", "depth", "--data", str(data), "-o", str(output), option, value, "--device", "cpu"])
        assert result.exit_code == 2 and f"{option} needs two levels or more, each from" in result.stderr
    junk = tmp_path / "junk.ckpt.pt"
    junk.write_bytes(b"not a checkpoint")
    result = runner.invoke(
        app, ["train", "depth", "--data", str(data), "-o", str(tmp_path / "other.safetensors"), "--resume", str(junk), "--device", "cpu"],
    )
    assert result.exit_code == 1 and result.stderr.count("\n") == 1
    assert result.stderr.startswith(f"bdx: error: {junk}: not a bdx training checkpoint (not a file torch.save writes)")
    result = runner.invoke(  # weights where a checkpoint belongs: said so, with what to do instead
        app, ["train", "depth", "--data", str(data), "-o", str(tmp_path / "other.safetensors"), "--resume", str(output), "--device", "cpu"],
    )
    assert result.exit_code == 1 and result.stderr.count("\n") == 1
    assert result.stderr.startswith(f"bdx: error: {output}: a weights file, not a training checkpoint")


def test_training_a_three_level_network_without_prior_normalised_and_with_a_bounded_gate(runner, tmp_path):
    data = _reference_folder(tmp_path)
    output = tmp_path / "deep.safetensors"
    common = ["train", "depth", "--data", str(data), "-o", str(output), "--batch-size", "2", "--crop", "32", "--device", "cpu"]
    result = runner.invoke(app, [*common, "--steps", "1", "--widths", "8,8,16", "--blocks", "1,0,1", "--prior", "none",
                                 "--norm", "--gate-limit", "8"])
    assert result.exit_code == 0, result.stderr
    expected = DequantNetConfig(widths=(8, 8, 16), blocks=(1, 0, 1), prior="none", gate=True, norm=True, gate_limit=8.0, head_kernel=1)
    assert load_model(output, "depth").net.config == expected
    resumed = runner.invoke(app, [*common, "--steps", "2", "--resume", str(output) + ".ckpt.pt"])  # the size and flags
    assert resumed.exit_code == 0, resumed.stderr
    assert load_model(output, "depth").net.config == expected
    assert load_model(output, "depth").net.multiple == 16
    bad = runner.invoke(app, [*common, "--steps", "1", "--gate-limit", "-1", "--overwrite"])
    assert bad.exit_code == 2 and "--gate-limit must be between 0 and 50" in bad.stderr
    changed = runner.invoke(app, [*common, "--steps", "3", "--resume", str(output) + ".ckpt.pt", "--no-norm"])
    assert changed.exit_code == 2 and "--norm False differs from the checkpoint's (True)" in changed.stderr
    toned = runner.invoke(app, [*common, "--steps", "1", "--tone-head", "-o", str(tmp_path / "tone.safetensors")])
    assert toned.exit_code == 0, toned.stderr  # a tone head is its own prior: no contour prior unless asked
    assert load_model(tmp_path / "tone.safetensors", "depth").net.config.tone_head
    assert not load_model(tmp_path / "tone.safetensors", "depth").net.has_prior
    both = runner.invoke(app, [*common, "--steps", "1", "--tone-head", "--prior", "contour", "--overwrite"])
    assert both.exit_code == 2 and "--tone-head is the network's own prior: it takes --prior none, not contour" in both.stderr
    small = runner.invoke(app, [*common, "--steps", "1", "--crop", "16", "--widths", "8,8,8,8", "--blocks", "1,1,1,1",
                                "--prior", "none", "--overwrite"])
    assert small.exit_code == 2 and "--crop 16 is smaller than the network's 32-pixel grid" in small.stderr
    other = tmp_path / "other.safetensors"
    other.write_bytes(b"keep")  # resuming a run never replaces another run's weights without --overwrite
    taken = runner.invoke(app, [*common[:5], str(other), *common[6:], "--steps", "3", "--resume", str(output) + ".ckpt.pt"])
    assert taken.exit_code == 1 and f"{other} exists" in taken.stderr and other.read_bytes() == b"keep"


def test_training_a_network_with_a_one_by_one_head_from_a_narrowed_one(runner, tmp_path):
    data = _reference_folder(tmp_path)
    wide = _randomized(DequantNet(DequantNetConfig(widths=(8, 16), blocks=(1, 1), prior="contour-l1", gate=True)), 0.05, 7)
    start = tmp_path / "narrow.safetensors"
    save_model(narrowed(wide, (8, 12), head_kernel=1), start)
    output = tmp_path / "d.safetensors"
    common = ["train", "depth", "--data", str(data), "-o", str(output), "--batch-size", "2", "--crop", "32", "--device", "cpu", "-q"]
    result = runner.invoke(app, [*common, "--steps", "1", "--init", str(start)])
    assert result.exit_code == 0, result.stderr
    assert load_model(output, "depth").net.config == DequantNetConfig(widths=(8, 12), blocks=(1, 1), prior="contour-l1", gate=True, head_kernel=1)
    resumed = runner.invoke(app, [*common, "--steps", "2", "--resume", str(output) + ".ckpt.pt"])
    assert resumed.exit_code == 0, resumed.stderr
    assert load_model(output, "depth").net.config.head_kernel == 1
    changed = runner.invoke(app, [*common, "--steps", "3", "--resume", str(output) + ".ckpt.pt", "--head-kernel", "3"])
    assert changed.exit_code == 2 and "--head-kernel 3 differs from the checkpoint's (1)" in changed.stderr
    bad = runner.invoke(app, [*common, "--steps", "1", "--head-kernel", "5", "--overwrite"])
    assert bad.exit_code == 2 and bad.stderr.strip() == "bdx: error: --head-kernel must be one of 1, 3, not 5"


def test_a_resumed_depth_run_keeps_its_depths_and_schedule_unless_given(runner, tmp_path):
    data, output = _reference_folder(tmp_path), tmp_path / "d.safetensors"
    common = ["train", "depth", "--data", str(data), "-o", str(output), "--device", "cpu", "-q"]
    first = runner.invoke(app, [*common, "--steps", "1", "--batch-size", "2", "--crop", "32", "--widths", "8,8", "--blocks", "1,1",
                                "--bits", "3", "5", "--eight-bit-fraction", "0", "--lr", "1e-4", "--seed", "9"])
    assert first.exit_code == 0, first.stderr
    started = load_model(output, "depth").metadata["train_config"]
    resumed = runner.invoke(app, [*common, "--steps", "2", "--resume", str(output) + ".ckpt.pt"])
    assert resumed.exit_code == 0, resumed.stderr
    assert load_model(output, "depth").metadata["train_config"] == {**started, "steps": 2}


def test_growing_a_normalised_network_keeps_its_widths_and_a_gated_one_its_limit():
    """New channels change every pixel's channel norm, and another gate limit changes a gated network's output."""
    small = DequantNet(DequantNetConfig(widths=(4, 4, 4), blocks=(1, 1, 1), gate=True, norm=True, gate_limit=8.0))
    grow_from(DequantNet(DequantNetConfig(widths=(4, 4, 4), blocks=(2, 1, 3), gate=True, norm=True, gate_limit=8.0)), small)
    for config in (DequantNetConfig(widths=(6, 8, 5), blocks=(1, 1, 1), gate=True, norm=True, gate_limit=8.0),
                   DequantNetConfig(widths=(4, 4, 4), blocks=(1, 1, 1), gate=True, norm=True, gate_limit=2.0)):
        with pytest.raises(ValueError, match="cannot grow"):
            grow_from(DequantNet(config), small)
    ungated = DequantNet(DequantNetConfig(widths=(4, 4), blocks=(1, 1)))
    with pytest.raises(ValueError, match="cannot grow"):  # a limit below the new gate's start would close it
        grow_from(DequantNet(DequantNetConfig(widths=(4, 4), blocks=(1, 1), gate=True, gate_limit=2.0)), ungated)


def test_a_new_run_does_not_replace_an_earlier_runs_checkpoint(runner, tmp_path):
    data = _reference_folder(tmp_path)
    output = tmp_path / "run.safetensors"
    checkpoint = Path(str(output) + ".ckpt.pt")
    common = ["train", "depth", "--data", str(data), "-o", str(output), "--batch-size", "2", "--crop", "32", "--device", "cpu"]
    assert runner.invoke(app, [*common, "--steps", "2"]).exit_code == 0
    output.unlink()  # an interrupted run leaves its checkpoint only
    before = checkpoint.read_bytes()
    result = runner.invoke(app, [*common, "--steps", "1"])
    assert result.exit_code == 1 and result.stderr == (
        f"bdx: error: {checkpoint} holds an earlier run (continue it with --resume {checkpoint}, or use --overwrite to start over)\n"
    )
    assert checkpoint.read_bytes() == before and not output.exists()
    assert runner.invoke(app, [*common, "--steps", "3", "--resume", str(checkpoint)]).exit_code == 0  # its own checkpoint
    assert runner.invoke(app, [*common, "--steps", "1", "--overwrite"]).exit_code == 0


def test_network_size_comes_from_the_checkpoint_or_start_weights_unless_given(tmp_path):
    data = _reference_folder(tmp_path)
    output = tmp_path / "small.safetensors"
    tiny = dict(batch_size=2, crop=32, validate_every=100)
    train_depth([data], output, DepthTrainConfig(steps=1, widths=(8, 16), blocks=(1, 1), prior="none", tone_head=True, **tiny))
    resumed = train_depth([data], output, DepthTrainConfig(steps=2, **tiny), resume=Path(str(output) + ".ckpt.pt"))
    assert resumed.step == 2 and load_model(output, "depth").net.config.widths == (8, 16)
    assert not load_model(output, "depth").net.has_prior  # the prior, too, comes from the checkpoint
    assert load_model(output, "depth").net.config.tone_head  # and the tone head
    with pytest.raises(BdxError, match=r"tone_head False differs from the checkpoint's \(True\)"):
        train_depth([data], output, DepthTrainConfig(steps=3, tone_head=False, **tiny), resume=Path(str(output) + ".ckpt.pt"))
    with pytest.raises(BdxError, match=r"holds a different network than the one to train \(widths 8,16 in the checkpoint, 8,24 asked\)$"):
        train_depth([data], output, DepthTrainConfig(steps=3, widths=(8, 24), **tiny), resume=Path(str(output) + ".ckpt.pt"))
    from bdx.training.lowlight import LowlightTrainConfig, train_lowlight

    other = tmp_path / "lowlight.safetensors"
    train_lowlight([data], other, LowlightTrainConfig(steps=1, batch_size=1, context_size=16))
    with pytest.raises(BdxError, match=r"\(a checkpoint of another kind of training\)$"):
        train_depth([data], tmp_path / "x.safetensors", DepthTrainConfig(steps=3, **tiny), resume=Path(str(other) + ".ckpt.pt"))
    grown = tmp_path / "grown.safetensors"
    train_depth([data], grown, DepthTrainConfig(steps=1, lr=1e-12, **tiny), init=output)
    assert load_model(grown, "depth").net.config == load_model(output, "depth").net.config
    fresh = tmp_path / "fresh.safetensors"
    train_depth([data], fresh, DepthTrainConfig(steps=1, **tiny))
    made, shipped = load_model(fresh, "depth").net.config, load_model(default_weights("depth"), "depth").net.config
    assert (made.widths, made.blocks, made.prior) == (shipped.widths, shipped.blocks, shipped.prior)  # the shipped size


def test_trimmed_forward_equals_the_network_on_the_whole_input():
    """The network runs only where its output is kept plus its own context; the prior still sees everything."""
    net = _randomized(DequantNet(DequantNetConfig(prior="contour")).eval(), 0.05, 5)
    model = LearnedDequantizer(net, 5)
    trim = model.output_trim
    assert trim >= CONTOUR_SUPPORT and model.tiling.halo - trim >= net.receptive_radius  # the prior's support, the network's
    size = 2 * model.tiling.halo + 40
    levels = torch.from_numpy(np.cumsum(np.random.default_rng(0).integers(-1, 2, (1, 3, size, size)), axis=3) // 4 % 32)
    levels = levels.float()
    with torch.no_grad():
        whole = dequantize_levels(net, levels / max_level(5), 1 / max_level(5), contour_prior(levels.int().numpy(), 1 / max_level(5)))
        trimmed = model(levels)
    assert trimmed.shape[-1] == size - 2 * trim
    inner = slice(model.tiling.halo, size - model.tiling.halo)  # where the tiling engine reads
    torch.testing.assert_close(trimmed[..., inner.start - trim : inner.stop - trim, inner.start - trim : inner.stop - trim],
                               whole[..., inner, inner], atol=1e-6, rtol=0)


def _random_walk_levels() -> torch.Tensor:
    return torch.from_numpy(np.cumsum(np.random.default_rng(1).integers(-1, 2, (1, 3, 45, 61)), axis=3) // 3 % 32).float()


@pytest.mark.parametrize("size", [4, 8])
def test_an_ensemble_is_equivariant_to_the_orientations_it_averages(size):
    """Flipping (or, with 8, transposing) the input flips the ensemble's output: each orientation is undone.

    The network has no prior here: the contour prior's distance transform breaks ties by scan order, so it is
    not exactly equivariant itself (the next test covers how the ensemble orients it)."""
    net = _randomized(DequantNet(DequantNetConfig()).eval(), 0.05, 6)
    model = LearnedDequantizer(net, 5, ensemble=size)
    levels = _random_walk_levels()
    moves = [lambda t: t.flip(3), lambda t: t.flip(2)] + ([lambda t: t.transpose(2, 3)] if size == 8 else [])
    with torch.no_grad():
        out = model(levels)
        single = LearnedDequantizer(net, 5)(levels)
        for move in moves:
            torch.testing.assert_close(model(move(levels).contiguous()), move(out), atol=1e-6, rtol=0)
    assert (out - single).abs().max() > 1e-4  # the orientations really disagree, so the average is not the plain output


def test_an_ensemble_orients_one_contour_prior_with_its_input():
    """With the contour prior, every orientation reads the input's prior turned the same way as the input."""
    net = _randomized(DequantNet(CONTOUR).eval(), 0.05, 6)
    levels, step = _random_walk_levels(), 1 / max_level(5)
    prior = contour_prior(levels.int().numpy(), step)
    turns = [  # (turn, undo): flips, then transposes, as LearnedDequantizer orders them
        (lambda t: t, lambda t: t), (lambda t: t.flip(3), lambda t: t.flip(3)), (lambda t: t.flip(2), lambda t: t.flip(2)),
        (lambda t: t.flip(2, 3), lambda t: t.flip(2, 3)), (lambda t: t.transpose(2, 3), lambda t: t.transpose(2, 3)),
        (lambda t: t.flip(3).transpose(2, 3), lambda t: t.transpose(2, 3).flip(3)),
        (lambda t: t.flip(2).transpose(2, 3), lambda t: t.transpose(2, 3).flip(2)),
        (lambda t: t.flip(2, 3).transpose(2, 3), lambda t: t.transpose(2, 3).flip(2, 3)),
    ]
    with torch.no_grad():
        expected = torch.stack([
            undo(dequantize_levels(net, turn(levels).contiguous() * step, step, turn(prior).contiguous())) for turn, undo in turns
        ]).mean(0)
        torch.testing.assert_close(LearnedDequantizer(net, 5, ensemble=8)(levels), expected, atol=1e-6, rtol=0)


def test_an_ensemble_stays_in_the_bins_and_tiles_exactly(tmp_path):
    weights = tmp_path / "w.safetensors"
    save_model(_randomized(DequantNet(CONTOUR), 0.05, 7), weights)
    quantized = quantize_image(Image(gradient16(75, 131)), 4)
    run = lambda **kw: upscale_depth(quantized, load_model(str(weights), "depth"), DepthSettings(method="learned", ensemble=8, precision="float32", **kw), device="cpu")
    safe = run(tile=64)
    np.testing.assert_array_equal(requantize_u16(safe.image.pixels, 4), levels_from_codes(quantized.pixels, 4, 8))
    whole, tiled = run(relax=True, tile=4096), run(relax=True, tile=64)
    assert np.abs(whole.image.pixels.astype(int) - tiled.image.pixels.astype(int)).max() <= 1


def test_cli_ensemble_choices(runner, make_png, tmp_path):
    source = make_png("x.png", np.tile(np.arange(0, 256, 16, dtype=np.uint8)[None, :, None], (24, 2, 3)), sbit=4)
    result = runner.invoke(app, ["upscale-depth", str(source), "--ensemble", "2", "-o", str(tmp_path / "x.tiff"), "--json"])
    assert result.exit_code == 0, result.output
    assert '"ensemble": 2' in result.stdout
    for bad in (["--ensemble", "3"], ["--ensemble", "2", "--method", "contour"]):
        result = runner.invoke(app, ["upscale-depth", str(source), *bad, "-o", str(tmp_path / "y.tiff")])
        assert result.exit_code == 2 and "--ensemble" in result.stderr and not (tmp_path / "y.tiff").exists()


@pytest.mark.parametrize("bits", [4, 8])
def test_bfloat16_stays_close_to_float32_in_the_bins_and_tiles(bits):
    """The shipped weights with bfloat16 convolutions: within 5 % of a step of float32, bin-safe, real 16-bit."""
    quantized = quantize_image(Image(gradient16(203, 317)), bits)
    run = lambda precision, tile=None: upscale_depth(quantized, None, DepthSettings(precision=precision, tile=tile), device="cpu")  # noqa: E731
    single, half, half_tiled = run("float32"), run("bfloat16"), run("bfloat16", tile=64)
    assert (single.precision, half.precision) == ("float32", "bfloat16")
    step = 65535 / max_level(bits)
    difference = np.abs(single.image.pixels.astype(int) - half.image.pixels.astype(int))
    assert 0 < difference.max() <= 0.05 * step  # bfloat16 really ran, and changed little
    np.testing.assert_array_equal(requantize_u16(half.image.pixels, bits), levels_from_codes(quantized.pixels, bits, 8))
    assert len(np.unique(half.image.pixels[..., 0])) > 256
    assert np.abs(half.image.pixels.astype(int) - half_tiled.image.pixels.astype(int)).max() <= 1


def test_precision_choices(runner, make_png, tmp_path):
    import torch

    from bdx.device import native_bfloat16, resolve_precision

    cpu = torch.device("cpu")
    assert resolve_precision("float32", cpu) == "float32" and resolve_precision("bfloat16", cpu) == "bfloat16"
    assert resolve_precision("auto", cpu) == ("bfloat16" if native_bfloat16(cpu) else "float32")
    with pytest.raises(BdxError, match="^precision must be one of"):  # the library names its parameter, not a flag
        resolve_precision("fp16", cpu)
    source = make_png("x.png", np.tile(np.arange(0, 256, 16, dtype=np.uint8)[None, :, None], (24, 2, 3)), sbit=4)
    result = runner.invoke(app, ["upscale-depth", str(source), "--precision", "float32", "-o", str(tmp_path / "x.tiff"), "--json"])
    assert result.exit_code == 0 and '"precision": "float32"' in result.stdout, result.output
    result = runner.invoke(app, ["upscale-depth", str(source), "--precision", "half", "-o", str(tmp_path / "y.tiff")])
    assert result.exit_code == 2 and "--precision" in result.stderr and not (tmp_path / "y.tiff").exists()


def test_validation_crops_do_not_depend_on_how_a_folder_is_spelled(tmp_path, monkeypatch):
    """References are ordered by resolved path, and the validation crops are drawn in that order: a relative and
    an absolute spelling of the same folders could otherwise give different validation figures."""
    from bdx.training.depth import load_references, split_references, validation_gain

    rng = np.random.default_rng(3)
    folders = [tmp_path / "z_photos", tmp_path / "a_merges"]
    for index, folder in enumerate(folders):
        folder.mkdir(parents=True)
        for k in range(3):
            smooth = np.cumsum(np.cumsum(rng.normal(0, 1, (96, 96, 3)), axis=0), axis=1)
            smooth = (smooth - smooth.min()) / (smooth.max() - smooth.min())
            write_image(folder / f"f{index}{k}.png", Image(np.rint(smooth * 65535).astype(np.uint16)))
    (tmp_path / "work").mkdir()
    monkeypatch.chdir(tmp_path / "work")
    spellings = [[Path("../z_photos"), folders[1].resolve()], [f.resolve() for f in folders]]
    assert os.fspath(spellings[0][0]) < os.fspath(spellings[0][1])  # as spelled, "../z_photos" sorts first
    assert os.fspath(spellings[1][1]) < os.fspath(spellings[1][0])  # resolved, a_merges does
    names = [[r.name for r in load_references(data)] for data in spellings]
    assert names[0] == names[1]
    net = DequantNet(DequantNetConfig(prior="contour"))
    torch.nn.init.normal_(net.head.weight, std=0.01)
    config = DepthTrainConfig(prior="contour")
    gains = [validation_gain(net, split_references(load_references(data), 0.5)[1], config) for data in spellings]
    assert gains[0] == gains[1]


def test_pixels_with_one_level_all_around_keep_the_bin_centre_whatever_the_weights():
    net = _randomized(DequantNet(replace(CONTOUR, gate=True)).eval(), 0.5, 13)
    model = LearnedDequantizer(net, 6)
    levels = torch.full((1, 3, 400, 400), 20.0)
    levels[:, :, :, :40] = 21.0  # one contour at x = 40: pixels beyond 40 + 128 px (+ a block) see one level only
    with torch.no_grad():
        out = model(levels)
    trim = (400 - out.shape[-1]) // 2
    kept = levels[:, :, trim:-trim, trim:-trim] if trim else levels
    centres = kept / 63
    far = torch.arange(out.shape[-1]) + trim >= 40 + 128 + 8
    assert torch.equal(out[..., far], centres[..., far])  # no other level within reach: exactly the centre
    assert (out[..., ~far] - centres[..., ~far]).abs().max() > 0.05 / 63  # near the contour the network works
    assert (model.flat_blocks + 1) * 8 - 1 <= model.output_trim  # the rule's support fits the halo: exact tiling
    assert model.flat_blocks * 8 >= 128  # and reaches as far as the contour prior


@pytest.mark.parametrize("shape,reach", [((1, 3, 17, 23), 5), ((2, 1, 5, 40), 21), ((1, 1, 3, 3), 21), ((1, 2, 9, 9), 0)])
def test_window_max_is_a_maximum_pool_cut_at_the_ends(shape, reach):
    from bdx.dequant.learned import window_max

    x = torch.rand(shape, generator=torch.Generator().manual_seed(reach))
    for dim, kernel, padding in ((2, (2 * reach + 1, 1), (reach, 0)), (3, (1, 2 * reach + 1), (0, reach))):
        torch.testing.assert_close(window_max(x, reach, dim), F.max_pool2d(x, kernel, stride=1, padding=padding), rtol=0, atol=0)


def test_a_float_tiff_reference_is_the_light_it_holds(tmp_path):
    """A float TIFF holds display values (bdx writes linear light sRGB-encoded there): as a training reference it is
    decoded to the same scene-linear light an EXR of it gives, not taken as radiance."""
    from bdx.training.depth import reference_from_file

    light = np.random.default_rng(3).uniform(0.01, 6.0, (32, 32, 3)).astype(np.float32)
    write_image(tmp_path / "r.exr", Image(light, linear=True), exr_half=False)
    write_image(tmp_path / "r.tiff", Image(light, linear=True), bits=32)
    from_exr, from_tiff = reference_from_file(tmp_path / "r.exr"), reference_from_file(tmp_path / "r.tiff")
    assert from_exr is not None and from_tiff is not None and from_tiff.linear
    np.testing.assert_allclose(from_tiff.pixels, from_exr.pixels, rtol=1e-4)


def test_uniform_surroundings_finds_the_same_blocks_on_the_grid_and_off_it():
    from torch.nn import functional as F

    from bdx.dequant.learned import FLAT_BLOCK, uniform_surroundings, window_max

    levels = torch.zeros(1, 2, 64, 80)
    levels[0, 0, 10:12, 40:45] = 1  # one small patch of another level; the second channel flat
    channels_last = levels.contiguous(memory_format=torch.channels_last)  # a tile's layout as the engine hands it over
    cuts = ((levels, 0), (levels[..., :61, :77], 0), (channels_last, 0), (channels_last[..., 8:, :72], 8))  # on the grid, and not
    for cut, top in cuts:
        high = F.max_pool2d(cut, FLAT_BLOCK, ceil_mode=True)
        low = -F.max_pool2d(-cut, FLAT_BLOCK, ceil_mode=True)
        expected = window_max(window_max(high, 1, 3), 1, 2) == -window_max(window_max(-low, 1, 3), 1, 2)
        found = uniform_surroundings(cut, 1)
        assert torch.equal(found, expected)
        assert found[0, 1].all() and not found[0, 0, (10 - top) // FLAT_BLOCK, 5] and found[0, 0, -1, 0]
