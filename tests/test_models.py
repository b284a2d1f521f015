"""The model registry's contract, run over every registered architecture (spandrel's per-architecture tests):
it saves or is recognised and loads back the same, tiles exactly, its halo covers its receptive field, and a
dequantizer stays inside every bin with random weights.

Adding an architecture to :func:`bdx.models.architectures` without an entry in ``EXAMPLES`` fails
``test_every_registered_architecture_has_an_example``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import pytest
import torch
from torch import nn

from bdx.depth import DepthSettings, upscale_depth
from bdx.dequant.learned import DequantNet, DequantNetConfig, LearnedDequantizer
from bdx.errors import WeightsError
from bdx.hdr.models import FeedbackConfig, FeedbackHDRNet
from bdx.hdr.published import ExpandNet, FHDRNet
from bdx.hdr.reconstruct import HdrSettings, ldr_to_hdr
from bdx.io import Image
from bdx.lowlight.enhance import EnhanceSettings, enhance_lowlight
from bdx.lowlight.models import CurveNet, CurveNetConfig
from bdx.lowlight.published import DCENet, DCEPlusNet, SCIIllumination
from bdx.models import Architecture, architectures, describe, load_model, save_model
from bdx.quantization import codes_from_levels, levels_from_codes, requantize_u16


def _random(net: nn.Module, scale: float = 0.1, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    with torch.no_grad():
        for parameter in net.parameters():
            parameter.normal_(0, scale)
    return net.eval()


def _sci_checkpoint(net: nn.Module) -> dict[str, torch.Tensor]:
    """SCI's state dict as its authors save it (under ``enhance.``, with a training-only module)."""
    state = {f"enhance.{key}": value for key, value in net.state_dict().items()}
    state["calibrate.in_conv.0.weight"] = torch.zeros(16, 3, 3, 3)
    return state


