"""LDR to HDR: state reset, tiling, EXR round trip, calibration, training, merging, CLI and eval."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from bdx.cli import app
from bdx.errors import BdxError
from bdx.hdr.classical import expand_highlights
from bdx.hdr.merge import merge_brackets
from bdx.hdr.models import FeedbackConfig, FeedbackHDRNet
from bdx.models import load_model, save_model
from bdx.hdr.reconstruct import HdrSettings, calibrate, ldr_to_hdr
from bdx.color import inverse_mu_law, linear_to_srgb, mu_law
from bdx.hdr.tonemap import HEADROOM, Camera, camera_response
from bdx.io import Image, read_image, write_image
from bdx.metrics import psnr_log, psnr_mu
from bdx.training.hdr import HdrTrainConfig, train_hdr


def _random_net(seed: int = 0, iterations: int = 3, state_scale: int = 1, head: str = "rgb") -> FeedbackHDRNet:
    torch.manual_seed(seed)
    config = FeedbackConfig(width=8, growth=4, layers=2, iterations=iterations, context_size=64, state_scale=state_scale, head=head)
    net = FeedbackHDRNet(config)
    with torch.no_grad():
        for parameter in net.parameters():
            parameter.normal_(0, 0.1)
    return net.eval()


@pytest.fixture
def hdr_weights(tmp_path) -> Path:
    path = tmp_path / "hdr.safetensors"
    save_model(_random_net(), path)
    return path


def _ldr(height: int, width: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width]
    scene = 0.2 + 1.5 * np.exp(-((x - width * 0.6) ** 2 + (y - height * 0.4) ** 2) / (0.02 * width * height))
    linear = scene[..., None] * np.array([1.0, 0.9, 0.7]) + rng.normal(0, 0.01, (height, width, 3))
    return np.clip(np.rint(camera_response(linear, 2.2, 0.2) * 255), 0, 255).astype(np.uint8)


def test_mu_law_round_trip():
    values = torch.tensor([0.0, 0.01, 1.0, 7.5, 32.0])
    torch.testing.assert_close(inverse_mu_law(mu_law(values, HEADROOM), HEADROOM), values, rtol=1e-5, atol=1e-6)
    assert mu_law(torch.tensor(32.0), HEADROOM).item() == pytest.approx(1.0)


@pytest.mark.parametrize("head", ["rgb", "curve"])
def test_untrained_network_is_the_linearized_input(head):
    net = FeedbackHDRNet(FeedbackConfig(head=head)).eval()  # zero-initialised reconstruction head
    x = torch.rand(1, 3, 32, 48)
    out = inverse_mu_law(net(x), HEADROOM)
    from bdx.color import srgb_to_linear

    torch.testing.assert_close(out, srgb_to_linear(x), rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(srgb_to_linear(x), torch.from_numpy(srgb_to_linear(x.numpy())), rtol=1e-6, atol=1e-7)


def test_the_curve_head_keeps_unclipped_neutral_pixels_neutral_and_colours_clipped_ones():
    rgb, curve = _random_net(head="rgb"), _random_net(head="curve")
    grey = torch.linspace(0.02, 0.88, 32 * 32).view(1, 1, 32, 32).expand(1, 3, 32, 32).contiguous()
    x = grey.clone()
    x[:, :, :8] = torch.rand(1, 3, 8, 32)  # colour elsewhere in the image
    x[:, :, -4:] = 1.0  # a clipped white patch
    with torch.no_grad():
        shared, free = curve(x), rgb(x)
    neutral = shared[:, :, 8:-8]
    assert float((neutral - neutral.mean(1, keepdim=True)).abs().max()) < 1e-6
    assert float((free[:, :, 8:-8] - free[:, :, 8:-8].mean(1, keepdim=True)).abs().max()) > 1e-3  # the rgb head tints
    clipped = shared[:, :, -2:]
    assert float((clipped - clipped.mean(1, keepdim=True)).abs().max()) > 1e-3  # highlights get a colour of their own


def test_state_is_reset_between_images_of_different_sizes():
    net = _random_net()
    a = torch.rand(1, 3, 32, 40)
    b = torch.rand(1, 3, 48, 24)
    first = net(a)
    net(b)  # a different size in between must neither crash nor leak
    torch.testing.assert_close(net(a), first)
    assert net(b).shape == (1, 3, 48, 24)


@pytest.mark.parametrize("state_scale, head", [(1, "rgb"), (2, "rgb"), (1, "curve"), (2, "curve")])
def test_receptive_radius_bounds_the_reach_of_one_pixel(state_scale, head):
    net = _random_net(state_scale=state_scale, head=head)
    size = 4 * net.receptive_radius + 4 * net.multiple
    size -= size % net.multiple
    x = torch.rand(1, 3, size, size)
    context = net.global_features(torch.rand(1, 3, 16, 16))
    centre = size // 2
    moved = x.clone()
    moved[:, :, centre, centre] += 0.3
    with torch.no_grad():
        changed = (net(moved, context) - net(x, context)).abs().sum(1)[0] > 0
    rows, cols = torch.nonzero(changed, as_tuple=True)
    reach = max((rows - centre).abs().max().item(), (cols - centre).abs().max().item())
    assert net.receptive_radius // 2 < reach <= net.receptive_radius


def test_iterations_are_configurable_and_all_returned():
    net = _random_net(iterations=3)
    x = torch.rand(1, 3, 32, 32)
    outputs = net(x, all_iterations=True)
    assert len(outputs) == 3
    torch.testing.assert_close(net(x, iterations=1), outputs[0])
    assert not torch.allclose(outputs[0], outputs[-1])


@pytest.mark.parametrize("state_scale, head", [(1, "rgb"), (2, "rgb"), (1, "curve"), (2, "curve")])
def test_tiled_equals_whole_image(tmp_path, state_scale, head):
    weights = tmp_path / "hdr.safetensors"
    save_model(_random_net(state_scale=state_scale, head=head), weights)
    image = Image(_ldr(90, 130))
    settings = HdrSettings(dequantize="midpoint")
    model = load_model(weights, "hdr")
    whole = ldr_to_hdr(image, model, HdrSettings(**{**settings.__dict__, "tile": 4096}), device="cpu").image
    tiled = ldr_to_hdr(image, model, HdrSettings(**{**settings.__dict__, "tile": 32}), device="cpu").image
    np.testing.assert_allclose(tiled.pixels, whole.pixels, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("shape", [(1, 1, 3), (7, 13, 3), (21, 34, 1)])
def test_any_size_and_grey(hdr_weights, shape):
    pixels = _ldr(shape[0], shape[1])[..., : shape[2]]
    out = ldr_to_hdr(Image(pixels), load_model(hdr_weights, "hdr"), HdrSettings(dequantize="none"), device="cpu").image
    assert out.pixels.shape == shape and out.pixels.dtype == np.float32 and out.linear
    assert np.isfinite(out.pixels).all() and (out.pixels >= 0).all()


def test_float_input_is_refused(hdr_weights):
    with pytest.raises(BdxError, match="already a float"):
        ldr_to_hdr(Image(np.ones((4, 4, 3), np.float32)), load_model(hdr_weights, "hdr"), device="cpu")


@pytest.mark.parametrize("head", ["rgb", "curve"])
def test_learned_output_keeps_the_linearized_input_scale_over_well_exposed_pixels(tmp_path, head):
    from bdx.color import srgb_to_linear
    from bdx.metrics import scale_ratio_ev, well_exposed_pixels

    weights = tmp_path / "hdr.safetensors"
    net = _random_net(head=head)
    with torch.no_grad():
        net.reconstruct.weight.mul_(0.2)  # a network's guess, not noise a median cannot pin down
    save_model(net, weights)
    codes = _ldr(48, 64)
    linear = ldr_to_hdr(Image(codes), load_model(weights, "hdr"), HdrSettings(dequantize="none"), device="cpu").image.pixels
    display = codes.astype(np.float32) / 255
    assert abs(scale_ratio_ev(linear, srgb_to_linear(display), well_exposed_pixels(display))) < 1e-3


def test_calibration_options():
    linear = np.random.default_rng(0).random((20, 30, 3)).astype(np.float32)
    np.testing.assert_allclose(calibrate(linear, exposure=2.0), linear * 4, rtol=1e-6)
    calibrated = calibrate(linear, peak_nits=1000.0)
    luminance = calibrated @ np.array([0.2126, 0.7152, 0.0722], dtype=np.float32)
    assert np.quantile(luminance, 0.9999) == pytest.approx(1000.0, rel=1e-4)
    grey = calibrate(linear[..., :1], peak_nits=1000.0)  # a grey image is its own luminance
    assert grey.shape == (20, 30, 1) and np.quantile(grey, 0.9999) == pytest.approx(1000.0, rel=1e-4)


def test_classical_baseline_keeps_unclipped_and_lifts_clipped():
    srgb = np.full((40, 40, 3), 0.5, np.float32)
    srgb[15:25, 15:25] = 1.0
    hdr = expand_highlights(srgb, gamma=2.2, boost=4.0)
    assert hdr[0, 0, 0] == pytest.approx(0.5**2.2, rel=1e-4)
    assert hdr[20, 20, 0] > 3.0


def test_learned_weight_errors(tmp_path):
    with pytest.raises(BdxError, match="not found"):
        load_model(tmp_path / "none.safetensors", "hdr").net
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"\x00" * 64)
    with pytest.raises(BdxError, match="not a readable"):
        load_model(bad, "hdr").net


def _one_step(**changes) -> HdrTrainConfig:
    """A one-step run of a tiny network (validated and checkpointed at that step)."""
    base = HdrTrainConfig(steps=1, batch_size=2, crop=32, width=8, iterations=2, validate_every=1, checkpoint_every=1,
                          validation_fraction=0.4)
    return HdrTrainConfig(**{**base.__dict__, **changes})


def _reference_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "refs"
    folder.mkdir()
    for i in range(3):
        linear = np.exp(np.random.default_rng(i).normal(0, 1.5, (40, 64, 3))).astype(np.float32)
        write_image(folder / f"s{i}.exr", Image(linear, linear=True), exr_half=False)
    return folder


def test_training_step_and_resume(tmp_path):
    folder = _reference_folder(tmp_path)
    output = tmp_path / "h.safetensors"
    config = HdrTrainConfig(steps=2, batch_size=2, crop=32, width=8, iterations=2, validate_every=1, checkpoint_every=1,
                            validation_fraction=0.4)
    state = train_hdr([folder], output, config)
    assert state.step == 2 and load_model(output, "hdr").net.config.iterations == 2
    checkpoint = Path(str(output) + ".ckpt.pt")
    resumed = train_hdr([folder], output, HdrTrainConfig(**{**config.__dict__, "steps": 3}), resume=checkpoint)
    assert resumed.step == 3


def test_fine_tuning_starts_from_the_init_weights_and_keeps_their_shape(tmp_path):
    folder = _reference_folder(tmp_path)
    first = tmp_path / "first.safetensors"
    config = _one_step()
    train_hdr([folder], first, config)
    tuned = tmp_path / "tuned.safetensors"
    train_hdr([folder], tuned, _one_step(width=32, iterations=4, lr=1e-9), init=first)
    start, end = load_model(first, "hdr").net, load_model(tuned, "hdr").net
    assert (end.config.width, end.config.iterations) == (8, 2)  # the init's network, not the config's
    for (name, a), b in zip(start.state_dict().items(), end.state_dict().values()):
        assert torch.allclose(a, b, atol=1e-5), name  # one step at lr 1e-9 keeps the init's weights
    with pytest.raises(BdxError, match="not both"):
        train_hdr([folder], tuned, config, init=first, resume=Path(str(first) + ".ckpt.pt"))


def _fine_tuned(tmp_path: Path, first: dict | None = None, **changes) -> tuple[FeedbackHDRNet, FeedbackHDRNet]:
    """(start, end): a one-step run with ``first``'s changes, then one step at lr 1e-9 from it with ``changes``."""
    folder = _reference_folder(tmp_path)
    start, end = tmp_path / "first.safetensors", tmp_path / "tuned.safetensors"
    train_hdr([folder], start, _one_step(**(first or {})))
    train_hdr([folder], end, _one_step(lr=1e-9, **changes), init=start)
    return load_model(start, "hdr").net.eval(), load_model(end, "hdr").net.eval()


