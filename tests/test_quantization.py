"""Levels, bins, effective depth, dithering, palettes."""

from __future__ import annotations

import numpy as np
import pytest

from bdx.dither import bayer_matrix, floyd_steinberg, threshold_offsets
from bdx.errors import BdxError, SettingError
from bdx.io import Image
from bdx.quantization import (
    bin_bounds_u16,
    clamp_to_bins,
    codes_from_levels,
    detect_bits,
    effective_bits,
    levels_from_codes,
    requantize_u16,
)
from bdx.reduce import quantize_image

from conftest import gradient16


@pytest.mark.parametrize("bits", [1, 3, 4, 6, 8, 10, 12, 15])
@pytest.mark.parametrize("convention", ["centre", "truncate"])
def test_bins_partition_all_16bit_codes(bits, convention):
    low, high = bin_bounds_u16(bits, convention)
    assert low[0] == 0 and high[-1] == 65535
    np.testing.assert_array_equal(low[1:].astype(np.int64), high[:-1].astype(np.int64) + 1)
    codes = np.arange(65536, dtype=np.uint16)
    levels = requantize_u16(codes, bits, convention)
    assert np.all((codes >= low[levels]) & (codes <= high[levels]))


def test_centre_convention_stores_bin_centres():
    levels = np.arange(16)
    np.testing.assert_array_equal(codes_from_levels(levels, 4, 8), levels * 17)
    np.testing.assert_array_equal(codes_from_levels(np.arange(256), 8, 16), np.arange(256) * 257)
    np.testing.assert_array_equal(levels_from_codes(levels * 17, 4, 8), levels)


def test_truncate_convention_keeps_top_bits():
    codes = np.arange(256, dtype=np.uint8)
    np.testing.assert_array_equal(levels_from_codes(codes, 4, 8, "truncate"), codes >> 4)
    np.testing.assert_array_equal(codes_from_levels(codes >> 4, 4, 8, "truncate"), codes & 0xF0)


def test_effective_bits_detection():
    assert effective_bits(np.arange(16, dtype=np.uint8) * 17, 8) == 4
    assert effective_bits(np.arange(256, dtype=np.uint16) * 257, 16) == 8
    assert effective_bits(np.arange(256, dtype=np.uint8), 8) == 8
    assert detect_bits((np.arange(32, dtype=np.uint8) << 3), 8) == (5, "truncate")
    assert detect_bits(np.arange(16, dtype=np.uint8) * 17, 8) == (4, "centre")


def test_clamp_to_bins_forces_requantization():
    rng = np.random.default_rng(1)
    levels = rng.integers(0, 16, (50, 50, 3))
    values = rng.random((50, 50, 3)).astype(np.float32)
    codes = clamp_to_bins(values, levels, 4)
    np.testing.assert_array_equal(requantize_u16(codes, 4), levels)


def test_linear_quantize_formula_and_sbit():
    pixels = np.arange(256, dtype=np.uint8).reshape(16, 16, 1)
    result = quantize_image(Image(pixels), 4)
    expected = np.rint(np.rint(pixels / 255 * 15) * 17).astype(np.uint8)
    np.testing.assert_array_equal(result.pixels, expected)
    assert result.significant_bits == 4


def test_16bit_to_10bit_uses_16bit_container():
    result = quantize_image(Image(gradient16()), 10)
    assert result.pixels.dtype == np.uint16
    assert effective_bits(result.pixels, 16) == 10


@pytest.mark.parametrize("bits,container", [(0, 8), (17, 8), (8, 8), (16, 16)])
def test_invalid_bit_depths(bits, container):
    pixels = np.zeros((4, 4, 3), np.uint8 if container == 8 else np.uint16)
    with pytest.raises(BdxError):
        quantize_image(Image(pixels), bits)


@pytest.mark.parametrize("dither", ["ordered", "random", "floyd-steinberg"])
def test_dithering_preserves_local_mean(dither):
    ramp = np.linspace(0, 65535, 256).astype(np.uint16)[None, :, None].repeat(64, 0)
    plain = quantize_image(Image(ramp), 3).pixels.astype(np.float64) / 255
    dithered_codes = quantize_image(Image(ramp), 3, dither=dither).pixels
    dithered = dithered_codes.astype(np.float64) / 255
    truth = ramp.astype(np.float64) / 65535
    block = lambda a: a.reshape(8, 8, 32, 8).mean(axis=(1, 3))  # noqa: E731
    assert np.abs(block(dithered) - block(truth)).mean() < 0.5 * np.abs(block(plain) - block(truth)).mean()
    assert set(np.unique(dithered_codes)) <= set(codes_from_levels(np.arange(8), 3, 8))