def _levels_in(net: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The dequantizer's local computation on 6-bit levels (the prior included)."""
    return LearnedDequantizer(net, 6)(torch.round(x * 63))


@dataclass(frozen=True)
class Example:
    """A small random network of an architecture, what its authors' checkpoint holds (published ones), and its
    full-resolution computation on (1, 3, H, W) input in [0, 1] (None: it runs on a downscaled copy)."""

    make: Callable[[], nn.Module]
    checkpoint: Callable[[nn.Module], dict[str, torch.Tensor]] = lambda net: net.state_dict()
    local: Callable[[nn.Module, torch.Tensor], torch.Tensor] | None = None


EXAMPLES: dict[str, Example] = {
    "bdx-dequant-unet-v2": Example(
        lambda: _random(DequantNet(DequantNetConfig(widths=(8, 16), blocks=(1, 1), prior="contour", gate=True)), 0.05),
        local=_levels_in,
    ),
    "bdx-lowlight-v1": Example(lambda: _random(CurveNet(CurveNetConfig(width=8, context_size=32)), 0.2)),
    "zero-dce": Example(lambda: _random(DCENet(width=8)), local=lambda net, x: net(x)),
    "zero-dce-improved": Example(lambda: _random(DCENet(width=16, pool=True)), local=lambda net, x: net(x)),
    "zero-dce++": Example(lambda: _random(DCEPlusNet(width=8))),
    "sci": Example(lambda: _random(SCIIllumination(channels=3, layers=1)), _sci_checkpoint, local=lambda net, x: net(x)),
    "bdx-hdr-feedback-v1": Example(
        lambda: _random(FeedbackHDRNet(FeedbackConfig(width=8, growth=4, layers=2, iterations=2, context_size=64)), 0.2),
        local=lambda net, x: net(x, torch.zeros(1, 2 * net.config.width)),
    ),
    "fhdr": Example(lambda: _random(FHDRNet(), 0.02), local=lambda net, x: net(x)),
    "expandnet": Example(lambda: _random(ExpandNet(), 0.05), local=lambda net, x: net(x, torch.zeros(1, 64, 1, 1))),
}

ARCHITECTURES = {entry.name: entry for entry in architectures()}


def _image(height: int = 70, width: int = 93, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width]
    base = 40 + 150 * x / width + 40 * np.sin(y / 6.0)
    return np.clip(base[..., None] * np.array([1.0, 0.8, 0.6]) + rng.normal(0, 3, (height, width, 3)), 0, 255).astype(np.uint8)


def test_every_registered_architecture_has_an_example():
    assert set(EXAMPLES) == set(ARCHITECTURES)
    for entry in ARCHITECTURES.values():
        assert (entry.from_config is None) != (entry.detect is None and entry.from_state is None), entry.name


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_save_or_checkpoint_loads_back_the_same_network(tmp_path, name):
    entry, example = ARCHITECTURES[name], EXAMPLES[name]
    net = example.make()
    if entry.from_config is not None:
        path = tmp_path / "net.safetensors"
        save_model(net, path, extra={"steps": 3})
        model = load_model(path, entry.task)
        assert model.metadata["steps"] == 3
    else:
        path = tmp_path / "net.pth"
        torch.save(example.checkpoint(net), path)
        model = load_model(path, entry.task)
    assert (model.task, model.architecture, type(model.net)) == (entry.task, name, entry.network)
    assert model.tiling == entry.tiling(model.net) and model.path == path and not model.net.training
    assert (model.bfloat16, model.devices) == (entry.bfloat16, entry.devices)
    original, loaded = net.state_dict(), model.net.state_dict()
    assert original.keys() == loaded.keys() and all(torch.equal(original[k], loaded[k]) for k in original)
    other = next(task for task in ("depth", "lowlight", "hdr") if task != entry.task)
    with pytest.raises(WeightsError, match=f"{path.name}: not"):
        load_model(path, other)  # a file of one task is refused, in one line, by another


def _run(entry: Architecture, net: nn.Module, image: Image, tile: int) -> np.ndarray:
    model = describe(net, entry)
    if entry.task == "depth":
        settings = DepthSettings(in_bits=6, relax=True, precision="float32", tile=tile)
        return upscale_depth(image, model, settings, device="cpu").image.pixels.astype(np.float64) / 65535
    if entry.task == "lowlight":
        settings = EnhanceSettings(dequantize="none", tile=tile)
        return enhance_lowlight(image, model, settings, device="cpu").image.pixels.astype(np.float64) / 65535
    return ldr_to_hdr(image, model, HdrSettings(dequantize="none", tile=tile), device="cpu").image.pixels.astype(np.float64)


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_tiled_equals_whole_image(name):
    entry = ARCHITECTURES[name]
    net = EXAMPLES[name].make()
    codes = _image()
    if entry.task == "depth":
        codes = (codes >> 2 << 2) + 2  # 6-bit content in an 8-bit file
    image = Image(codes, significant_bits=6 if entry.task == "depth" else None)
    whole, tiled = _run(entry, net, image, 4096), _run(entry, net, image, 24)
    scale = max(1.0, float(np.abs(whole).max()))
    assert np.abs(whole - tiled).max() <= 2e-5 * scale + 1 / 65535  # float rounding, at most one 16-bit code


def test_a_model_refuses_a_device_its_architecture_does_not_run_on():
    from dataclasses import replace

    from bdx.errors import SettingError

    entry = replace(ARCHITECTURES["zero-dce"], devices=("cuda",))
    model = describe(EXAMPLES["zero-dce"].make(), entry)
    with pytest.raises(SettingError, match="device cpu: zero-dce runs on cuda"):
        enhance_lowlight(Image(_image(8, 8)), model, EnhanceSettings(dequantize="none"), device="cpu")


def test_more_feedback_iterations_than_trained_still_tile_exactly():
    """Each pass of the feedback block sees farther: the halo follows the iterations asked for."""
    entry = ARCHITECTURES["bdx-hdr-feedback-v1"]
    net = EXAMPLES["bdx-hdr-feedback-v1"].make()
    assert net.config.iterations == 2
    image, model = Image(_image()), describe(net, entry)
    whole, tiled = (
        ldr_to_hdr(image, model, HdrSettings(dequantize="none", iterations=5, tile=tile), device="cpu").image.pixels
        for tile in (4096, 24)
    )
    np.testing.assert_allclose(tiled, whole, rtol=2e-5, atol=2e-5 * float(np.abs(whole).max()))


@pytest.mark.parametrize("name", sorted(name for name, example in EXAMPLES.items() if example.local is not None))
def test_halo_covers_the_receptive_field(name):
    """A change at one pixel moves no output farther away than the halo the registry declares."""
    entry, example = ARCHITECTURES[name], EXAMPLES[name]
    net = example.make()
    halo = entry.tiling(net).halo
    size = 2 * halo + 4 * entry.tiling(net).multiple + 8
    size += -size % max(8, entry.tiling(net).multiple)
    torch.manual_seed(1)
    x = torch.rand(1, 3, size, size)
    if entry.task == "depth":
        x = torch.round(x * 63) / 63
    moved = x.clone()
    centre = size // 2
    moved[0, :, centre, centre] = 1.0 - moved[0, :, centre, centre]
    assert local_reach(example.local, net, x, moved, centre) <= halo


def local_reach(local, net, x: torch.Tensor, moved: torch.Tensor, centre: int) -> int:
    """How far from ``centre`` the output of ``local`` changes between ``x`` and ``moved`` (the same crop of the
    output when the computation trims its edges)."""
    with torch.no_grad():
        before, after = local(net, x).float(), local(net, moved).float()
    trim = (x.shape[2] - before.shape[2]) // 2
    changed = (before - after).abs().amax(dim=(0, 1)) > 1e-6
    rows, cols = torch.nonzero(changed, as_tuple=True)
    assert rows.numel() > 0  # the change is seen at all (the example is not constant)
    return int(torch.maximum((rows + trim - centre).abs(), (cols + trim - centre).abs()).max())


@pytest.mark.parametrize("name", sorted(name for name, entry in ARCHITECTURES.items() if entry.task == "depth"))
def test_a_random_dequantizer_stays_inside_every_bin(name):
    entry = ARCHITECTURES[name]
    net = _random(EXAMPLES[name].make(), 0.3, seed=4)  # large random weights: offsets pushed to the bin's edges
    for bits in (3, 6):
        levels = levels_from_codes(_image(40, 56, seed=bits), bits, 8)
        image = Image(codes_from_levels(levels, bits, 8), significant_bits=bits)
        settings = DepthSettings(in_bits=bits, relax=True)  # no clamp after the model: the model alone keeps the bins
        out = upscale_depth(image, describe(net, entry), settings, device="cpu")
        np.testing.assert_array_equal(requantize_u16(out.image.pixels, bits), levels)


def test_info_describes_weights_files_of_any_task(runner, tmp_path):
    import json

    from bdx.cli import app

    own = tmp_path / "mine.safetensors"
    save_model(EXAMPLES["bdx-lowlight-v1"].make(), own, extra={"steps": 7})
    published = tmp_path / "Epoch99.pth"
    torch.save(EXAMPLES["fhdr"].make().state_dict(), published)
    result = runner.invoke(app, ["info", "--json", str(own), str(published)])
    assert result.exit_code == 0, result.output
    records = {Path(r["input"]).name: r for r in map(json.loads, result.stdout.splitlines())}
    assert records["mine.safetensors"] == {**records["mine.safetensors"], "task": "lowlight", "architecture": "bdx-lowlight-v1",
                                          "steps": 7, "halo": 0, "status": "ok"}
    fhdr = records["Epoch99.pth"]
    assert (fhdr["task"], fhdr["architecture"], fhdr["halo"]) == ("hdr", "fhdr", ARCHITECTURES["fhdr"].tiling(FHDRNet()).halo)
    assert fhdr["parameters"] == sum(p.numel() for p in FHDRNet().parameters())
    other = tmp_path / "resnet.pth"
    torch.save({"fc.weight": torch.zeros(2, 2)}, other)
    result = runner.invoke(app, ["info", str(other)])
    assert result.exit_code == 1 and "resnet.pth: not a checkpoint bdx recognises (Zero-DCE" in result.stderr
    assert "resnet.pth: resnet.pth" not in result.stderr
    result = runner.invoke(app, ["upscale-depth", str(other), "-o", str(tmp_path / "x.png"), "--weights", str(other)])
    assert result.exit_code == 1 and "not a dequantizer checkpoint bdx recognises (bdx's own safetensors only)" in result.stderr