def test_a_new_head_on_init_weights_keeps_their_trunk_and_starts_at_the_naive_curve(tmp_path):
    start, end = _fine_tuned(tmp_path, {"head": "rgb"}, head="curve")
    assert end.config.head == "curve" and end.reconstruct.out_channels == end.config.knots + 48
    for name, value in start.state_dict().items():
        if not name.startswith("reconstruct."):
            assert torch.allclose(value, end.state_dict()[name], atol=1e-5), name
    assert float(end.reconstruct.weight.detach().abs().max()) < 1e-6  # the new head is (all but) zero: the naive curve


def test_a_histogram_input_grown_on_init_weights_starts_from_their_output(tmp_path):
    start, end = _fine_tuned(tmp_path, histogram_bins=4)
    assert end.config.histogram_bins == 4 and end.config.head == start.config.head == "curve"
    x = torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(end(x), start(x), rtol=1e-4, atol=1e-5)  # the new inputs start at zero weight
        assert end.global_branch.histogram(torch.rand(1, 15)).shape == (1, 64)


@pytest.mark.parametrize("head", ["rgb", "curve"])
def test_a_larger_headroom_keeps_every_output_below_the_old_one_and_reaches_above_it(head):
    from bdx.hdr.models import with_headroom
    from bdx.hdr.tonemap import domain_ratio, from_domain, to_domain

    values = torch.tensor([0.0, 1e-4, 0.02, 1.0, 31.0, 256.0])
    torch.testing.assert_close(from_domain(to_domain(values, 256.0), 256.0), values, rtol=1e-5, atol=1e-7)
    torch.testing.assert_close(to_domain(values, 256.0), to_domain(values, 32.0) * domain_ratio(32.0, 256.0))
    net = _random_net(head=head)
    with torch.no_grad():  # a head that pushes outputs far beyond the clip point
        net.reconstruct.bias.add_(0.5)
    grown = with_headroom(net, 256.0).eval()
    x = torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        before, after = net.to_linear(net(x)), grown.to_linear(grown(x))
    below = before < HEADROOM * 0.999
    assert grown.config.headroom == 256.0 and below.any() and (~below).any()
    torch.testing.assert_close(after[below], before[below], rtol=1e-4, atol=1e-6)
    assert bool((after[~below] >= HEADROOM * 0.999).all()) and float(after.max()) > 2 * HEADROOM


def test_fine_tuning_with_a_larger_headroom_records_it_and_caps_targets_there(tmp_path):
    start, end = _fine_tuned(tmp_path, headroom=128.0)
    assert start.config.headroom == HEADROOM and end.config.headroom == 128.0
    x = torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(end.to_linear(end(x)), start.to_linear(start(x)), rtol=1e-3, atol=1e-5)
    from bdx.training.hdr import Scene, sample_batch

    linear = np.full((64, 64, 3), 0.5, np.float32)
    linear[20:40, 20:40] = 1e4  # a lamp far above any exposure's clip point
    _, targets, _ = sample_batch([Scene("lamp", linear)], HdrTrainConfig(batch_size=4, crop=64, headroom=128.0), np.random.default_rng(0), 64)
    assert float(targets.max()) == 128.0


def test_input_scaled_targets_match_the_linearized_input_over_well_exposed_pixels(tmp_path):
    from bdx.color import srgb_to_linear
    from bdx.metrics import well_exposed_pixels
    from bdx.training.hdr import find_scenes, sample_batch

    folder = tmp_path / "smooth"
    folder.mkdir()
    ramp = np.exp2(np.linspace(-6, 3, 64, dtype=np.float32))[None, :, None] * np.ones((64, 1, 3), np.float32)
    write_image(folder / "ramp.exr", Image(ramp * np.array([1.0, 0.9, 0.8], np.float32), linear=True), exr_half=False)
    scenes = find_scenes([folder])
    offsets = {}
    for scale in ("exposure", "input"):
        config = HdrTrainConfig(batch_size=16, crop=64, jpeg_probability=0.0, augment=False, target_scale=scale)
        ldr, target, _ = sample_batch(scenes, config, np.random.default_rng(3), 64)  # the crop is the whole scene
        display, linear = ldr.permute(0, 2, 3, 1).numpy(), target.permute(0, 2, 3, 1).numpy()
        linearized = srgb_to_linear(display)
        offsets[scale] = [
            abs(float(np.median(np.log2(y[w].mean(-1) / x[w].mean(-1)))))
            for y, x, w in zip(linear, linearized, well_exposed_pixels(display))
            if w.any()
        ]
    assert max(offsets["input"]) < 0.05 and max(offsets["exposure"]) > 1.0  # most curves clip 1-8x above exposure


