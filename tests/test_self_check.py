"""The learned dequantizer's self-check (bdx.dequant.self_check and its use in bdx.depth)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from bdx.cli import app
from bdx.depth import DepthSettings, upscale_depth
from bdx.dequant.learned import DequantNet, DequantNetConfig
from bdx.dequant.self_check import BLOCK, DECIMATION, RAMP_DB, BlockErrors, alpha_region
from bdx.io import Image, read_image, write_image
from bdx.models import describe
from bdx.quantization import requantize_u16


def _photo(height: int = 160, width: int = 200, seed: int = 0) -> np.ndarray:
    """A gradient with ripples and mild noise, 8-bit."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width]
    base = 60 + 120 * x / width + 20 * np.sin(y / 9.0)
    pixels = base[..., None] * np.array([1.0, 0.85, 0.7]) + rng.normal(0, 0.6, (height, width, 3))
    return np.clip(np.rint(pixels), 0, 255).astype(np.uint8)


def _truth_and_codes(height: int = 160, width: int = 256) -> tuple[np.ndarray, np.ndarray]:
    y, x = np.mgrid[0:height, 0:width] / np.float64(width)
    truth = np.stack([0.25 + 0.1 * x + 0.02 * y, 0.3 + 0.08 * x, 0.2 + 0.05 * y], axis=-1)
    return truth, np.rint(truth * 255).astype(np.uint8)


def _error(codes16: np.ndarray, truth: np.ndarray) -> float:
    return float(np.mean((codes16 / 65535.0 - truth) ** 2))


def test_block_errors_summed_tile_by_tile_equal_the_whole():
    rng = np.random.default_rng(0)
    height, width = 100, 77
    restored, centre, truth = (rng.random((height, width, 3)) for _ in range(3))
    whole = BlockErrors(height, width)
    whole.add(restored, centre, truth, 0, 0)
    parts = BlockErrors(height, width)
    for top, bottom in ((0, 45), (45, 100)):
        for left, right in ((0, 10), (10, 77)):
            parts.add(restored[top:bottom, left:right], centre[top:bottom, left:right], truth[top:bottom, left:right], top, left)
    np.testing.assert_allclose(parts.restored, whole.restored)
    np.testing.assert_allclose(parts.centre, whole.centre)
    cell = BLOCK // DECIMATION
    assert whole.restored.shape == (-(-height // cell), -(-width // cell))
    assert whole.restored[1, 2] == pytest.approx(np.square(restored - truth)[cell : 2 * cell, 2 * cell :].sum())


@pytest.mark.parametrize("ramps,alpha", [(-1.0, 0.0), (-0.5, 0.0), (0.0, 0.5), (0.25, 0.75), (6.0, 1.0)])
def test_alpha_follows_the_block_gain(ramps, alpha):
    errors = BlockErrors(1, 1)
    errors.centre[:] = 1.0
    errors.restored[:] = 10 ** (-ramps * RAMP_DB / 10)  # a gain of ``ramps`` ramp widths over the bin centre
    assert errors.alpha()[0, 0] == pytest.approx(alpha, abs=1e-6)


def test_alpha_between_blocks_is_linear_and_flat_beyond_the_outer_centres():
    alpha = np.array([[0.0, 1.0], [1.0, 1.0]], np.float32)
    region = alpha_region(alpha, 0, 0, 2 * BLOCK, 2 * BLOCK)
    centre = BLOCK // 2
    assert region[0, 0] == 0 and region[centre - 1, centre - 1] == 0  # before the first centres: the first value
    assert region[-1, -1] == 1
    row = region[0, centre : centre + BLOCK + 1]
    np.testing.assert_allclose(np.diff(row[1:-1]), 1.0 / BLOCK, atol=1e-6)  # one ramp from block centre to block centre
    tile = alpha_region(alpha, 37, 51, 40, 30)  # a region anywhere gives the same values as the whole
    np.testing.assert_array_equal(tile, region[37:77, 51:81])


def test_a_network_that_hurts_fades_to_the_bin_centre():
    torch.manual_seed(3)
    net = DequantNet(DequantNetConfig(widths=(8, 16), blocks=(1, 1), prior="contour"))
    with torch.no_grad():
        for parameter in net.parameters():
            parameter.normal_(0, 0.3)  # random offsets, far from the truth
    model = describe(net.eval())
    truth, codes = _truth_and_codes()
    centre = _error(codes.astype(np.float64) * 257, truth)
    unchecked = upscale_depth(Image(codes), model, DepthSettings(self_check=False, precision="float32"))
    checked = upscale_depth(Image(codes), model, DepthSettings(precision="float32"))
    assert _error(unchecked.image.pixels, truth) > 1.5 * centre  # the network alone makes the image worse
    assert checked.kept is not None and checked.kept < 0.2
    assert _error(checked.image.pixels, truth) < 1.1 * centre
    np.testing.assert_array_equal(requantize_u16(checked.image.pixels, 8), codes)  # still inside every bin


def test_the_shipped_network_keeps_its_offsets_on_a_smooth_gradient():
    truth, codes = _truth_and_codes()
    result = upscale_depth(Image(codes))
    assert result.kept is not None and result.kept > 0.9
    assert 10 * np.log10(_error(codes.astype(np.float64) * 257, truth) / _error(result.image.pixels, truth)) > 3.0


def test_tiled_self_check_equals_the_whole_image():
    image = Image(_photo())
    whole = upscale_depth(image, settings=DepthSettings(precision="float32"))
    tiled = upscale_depth(image, settings=DepthSettings(precision="float32", tile=64))
    np.testing.assert_array_equal(tiled.image.pixels, whole.image.pixels)
    assert tiled.kept == pytest.approx(whole.kept)


@pytest.mark.parametrize("shape", [(40, 56, 1), (1, 9, 3), (3, 3, 3)])
def test_grey_and_tiny_images_are_checked_too(shape):
    codes = np.repeat(_photo(40, 56)[: shape[0], : shape[1], :1], shape[2], axis=2)
    result = upscale_depth(Image(np.ascontiguousarray(codes)))
    assert result.kept is not None and 0 <= result.kept <= 1
    assert result.image.pixels.shape[:2] == codes.shape[:2]
    np.testing.assert_array_equal(requantize_u16(result.image.pixels, 8).reshape(codes.shape), codes)


def test_no_check_below_eight_bits_or_for_other_methods():
    levels = _photo() // 4
    image = Image((levels * 4 + 2).astype(np.uint8), significant_bits=6)
    assert upscale_depth(image, settings=DepthSettings(in_bits=6)).kept is None
    assert upscale_depth(Image(_photo()), settings=DepthSettings(method="contour")).kept is None
    assert upscale_depth(Image(_photo()), settings=DepthSettings(self_check=False)).kept is None


def test_cli_reports_what_the_check_kept(runner, tmp_path):
    source = tmp_path / "in.png"
    write_image(source, Image(_photo(64, 80)), "png")
    for flag, checked in (([], True), (["--no-self-check"], False)):
        out = tmp_path / f"out{len(flag)}.tiff"
        result = runner.invoke(app, ["upscale-depth", str(source), "-o", str(out), "--json", *flag])
        assert result.exit_code == 0, result.stderr
        record = json.loads(result.stdout.splitlines()[-1])
        assert (record["self_check_kept"] is not None) == checked
        assert read_image(out).pixels.dtype == np.uint16
