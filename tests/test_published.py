"""Published checkpoints (Zero-DCE family, SCI, FHDR, ExpandNet): recognition, errors, tiling, scale, CLI, and
parity with their authors' outputs (those skip without ../shared/peers)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from bdx.cli import app
from bdx.color import srgb_to_linear
from bdx.depth import display_codes
from bdx.errors import BdxError
from bdx.hdr.published import ExpandNet, FHDRNet, resize_bilinear
from bdx.hdr.reconstruct import HdrSettings, _published, ldr_to_hdr, match_input_scale
from bdx.io import Image, read_image, write_image
from bdx.lowlight.enhance import EnhanceSettings, enhance_lowlight
from bdx.lowlight.published import DCENet, DCEPlusNet, SCIIllumination
from bdx.metrics import psnr, psnr_mu
from bdx.models import describe, load_model, recognise

from conftest import SHARED_DATA

PEERS = SHARED_DATA.parent / "peers" if SHARED_DATA is not None else None


def _randomised(net: torch.nn.Module, seed: int = 0, scale: float = 0.1) -> torch.nn.Module:
    torch.manual_seed(seed)
    with torch.no_grad():
        for parameter in net.parameters():
            parameter.normal_(0, scale)
    return net.eval()


def _sci_checkpoint(seed: int = 0) -> dict[str, torch.Tensor]:
    """An SCI-shaped state dict as its authors save it: the illumination estimator, its ``blocks.0`` aliases and
    the training-only calibration module."""
    net = _randomised(SCIIllumination(), seed)
    with torch.no_grad():
        net.conv[1].running_mean.uniform_(-0.1, 0.1)
        net.conv[1].running_var.uniform_(0.5, 2.0)
    state = {f"enhance.{key}": value for key, value in net.state_dict().items()}
    state.update({f"enhance.blocks.0.{key[len('enhance.conv.'):]}": value for key, value in state.items()
                  if key.startswith("enhance.conv.")})
    state["calibrate.in_conv.0.weight"] = torch.zeros(16, 3, 3, 3)
    return state


def _dark(height: int, width: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width]
    base = 12 + 25 * (x / width) + 10 * np.sin(y / 5.0)
    return np.clip(base[..., None] * np.array([1.0, 0.8, 0.6]) + rng.normal(0, 2, (height, width, 3)), 0, 255).astype(np.uint8)


def _bright(height: int, width: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width]
    base = 80 + 200 * np.exp(-((x - width / 2) ** 2 + (y - height / 3) ** 2) / (0.05 * width * height))
    return np.clip(base[..., None] * np.array([1.0, 0.95, 0.9]) + rng.normal(0, 3, (height, width, 3)), 0, 255).astype(np.uint8)


def test_low_light_checkpoints_are_recognised_from_keys_and_shapes():
    assert recognise(DCENet().state_dict(), "lowlight").name == "zero-dce"
    assert recognise(DCENet(width=16, pool=True).state_dict(), "lowlight").name == "zero-dce-improved"
    assert recognise(DCEPlusNet().state_dict(), "lowlight").name == "zero-dce++"
    assert recognise(_sci_checkpoint(), "lowlight").name == "sci"
    with pytest.raises(BdxError, match="Zero-DCE, Zero-DCE-improved, Zero-DCE\\+\\+, SCI"):
        recognise({"conv.weight": torch.zeros(1)}, "lowlight")


def test_hdr_checkpoints_are_recognised_from_keys():
    assert recognise(FHDRNet().state_dict(), "hdr").name == "fhdr"
    assert recognise(ExpandNet().state_dict(), "hdr").name == "expandnet"
    with pytest.raises(BdxError, match="FHDR, ExpandNet"):
        recognise(DCENet().state_dict(), "hdr")


def test_sci_checkpoint_loads_and_divides_by_its_illumination(tmp_path):
    path = tmp_path / "medium.pt"
    torch.save(_sci_checkpoint(), path)
    model = load_model(path, "lowlight")
    assert model.architecture == "sci" and not model.net.training
    x = torch.rand(1, 3, 16, 20) * 0.3
    with torch.no_grad():
        illumination = model.net(x)
        out = model.net.render(x, illumination)
    assert float(illumination.min()) >= 1e-4 and float(illumination.max()) <= 1
    torch.testing.assert_close(out, (x / illumination).clamp(0, 1))
    assert float(out.mean()) > float(x.mean())  # illumination is at least the input: the result is brighter


def test_zero_dce_improved_has_its_max_pool_and_gamma(tmp_path):
    path = tmp_path / "pre-train.pth"
    torch.save(_randomised(DCENet(width=16, pool=True)).state_dict(), path)
    model = load_model(path, "lowlight")
    assert model.architecture == "zero-dce-improved" and model.net.pool and model.net.gamma == pytest.approx(1 / 1.15)
    plain = DCENet(width=16)
    plain.load_state_dict(model.net.state_dict())
    x = torch.rand(1, 3, 12, 12)
    with torch.no_grad():
        assert not torch.allclose(model.net(x), plain.eval()(x))  # the pool changes the result


def test_fhdr_state_starts_afresh_for_every_image():
    net = _randomised(FHDRNet(), scale=0.05)
    first, second = torch.rand(1, 3, 20, 24), torch.rand(1, 3, 12, 30)
    with torch.no_grad():
        alone = net(second, 2)
        net(first, 2)
        after = net(second, 2)  # another size after another image: no state carried, no crash
    torch.testing.assert_close(after, alone, rtol=0, atol=0)
    assert net.receptive_radius(2) == 2 + 2 * 25 + 2


def test_fhdr_iterations_come_from_known_files_else_one(tmp_path):
    path = tmp_path / "mine.ckpt"
    torch.save(_randomised(FHDRNet(), scale=0.05).state_dict(), path)
    net = load_model(path, "hdr").net
    assert isinstance(net, FHDRNet) and net.iterations == 1


@pytest.mark.parametrize("kind", ["fhdr", "expandnet"])
def test_published_hdr_is_tiled_exactly_and_brought_to_the_input_scale(tmp_path, kind):
    net = _randomised(FHDRNet() if kind == "fhdr" else ExpandNet(), scale=0.05)
    codes = display_codes(Image(_bright(50, 70)), "none", "cpu")
    whole = _published(net, codes, HdrSettings(iterations=2, tile=512), torch.device("cpu"), None)
    tiled = _published(net, codes, HdrSettings(iterations=2, tile=16), torch.device("cpu"), None)
    np.testing.assert_allclose(tiled, whole, rtol=1e-4, atol=1e-6)
    out = ldr_to_hdr(Image(_bright(50, 70)), describe(net, recognise(net.state_dict(), "hdr")),
                     HdrSettings(dequantize="none", iterations=2), device="cpu").image.pixels
    assert out.shape == (50, 70, 3) and np.isfinite(out).all()


@pytest.mark.parametrize("size", [(1, 1), (1, 5), (3, 1), (2, 2)])
def test_published_networks_take_any_image_size(size):
    image = Image(np.full(size + (3,), 90, np.uint8))
    for net in (FHDRNet().eval(), ExpandNet().eval()):
        out = ldr_to_hdr(image, describe(net, recognise(net.state_dict(), "hdr")), HdrSettings(), device="cpu").image.pixels
        assert out.shape == size + (3,) and np.isfinite(out).all()
    for net in (DCENet(width=8).eval(), SCIIllumination().eval(), DCEPlusNet(width=8).eval()):
        model = describe(net, recognise(_sci_checkpoint() if isinstance(net, SCIIllumination) else net.state_dict(), "lowlight"))
        assert enhance_lowlight(image, model, EnhanceSettings(), device="cpu").image.pixels.shape == size + (3,)


def test_match_input_scale_brings_unclipped_pixels_to_the_linearized_input():
    codes = _bright(40, 60)
    linear = srgb_to_linear(codes.astype(np.float32) / 255)
    scaled = match_input_scale(linear * np.float32(0.01), codes)
    well_exposed = ((codes >= 26) & (codes <= 229)).all(-1)
    np.testing.assert_allclose(scaled[well_exposed], linear[well_exposed], rtol=1e-4)


def test_resize_bilinear_matches_torch_both_ways():
    image = np.random.default_rng(0).integers(0, 65536, (37, 300, 3), dtype=np.uint16)
    for size in ((256, 256), (64, 512)):
        expected = torch.nn.functional.interpolate(torch.from_numpy(image.astype(np.float32)).permute(2, 0, 1)[None], size,
                                                   mode="bilinear", align_corners=False)[0].permute(1, 2, 0).numpy()
        np.testing.assert_allclose(resize_bilinear(image, *size), expected, rtol=1e-5, atol=0.05)


def test_unrecognised_checkpoint_is_one_line_naming_what_is_run(runner, tmp_path):
    image = tmp_path / "in.png"
    write_image(image, Image(_dark(20, 24)))
    other = tmp_path / "resnet.pth"
    torch.save({"fc.weight": torch.zeros(2, 2), "fc.bias": torch.zeros(2)}, other)
    for command, names, suffix in (("ldr2hdr", "FHDR, ExpandNet", ".exr"),
                                   ("enhance-lowlight", "Zero-DCE, Zero-DCE-improved", ".tiff")):
        target = tmp_path / f"{command}{suffix}"
        result = runner.invoke(app, [command, str(image), "-o", str(target), "--weights", str(other)])
        assert result.exit_code != 0 and names in result.output and "Traceback" not in result.output
        assert len(result.output.strip().splitlines()) == 1
        assert not target.exists()
        result = runner.invoke(app, [command, str(image), "-o", str(target), "--weights", str(tmp_path)])
        assert result.exit_code == 1 and "is a folder" in result.output and not target.exists()


def test_cli_runs_published_checkpoints(runner, tmp_path):
    image = tmp_path / "in.png"
    write_image(image, Image(_dark(30, 40)))
    sci, fhdr = tmp_path / "sci.pt", tmp_path / "fhdr.ckpt"
    torch.save(_sci_checkpoint(), sci)
    torch.save(_randomised(FHDRNet(), scale=0.05).state_dict(), fhdr)
    result = runner.invoke(app, ["enhance-lowlight", str(image), "-o", str(tmp_path / "bright.tiff"), "--weights", str(sci),
                                 "--json"])
    assert result.exit_code == 0, result.output
    assert read_image(tmp_path / "bright.tiff").pixels.dtype == np.uint16
    result = runner.invoke(app, ["ldr2hdr", str(image), "-o", str(tmp_path / "hdr.exr"), "--weights", str(fhdr),
                                 "--iterations", "2", "--json"])
    assert result.exit_code == 0, result.output
    record = json.loads(result.stdout.strip().splitlines()[-1])
    assert record["height"] == 30 and np.isfinite(record["peak"])


def _peer(*parts: str) -> Path:
    path = PEERS.joinpath(*parts) if PEERS is not None else Path("/nonexistent")
    if not path.is_file():
        pytest.skip("needs ../shared/peers")
    return path


@pytest.mark.parametrize("checkpoint,reference,gamma,truncate,same_codes", [
    ("zero-dce/Epoch99.pth", "output.png", None, False, 0.99),
    # its gamma LUT was applied to already rounded 8-bit codes: rounding twice moves a fifth of them by one
    ("zero-dce-improved/pre-train.pth", "output.png", None, False, 0.75),
    ("zero-dce-improved/pre-train.pth", "output_nogamma.png", 1.0, False, 0.99),
    ("sci/easy.pt", "output_easy.png", None, True, 0.99),
    ("sci/medium.pt", "output_medium.png", None, True, 0.99),
    ("sci/difficult.pt", "output_difficult.png", None, True, 0.99),
])
def test_low_light_parity_with_the_authors_outputs(checkpoint, reference, gamma, truncate, same_codes):
    """bdx's 16-bit output (its own steps off) against the authors' 8-bit output: at least 45 dB, and the same
    8-bit codes once quantized as their scripts quantize (round, or truncate for SCI)."""
    model = load_model(_peer(*checkpoint.split("/")), "lowlight")
    folder = _peer(checkpoint.split("/")[0], "reference", reference).parent
    settings = EnhanceSettings(dequantize="none", denoise=0, neutral_shadows=0, gamma=gamma, tile=64)
    out = enhance_lowlight(read_image(folder / "input.png"), model, settings, device="cpu").image.pixels / 65535
    expected = read_image(folder / reference).pixels / 255
    assert psnr(out, expected) >= 45
    codes = np.floor(out * 255 + (1e-9 if truncate else 0.5)) / 255
    assert (codes == expected).mean() >= same_codes


@pytest.mark.parametrize("checkpoint,reference,minmax", [
    ("fhdr/FHDR-iter-1.ckpt", "output_iter1_raw.exr", False),
    ("fhdr/FHDR-iter-2.ckpt", "output_iter2_raw.exr", False),
    ("fhdr/FHDR-iter-2.ckpt", "output_iter2.exr", True),
    ("expandnet/weights.pth", "output.exr", True),
])
def test_hdr_parity_with_the_authors_outputs(checkpoint, reference, minmax):
    """The network's relative output (before bdx's scale step; min-max normalised where the authors' file is)
    matches the authors' to float precision, tiled or not; the iteration count of the published FHDR files is known."""
    net = load_model(_peer(*checkpoint.split("/")), "hdr").net
    folder = _peer(checkpoint.split("/")[0], "reference", reference).parent
    codes = display_codes(read_image(folder / "input.png"), "none", "cpu")
    expected = read_image(folder / reference).pixels[..., :3].astype(np.float64)
    for tile in (None, 48):
        out = _published(net, codes, HdrSettings(tile=tile), torch.device("cpu"), None).astype(np.float64)
        if minmax:
            out = (out - out.min()) / (out.max() - out.min())
        assert np.abs(out - expected).max() <= 1e-4 * np.abs(expected).max()
        assert psnr_mu(out, expected) >= 35