def test_filmic_cameras_compress_highlights_up_to_their_white_point():
    from bdx.hdr.tonemap import random_gamma_camera

    linear = np.array([0.0, 0.18, 1.0, 2.0, 4.0, 8.0], dtype=np.float32)
    plain, filmic = camera_response(linear, 2.2, 0.0), camera_response(linear, 2.2, 0.0, white=4.0)
    assert plain[2] == plain[3] == 1.0  # a plain camera clips at 1
    assert filmic[2] < filmic[3] < filmic[4] == pytest.approx(1.0) and filmic[5] == pytest.approx(1.0)
    assert np.all(np.diff(filmic) >= 0) and filmic[1] < plain[1]
    whites = [random_gamma_camera(np.random.default_rng(seed)).params[2] for seed in range(200)]
    assert 0.3 < np.mean([w == 1.0 for w in whites]) < 0.7 and all(w == 1.0 or 2.0 <= w <= 16.0 for w in whites)


def test_random_cameras_cover_every_family_with_monotone_curves_that_clip_at_their_clip_point():
    from bdx.hdr.tonemap import FAMILY_SHARES, random_camera

    linear = np.exp2(np.linspace(-10, 6, 200)).astype(np.float32)
    rng = np.random.default_rng(0)
    cameras = [random_camera(rng) for _ in range(400)]
    counts = {family: sum(c.family == family for c in cameras) for family in FAMILY_SHARES}
    for family, share in FAMILY_SHARES.items():
        assert abs(counts[family] / len(cameras) - share) < 0.07, counts
    for camera in cameras:
        display = camera(linear)
        assert display.dtype == np.float32 and display.min() >= 0 and display.max() <= 1, camera
        assert np.all(np.diff(display) >= -1e-6), camera  # brighter scenes never give darker codes
        assert display[-1] == 1.0 and display[0] < 0.4, camera  # white at 64x, dark at 1/1024 (a log curve lifts it)
        if camera.family in ("filmic", "rational", "log"):
            clip = camera.params[-1]
            assert float(camera(np.float32(clip * 1.001))) == pytest.approx(1.0, abs=1e-3), camera
            # a roll-off or a slope below the clip, not a plateau (an ACES-like shoulder rolls off over stops)
            below, top = (0.5, 0.995) if camera.family == "rational" else (0.7, 0.99)
            assert float(camera(np.float32(clip * below))) < top, camera
    whites = [camera.params[-2] for camera in cameras if camera.family == "rational"]
    assert min(whites) < 1.5 and max(whites) > 5  # shoulders cut short and long roll-offs like ACES's
    aces = Camera("rational", (2.51, 0.03, 2.43, 0.59, 0.14, 7.24, 9.05))  # Narkowicz's ACES fit, white at 9.05
    e = linear[linear < 9] * np.float32(7.24 / 9.05)
    fit = np.clip(e * (2.51 * e + 0.03) / (e * (2.43 * e + 0.59) + 0.14), 0, 1) / (7.24 * (2.51 * 7.24 + 0.03) / (7.24 * (2.43 * 7.24 + 0.59) + 0.14))
    np.testing.assert_allclose(aces(linear[linear < 9]), linear_to_srgb(np.clip(fit, 0, 1)), atol=2e-6)
    white = 5.101841573648836
    filmic_white = Camera("gamma", (1.8468544278441554, 0.20167023632739622, white))(np.array([white, 64.0], np.float32))
    assert filmic_white.tolist() == [1.0, 1.0]  # exactly white (rounding gave 0.99999994) at and above the white point
    plain = Camera("plain", ())(np.array([0.0, 0.0031308, 1.0, 3.0], np.float32))
    np.testing.assert_allclose(plain, [0.0, 0.04045, 1.0, 1.0], atol=1e-5)  # the sRGB curve, hard-clipped
    more_plain = [random_camera(rng, plain_fraction=0.5) for _ in range(400)]
    assert abs(sum(c.family == "plain" for c in more_plain) / 400 - 0.5) < 0.07  # train hdr --plain-fraction
    assert abs(sum(c.family == "log" for c in more_plain) / 400 - FAMILY_SHARES["log"] * 0.5 / 0.85) < 0.05


def test_train_hdr_plain_fraction_is_checked_and_recorded(runner, tmp_path):
    output, references = tmp_path / "h.safetensors", _reference_folder(tmp_path)
    bad = runner.invoke(app, ["train", "hdr", "--data", str(references), "-o", str(output), "--steps", "1",
                              "--plain-fraction", "1.5"])
    assert bad.exit_code == 2 and bad.stderr == "bdx: error: --plain-fraction must be between 0 and 1, not 1.5\n"
    good = runner.invoke(app, ["train", "hdr", "--data", str(references), "-o", str(output), "--steps", "1",
                               "--plain-fraction", "0.4", "-q"])
    assert good.exit_code == 0, good.output
    from safetensors import safe_open

    with safe_open(str(output), framework="pt") as handle:
        assert json.loads(handle.metadata()["train_config"])["plain_fraction"] == 0.4


def test_train_hdr_headroom_is_checked_and_builds_the_network(runner, tmp_path):
    output, references = tmp_path / "h.safetensors", _reference_folder(tmp_path)
    base = ["train", "hdr", "--data", str(references), "-o", str(output), "--steps", "1", "--width", "8", "--iterations", "1"]
    bad = runner.invoke(app, [*base, "--headroom", "1"])
    assert bad.exit_code == 2 and bad.stderr == "bdx: error: --headroom must be between 2 and 65504, not 1.0\n"
    good = runner.invoke(app, [*base, "--headroom", "64", "-q"])
    assert good.exit_code == 0, good.output
    assert load_model(output, "hdr").net.config.headroom == 64.0


def test_untrusted_truth_is_left_out_of_the_loss_and_of_training_crops(tmp_path):
    from bdx.training.hdr import find_scenes, hdr_loss, sample_batch

    target = torch.full((1, 3, 8, 8), 0.5)
    out = mu_law(target, HEADROOM).clone()
    out[..., :2, :2] = 0.0  # wrong only where the truth is not trusted
    untrusted = target.clone()
    untrusted[..., :2, :2] = float("nan")
    assert float(hdr_loss([out], target, 0.5)) > 0
    assert float(hdr_loss([out], untrusted, 0.5, untrusted.isnan().any(1, keepdim=True), 1.0)) == pytest.approx(0.0, abs=1e-7)
    scene = np.ones((64, 64, 3), np.float32)
    scene[30, 30] = -50.0  # resampling ringing round a bright spot
    folder = tmp_path / "refs"
    folder.mkdir()
    write_image(folder / "ringing.exr", Image(scene, linear=True), exr_half=False)
    (loaded,) = find_scenes([folder])
    assert loaded.trusted is not None and not loaded.trusted[30, 28] and loaded.trusted[30, 27]
    config = HdrTrainConfig(batch_size=2, crop=64, augment=False, jpeg_probability=0.0)
    _, targets, _ = sample_batch([loaded], config, np.random.default_rng(0), 32)
    assert int(targets.isnan().any(1).sum()) == 2 * 25 and np.isfinite(targets[0, :, 0, 0]).all()


def test_a_references_map_of_known_pixels_leaves_lower_bounds_out_of_training_but_renders_them(tmp_path):
    from bdx.training.hdr import find_scenes, known_truth_path, sample_batch, write_known_truth

    scene = np.ones((64, 64, 3), np.float32)
    scene[20:30, 20:30] = 40.0  # a lamp saturated in every frame of its bracket: the merge is a lower bound there
    folder = tmp_path / "refs"
    folder.mkdir()
    reference = folder / "merge.exr"
    write_image(reference, Image(scene, linear=True), exr_half=False)
    known = np.ones((64, 64), bool)
    known[20:30, 20:30] = False
    write_known_truth(reference, known)
    (loaded,) = find_scenes([folder])  # the map is not a reference of its own
    assert loaded.trusted is not None and np.array_equal(loaded.trusted, known)
    config = HdrTrainConfig(batch_size=1, crop=64, augment=False, jpeg_probability=0.0)
    ldr, targets, _ = sample_batch([loaded], config, np.random.default_rng(0), 32)
    lamp = (slice(None), slice(None), slice(20, 30), slice(20, 30))
    assert bool(targets[lamp].isnan().all()) and int(targets.isnan().any(1).sum()) == 100
    assert float(ldr[lamp].min()) == 1.0  # the input still shows the lamp, clipped
    write_image(known_truth_path(reference), Image(np.zeros((8, 8, 1), np.uint8)), fmt="png", bits=8)
    with pytest.raises(BdxError, match="not its reference's 64x64"):
        find_scenes([folder])


