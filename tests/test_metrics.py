"""Metrics against hand-computed values."""

from __future__ import annotations

import numpy as np
import pytest

from bdx.color import linear_to_srgb, srgb_to_linear, srgb_to_oklab
from bdx.metrics import (
    banding_stress,
    bin_adherence,
    delta_e_ok,
    distinct_values,
    mean_run_length,
    psnr,
    requantization_match,
    ssim,
)


def test_psnr_known_value():
    a = np.zeros((10, 10, 1))
    b = np.full((10, 10, 1), 0.1)
    assert abs(psnr(a, b) - 20.0) < 1e-5
    assert psnr(a, a) == float("inf")


def test_ssim_identity_and_degradation():
    rng = np.random.default_rng(0)
    image = rng.random((40, 40, 3))
    assert abs(ssim(image, image) - 1.0) < 1e-9
    slight = ssim(image, np.clip(image + rng.normal(0, 0.05, image.shape), 0, 1))
    strong = ssim(image, np.clip(image + rng.normal(0, 0.3, image.shape), 0, 1))
    assert 1.0 > slight > strong and strong < 0.8


def test_srgb_round_trip_and_oklab_white():
    values = np.linspace(0, 1, 101, dtype=np.float32)
    np.testing.assert_allclose(linear_to_srgb(srgb_to_linear(values)), values, atol=1e-6)
    lab = srgb_to_oklab(np.ones((1, 3), np.float32))
    np.testing.assert_allclose(lab[0], [1.0, 0.0, 0.0], atol=1e-4)
    assert delta_e_ok(np.zeros((2, 2, 3)), np.zeros((2, 2, 3))) == 0


def test_run_lengths():
    flags = np.array([[1, 1, 0, 1, 1, 1, 0, 0]], bool)
    assert mean_run_length(flags) == 2.5
    assert mean_run_length(np.zeros((2, 3), bool)) == 0


def test_banding_stress_flat_vs_smooth():
    flat = np.full((32, 32, 3), 0.5)
    ramp = np.linspace(0, 1, 32 * 32).reshape(32, 32, 1).repeat(3, 2)
    assert banding_stress(flat)["zero_diff_g0.6"] == 1.0
    assert banding_stress(ramp)["zero_diff_g0.6"] < 0.6


def test_bin_metrics():
    levels = np.array([[[3]]])
    centre = np.array([[[3 * 65535 // 15]]], np.uint16)  # 13107 = exact centre of level 3
    assert requantization_match(centre, levels, 4, "centre") == 1.0
    assert bin_adherence(centre, levels, 4, "centre")["within_0.5_step"] == 1.0
    off = centre + np.uint16(6000)  # more than half a step (4369) away
    assert requantization_match(off, levels, 4, "centre") == 0.0
    assert bin_adherence(off, levels, 4, "centre") == {"within_0.5_step": 0.0, "within_1_step": 0.0, "within_2_step": 1.0}
    assert distinct_values(np.array([[[1, 2], [1, 3]]])) == [1, 2]


def test_clipped_region_measures_see_highlights_above_the_whole_image_peak():
    """A highlight 2 stops too dark reads -2 stops, and its PSNR-mu is finite and below a correct one's, though
    it lies far above the 99th percentile that normalises the whole-image PSNR-mu."""
    from bdx.metrics import clipped_region_bias_stops, clipped_region_psnr_mu

    rng = np.random.default_rng(2)
    reference = rng.uniform(0.05, 1.0, (64, 64, 3))
    clipped = np.zeros((64, 64), bool)
    clipped[:4, :4] = True
    reference[clipped] = 40.0
    dark = reference.copy()
    dark[clipped] = 10.0
    close = reference.copy()
    close[clipped] = 36.0
    assert clipped_region_bias_stops(dark, reference, clipped) == pytest.approx(-2.0)
    assert clipped_region_bias_stops(reference, reference, clipped) == pytest.approx(0.0)
    assert np.isfinite(clipped_region_psnr_mu(dark, reference, clipped))
    assert clipped_region_psnr_mu(dark, reference, clipped) + 10 < clipped_region_psnr_mu(close, reference, clipped)
    assert np.isnan(clipped_region_bias_stops(dark, reference, np.zeros_like(clipped)))


def test_flat_region_chroma_noise_sees_colour_blotches_not_lightness_edges():
    from bdx.metrics import flat_region_chroma_noise

    rng = np.random.default_rng(4)
    grey = np.full((128, 128, 3), 0.3, dtype=np.float32)
    grey[:, 64:] = 0.7  # a lightness edge: no colour noise
    blotchy = grey.copy()
    blotchy[..., 0] += rng.normal(0, 0.02, (128, 128)).astype(np.float32)
    blotchy[..., 2] -= blotchy[..., 0] - grey[..., 0]
    assert flat_region_chroma_noise(grey) < 1e-4
    assert flat_region_chroma_noise(blotchy) > 0.005


def test_ssim_of_near_identical_bright_images_stays_at_most_one():
    """In float32 the variances' cancellation scored near-identical images 1.0000107."""
    rng = np.random.default_rng(5)
    bright = (0.9 + 0.01 * rng.random((96, 96, 3))).astype(np.float32)
    for noise in (0.0, 1e-7, 1e-5):
        assert ssim(bright, bright + np.float32(noise)) <= 1.0


def test_evaluation_compares_premultiplied_colour_straight_and_float_tiff_as_display_values():
    """Two encodings of one image scored 10.9 dB against each other (associated alpha read as straight colour),
    and a float TIFF's display values were sRGB-encoded again (mean brightness 0.685 for a 0.5 ramp)."""
    from bdx.depth import display_codes
    from bdx.evaluation import depth_reference, evaluate_depth, evaluate_lowlight
    from bdx.io import Image

    y, x = np.mgrid[0:32, 0:48]
    colour = np.stack([(x * 1300 + y * 7) % 65536, (y * 2000 + x) % 65536, np.full_like(x, 40000)], -1).astype(np.uint16)
    alpha = np.full((32, 48), 32768, np.uint16)
    straight = Image(colour, alpha=alpha)
    premultiplied = Image(np.rint(colour * (32768 / 65535)).astype(np.uint16), alpha=alpha, premultiplied=True)
    assert evaluate_lowlight(straight, premultiplied)["psnr"] > 80
    assert evaluate_depth(straight, depth_reference(premultiplied))["psnr"] > 80

    ramp = np.tile(np.linspace(0, 1, 48, dtype=np.float32), (32, 1))[..., None].repeat(3, 2)
    as_float, as_codes = Image(ramp), Image(np.rint(ramp * 65535).astype(np.uint16))
    assert evaluate_lowlight(as_float)["mean_brightness"] == pytest.approx(evaluate_lowlight(as_codes)["mean_brightness"], abs=1e-4)
    assert evaluate_lowlight(as_float, as_codes)["psnr"] > 80
    np.testing.assert_array_equal(display_codes(as_float, "none", "cpu"), as_codes.pixels)
    linear = Image(ramp, linear=True)  # scene-linear light (an EXR) is sRGB-encoded
    assert display_codes(linear, "none", "cpu")[0, 24, 0] > as_codes.pixels[0, 24, 0] + 10000