def _naive_floyd_steinberg(values, levels):
    values = values.astype(np.float64).copy()
    height, width = values.shape
    out = np.zeros_like(values, dtype=np.int64)
    for y in range(height):
        for x in range(width):
            q = int(np.clip(np.rint(values[y, x]), 0, levels))
            out[y, x] = q
            e = values[y, x] - q
            if x + 1 < width:
                values[y, x + 1] += e * 7 / 16
            if y + 1 < height:
                if x > 0:
                    values[y + 1, x - 1] += e * 3 / 16
                values[y + 1, x] += e * 5 / 16
                if x + 1 < width:
                    values[y + 1, x + 1] += e * 1 / 16
    return out


def test_wavefront_floyd_steinberg_matches_scanline_order():
    rng = np.random.default_rng(3)
    values = rng.random((23, 31)) * 7

    def nearest(v):
        q = np.clip(np.rint(v), 0, 7).astype(np.int32)
        return q, q.astype(np.float32)

    ours = floyd_steinberg(values[..., None].astype(np.float32), nearest, (23, 31, 1), np.int32)[..., 0]
    reference = _naive_floyd_steinberg(values, 7)
    assert np.mean(ours == reference) > 0.99  # float32 vs float64 accumulation may flip a rare tie


def test_bayer_and_offsets():
    matrix = bayer_matrix(3)
    assert sorted(matrix.ravel()) == list(range(64))
    offsets = threshold_offsets(10, 10, "ordered")
    assert offsets.shape == (10, 10, 1) and offsets.min() >= -0.5 and offsets.max() < 0.5
    assert threshold_offsets(3, 3, "none") is None


def test_a_256_colour_palette_reduces_8_bit_colour_but_not_8_bit_grey():
    """``--method kmeans -b 8`` was refused for every 8-bit input ("does not reduce an input of 8 bits"), though a
    palette of 256 colours does reduce 24-bit RGB."""
    rng = np.random.default_rng(1)
    pixels = (rng.random((24, 32, 3)) * 255).astype(np.uint8)
    result = quantize_image(Image(pixels), 8, method="kmeans")
    assert result.pixels.dtype == np.uint8 and len(np.unique(result.pixels.reshape(-1, 3), axis=0)) <= 256
    with pytest.raises(SettingError, match="does not reduce an input of 8 bits"):
        quantize_image(Image(pixels[..., 0]), 8, method="kmeans")


def test_kmeans_palette_has_at_most_2n_colours():
    rng = np.random.default_rng(0)
    pixels = (rng.random((40, 60, 3)) * 255).astype(np.uint8)
    for dither in ("none", "ordered", "floyd-steinberg"):
        result = quantize_image(Image(pixels), 3, method="kmeans", dither=dither)
        assert len(np.unique(result.pixels.reshape(-1, 3), axis=0)) <= 8
    few = np.zeros((8, 8, 3), np.uint8)
    few[:4] = 200
    np.testing.assert_array_equal(quantize_image(Image(few), 2, method="kmeans").pixels, few)
    for seed in (2**31, 2**64 - 1):  # past a C int: an internal ValueError / OverflowError from OpenCV's seed
        assert len(np.unique(quantize_image(Image(pixels), 3, method="kmeans", seed=seed).pixels.reshape(-1, 3), axis=0)) <= 8


def test_quantize_keeps_alpha_and_gray():
    gray = gradient16(channels=1)
    alpha = np.full(gray.shape[:2], 40000, np.uint16)
    result = quantize_image(Image(gray, alpha), 4)
    assert result.channels == 1
    np.testing.assert_array_equal(result.alpha, alpha)


def test_table_lookup_and_present_codes_agree_with_numpy_for_every_layout():
    from bdx.quantization import lookup, present_codes

    rng = np.random.default_rng(4)
    eight = rng.integers(0, 256, (40, 50, 3), dtype=np.uint8)
    sixteen = rng.integers(0, 65536, (40, 50, 3), dtype=np.uint16)
    for codes in (eight, eight[5:30, 7:41], eight[..., 0], eight[:, ::2], eight[..., :2], sixteen, sixteen[3:9, 4:20]):
        for table in (np.linspace(0, 1, 1 << (8 * codes.dtype.itemsize)).astype(np.float32),
                      (np.arange(1 << (8 * codes.dtype.itemsize)) % 65536).astype(np.uint16)):
            out = lookup(table, codes)
            assert out.dtype == table.dtype and out.shape == codes.shape
            np.testing.assert_array_equal(out, table[codes])
        np.testing.assert_array_equal(present_codes(codes), np.unique(codes))
    assert present_codes(np.array([7], np.uint8)).tolist() == [7]