def test_the_clipped_term_weighs_highlights_whatever_their_share_of_the_crop():
    from bdx.training.hdr import clipped_mask, hdr_loss

    target = torch.full((1, 3, 16, 16), 0.5)
    ldr = torch.full((1, 3, 16, 16), 0.5)
    ldr[..., :2, :2] = 1.0  # 4 of 256 pixels clipped
    clipped = clipped_mask(ldr)
    assert clipped.shape == (1, 1, 16, 16) and int(clipped.sum()) == 4
    reference = mu_law(target, HEADROOM)
    wrong_highlight = reference.clone()
    wrong_highlight[..., :2, :2] += 0.5
    plain = hdr_loss([wrong_highlight], target, 0.0)
    weighted = hdr_loss([wrong_highlight], target, 0.0, clipped, 1.0)
    assert float(plain) == pytest.approx(0.5 * 4 / 256, rel=1e-4)  # the plain L1 barely sees them
    assert float(weighted - plain) == pytest.approx(0.5, rel=1e-4)  # the clipped term: their mean error
    assert float(hdr_loss([reference], target, 0.0, clipped, 1.0)) == pytest.approx(0.0, abs=1e-6)


def test_the_naive_term_penalises_only_samples_worse_than_the_naive_curve_as_a_log_ratio():
    from bdx.color import srgb_to_linear
    from bdx.training.hdr import NAIVE_FLOOR, hdr_loss

    ldr = torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(0)) * 0.9
    naive = srgb_to_linear(ldr)
    target = naive.clone()
    target[1] *= 1.5  # the naive curve is exact on the first sample, 1.5x off on the second
    reference = mu_law(target, HEADROOM)
    naive_mu = mu_law(naive, HEADROOM)
    estimate = reference.clone()
    estimate[0] += 0.01  # worse than naive on the first sample, exact on the second
    plain = hdr_loss([estimate], target, 0.0)
    with_term = hdr_loss([estimate], target, 0.0, naive=naive, naive_weight=2.0)
    expected = 2.0 * math.log((0.01 + NAIVE_FLOOR) / NAIVE_FLOOR) / 2  # the first sample's ratio, the mean over two
    assert float(with_term - plain) == pytest.approx(expected, rel=1e-4)
    assert float(hdr_loss([naive_mu], target, 0.0, naive=naive, naive_weight=2.0)) == pytest.approx(
        float(hdr_loss([naive_mu], target, 0.0)), abs=1e-7)  # as good as naive: no penalty
    assert float(hdr_loss([estimate], target, 0.0, naive=naive, naive_weight=0.0)) == pytest.approx(float(plain))


@pytest.mark.parametrize("crop", ["-8", "0", "3"])
def test_train_hdr_refuses_a_crop_below_the_smallest(runner, tmp_path, crop):
    """A crop under 16 was raised to 16 without a word and the run went on (exit 0)."""
    result = runner.invoke(app, ["train", "hdr", "--data", str(_reference_folder(tmp_path)), "-o", str(tmp_path / "h.safetensors"),
                                 "--steps", "1", "--crop", crop])
    assert result.exit_code == 2 and result.stderr == f"bdx: error: --crop must be between 16 and 2048, not {crop}\n"
    assert not (tmp_path / "h.safetensors").exists()


def test_resuming_from_a_file_that_is_not_a_checkpoint_is_one_line(runner, tmp_path):
    folder = _reference_folder(tmp_path)
    for name, content in (("junk.pt", b"not a checkpoint"), ("empty.pt", b"")):
        bad = tmp_path / name
        bad.write_bytes(content)
        result = runner.invoke(app, ["train", "hdr", "--data", str(folder), "-o", str(tmp_path / "h.safetensors"),
                                     "--resume", str(bad), "--device", "cpu"])
        assert result.exit_code == 1 and result.stderr.count("\n") == 1, result.stderr
        assert result.stderr.startswith(f"bdx: error: {bad}: not a bdx training checkpoint")
    plain = tmp_path / "plain.pt"
    torch.save({"weights": torch.zeros(2)}, plain)  # loads with weights_only, but is no training checkpoint
    result = runner.invoke(app, ["train", "hdr", "--data", str(folder), "--resume", str(plain), "--device", "cpu"])
    assert result.exit_code == 1 and "missing model, optimizer or step" in result.stderr


def test_train_hdr_cli_reports_validation(runner, tmp_path):
    output = tmp_path / "h.safetensors"
    result = runner.invoke(app, ["train", "hdr", "--data", str(_reference_folder(tmp_path)), "-o", str(output), "--steps", "1",
                                 "--batch-size", "2", "--crop", "30", "--iterations", "2", "--width", "8", "--validate-every", "1",
                                 "--validation-fraction", "0.4", "--device", "cpu", "--state-scale", "2", "--supervise", "last",
                                 "--clipped-weight", "2", "--head", "curve", "--target-scale", "input", "--naive-weight", "0.5"])
    assert result.exit_code == 0, result.output
    assert output.exists() and "step 1/1" in result.stderr and "val PSNR-mu" in result.stderr
    trained = load_model(output, "hdr")
    net = trained.net
    assert net.config.width == 8 and net.config.state_scale == 2 and net.multiple == 8
    assert trained.metadata["train_config"]["clipped_weight"] == 2.0 and trained.metadata["train_config"]["target_scale"] == "input"
    assert trained.metadata["train_config"]["naive_weight"] == 0.5 and net.config.head == "curve"
    unscaled = runner.invoke(app, ["train", "hdr", "--data", str(tmp_path), "-o", str(tmp_path / "u.safetensors"), "--naive-weight", "0.5"])
    assert unscaled.exit_code == 2 and unscaled.stderr == (
        "bdx: error: --naive-weight compares with the naive curve on the input's scale: give --target-scale input\n")
    assert not (tmp_path / "u.safetensors").exists()
    for option, value in (("--state-scale", "0"), ("--state-scale", "1000"), ("--supervise", "first"), ("--clipped-weight", "-1"),
                          ("--naive-weight", "-1"),
                          ("--width", "100000"), ("--iterations", "100000"), ("--head", "rgba"), ("--target-scale", "clip"),
                          ("--histogram-bins", "-1")):
        bad = runner.invoke(app, ["train", "hdr", "--data", str(tmp_path), option, value])
        assert bad.exit_code == 2 and option in bad.output and "--crop" not in bad.output


def test_a_resumed_run_takes_every_setting_not_given_from_its_checkpoint(runner, tmp_path):
    folder, output = _reference_folder(tmp_path), tmp_path / "h.safetensors"
    first = ["train", "hdr", "--data", str(folder), "-o", str(output), "--steps", "1", "--batch-size", "2", "--crop", "32",
             "--iterations", "1", "--width", "8", "--histogram-bins", "4", "--target-scale", "input", "--clipped-weight", "2",
             "--lr", "1e-4", "--seed", "5", "--validation-fraction", "0.4", "--device", "cpu", "-q"]
    assert runner.invoke(app, first).exit_code == 0
    started = load_model(output, "hdr").metadata["train_config"]
    checkpoint = str(output) + ".ckpt.pt"
    resumed = runner.invoke(app, ["train", "hdr", "--data", str(folder), "-o", str(output), "--resume", checkpoint,
                                  "--steps", "2", "--device", "cpu"])
    assert resumed.exit_code == 0, resumed.stderr
    assert "step 2/2" in resumed.stderr
    trained = load_model(output, "hdr")
    assert trained.metadata["train_config"] == {**started, "steps": 2}
    assert (trained.net.config.width, trained.net.config.iterations, trained.net.config.histogram_bins) == (8, 1, 4)
    changed = runner.invoke(app, ["train", "hdr", "--data", str(folder), "-o", str(output), "--resume", checkpoint,
                                  "--steps", "3", "--lr", "5e-5", "--device", "cpu", "-q"])
    assert changed.exit_code == 0, changed.stderr  # a setting given for the resumed run is that run's
    assert load_model(output, "hdr").metadata["train_config"] == {**started, "steps": 3, "lr": 5e-5}


def test_supervising_the_last_iteration_leaves_earlier_estimates_out_of_the_loss(tmp_path, monkeypatch):
    from bdx.training import hdr as training

    seen = []
    original = training.hdr_loss
    monkeypatch.setattr(training, "hdr_loss", lambda outputs, *rest: seen.append(len(outputs)) or original(outputs, *rest))
    folder = _reference_folder(tmp_path)
    for supervise in ("all", "last"):
        config = HdrTrainConfig(steps=1, batch_size=1, crop=32, width=8, iterations=3, validate_every=100,
                                checkpoint_every=100, supervise=supervise)
        train_hdr([folder], tmp_path / f"{supervise}.safetensors", config)
    assert seen == [3, 1]


