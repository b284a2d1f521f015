"""Low-light enhancement: the curve, exact sizes, tiling, checkpoints, denormals, training, CLI and eval."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from bdx.cli import app
from bdx.errors import BdxError
from bdx.io import Image, read_image, write_image
from bdx.lowlight.curves import apply_curves, sample_maps
from bdx.lowlight.enhance import EnhanceSettings, enhance_lowlight
from bdx.checkpoints import flush_denormals
from bdx.lowlight.models import CurveEstimator, CurveNet, CurveNetConfig, curve_tiling
from bdx.lowlight.published import ZERO_DCE, ZERO_DCE_PLUS, DCENet, DCEPlusNet
from bdx.models import LoadedModel, load_model, save_model
from bdx.training.lowlight import LowlightTrainConfig, train_lowlight

from conftest import SHARED_DATA

PEERS = SHARED_DATA.parent / "peers" if SHARED_DATA is not None else None


def _random_curve_net(seed: int = 0) -> CurveNet:
    torch.manual_seed(seed)
    net = CurveNet()
    with torch.no_grad():
        for parameter in net.parameters():
            parameter.normal_(0, 0.2)
        net.head.bias.fill_(-0.6)  # brightens
    return net.eval()


def _model(net: CurveEstimator, context_size: int | None = None, name: str = "test") -> LoadedModel:
    """A network in memory as the model ``enhance_lowlight`` runs (``context_size``: set on it first)."""
    if context_size is not None:
        net.context_size = context_size
    return LoadedModel("lowlight", name, net, curve_tiling(net))


@pytest.fixture
def curve_weights(tmp_path) -> Path:
    path = tmp_path / "ll.safetensors"
    save_model(_random_curve_net(), path)
    return path


def _dark(height: int, width: int, channels: int = 3, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width]
    base = 8 + 12 * x / max(1, width - 1) + 4 * y / max(1, height - 1)
    pixels = base[..., None] + rng.normal(0, 0.3, (height, width, channels))
    return np.clip(np.rint(pixels), 0, 255).astype(np.uint8)


def test_curve_formula():
    x = torch.tensor([0.0, 0.25, 0.5, 1.0]).view(1, 1, 1, 4).expand(1, 3, 1, 4)
    a = torch.full((1, 3, 1, 4), -1.0)
    once = apply_curves(x, a, iterations=1)
    np.testing.assert_allclose(once[0, 0, 0].numpy(), [0.0, 0.4375, 0.75, 1.0], rtol=1e-6)
    # 24 maps: iteration i uses channels 3i..3i+2; zeros except the 2nd iteration equals one step
    maps = torch.zeros(1, 24, 1, 4)
    maps[:, 3:6] = -1.0
    np.testing.assert_allclose(apply_curves(x, maps).numpy(), once.numpy(), rtol=1e-6)
    with pytest.raises(ValueError):
        apply_curves(x, torch.zeros(1, 6, 1, 4))


def test_inference_curves_equal_the_training_formula_on_many_row_bands():
    """The banded inference loop equals the autograd path, with full-size and broadcast (1x1) curve maps."""
    torch.manual_seed(1)
    x = torch.rand(2, 3, 301, 517)  # several row bands, the last one partial
    for maps in (torch.rand(2, 3, 301, 517) * 2 - 1, torch.rand(2, 24, 1, 1) * 2 - 1):
        with torch.inference_mode():
            fast = apply_curves(x, maps)
        torch.testing.assert_close(fast, apply_curves(x, maps), rtol=0, atol=1e-6)


def test_curves_keep_the_range_and_order():
    torch.manual_seed(0)
    x = torch.rand(1, 3, 1, 1000).sort(dim=-1).values
    a = torch.rand(1, 3, 1, 1) * 2 - 1
    y = apply_curves(x, a.expand_as(x))
    assert y.min() >= 0 and y.max() <= 1
    assert (y.diff(dim=-1) >= -1e-7).all()  # monotonic for a fixed curve


def test_sampled_maps_equal_whole_image_upsampling():
    params = torch.rand(1, 3, 5, 7)
    height, width = 37, 53
    whole = torch.nn.functional.interpolate(params, size=(height, width), mode="bilinear", align_corners=False)
    box = torch.tensor([[3 / height, 10 / width, 23 / height, 40 / width]])
    tile = sample_maps(params, box, 20, 30)
    torch.testing.assert_close(tile, whole[:, :, 3:23, 10:40], atol=1e-5, rtol=0)


@pytest.mark.parametrize("shape", [(1, 1, 3), (7, 13, 3), (37, 61, 1), (50, 24, 3)])
def test_output_has_the_input_size(shape):
    model = _model(_random_curve_net(), 16)
    image = Image(_dark(*shape))
    out = enhance_lowlight(image, model, EnhanceSettings(dequantize="midpoint"), device="cpu").image
    assert out.pixels.shape == image.pixels.shape
    assert out.pixels.dtype == np.uint16
    assert out.pixels.astype(np.float64).mean() > image.pixels.astype(np.float64).mean() * 257  # brighter


def test_alpha_icc_and_orientation_are_carried():
    model = _model(_random_curve_net(), 16)
    alpha = np.full((9, 11, 1), 200, np.uint8)
    image = Image(_dark(9, 11), alpha=alpha, icc_profile=b"icc", orientation=1)
    out = enhance_lowlight(image, model, EnhanceSettings(dequantize="midpoint"), device="cpu").image
    assert out.alpha is not None and np.array_equal(out.alpha, alpha[..., 0])  # alpha is (H, W)
    assert out.icc_profile == b"icc"


@pytest.mark.parametrize("kind", ["context", "full-resolution"])
def test_tiled_equals_whole_image(kind):
    torch.manual_seed(3)
    if kind == "context":
        model = _model(_random_curve_net(), 32)
    else:
        net = DCENet(width=8).eval()
        model = _model(net)
    image = Image(_dark(70, 93))
    settings = EnhanceSettings(dequantize="midpoint", denoise=1.0)
    whole = enhance_lowlight(image, model, EnhanceSettings(**{**settings.__dict__, "tile": 4096}), device="cpu").image
    tiled = enhance_lowlight(image, model, EnhanceSettings(**{**settings.__dict__, "tile": 24}), device="cpu").image
    assert np.abs(whole.pixels.astype(int) - tiled.pixels.astype(int)).max() <= 1


class _ConstantCurve(CurveEstimator):
    maps = 1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.full_like(x, -0.3)


@pytest.mark.parametrize("dequantize", ["contour", "auto"])
def test_dark_region_gets_hundreds_of_values(dequantize):
    """A dark 8-bit gradient holding 20 codes comes out smooth (dequantized before it is stretched)."""
    model = _model(_ConstantCurve(), 32)
    x = np.linspace(10, 29.4, 240)
    pixels = np.repeat(np.rint(x)[None, :, None], 40, axis=0).repeat(3, axis=2).astype(np.uint8)
    assert np.unique(pixels).size == 20
    out = enhance_lowlight(Image(pixels), model, EnhanceSettings(dequantize=dequantize, denoise=0), device="cpu").image
    assert np.unique(out.pixels[..., 1]).size >= 200
    flat = enhance_lowlight(Image(pixels), model, EnhanceSettings(dequantize="none", denoise=0), device="cpu").image
    assert np.unique(flat.pixels[..., 1]).size <= 25  # without dequantization the bands stay (20 codes, give or take float ties)


def test_flushing_denormals_restores_the_callers_setting():
    """Enhancement flushes subnormals for speed; a caller who had turned flushing on kept it only by luck (it was
    always switched off on the way out)."""
    from bdx.lowlight.enhance import _flush_denormals, _flushing_denormals

    for before in (True, False):
        torch.set_flush_denormal(before)
        with _flush_denormals():
            assert _flushing_denormals()
        assert _flushing_denormals() == before
    torch.set_flush_denormal(False)


def test_flush_denormals():
    tiny = torch.finfo(torch.float32).tiny
    state = {"w": torch.tensor([1.0, tiny / 4, -tiny / 8, 0.0, tiny]), "n": torch.tensor([3])}
    assert flush_denormals(state) == 2
    assert state["w"].tolist() == [1.0, 0.0, 0.0, 0.0, tiny]


def test_detect_official_architectures(tmp_path):
    assert ZERO_DCE.detect(DCENet().state_dict()) and not ZERO_DCE.detect(DCEPlusNet().state_dict())
    assert ZERO_DCE_PLUS.detect(DCEPlusNet().state_dict()) and not ZERO_DCE_PLUS.detect(DCENet().state_dict())
    # a DataParallel-style prefix and denormals in a saved checkpoint
    state = {f"module.{k}": v for k, v in DCEPlusNet().state_dict().items()}
    state["module.e_conv1.point_conv.weight"][0, 0, 0, 0] = torch.finfo(torch.float32).tiny / 16
    path = tmp_path / "Epoch99.pth"
    torch.save(state, path)
    model = load_model(path, "lowlight")
    assert model.architecture == "zero-dce++" and model.net.context_scale == 12
    assert model.net.e_conv1.point_conv.weight[0, 0, 0, 0].item() == 0.0


def test_checkpoint_errors(tmp_path):
    with pytest.raises(BdxError, match="not found"):
        load_model(tmp_path / "missing.pth", "lowlight")
    garbage = tmp_path / "garbage.pth"
    # fixed bytes: random ones have a '{' at offset 8 one time in 256, which reads as a safetensors header
    garbage.write_bytes(np.random.default_rng(0).bytes(300))
    with pytest.raises(BdxError, match=r"garbage.pth: not a PyTorch checkpoint or a safetensors file$"):
        load_model(garbage, "lowlight")
    pickled = tmp_path / "pickled.pth"
    pickled.write_bytes(b"\x80" + np.random.default_rng(0).bytes(300))  # a pickle's first byte, then garbage
    with pytest.raises(BdxError, match=r"not a loadable checkpoint \(unreadable data\)"):
        load_model(pickled, "lowlight")
    cut = tmp_path / "cut.pth"
    torch.save({"fc.weight": torch.zeros(2, 2)}, cut)
    cut.write_bytes(cut.read_bytes()[:40])
    with pytest.raises(BdxError, match=r"cut.pth: not a loadable checkpoint"):
        load_model(cut, "lowlight")
    for name in ("empty.pth", "empty.safetensors"):
        (tmp_path / name).write_bytes(b"")
        with pytest.raises(BdxError, match=rf"{name}: the file is empty$"):
            load_model(tmp_path / name, "lowlight")
    wrong = tmp_path / "wrong.pth"
    torch.save({"fc.weight": torch.zeros(2, 2)}, wrong)
    with pytest.raises(BdxError, match="not a low-light checkpoint bdx recognises"):
        load_model(wrong, "lowlight")
    odd = {  # read by torch, but bdx's reading of them raised inside (an internal error, not a weights error)
        "badstep.pt": ({"model": {}, "optimizer": {}, "step": "abc"}, "its step is not a whole number"),
        "vectorstep.pt": ({"model": {}, "optimizer": {}, "step": torch.zeros(2)}, "its step is not a whole number"),
        "mixedkeys.pt": ({1: torch.zeros(2), "a": torch.zeros(2)}, "its keys are not all names"),
        "tuplekey.pt": ({(1, 2): torch.zeros(2)}, "its keys are not all names"),
    }
    for name, (content, reason) in odd.items():
        torch.save(content, tmp_path / name)
        for task in ("lowlight", "depth"):
            with pytest.raises(BdxError, match=rf"{name}: not a .*\({reason}\)$"):
                load_model(tmp_path / name, task)
    mismatched = tmp_path / "mismatched.pth"
    state = DCENet().state_dict()
    state["e_conv7.weight"] = torch.zeros(5, 64, 3, 3)
    torch.save(state, mismatched)
    with pytest.raises(BdxError, match="do not match"):
        load_model(mismatched, "lowlight")

    class Evil:
        def __reduce__(self):
            return (os.system, ("echo unsafe",))

    evil = tmp_path / "evil.pth"
    torch.save({"x": Evil()}, evil)
    with pytest.raises(BdxError, match=r"not a loadable checkpoint \(it holds Python objects besides tensors"):
        load_model(evil, "lowlight")  # the reason is whole, not torch's first 80 characters cut mid-word


@pytest.mark.skipif(PEERS is None or not (PEERS / "zero-dce" / "Epoch99.pth").is_file(), reason="needs ../shared/peers")
def test_official_checkpoints_load_and_flush():
    state = torch.load(PEERS / "zero-dce" / "Epoch99.pth", map_location="cpu", weights_only=True)
    assert flush_denormals(dict((k, v.clone()) for k, v in state.items())) > 10_000
    for name, kind in (("zero-dce", "zero-dce"), ("zero-dce-pp", "zero-dce++")):
        model = load_model(PEERS / name / "Epoch99.pth", "lowlight")
        assert model.architecture == kind
        tiny = torch.finfo(torch.float32).tiny
        assert all(not ((p != 0) & (p.abs() < tiny)).any() for p in model.net.parameters())
        out = enhance_lowlight(Image(_dark(30, 41)), model, EnhanceSettings(dequantize="none", denoise=0), device="cpu").image
        assert out.pixels.shape == (30, 41, 3) and out.pixels.mean() > 40 * 257


def _training_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "train"
    folder.mkdir()
    for i in range(4):
        write_image(folder / f"{i}.png", Image(_dark(40, 56, seed=i)))
    return folder


def test_training_step_and_resume(tmp_path):
    folder = _training_folder(tmp_path)
    output = tmp_path / "ll.safetensors"
    config = LowlightTrainConfig(steps=2, batch_size=2, crop=32, context_size=48, validate_every=1, checkpoint_every=1,
                                 validation_fraction=0.3)
    state = train_lowlight([folder], output, config)
    assert state.step == 2
    first = load_model(output, "lowlight")
    assert first.architecture == "bdx-lowlight-v1" and first.net.context_size == 48
    checkpoint = Path(str(output) + ".ckpt.pt")
    assert torch.load(checkpoint, weights_only=True)["step"] == 2
    resumed = train_lowlight([folder], output, LowlightTrainConfig(**{**config.__dict__, "steps": 4}), resume=checkpoint)
    assert resumed.step == 4
    second = load_model(output, "lowlight")
    assert any(not torch.equal(a, b) for a, b in zip(first.net.state_dict().values(), second.net.state_dict().values()))


def test_train_lowlight_cli_reports_validation(runner, tmp_path):
    output = tmp_path / "ll.safetensors"
    result = runner.invoke(app, ["train", "lowlight", "--data", str(_training_folder(tmp_path)), "-o", str(output), "--steps", "1",
                                 "--batch-size", "2", "--validate-every", "1", "--device", "cpu"])
    assert result.exit_code == 0, result.output
    assert output.exists() and "step 1/1" in result.stderr and "no validation files" in result.stderr  # 4 files: none held out


def test_a_resumed_lowlight_run_keeps_its_settings_unless_given(runner, tmp_path):
    folder, output = _training_folder(tmp_path), tmp_path / "ll.safetensors"
    common = ["train", "lowlight", "--data", str(folder), "-o", str(output), "--device", "cpu", "-q"]
    first = runner.invoke(app, [*common, "--steps", "1", "--batch-size", "2", "--context-size", "32", "--members", "2",
                                "--exposure-level", "0.5", "--smoothness-weight", "200", "--gamma", "1.2"])
    assert first.exit_code == 0, first.stderr
    started = load_model(output, "lowlight").metadata["train_config"]
    resumed = runner.invoke(app, [*common, "--steps", "2", "--resume", str(output) + ".ckpt.pt"])
    assert resumed.exit_code == 0, resumed.stderr
    assert load_model(output, "lowlight").metadata["train_config"] == {**started, "steps": 2}


def _pairs_file(tmp_path: Path, count: int = 6) -> Path:
    """Dark frames and references twice as bright in linear light (sRGB-encoded), as a pairs file."""
    from bdx.color import linear_to_srgb, srgb_to_linear

    folder = tmp_path / "pairs"
    folder.mkdir()
    entries = []
    for i in range(count):
        dark = _dark(32, 40, seed=i)
        bright = linear_to_srgb(np.clip(4 * srgb_to_linear(dark / 255.0), 0, 1))
        write_image(folder / f"dark{i}.png", Image(dark))
        write_image(folder / f"ref{i}.png", Image(np.rint(bright * 255).astype(np.uint8)))
        entries.append({"input": f"dark{i}.png", "reference": f"ref{i}.png"})
    path = folder / "pairs.json"
    path.write_text(json.dumps(entries))
    return path


@pytest.mark.parametrize("pair_loss", ["psnr", "mse"])
def test_reference_training_lowers_the_error_to_the_references(tmp_path, pair_loss):
    from bdx.training.lowlight import load_pairs, reference_errors

    pairs = _pairs_file(tmp_path)
    init = tmp_path / "init.safetensors"
    save_model(CurveNet(CurveNetConfig(context_size=16)), init)
    output = tmp_path / "ll.safetensors"
    config = LowlightTrainConfig(steps=40, batch_size=4, frame_size=40, lr=3e-3, validate_every=20, checkpoint_every=20,
                                 validation_fraction=0.0, pair_loss=pair_loss)
    train_lowlight([], output, config, pairs=pairs, init=init)
    trained = load_model(output, "lowlight")
    assert trained.net.context_size == 16  # the context size of --init is kept
    dark = torch.from_numpy(np.stack([d for _, d, _ in load_pairs(pairs, 40)])).permute(0, 3, 1, 2)
    reference = torch.from_numpy(np.stack([r for _, _, r in load_pairs(pairs, 40)])).permute(0, 3, 1, 2)
    with torch.no_grad():
        before = reference_errors(load_model(init, "lowlight").net, dark, reference, 16, 1.0)
        after = reference_errors(trained.net, dark, reference, 16, 1.0)
    assert after.mean() < 0.5 * before.mean()


def test_train_lowlight_cli_pairs_errors(runner, tmp_path):
    pairs = _pairs_file(tmp_path, count=2)
    output = tmp_path / "ll.safetensors"
    for arguments in ([], ["--pairs", str(pairs), "--data", str(tmp_path)]):
        result = runner.invoke(app, ["train", "lowlight", "-o", str(output), *arguments])
        assert result.exit_code == 2 and "--data" in result.output and "Traceback" not in result.output
    result = runner.invoke(app, ["train", "lowlight", "--pairs", str(pairs), "-o", str(output), "--pair-loss", "l1"])
    assert result.exit_code == 2 and "--pair-loss must be one of psnr, mse" in result.output and not output.exists()
    broken = tmp_path / "broken.json"
    broken.write_text('[{"input": "a.png"}]')
    result = runner.invoke(app, ["train", "lowlight", "--pairs", str(broken), "-o", str(output), "--steps", "1"])
    assert result.exit_code == 1 and "expected a JSON list" in result.output and not output.exists()
    for value in ("5", "null", '""'):  # a path that is not text was an internal TypeError
        broken.write_text(f'[{{"input": "a.png", "reference": {value}}}]')
        result = runner.invoke(app, ["train", "lowlight", "--pairs", str(broken), "-o", str(output), "--steps", "1"])
        assert result.exit_code == 1 and f'entry 1: "reference" must be a file name, not {value}' in result.output
    excluded = tmp_path / "exclude.txt"  # not UTF-8: read as file names are (an internal UnicodeDecodeError before)
    excluded.write_bytes("caf\xe9.png\n".encode("latin-1"))
    result = runner.invoke(app, ["train", "lowlight", "--data", str(tmp_path), "-o", str(tmp_path / "x.safetensors"), "--exclude-from",
                                 str(excluded), "--steps", "1", "--batch-size", "1", "--context-size", "16", "--device", "cpu"])
    assert result.exit_code == 0, result.output
    missing = tmp_path / "missing.json"  # a pair whose frame is gone: the error names the pairs file and the frame
    missing.write_text('[{"input": "gone.png", "reference": "gone_ref.png"}]')
    result = runner.invoke(app, ["train", "lowlight", "--pairs", str(missing), "-o", str(output), "--steps", "1"])
    assert result.exit_code == 1 and f"{missing}: gone.png: " in result.output and not output.exists()
    write_image(tmp_path / "linear.exr", Image(np.full((16, 16, 3), 0.2, np.float32)))  # trained on as display values before
    missing.write_text('[{"input": "linear.exr", "reference": "linear.exr"}]')
    result = runner.invoke(app, ["train", "lowlight", "--pairs", str(missing), "-o", str(output), "--steps", "1"])
    assert result.exit_code == 1 and f"{missing}: linear.exr: a float (scene-linear) image" in result.output
    assert not output.exists()
    result = runner.invoke(app, ["train", "lowlight", "--pairs", str(pairs), "-o", str(output), "--steps", "2",
                                 "--batch-size", "2", "--validate-every", "1", "--device", "cpu"])
    assert result.exit_code == 0, result.output
    trained = load_model(output, "lowlight").net
    assert trained.context_size == 256 and trained.config.global_context  # new networks get the image-wide branch
    result = runner.invoke(app, ["train", "lowlight", "--pairs", str(pairs), "-o", str(output), "--steps", "1", "--overwrite",
                                 "--batch-size", "2", "--context-size", "24", "--no-global-context", "--device", "cpu"])
    assert result.exit_code == 0, result.output
    trained = load_model(output, "lowlight").net
    assert trained.context_size == 24 and not trained.config.global_context
    for option, value in (("--context-size", "4"), ("--context-size", "100000"), ("--frame-size", "8"), ("--frame-size", "99999")):
        result = runner.invoke(app, ["train", "lowlight", "--pairs", str(pairs), "-o", str(output), option, value])
        assert result.exit_code == 2 and f"{option} must be between" in result.output


def test_global_context_starts_as_the_plain_network_and_then_sees_the_whole_image():
    torch.manual_seed(0)
    plain = CurveNet(CurveNetConfig(context_size=16))
    wide = CurveNet(CurveNetConfig(context_size=16, global_context=True))
    wide.load_state_dict(plain.state_dict(), strict=False)
    x = torch.rand(1, 3, 16, 16) * 0.2
    with torch.no_grad():
        assert torch.equal(plain(x), wide(x))  # the branch's last layer starts at zero
        torch.nn.init.normal_(wide.context[2].weight)
        brighter_corner = x.clone()
        brighter_corner[..., :2, :2] = 1.0
        # a change in one corner reaches the far corner only through the image-wide branch
        assert torch.equal(plain(x)[..., -1, -1], plain(brighter_corner)[..., -1, -1])
        assert not torch.equal(wide(x)[..., -1, -1], wide(brighter_corner)[..., -1, -1])


def _members_and_ensemble(count: int) -> tuple[list[CurveNet], CurveNet]:
    """``count`` random networks (image-wide branch on and not zero) and the ensemble holding them."""
    torch.manual_seed(1)
    members = [CurveNet(CurveNetConfig(context_size=16, global_context=True)) for _ in range(count)]
    for net in members:
        assert net.context is not None
        torch.nn.init.normal_(net.context[2].weight, std=0.3)
    ensemble = CurveNet(CurveNetConfig(context_size=16, global_context=True, members=count))
    ensemble.load_state_dict({key: torch.cat([net.state_dict()[key] for net in members]) for key in ensemble.state_dict()})
    return members, ensemble


def test_an_ensemble_gives_the_mean_of_its_members_maps():
    members, ensemble = _members_and_ensemble(3)
    x = torch.rand(2, 3, 16, 12) * 0.3
    with torch.no_grad():
        each = torch.stack([net(x) for net in members], 1)
        assert torch.allclose(ensemble(x, each_member=True), each, atol=1e-6)
        assert torch.allclose(ensemble(x), each.mean(1), atol=1e-6)
        assert not torch.allclose(each[:, 0], each[:, 1], atol=1e-3)  # the members differ


def test_ensemble_members_learn_on_their_own_losses():
    from bdx.training.lowlight import reference_loss

    members, ensemble = _members_and_ensemble(2)
    dark, reference = torch.rand(3, 3, 24, 32) * 0.2, torch.rand(3, 3, 24, 32)
    joint = reference_loss(ensemble, dark, reference, 16, 1.0, each_member=True)
    alone = [reference_loss(net, dark, reference, 16, 1.0) for net in members]
    assert torch.allclose(joint, torch.stack(alone).mean(), atol=1e-6)
    joint.backward()
    alone[0].backward()  # the first member's gradient comes from its own loss only (halved by the mean)
    assert torch.allclose(ensemble.conv2.weight.grad[:16], members[0].conv2.weight.grad / 2, atol=1e-6)


def test_train_lowlight_cli_members(runner, tmp_path):
    pairs = _pairs_file(tmp_path, count=2)
    output = tmp_path / "ll.safetensors"
    result = runner.invoke(app, ["train", "lowlight", "--pairs", str(pairs), "-o", str(output), "--steps", "1", "--batch-size", "2",
                                 "--context-size", "16", "--members", "2", "--device", "cpu"])
    assert result.exit_code == 0, result.output
    trained = load_model(output, "lowlight").net
    assert trained.config.members == 2 and trained(torch.rand(1, 3, 16, 16)).shape == (1, 3, 16, 16)
    result = runner.invoke(app, ["train", "lowlight", "--pairs", str(pairs), "-o", str(tmp_path / "x.safetensors"), "--members", "0"])
    assert result.exit_code == 2 and "--members must be between 1 and 16" in result.output


def test_training_excludes_held_out_files(tmp_path):
    folder = _training_folder(tmp_path)
    with pytest.raises(BdxError, match="no usable training images"):
        train_lowlight([folder], tmp_path / "x.safetensors", LowlightTrainConfig(steps=1),
                       exclude={f"{i}.png" for i in range(4)})


def test_cli_file_directory_raw_and_exr(runner, tmp_path, curve_weights):
    from dng import synthetic_dng

    folder = tmp_path / "dark"
    folder.mkdir()
    for i in range(2):
        write_image(folder / f"d{i}.jpg", Image(_dark(33, 47, seed=i)), fmt="jpeg")
    (folder / "shot.dng").write_bytes(synthetic_dng())
    result = runner.invoke(app, ["enhance-lowlight", str(folder / "d0.jpg"), "-o", str(tmp_path / "one.tiff"),
                                 "--weights", str(curve_weights)])
    assert result.exit_code == 0, result.output
    one = read_image(tmp_path / "one.tiff")
    assert one.pixels.dtype == np.uint16 and one.pixels.shape == (33, 47, 3)
    result = runner.invoke(app, ["enhance-lowlight", str(folder), "-o", str(tmp_path / "out"), "--weights",
                                 str(curve_weights), "--json"])
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert {Path(r["input"]).name for r in lines} == {"d0.jpg", "d1.jpg", "shot.dng"}
    assert all(r["status"] == "ok" for r in lines)
    raw_out = read_image(tmp_path / "out" / "shot.tiff")
    assert raw_out.pixels.shape == (64, 96, 3)
    result = runner.invoke(app, ["enhance-lowlight", str(folder / "d1.jpg"), "-o", str(tmp_path / "d1.exr"),
                                 "--weights", str(curve_weights)])
    assert result.exit_code == 0, result.output
    exr = read_image(tmp_path / "d1.exr")
    assert exr.is_float and np.isfinite(exr.pixels).all() and exr.pixels.max() <= 1.0


def test_cli_bad_weights_and_options(runner, tmp_path, make_png):
    source = make_png("x.png", _dark(8, 8))
    bad = tmp_path / "bad.pth"
    bad.write_bytes(b"not a checkpoint")
    result = runner.invoke(app, ["enhance-lowlight", str(source), "-o", str(tmp_path / "o.tiff"), "--weights", str(bad)])
    assert result.exit_code == 1
    assert "Traceback" not in result.output and "bad.pth: not a PyTorch checkpoint or a safetensors file" in result.output
    assert not (tmp_path / "o.tiff").exists()
    for option, value in (("--gamma", "0"), ("--gamma", "nan"), ("--gamma", "1e9"), ("--neutral-shadows", "-1"),
                          ("--neutral-shadows", "nan"), ("--denoise", "inf"), ("--target-mean", "1")):
        result = runner.invoke(app, ["enhance-lowlight", str(source), "-o", str(tmp_path / "o.tiff"), option, value])
        assert result.exit_code == 2 and option in result.output and "Traceback" not in result.output
        assert not (tmp_path / "o.tiff").exists()
    # both brightness options: --gamma was silently ignored
    result = runner.invoke(app, ["enhance-lowlight", str(source), "-o", str(tmp_path / "o.tiff"), "--gamma", "2", "--target-mean", "0.5"])
    assert result.exit_code == 2 and "give one" in result.output and not (tmp_path / "o.tiff").exists()


def test_target_mean_reaches_the_target():
    model = _model(_ConstantCurve(), 32)
    image = Image(_dark(64, 80))
    for target in (0.3, 0.6):
        settings = EnhanceSettings(dequantize="midpoint", denoise=0, target_mean=target)
        out = enhance_lowlight(image, model, settings, device="cpu").image
        assert abs(out.pixels.mean() / 65535 - target) < 0.01


def test_eval_lowlight(runner, tmp_path, make_png):
    ref = make_png("ref/a.png", np.full((16, 16, 3), 120, np.uint8))
    make_png("pred/a.png", np.full((16, 16, 3), 110, np.uint8))
    result = runner.invoke(app, ["eval", "lowlight", "--pred", str(tmp_path / "pred"), "--ref", str(ref.parent), "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout.splitlines()[-1])["summary"]["pred"]
    assert summary["psnr"] == pytest.approx(20 * np.log10(255 / 10), abs=0.01)
    assert summary["clipped"] == 0 and summary["mean_brightness"] == pytest.approx(110 / 255, abs=1e-3)
    result = runner.invoke(app, ["eval", "lowlight", "--pred", str(tmp_path / "pred")])
    assert result.exit_code == 0 and "flat noise" in result.output


def test_eval_lowlight_reads_an_exr_prediction_as_the_display_shows_it(runner, tmp_path, make_png):
    """enhance-lowlight --format exr writes linear light: scored as display values it read 0.26 for a 0.47 image."""
    from bdx.color import srgb_to_linear
    from bdx.io import Image, write_image

    codes = np.random.default_rng(0).integers(20, 235, (16, 16, 3), dtype=np.uint8)
    ref = make_png("ref/a.png", codes)
    (tmp_path / "exr").mkdir()
    write_image(tmp_path / "exr" / "a.exr", Image(srgb_to_linear(codes / 255.0).astype(np.float32), linear=True))
    result = runner.invoke(app, ["eval", "lowlight", "--pred", str(tmp_path / "exr"), "--ref", str(ref.parent), "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout.splitlines()[-1])["summary"]["exr"]
    assert summary["mean_brightness"] == pytest.approx(codes.mean() / 255, abs=1e-3) and summary["psnr"] > 45
    make_png("grey/a.png", codes[..., 0])
    result = runner.invoke(app, ["eval", "lowlight", "--pred", str(tmp_path / "grey"), "--ref", str(ref.parent), "--json"])
    assert "prediction is 16x16x1, the reference is 16x16x3" in result.stdout


@pytest.mark.parametrize("changes, message", [
    ({"gamma": 0.0}, "gamma must be between 0.1 and 10"), ({"gamma": float("nan")}, "gamma must be between"),
    ({"denoise_subsample": 0}, "denoise_subsample must be a whole number between 1 and 8"),
    ({"target_mean": 2.0}, "target_mean must be above 0"), ({"gamma": 1.0, "target_mean": 0.4}, "both set the brightness"),
])
def test_enhance_settings_are_checked_when_made(changes, message):
    """The library took gamma 0 (ZeroDivisionError), NaN (a black image) and target_mean 2 without a word."""
    with pytest.raises(BdxError, match=message):
        EnhanceSettings(**changes)


def test_eval_summary_averages_a_metric_over_the_images_that_have_it(runner, tmp_path, make_png):
    """Only the first record's metrics were summarised: a grey first image dropped every colour metric."""
    rng = np.random.default_rng(3)
    colour = (rng.random((16, 16, 3)) * 255).astype(np.uint8)
    make_png("pred/a.png", colour[..., 0])
    make_png("ref/a.png", colour[..., 0] // 2)
    make_png("pred/b.png", colour)
    make_png("ref/b.png", colour // 2)
    result = runner.invoke(app, ["eval", "lowlight", "--pred", str(tmp_path / "pred"), "--ref", str(tmp_path / "ref"), "--json"])
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert result.exit_code == 0 and "delta_e_ok" not in lines[0] and "delta_e_ok" in lines[1]
    assert lines[-1]["summary"]["pred"]["delta_e_ok"] == pytest.approx(lines[1]["delta_e_ok"])


def test_eval_keeps_same_named_methods_apart_and_pairs_a_reference_file_by_name(runner, tmp_path, make_png):
    ref = make_png("ref/a.png", np.full((16, 16, 3), 120, np.uint8))
    make_png("one/pred/a.png", np.full((16, 16, 3), 110, np.uint8))
    make_png("two/pred/a.png", np.full((16, 16, 3), 100, np.uint8))
    make_png("two/pred/b.png", np.full((16, 16, 3), 30, np.uint8))  # another scene: no reference for it
    result = runner.invoke(app, ["eval", "lowlight", "--pred", str(tmp_path / "one" / "pred"), "--pred",
                                 str(tmp_path / "two" / "pred"), "--ref", str(ref), "--json"])
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    summary = lines[-1]["summary"]
    assert set(summary) == {str(tmp_path / "one" / "pred"), str(tmp_path / "two" / "pred")}
    assert summary[str(tmp_path / "two" / "pred")]["psnr"] == pytest.approx(20 * np.log10(255 / 20), abs=0.01)
    unpaired = [r for r in lines[:-1] if r.get("pred", "").endswith("b.png")]
    assert unpaired and unpaired[0]["status"] == "error" and "no reference" in unpaired[0]["error"]
    assert result.exit_code == 1


def test_cli_default_weights(runner, tmp_path):
    source = tmp_path / "dark.jpg"
    write_image(source, Image(_dark(30, 44)), fmt="jpeg")
    result = runner.invoke(app, ["enhance-lowlight", str(source), "-o", str(tmp_path / "out.tiff")])
    assert result.exit_code == 0, result.output
    out = read_image(tmp_path / "out.tiff")
    assert out.pixels.shape == (30, 44, 3) and out.pixels.dtype == np.uint16


@pytest.mark.parametrize("subsample", [1, 2])
def test_denoise_smooths_lifted_flat_noise_and_keeps_edges(subsample):
    """Dark noisy halves either side of an edge: denoising cuts the noise in the lifted flats, not the edge."""
    rng = np.random.default_rng(5)
    pixels = np.full((96, 128, 3), 20.0)
    pixels[:, 64:] = 45.0
    pixels = np.clip(np.rint(pixels + rng.normal(0, 1.5, pixels.shape)), 0, 255).astype(np.uint8)
    model = _model(_ConstantCurve(), 32)
    plain, smooth = (
        enhance_lowlight(Image(pixels), model, EnhanceSettings(dequantize="none", denoise=strength, denoise_subsample=subsample), device="cpu").image
        .pixels.astype(np.float64)
        for strength in (0.0, 1.0)
    )
    flats = (slice(8, -8), slice(8, 56)), (slice(8, -8), slice(72, -8))
    for flat in flats:
        assert smooth[flat].std() < 0.6 * plain[flat].std()
    step = lambda image: image[flats[1]].mean() - image[flats[0]].mean()  # noqa: E731
    assert abs(step(smooth) - step(plain)) < 0.02 * step(plain)


def test_two_process_ddp_training(tmp_path):
    from ddp import train_on_two_processes

    replicas = train_on_two_processes("lowlight", _training_folder(tmp_path), tmp_path)
    assert all(torch.equal(replicas[0][k], replicas[1][k]) for k in replicas[0])  # gradients were averaged


def _oklab_chroma(codes16: np.ndarray) -> np.ndarray:
    from bdx.color import srgb_to_oklab

    lab = srgb_to_oklab(codes16.astype(np.float32) / 65535)
    return np.hypot(lab[..., 1], lab[..., 2])


def test_neutral_shadows_keep_black_neutral_and_dim_colours_coloured():
    """A noisy near-black patch with a faint olive cast (the missing blue of a JPEG black: the DICM background of
    RGB (1.5, 1.5, 0.25) codes) stays neutral when brightened; a dim but clearly red patch keeps its colour."""
    rng = np.random.default_rng(11)
    pixels = np.zeros((64, 128, 3))
    pixels[:, :64] = (1.5, 1.5, 0.25)
    pixels[:, 64:] = (40.0, 6.0, 6.0)
    pixels = np.clip(np.rint(pixels + rng.normal(0, 1.0, pixels.shape)), 0, 255).astype(np.uint8)
    model = _model(_ConstantCurve(), 32)
    black, red = (slice(8, -8), slice(8, 56)), (slice(8, -8), slice(72, -8))
    chroma = {
        strength: _oklab_chroma(enhance_lowlight(
            Image(pixels), model, EnhanceSettings(dequantize="none", denoise=0, neutral_shadows=strength), device="cpu"
        ).image.pixels)
        for strength in (0.0, 1.0)
    }
    assert chroma[0.0][black].mean() > 0.03  # the cast is there without the step
    assert chroma[1.0][black].mean() < 0.25 * chroma[0.0][black].mean()
    assert chroma[1.0][red].mean() > 0.9 * chroma[0.0][red].mean()


def test_enhancing_a_scene_linear_input_says_its_highlights_were_clipped(runner, tmp_path):
    from bdx.io import Image, write_image

    rng = np.random.default_rng(3)
    pixels = (rng.random((24, 32, 3)) * 0.05).astype(np.float32)
    write_image(tmp_path / "dim.exr", Image(pixels, linear=True))
    pixels[0, 0] = 4.0  # a highlight above the display range
    write_image(tmp_path / "bright.exr", Image(pixels, linear=True))
    for name, warned in (("dim", False), ("bright", True)):
        result = runner.invoke(app, ["enhance-lowlight", str(tmp_path / f"{name}.exr"), "-o", str(tmp_path / f"{name}.tiff"),
                                     "--device", "cpu"])
        assert result.exit_code == 0, result.stderr
        assert ("were clipped" in result.stderr) == warned


def test_a_float_display_image_above_one_is_named_as_such_when_clipped(runner, tmp_path):
    """A float TIFF (display values) above 1 was warned about as "highlights of a scene-linear input"."""
    from bdx.io import Image, write_image

    pixels = np.full((16, 16, 3), 0.1, np.float32)
    pixels[0, 0] = 2.0
    write_image(tmp_path / "display.tiff", Image(pixels), bits=32)
    result = runner.invoke(app, ["enhance-lowlight", str(tmp_path / "display.tiff"), "-o", str(tmp_path / "out.tiff"), "--device", "cpu"])
    assert result.exit_code == 0, result.stderr
    assert "values above 1.0 (of a float display image) were clipped" in result.stderr
    assert "scene-linear" not in result.stderr


def test_negative_float_values_are_warned_about_when_clipped(runner, tmp_path):
    pixels = np.linspace(-0.5, 0.8, 16 * 16 * 3, dtype=np.float32).reshape(16, 16, 3)
    write_image(tmp_path / "negative.tiff", Image(pixels), bits=32)
    write_image(tmp_path / "positive.tiff", Image(np.abs(pixels)), bits=32)
    for name, warned in (("negative", True), ("positive", False)):
        result = runner.invoke(app, ["enhance-lowlight", str(tmp_path / f"{name}.tiff"), "-o", str(tmp_path / f"{name}_out.tiff"),
                                     "--device", "cpu"])
        assert result.exit_code == 0, result.stderr
        assert ("negative values were clipped to 0" in result.stderr) == warned


@pytest.mark.parametrize("level,warned", [(255, True), (0, True), (40, False)])
def test_a_target_mean_no_gamma_reaches_is_reported(runner, tmp_path, level, warned):
    """A white image asked for mean 0.5 got gamma 0.05 (outside the 0.1-10 that --gamma allows), silently."""
    rng = np.random.default_rng(0)
    pixels = np.clip(level + rng.integers(-20, 21, (32, 32, 3)) * (0 < level < 255), 0, 255).astype(np.uint8)
    write_image(tmp_path / "in.png", Image(pixels))
    result = runner.invoke(app, ["enhance-lowlight", str(tmp_path / "in.png"), "-o", str(tmp_path / "out.tiff"), "--device", "cpu",
                                 "--target-mean", "0.5", "--json"])
    assert result.exit_code == 0, result.stderr
    record = json.loads(result.stdout)
    assert 0.1 <= record["gamma"] <= 10
    assert ("no gamma from 0.1 to 10 brings the mean brightness to 0.5" in record.get("warning", "")) == warned