def test_merge_brackets_refuses_times_in_another_order_than_the_frames_and_a_frame_given_twice():
    """Times listed in reverse wrote an inverted merge (correlation -0.91 with the right one), status 0; a frame given
    twice with two times wrote nothing but said "the image holds 141 NaN/Inf samples"."""
    from bdx.errors import InputError, SettingError

    rng = np.random.default_rng(0)
    scene = np.exp(rng.normal(-1.5, 1.2, (60, 80, 1))) * np.array([1.0, 0.8, 0.6])
    times = [1 / 16, 1 / 4, 1.0]
    frames = [np.clip(np.rint(camera_response(scene * t, 2.2, 0.0) * 255), 0, 255).astype(np.uint8) for t in times]
    with pytest.raises(SettingError, match=r"times contradicts the frames' brightness: frame 2 is brighter than frame 1"):
        merge_brackets(frames, times[::-1])
    assert merge_brackets(frames[::-1], times[::-1]).linear.shape == (60, 80, 3)  # any order, as long as they agree
    with pytest.raises(InputError, match="frames 1 and 3 are identical"):
        merge_brackets([frames[0], frames[1], frames[0]], [1.0, 2.0, 3.0])
    near = frames[0].copy()
    near[0, 0, 0] += 1  # one code off: not identical, but no response explains a second stop between them
    with pytest.raises(InputError, match="brightness does not follow the exposure times given"):
        merge_brackets([frames[0], near], [1.0, 2.0])


def test_merge_brackets_depends_on_the_ratios_of_the_times_only():
    """Times of 1e-40 s merged to all zeros (status 0) and 1e13 s to a tenth of the scene: the fit ran on them as
    float32."""
    scene = np.exp(np.random.default_rng(3).normal(-1.5, 1.0, (60, 80, 3))).astype(np.float32)
    ratios = [1 / 16, 1 / 4, 1.0]
    frames = [np.clip(np.rint(camera_response(scene * t, 2.2, 0.0) * 255), 0, 255).astype(np.uint8) for t in ratios]
    plain = merge_brackets(frames, ratios)
    for scale in (1e-40, 1e-20, 1e13, 1e19):
        merged = merge_brackets(frames, [t * scale for t in ratios])
        np.testing.assert_allclose(merged.linear, plain.linear, rtol=1e-4, atol=1e-6)
        assert merged.frame_times == pytest.approx([t * scale for t in ratios])  # reported as given


def test_merge_brackets_without_times_refuses_frames_of_one_exposure():
    """Two shots of one exposure (codes a step apart by noise) merged without times came back flat (0.179-0.180
    across a full ramp), status 0, with estimated times [1, 1.0001]."""
    from bdx.errors import InputError

    rng = np.random.default_rng(0)
    ramp = np.clip(np.rint(np.linspace(0, 1, 256)[None, :, None] ** (1 / 2.2) * 255) * np.ones((64, 1, 3)), 0, 255)
    first = ramp.astype(np.uint8)
    second = np.clip(ramp + rng.integers(-1, 2, ramp.shape), 0, 255).astype(np.uint8)
    darker = np.clip(np.rint((np.linspace(0, 1, 256)[None, :, None] / 4) ** (1 / 2.2) * 255) * np.ones((64, 1, 3)), 0, 255)
    with pytest.raises(InputError, match=r"frames 2 and 3 have nearly the same exposure \(0\.\d\d stops apart\)"):
        merge_brackets([darker.astype(np.uint8), first, second])
    assert merge_brackets([darker.astype(np.uint8), first]).frame_times[1] > 2  # two stops apart still merge


def test_merge_brackets_recovers_the_scene():
    rng = np.random.default_rng(0)
    scene = np.exp(rng.normal(-1.5, 1.2, (60, 80, 1))) * np.array([1.0, 0.8, 0.6])
    times = [1 / 16, 1 / 4, 1.0, 4.0]
    frames = [np.clip(np.rint(camera_response(scene * t, 2.2, 0.0) * 255), 0, 255).astype(np.uint8) for t in times]
    merged = merge_brackets(frames[::-1], times[::-1])
    estimated = merge_brackets(frames)
    for result in (merged, estimated):
        ratio = result.linear / scene
        middle = (scene > np.percentile(scene, 10)) & (scene < np.percentile(scene, 90))
        spread = np.std(np.log(ratio[middle]))
        assert spread < 0.35  # one scale factor explains the merge (relative HDR)
    with pytest.raises(BdxError, match="at least two"):
        merge_brackets(frames[:1])


def test_sixteen_bit_brackets_merge_at_their_precision_and_clipped_pixels_stay_bright():
    x = np.linspace(0.02, 0.6, 400, dtype=np.float64)  # a smooth ramp: 8-bit frames step it, 16-bit ones do not
    scene = np.repeat(np.repeat(x[None, :, None], 40, axis=0), 3, axis=2)
    scene[:4, :4] = 50.0  # a light clipped in every frame
    times = [0.5, 1.0, 2.0]
    curves = [camera_response(scene * t, 2.2, 0.0) for t in times]
    eight = [np.rint(c * 255).astype(np.uint8) for c in curves]
    sixteen = [np.rint(c * 65535).astype(np.uint16) for c in curves]
    errors, levels = {}, {}
    for name, frames in (("8", eight), ("16", sixteen)):
        merged = merge_brackets(frames, times).linear
        errors[name] = float(np.std(np.log(merged[8:, :, 1] / scene[8:, :, 1])))
        levels[name] = len(np.unique(merged[20, :, 1]))
        assert merged[:4, :4].min() >= 0.9 * merged[8:].max()  # never black: at least the brightest it can certify
        saturated = merge_brackets(frames, times).saturated
        assert saturated[:4, :4].all() and not saturated[8:].any()  # only the light is a lower bound
    assert errors["16"] < 0.6 * errors["8"]
    assert levels["16"] == 400 > levels["8"]  # every step of the 400-pixel ramp kept


def test_cli_ldr2hdr_file_directory_and_exr(runner, tmp_path, hdr_weights):
    folder = tmp_path / "ldr"
    folder.mkdir()
    for i in range(2):
        write_image(folder / f"p{i}.png", Image(_ldr(24, 36, seed=i)))
    result = runner.invoke(app, ["ldr2hdr", str(folder / "p0.png"), "-o", str(tmp_path / "p0.exr"), "--weights",
                                 str(hdr_weights), "--dequantize", "midpoint"])
    assert result.exit_code == 0, result.output
    exr = read_image(tmp_path / "p0.exr")
    assert exr.is_float and exr.pixels.shape == (24, 36, 3) and np.isfinite(exr.pixels).all()
    result = runner.invoke(app, ["ldr2hdr", str(folder), "-o", str(tmp_path / "out"), "--method", "classical", "--json",
                                 "--precision", "float", "--peak-nits", "400"])
    assert result.exit_code == 0, result.output
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(records) == 2 and all(r["status"] == "ok" for r in records)
    out = read_image(tmp_path / "out" / "p1.exr")
    assert out.pixels.dtype == np.float32 and out.pixels.max() > 100
    sizes = {}
    for sample_type in ("half", "float"):  # --precision float above is the option's former name
        target = tmp_path / f"{sample_type}.exr"
        result = runner.invoke(app, ["ldr2hdr", str(folder / "p0.png"), "-o", str(target), "--method", "classical",
                                     "--sample-type", sample_type])
        assert result.exit_code == 0, result.output
        sizes[sample_type] = target.stat().st_size
    assert sizes["half"] < sizes["float"]
    result = runner.invoke(app, ["ldr2hdr", str(folder / "p0.png"), "-o", str(tmp_path / "bad.exr"), "--sample-type", "double"])
    assert result.exit_code == 2 and "--sample-type" in result.output and not (tmp_path / "bad.exr").exists()
    result = runner.invoke(app, ["ldr2hdr", str(folder / "p0.png"), "-o", str(tmp_path / "both.exr"), "--precision", "float",
                                 "--sample-type", "half"])  # the former name silently won
    assert result.exit_code == 2 and "disagree" in result.output and not (tmp_path / "both.exr").exists()
    result = runner.invoke(app, ["ldr2hdr", str(folder / "p0.png"), "-o", str(tmp_path / "x.exr"), "--weights",
                                 str(tmp_path / "missing.safetensors")])
    assert result.exit_code == 1 and "not found" in result.output and "Traceback" not in result.output
    result = runner.invoke(app, ["ldr2hdr", str(folder / "p0.png"), "-o", str(tmp_path / "x.exr"), "--weights", "/dev/null"])
    assert result.exit_code == 1 and "/dev/null is not a regular file" in result.output


def test_cli_ldr2hdr_conflicting_options_and_half_float_overflow(runner, tmp_path):
    source = tmp_path / "p.png"
    write_image(source, Image(_ldr(24, 36, seed=3)))
    cases = [
        (["--peak-nits", "400", "--exposure", "1"], "--exposure and --peak-nits both set the output's scale"),
        (["--method", "classical", "--iterations", "2"], "--iterations applies to the learned method only"),
        (["--sample-type", "float"], "--sample-type applies to EXR output, not hdr"),
        (["--peak-nits", "100000"], "--peak-nits 100000 is beyond the largest half float (65504): add --sample-type float"),
        (["--peak-nits", "inf"], "--peak-nits must be above 0 and at most 1000000, not inf"),  # not "add --sample-type float"
    ]
    for arguments, message in cases:
        target = tmp_path / ("out.hdr" if "applies to EXR" in message else "out.exr")
        result = runner.invoke(app, ["ldr2hdr", str(source), "-o", str(target), "--method", "classical", *arguments])
        assert result.exit_code == 2 and message in result.output and not target.exists(), (arguments, result.output)
    # an exposure that takes values past the half range: that file fails with one line, nothing is written
    result = runner.invoke(app, ["ldr2hdr", str(source), "-o", str(tmp_path / "bright.exr"), "--method", "classical",
                                 "--exposure", "20"])
    assert result.exit_code == 1 and "beyond the largest half float (65504): give --sample-type float" in result.output
    assert not (tmp_path / "bright.exr").exists() and "Traceback" not in result.output
    result = runner.invoke(app, ["ldr2hdr", str(source), "-o", str(tmp_path / "bright.exr"), "--method", "classical",
                                 "--exposure", "20", "--sample-type", "float"])
    assert result.exit_code == 0 and read_image(tmp_path / "bright.exr").pixels.max() > 65504
    result = runner.invoke(app, ["ldr2hdr", str(source), "-o", str(tmp_path / "dark.exr"), "--method", "classical",
                                 "--exposure", "-30"])  # values under the smallest half float: not an all-black file
    assert result.exit_code == 1 and "below the smallest half float" in result.output and not (tmp_path / "dark.exr").exists()


def test_eval_hdr_refuses_display_images_as_radiance(runner, tmp_path):
    radiance = tmp_path / "a.exr"
    write_image(radiance, Image(np.ones((8, 8, 3), np.float32), linear=True), exr_half=False)
    display = tmp_path / "a.png"
    write_image(display, Image(_ldr(8, 8, seed=0)))
    for pred, ref, role in ((radiance, display, "reference"), (display, radiance, "prediction")):
        result = runner.invoke(app, ["eval", "hdr", "--pred", str(pred), "--ref", str(ref)])
        assert result.exit_code == 1 and f"the {role} holds " in result.output and "-bit display codes" in result.output
    # a float image as the LDR input: its clipped share was reported (0.98), as if its values were codes
    result = runner.invoke(app, ["eval", "hdr", "--pred", str(radiance), "--ref", str(radiance), "--input", str(radiance)])
    assert result.exit_code == 1 and "the input is a float image; the clipped region is found in the 8- or 16-bit" in result.output


def test_eval_depth_names_the_input_when_the_input_is_what_does_not_fit(runner, tmp_path):
    """Problems with --input were reported as if they were the prediction's ("pred.png: dequantization needs...")."""
    image, radiance = tmp_path / "a.png", tmp_path / "in.exr"
    write_image(image, Image(_ldr(8, 8, seed=0)), bits=8)
    write_image(radiance, Image(np.full((8, 8, 3), 0.5, np.float32)), exr_half=False)
    result = runner.invoke(app, ["eval", "depth", "--pred", str(image), "--ref", str(image), "--input", str(radiance)])
    assert result.exit_code == 1 and "the input is a float image" in result.output
    deep = tmp_path / "deep.png"
    write_image(deep, Image(_ldr(8, 8, seed=0).astype(np.uint16) * 257))
    result = runner.invoke(app, ["eval", "depth", "--pred", str(deep), "--ref", str(deep), "--input", str(image), "--in-bits", "12"])
    assert result.exit_code == 1 and f"input {image}: --in-bits 12 does not fit an input of 8 bits" in result.output


def test_eval_depth_in_bits_is_checked_before_any_work(runner, tmp_path):
    image = tmp_path / "a.png"
    write_image(image, Image(_ldr(8, 8, seed=0)))
    result = runner.invoke(app, ["eval", "depth", "--pred", str(image), "--ref", str(image), "--in-bits", "99", "--input", str(image)])
    assert result.exit_code == 2 and "--in-bits must be a whole number between 1 and 15, not 99" in result.output
    # each option about the quantized inputs needs them (--method and --convention were ignored without a word)
    for option, value in (("--in-bits", "6"), ("--method", "midpoint"), ("--convention", "truncate")):
        result = runner.invoke(app, ["eval", "depth", "--pred", str(image), "--ref", str(image), option, value])
        assert result.exit_code == 2 and f"{option} applies to the quantized inputs: give them with --input" in result.output


def test_cli_merge_brackets(runner, tmp_path):
    rng = np.random.default_rng(1)
    scene = np.exp(rng.normal(-1.0, 1.0, (30, 40, 1))) * np.ones(3)
    paths = []
    frames = tmp_path / "frames"
    frames.mkdir()
    for i, t in enumerate((0.25, 1.0, 4.0)):
        path = frames / f"b{i}.png"
        write_image(path, Image(np.clip(np.rint(camera_response(scene * t, 2.2, 0.0) * 255), 0, 255).astype(np.uint8)), bits=8)
        paths.append(str(path))
    result = runner.invoke(app, ["merge-brackets", *paths, "-o", str(tmp_path / "m.exr"), "--times", "1/4,1,4"])
    assert result.exit_code == 0, result.output
    assert read_image(tmp_path / "m.exr").pixels.shape == (30, 40, 3)
    result = runner.invoke(app, ["merge-brackets", *paths, "-o", str(tmp_path / "m.exr"), "--times", "1/4,1,4"])
    assert result.exit_code == 1  # exists, no --overwrite
    folder_merge = runner.invoke(app, ["merge-brackets", str(frames), "-o", str(tmp_path / "f.exr"), "--times", "1/4,1,4"])
    glob_merge = runner.invoke(app, ["merge-brackets", str(frames / "b*.png"), "-o", str(tmp_path / "g.exr"), "--times", "1/4,1,4"])
    assert folder_merge.exit_code == 0 and glob_merge.exit_code == 0, folder_merge.output + glob_merge.output
    # frames given out of brightness order: the times reported are the frames' own, in their order (they came back
    # sorted by brightness beside the inputs as given)
    shuffled = [paths[2], paths[0], paths[1]]
    record = runner.invoke(app, ["merge-brackets", *shuffled, "-o", str(tmp_path / "s.exr"), "--times", "4,1/4,1", "--json"])
    assert record.exit_code == 0, record.output
    reported = json.loads(record.stdout)
    assert reported["inputs"] == shuffled and reported["times"] == pytest.approx([4.0, 0.25, 1.0])
    np.testing.assert_array_equal(read_image(tmp_path / "f.exr").pixels, read_image(tmp_path / "m.exr").pixels)
    np.testing.assert_array_equal(read_image(tmp_path / "g.exr").pixels, read_image(tmp_path / "m.exr").pixels)
    black, dark, white = tmp_path / "black.png", tmp_path / "dark.png", tmp_path / "white.png"
    for path, value in ((black, 0), (dark, 0), (white, 255)):
        write_image(path, Image(np.full((30, 40, 3), value, np.uint8)), bits=8)
    for pair in ((black, dark), (black, white)):
        empty = runner.invoke(app, ["merge-brackets", *map(str, pair), "-o", str(tmp_path / "e.exr")])
        assert empty.exit_code == 1 and "black or white: nothing to merge" in empty.output and not (tmp_path / "e.exr").exists()
    no_folder = runner.invoke(app, ["merge-brackets", *paths, "-o", str(tmp_path / "nodir" / "m.exr"), "--times", "1/4,1,4"])
    assert no_folder.exit_code == 1 and "does not exist" in no_folder.output and not (tmp_path / "nodir").exists()
    nothing = runner.invoke(app, ["merge-brackets", str(frames / "z*.png"), "-o", str(tmp_path / "z.exr")])
    assert nothing.exit_code == 1 and "no files match" in nothing.output
    lamp = np.minimum(scene, 3.0)  # nothing clipped in the shortest exposure ...
    lamp[:5, :5] = 100.0  # ... but a light: 2 % of the frame
    for i, t in enumerate((0.25, 1.0, 4.0)):
        write_image(tmp_path / f"l{i}.png", Image(np.clip(np.rint(camera_response(lamp * t, 2.2, 0.0) * 255), 0, 255).astype(np.uint8)), bits=8)
    lit = runner.invoke(app, ["merge-brackets", *(str(tmp_path / f"l{i}.png") for i in range(3)), "-o", str(tmp_path / "l.exr"),
                              "--times", "1/4,1,4", "--json"])
    assert lit.exit_code == 0 and "bdx: warning: 2.1% of the pixels are saturated even in the darkest frame" in lit.stderr
    assert "only a lower bound" in json.loads(lit.stdout)["warning"]
    for times in ("a,b,c", "nan,1,2", "inf,1,2", "0,1,2", "1,1,2", "1,2", "1,1e-300,2"):
        result = runner.invoke(app, ["merge-brackets", *paths, "-o", str(tmp_path / "n.exr"), "--times", times])
        assert result.exit_code == 2 and "--times" in result.output and not (tmp_path / "n.exr").exists()
    result = runner.invoke(app, ["merge-brackets", paths[0], "-o", str(tmp_path / "one.exr")])
    assert result.exit_code == 2 and "at least two exposures" in result.output and not (tmp_path / "one.exr").exists()
    result = runner.invoke(app, ["merge-brackets", paths[0], paths[0], "-o", str(tmp_path / "one.exr")])  # "the input holds 1"
    assert result.exit_code == 2 and "at least two exposures of the scene; the inputs name 1 distinct file" in result.output
    deep = []
    for i, path in enumerate(paths):  # 16-bit frames holding the same codes merge to the same result
        deep.append(str(tmp_path / f"d{i}.png"))
        eight_bit = read_image(path).pixels
        assert eight_bit.dtype == np.uint8
        write_image(deep[-1], Image(eight_bit.astype(np.uint16) * 257), bits=16)
    result = runner.invoke(app, ["merge-brackets", *deep, "-o", str(tmp_path / "d.exr"), "--times", "1/4,1,4"])
    assert result.exit_code == 0, result.output
    np.testing.assert_allclose(read_image(tmp_path / "d.exr").pixels, read_image(tmp_path / "m.exr").pixels, rtol=1e-4)


@pytest.mark.parametrize("changes, message", [
    ({"iterations": -1}, "iterations must be a whole number between 1 and 16"),
    ({"exposure": -200.0}, "exposure must be a number of stops from -64 to 64"),
    ({"peak_nits": -1.0}, "peak_nits must be above 0"),
])
def test_hdr_settings_are_checked_when_made(changes, message):
    """The library took iterations -1 (IndexError) and exposure -200 (an all-zero image) without a word."""
    with pytest.raises(BdxError, match=message):
        HdrSettings(**changes)


def test_eval_hdr(runner, tmp_path):
    rng = np.random.default_rng(2)
    reference = np.exp(rng.normal(0, 1, (20, 30, 3))).astype(np.float32)
    (tmp_path / "ref").mkdir()
    (tmp_path / "pred").mkdir()
    (tmp_path / "ldr").mkdir()
    write_image(tmp_path / "ref" / "a.exr", Image(reference, linear=True), exr_half=False)
    write_image(tmp_path / "pred" / "a.exr", Image(reference * 1.2, linear=True), exr_half=False)
    ldr = np.clip(np.rint(np.clip(reference, 0, 1) ** (1 / 2.2) * 255), 0, 255).astype(np.uint8)
    write_image(tmp_path / "ldr" / "a.png", Image(ldr))
    sheet = tmp_path / "sheet.png"
    result = runner.invoke(app, ["eval", "hdr", "--pred", str(tmp_path / "pred"), "--ref", str(tmp_path / "ref"),
                                 "--input", str(tmp_path / "ldr"), "--sheet", str(sheet), "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout.splitlines()[-1])["summary"]["pred"]
    assert summary["psnr_mu"] == pytest.approx(psnr_mu(reference * 1.2, reference), abs=1e-3)
    assert 0 < summary["clipped_fraction"] < 1
    assert summary["scale_error_ev"] == pytest.approx(np.log2(1.2), abs=1e-4)  # 20 % too bright: 0.26 EV
    assert read_image(sheet).pixels.shape == (40, 90, 3)
    prediction = (tmp_path / "pred" / "a.exr").read_bytes()
    for target, status, message in ((tmp_path / "pred" / "a.exr", 2, ".png"), (sheet, 1, "exists"),
                                    (tmp_path / "s.txt", 2, ".png"), (tmp_path / "nodir" / "s.png", 1, "does not exist"),
                                    (sheet / "s.png", 1, f"{sheet} is not a folder")):  # said "does not exist"
        result = runner.invoke(app, ["eval", "hdr", "--pred", str(tmp_path / "pred"), "--ref", str(tmp_path / "ref"),
                                     "--sheet", str(target)])
        assert result.exit_code == status and message in result.output and "Traceback" not in result.output
    assert (tmp_path / "pred" / "a.exr").read_bytes() == prediction  # an input is never the sheet
    assert not (tmp_path / "s.txt").exists() and not (tmp_path / "nodir").exists()


def test_eval_hdr_mean_leaves_out_a_perfect_image_and_counts_it(runner, tmp_path):
    rng = np.random.default_rng(3)
    for folder in ("ref", "pred"):
        (tmp_path / folder).mkdir()
    scores, logs = [], []
    for name, scale in (("a", 1.0), ("b", 1.3), ("c", 0.8)):
        reference = np.exp(rng.normal(0, 1, (20, 30, 3))).astype(np.float32)
        write_image(tmp_path / "ref" / f"{name}.exr", Image(reference, linear=True), exr_half=False)
        write_image(tmp_path / "pred" / f"{name}.exr", Image(reference * scale, linear=True), exr_half=False)
        scores.append(psnr_mu(reference * scale, reference))
        logs.append(psnr_log(reference * scale, reference))
    result = runner.invoke(app, ["eval", "hdr", "--pred", str(tmp_path / "pred"), "--ref", str(tmp_path / "ref"), "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout.splitlines()[-1])["summary"]["pred"]
    assert scores[0] == float("inf")
    assert summary["psnr_mu"] == pytest.approx((scores[1] + scores[2]) / 2, abs=1e-3)
    # log PSNR the same: a perfect image's was a finite 222 dB (its error floored), averaged into the mean
    assert summary["psnr_mu_infinite"] == 1 and summary["psnr_log_infinite"] == 1 and logs[0] == float("inf")
    assert summary["psnr_log"] == pytest.approx((logs[1] + logs[2]) / 2, abs=1e-3)


def test_heldout_cases_draw_several_cameras(tmp_path):
    from bdx.training.hdr import find_scenes, heldout_cases

    scenes = find_scenes([_reference_folder(tmp_path)])
    one, three = heldout_cases(scenes, seed=5), heldout_cases(scenes, seed=5, cameras=3)
    assert len(one) == 2 * len(scenes) and len(three) == 3 * len(one)
    same_exposure = three[:3]
    assert {c.percentile for c in same_exposure} == {90.0} and len({c.scene for c in same_exposure}) == 1
    assert not np.array_equal(same_exposure[0].ldr, same_exposure[1].ldr)  # different camera curves
    np.testing.assert_array_equal(same_exposure[0].target, same_exposure[2].target)


def test_scale_error_ev():
    from bdx.metrics import scale_error_ev

    reference = np.exp(np.random.default_rng(3).normal(0, 1, (16, 16, 3))).astype(np.float32)
    assert scale_error_ev(reference / 4, reference) == pytest.approx(2.0, abs=1e-5)
    assert scale_error_ev(reference * 2, reference) == pytest.approx(1.0, abs=1e-5)
    wrong_half = reference.copy()
    wrong_half[:, 8:] *= 8
    mask = np.zeros((16, 16), bool)
    mask[:, :8] = True
    assert scale_error_ev(wrong_half, reference, mask) == pytest.approx(0.0, abs=1e-6)
    assert np.isnan(scale_error_ev(reference, reference, np.zeros((16, 16), bool)))


def test_default_weights_run(runner, tmp_path):
    source = tmp_path / "p.png"
    write_image(source, Image(_ldr(20, 28)))
    result = runner.invoke(app, ["ldr2hdr", str(source), "-o", str(tmp_path / "p.exr"), "--dequantize", "midpoint"])
    assert result.exit_code == 0, result.output
    out = read_image(tmp_path / "p.exr")
    assert out.pixels.shape == (20, 28, 3) and np.isfinite(out.pixels).all()


def test_wide_expand_map_blur_is_close_to_the_exact_gaussian():
    import cv2

    from bdx.hdr.classical import _wide_blur

    plane = np.zeros((600, 800), np.float32)
    plane[200:260, 300:420] = 1.0
    plane[500:, 700:] = 1.0
    exact = cv2.GaussianBlur(plane, (0, 0), 20)
    fast = _wide_blur(plane, 20)
    assert np.abs(fast - exact).max() < 0.01
    assert np.abs(fast - exact).mean() < 1e-3


def test_two_process_ddp_training(tmp_path):
    from ddp import train_on_two_processes

    replicas = train_on_two_processes("hdr", _reference_folder(tmp_path), tmp_path)
    assert all(torch.equal(replicas[0][k], replicas[1][k]) for k in replicas[0])  # gradients were averaged


def test_a_fixed_camera_renders_every_sample_and_case_through_that_curve(tmp_path, monkeypatch):
    from bdx.training import hdr as training

    scenes = training.find_scenes([_reference_folder(tmp_path)])
    curve = Camera("gamma", (2.2, 0.3))
    cases = training.heldout_cases(scenes, seed=5, cameras=2, camera=curve)
    assert len(cases) == 2 * len(scenes)  # one rendering per exposure: a fixed curve has nothing to average
    for case in cases:
        exposed = scenes[[s.name for s in scenes].index(case.scene)].linear
        exposed = exposed * np.float32(training.expose(exposed, case.percentile))
        np.testing.assert_array_equal(case.ldr, training.render_ldr(exposed[: case.ldr.shape[0], : case.ldr.shape[1]], curve, None))
    used = []
    original = training.render_ldr
    monkeypatch.setattr(training, "render_ldr", lambda linear, camera, quality: used.append(camera) or original(linear, camera, quality))
    config = HdrTrainConfig(steps=1, batch_size=2, crop=32, width=8, iterations=2, validate_every=1, checkpoint_every=1,
                            validation_fraction=0.4, camera=(2.2, 0.3))
    train_hdr([tmp_path / "refs"], tmp_path / "c.safetensors", config)
    assert used and set(used) == {curve}  # training samples, their context copies and the validation cases


def test_train_hdr_cli_camera_option(runner, tmp_path):
    output = tmp_path / "h.safetensors"
    folder = _reference_folder(tmp_path)
    common = ["train", "hdr", "--data", str(folder), "--steps", "1", "--batch-size", "1", "--crop", "32", "--width", "8",
              "--iterations", "1", "--device", "cpu"]
    result = runner.invoke(app, [*common, "-o", str(output), "--camera", "2.2", "0.3"])
    assert result.exit_code == 0, result.output
    from safetensors import safe_open

    with safe_open(str(output), framework="pt") as handle:
        assert json.loads(handle.metadata()["train_config"])["camera"] == [2.2, 0.3]
    bad = runner.invoke(app, [*common, "-o", str(tmp_path / "b.safetensors"), "--camera", "0.5", "0.3"])
    assert bad.exit_code == 2 and "--camera" in bad.stderr and not (tmp_path / "b.safetensors").exists()


@pytest.mark.parametrize("option,value", [("--width", "4"), ("--iterations", "1"), ("--state-scale", "2")])
def test_train_hdr_init_with_a_network_shape_is_a_usage_error(runner, tmp_path, option, value):
    """--init with --width 4 trained the weights' own width-32 network, status 0, the option ignored."""
    folder = _reference_folder(tmp_path)
    result = runner.invoke(app, ["train", "hdr", "--data", str(folder), "-o", str(tmp_path / "c.safetensors"), "--steps", "1",
                                 "--init", "shipped", option, value, "--device", "cpu"])
    assert result.exit_code == 2 and f"{option} shapes a new network; --init fine-tunes the weights' own network" in result.output
    assert not (tmp_path / "c.safetensors").exists()


def test_cli_refuses_feedback_iterations_beyond_its_bound(runner, tmp_path, make_png):
    """A million iterations once ran for minutes and took 15 GB on a 64x48 image: the option is bounded."""
    source = make_png("x.png", np.full((8, 8, 3), 120, np.uint8))
    for value in ("0", "17", "1000000"):
        result = runner.invoke(app, ["ldr2hdr", str(source), "-o", str(tmp_path / "o.exr"), "--iterations", value])
        assert result.exit_code == 2 and "--iterations must be a whole number between 1 and 16" in result.output
        assert not (tmp_path / "o.exr").exists()


def test_fine_tuning_keeps_the_inits_target_scale_and_loss_weights_unless_given(tmp_path):
    """`bdx train hdr --init shipped` trained the shipped weights (input scale, clipped weight 1) towards the exposure
    scale without a clipped term: the defaults, not the weights' own."""
    folder = _reference_folder(tmp_path)
    small = dict(steps=1, batch_size=1, crop=32, width=8, iterations=2, validate_every=100, checkpoint_every=100)
    first = tmp_path / "first.safetensors"
    train_hdr([folder], first, HdrTrainConfig(**small, target_scale="input", clipped_weight=2.0, naive_weight=0.5))
    kept = tmp_path / "kept.safetensors"
    train_hdr([folder], kept, HdrTrainConfig(**small), init=first)
    settings = ("target_scale", "clipped_weight", "naive_weight")
    assert {k: load_model(kept, "hdr").metadata["train_config"][k] for k in settings} == {
        "target_scale": "input", "clipped_weight": 2.0, "naive_weight": 0.5}
    given = tmp_path / "given.safetensors"
    train_hdr([folder], given, HdrTrainConfig(**small, target_scale="exposure", clipped_weight=0.0, naive_weight=0.0), init=first)
    assert {k: load_model(given, "hdr").metadata["train_config"][k] for k in settings} == {
        "target_scale": "exposure", "clipped_weight": 0.0, "naive_weight": 0.0}
    fresh = tmp_path / "fresh.safetensors"
    train_hdr([folder], fresh, HdrTrainConfig(**small))
    assert load_model(fresh, "hdr").metadata["train_config"]["target_scale"] == "exposure"


def test_real_camera_frames_train_against_their_reference_on_the_inputs_scale(tmp_path):
    """--pairs: a share of samples is a real frame (its camera's own curve) against the merge it shows."""
    from bdx.color import linear_to_srgb, srgb_to_linear
    from bdx.errors import SettingUsageError
    from bdx.training.hdr import load_hdr_pairs, sample_batch

    folder = _reference_folder(tmp_path)
    entries = []
    for i in range(3):
        linear = read_image(folder / f"s{i}.exr").pixels
        for stops in (-3, -1):  # two exposures of each scene through an sRGB camera
            name = f"f{i}_{-stops}.png"
            write_image(tmp_path / name, Image(np.clip(np.rint(linear_to_srgb(linear * 2.0**stops) * 255), 0, 255).astype(np.uint8)), bits=8)
            entries.append({"input": name, "reference": f"refs/s{i}.exr"})
    pairs = tmp_path / "pairs.json"
    pairs.write_text(json.dumps(entries))
    scenes = load_hdr_pairs(pairs)
    assert [s.name for s in scenes] == ["refs/s0.exr", "refs/s1.exr", "refs/s2.exr"] and all(len(s.frames) >= 1 for s in scenes)
    config = HdrTrainConfig(batch_size=4, crop=32, pairs_fraction=1.0, target_scale="input")
    ldr, target, _ = sample_batch([], config, np.random.default_rng(0), 64, scenes)
    ldr, target = ldr.numpy().transpose(0, 2, 3, 1), target.numpy().transpose(0, 2, 3, 1)
    well = (ldr > 0.1) & (ldr < 0.9) & np.isfinite(target)
    ratio = np.median(target[well] / np.maximum(srgb_to_linear(ldr[well]), 1e-6))
    assert abs(np.log2(ratio)) < 0.05  # the target is on the frame's linearized scale, whatever its exposure
    output = tmp_path / "h.safetensors"
    small = dict(steps=1, batch_size=2, crop=32, width=8, iterations=2, validate_every=100, checkpoint_every=100)
    train_hdr([folder], output, HdrTrainConfig(**small, target_scale="input"), pairs=pairs)
    assert load_model(output, "hdr").metadata["train_config"]["pairs_fraction"] == 0.25
    with pytest.raises(SettingUsageError, match="give target_scale input"):
        train_hdr([folder], output, HdrTrainConfig(**small, target_scale="exposure"), pairs=pairs)
    with pytest.raises(SettingUsageError, match="naive_weight compares with the naive curve on the input's scale: give target_scale input"):
        train_hdr([folder], output, HdrTrainConfig(**small, target_scale="exposure", naive_weight=0.1))
    write_image(tmp_path / "small.png", Image(np.zeros((8, 8, 3), np.uint8)), bits=8)
    pairs.write_text(json.dumps([{"input": "small.png", "reference": "refs/s0.exr"}]))
    with pytest.raises(BdxError, match="small.png: needs an 8- or 16-bit RGB frame of its reference's size"):
        load_hdr_pairs(pairs)
    pairs.write_text('[{"input": "small.png"}]')
    with pytest.raises(BdxError, match="expected a JSON list"):
        load_hdr_pairs(pairs)
