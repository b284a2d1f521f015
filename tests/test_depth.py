"""Dequantization: bin-safe, better than the bin centre on smooth content, real 16-bit output."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch

from bdx.depth import DepthSettings, upscale_depth
from bdx.errors import BdxError, SettingUsageError
from bdx.models import load_model
from bdx.io import Image
from bdx.metrics import psnr
from bdx.quantization import levels_from_codes, requantize_u16
from bdx.reduce import quantize_image

from conftest import SHARED_DATA, gradient16


def _restore(reference16, bits, method, convention="centre", **kw):
    quantized = quantize_image(Image(reference16), bits, convention=convention)
    result = upscale_depth(quantized, None, DepthSettings(method=method, convention=convention, **kw), device="cpu")
    return quantized, result


@pytest.mark.parametrize("bits", [4, 6])
@pytest.mark.parametrize("convention", ["centre", "truncate"])
def test_contour_beats_midpoint_on_smooth_gradients(bits, convention):
    reference = gradient16(160, 240)
    truth = reference / 65535.0
    _, mid = _restore(reference, bits, "midpoint", convention)
    quantized, contour = _restore(reference, bits, "contour", convention)
    gain = psnr(contour.image.pixels / 65535.0, truth) - psnr(mid.image.pixels / 65535.0, truth)
    assert gain > 5.0
    levels = levels_from_codes(quantized.pixels, bits, 8, convention)
    np.testing.assert_array_equal(requantize_u16(contour.image.pixels, bits, convention), levels)
    assert contour.in_bits == bits


def test_output_is_real_16bit():
    _, result = _restore(gradient16(64, 1024), 8, "contour")
    assert result.image.pixels.dtype == np.uint16
    for channel in range(3):
        assert np.unique(result.image.pixels[..., channel]).size > 256


def test_midpoint_is_bin_centre():
    quantized, result = _restore(gradient16(), 4, "midpoint")
    np.testing.assert_array_equal(result.image.pixels, quantized.pixels.astype(np.uint16) * 257)


def test_tiled_contour_matches_single_tile():
    quantized = quantize_image(Image(gradient16(150, 210)), 5)
    small = upscale_depth(quantized, None, DepthSettings(tile=64), device="cpu").image.pixels
    whole = upscale_depth(quantized, None, DepthSettings(tile=1024), device="cpu").image.pixels
    # the halo covers the method's support; float rounding in a tile's convolutions may move a code by one step
    assert np.abs(small.astype(int) - whole.astype(int)).max() <= 1
    assert np.mean(small == whole) > 0.99


def test_gray_alpha_and_tiny_images():
    gray = quantize_image(Image(gradient16(channels=1), np.full((96, 128), 7, np.uint16)), 4)
    result = upscale_depth(gray, device="cpu")
    assert result.image.channels == 1
    np.testing.assert_array_equal(result.image.alpha, gray.alpha)
    for shape in ((1, 1, 3), (1, 7, 3), (5, 1, 1)):
        tiny = Image(np.full(shape, 34, np.uint8), significant_bits=4)
        out = upscale_depth(tiny, device="cpu").image
        assert out.pixels.shape == shape
        assert np.all(requantize_u16(out.pixels, 4) == 2)  # inside the input's bin
        assert np.abs(out.pixels.astype(int) - 34 * 257).max() < 0.05 * 17 * 257  # and (nearly) the flat input


def test_in_bits_detection_and_errors():
    codes = (np.arange(64) % 16 * 17).astype(np.uint8).reshape(8, 8, 1)
    assert upscale_depth(Image(codes), device="cpu").in_bits == 4
    with pytest.raises(BdxError, match="16 significant bits"):
        upscale_depth(Image(gradient16()), device="cpu")
    with pytest.raises(BdxError, match="float"):
        upscale_depth(Image(np.zeros((4, 4, 3), np.float32)), device="cpu")
    with pytest.raises(SettingUsageError, match="method must be one of contour, midpoint, learned"):
        upscale_depth(Image(codes), None, DepthSettings(method="magic"), device="cpu")
    with pytest.raises(SettingUsageError, match="a model applies to method learned only"):
        upscale_depth(Image(codes), load_model(None, "depth"), DepthSettings(method="midpoint"), device="cpu")


def test_top_bit_content_in_16_bits_is_named_with_the_convention_that_reads_it():
    """12-bit levels shifted into 16 bits (zero-filled low bits, as cameras write them) need all 16 bits as bin
    centres: the error says which convention reads them, and that convention then works."""
    levels = np.arange(4096, dtype=np.uint16).reshape(64, 64, 1)
    image = Image(levels << 4)
    with pytest.raises(BdxError, match="12-bit levels with zero-filled low bits: add convention truncate"):
        upscale_depth(image, None, DepthSettings(method="midpoint"), device="cpu")
    assert upscale_depth(image, None, DepthSettings(method="midpoint", convention="truncate"), device="cpu").in_bits == 12


def test_relax_skips_the_bin_clamp():
    quantized = quantize_image(Image(gradient16()), 4)
    strict = upscale_depth(quantized, device="cpu").image.pixels
    relaxed = upscale_depth(quantized, None, DepthSettings(relax=True), device="cpu").image.pixels
    assert np.abs(strict.astype(int) - relaxed.astype(int)).max() <= 2  # contour stays in its bins anyway


@pytest.mark.skipif(not (SHARED_DATA / "photos").is_dir(), reason="shared data absent")
def test_contour_beats_midpoint_on_real_photo_crops():
    from bdx.io import read_image

    path = sorted((SHARED_DATA / "photos").glob("*.jpg"))[0]
    photo = read_image(path).pixels[:384, :512]
    truth = photo / 255.0
    quantized = quantize_image(Image(photo), 4)
    mid = upscale_depth(quantized, None, DepthSettings(method="midpoint"), device="cpu").image.pixels / 65535.0
    contour = upscale_depth(quantized, None, DepthSettings(method="contour"), device="cpu").image.pixels / 65535.0
    assert psnr(contour, truth) > psnr(mid, truth) + 0.5


@pytest.mark.parametrize("check_levels", [True, False])
def test_contour_threads_split_by_group_equal_the_sequential_planes(check_levels):
    """The threaded (plane x residue group) path writes the same distances as one plane at a time."""
    from bdx.dequant.classical import contour_fraction, contour_fractions

    rng = np.random.default_rng(5)
    smooth = np.cumsum(rng.integers(-1, 2, (2, 3, 97, 131)), axis=3) // 3  # plateaus and one-level steps
    levels = (smooth - smooth.min()).astype(np.int32)
    threaded = contour_fractions(levels, check_levels)
    for n in range(2):
        for c in range(3):
            np.testing.assert_array_equal(threaded[n, c], contour_fraction(levels[n, c], check_levels))
    assert 0.2 < float(np.mean((threaded > 0.01) & (threaded < 0.99) & (threaded != 0.5)))  # real interpolation happened


def test_contour_threads_filling_one_plane_never_lose_writes():
    """Groups of one plane fill it from several threads with OpenCV's masked copy, which rewrites unmasked pixels
    with their old values; without the plane's lock a write was lost in about 1 call of 20."""
    from bdx.dequant.classical import contour_fraction, contour_fractions

    rng = np.random.default_rng(5)
    smooth = np.cumsum(rng.integers(-1, 2, (1, 3, 600, 800)), axis=3) // 3
    levels = (smooth - smooth.min()).astype(np.int32)
    want = np.stack([contour_fraction(levels[0, c]) for c in range(3)])[None]
    threads = torch.get_num_threads()
    torch.set_num_threads(4)
    try:
        for _ in range(40):
            np.testing.assert_array_equal(contour_fractions(levels), want)
    finally:
        torch.set_num_threads(threads)


def test_opencv_numbers_seed_pixels_in_raster_order():
    """The contour method reads the nearest seed's level as levels[seeds][label - 1]: it relies on this."""
    import cv2

    rng = np.random.default_rng(8)
    for shape in [(1, 1), (7, 9), (300, 517)]:
        non_seeds = (rng.random(shape) > 0.3).astype(np.uint8)
        non_seeds.flat[0] = 0
        _, labels = cv2.distanceTransformWithLabels(non_seeds, cv2.DIST_L2, 5, labelType=cv2.DIST_LABEL_PIXEL)
        seeds = non_seeds == 0
        np.testing.assert_array_equal(labels[seeds], np.arange(1, np.count_nonzero(seeds) + 1))


def _reference_neighbour_distances(levels, radius, check_levels):
    """Distances to the nearest pixel one level below / above, spelled out: for each residue group, the nearest seed of
    the group (by OpenCV's distance transform) counts for the pixels one residue above / below the group, with
    ``check_levels`` only if its level is exactly one off."""
    import cv2

    below = np.full(levels.shape, np.inf, np.float32)
    above = below.copy()
    for group in range(4):
        non_seeds = (levels % 4 != group).astype(np.uint8)
        if non_seeds.all():
            continue
        if check_levels:
            distance, labels = cv2.distanceTransformWithLabels(non_seeds, cv2.DIST_L2, 5, labelType=cv2.DIST_LABEL_PIXEL)
            seeds = non_seeds == 0
            seed_level = np.zeros(labels.max() + 1, np.int64)
            seed_level[labels[seeds]] = levels[seeds]
            offset = levels - seed_level[labels]
            is_below, is_above = offset == 1, offset == -1
        else:  # the plain transform (its float rounding differs from the labelled one's by about 1e-6)
            distance = cv2.distanceTransform(non_seeds, cv2.DIST_L2, 5)
            is_below, is_above = (levels - 1) % 4 == group, (levels + 1) % 4 == group
        below = np.where(is_below & (distance <= radius), distance, below)
        above = np.where(is_above & (distance <= radius), distance, above)
    return below, above


@pytest.mark.parametrize("check_levels", [True, False])
@pytest.mark.parametrize("seed", [0, 1])
def test_neighbour_level_distances_match_the_spelled_out_reference(seed, check_levels):
    from bdx.dequant.classical import neighbour_level_distances

    rng = np.random.default_rng(seed)
    smooth = np.cumsum(rng.integers(-1, 2, (150, 220)), axis=1) // 3
    edges = np.where(rng.random((150, 220)) < 0.02, rng.integers(-9, 10, (150, 220)), 0)  # jumps that are not contours
    levels = (smooth + edges - (smooth + edges).min()).astype(np.int32)
    for radius in (128, 6):
        below, above = neighbour_level_distances(levels, radius, check_levels)
        want_below, want_above = _reference_neighbour_distances(levels, radius, check_levels)
        np.testing.assert_array_equal(below, want_below)
        np.testing.assert_array_equal(above, want_above)
        assert np.isfinite(below).mean() > 0.2


@pytest.mark.parametrize("jump", [2, 3, 4, 5, 6, 10])
def test_neighbour_level_distances_on_columns_of_bands(jump):
    """Bands one level apart are contours at their exact axial distance; a jump of ``jump`` levels is an edge."""
    from bdx.dequant.classical import neighbour_level_distances

    columns = np.arange(60)
    levels = np.repeat((10 + columns // 6)[None], 9, axis=0).astype(np.int32)  # levels 10..19, 6 columns each
    levels[:, 30:] += jump - 1  # between columns 29 and 30 the level jumps by `jump`: an edge, not a contour
    below, above = neighbour_level_distances(levels, 128)
    first = columns - columns % 6  # each band's first column
    want_below = np.where(columns >= 6, columns - first + 1, np.inf)  # to the last column of the band before
    want_above = np.where(columns < 54, first + 6 - columns, np.inf)  # to the first column of the band after
    want_below[30:36] = np.inf  # the band after the edge has nothing one level below it
    want_above[24:30] = np.inf  # and the band before it nothing one level above
    if jump == 3:  # a pixel four levels off, nearer than the contour, hides it (the nearest of the group is an edge)
        want_below[27:30] = np.inf  # level 14 nearer to 17 across the edge than to 13
        want_above[30:33] = np.inf  # level 17 nearer to 14 than to 18
    np.testing.assert_allclose(below, np.broadcast_to(want_below, below.shape), rtol=1e-5)
    np.testing.assert_allclose(above, np.broadcast_to(want_above, above.shape), rtol=1e-5)


def _truncated_levels(bits: int, container: int, shape=(24, 40, 3), seed=0) -> tuple[np.ndarray, np.ndarray]:
    """Random N-bit levels as a smooth-ish field with some edges, and their zero-filled container codes."""
    rng = np.random.default_rng(seed)
    ramp = np.linspace(0, (1 << bits) - 1, shape[1])[None, :, None] + rng.normal(0, 0.3, shape)
    levels = np.clip(np.rint(ramp), 0, (1 << bits) - 1).astype(np.int64)
    levels[:4] = rng.integers(0, 1 << bits, (4, *shape[1:]))
    dtype = np.uint8 if container == 8 else np.uint16
    return levels, (levels << (container - bits)).astype(dtype)


@pytest.mark.parametrize("container", [8, 16])
@pytest.mark.parametrize("method", ["midpoint", "contour", "learned"])
def test_truncate_keeps_every_sample_inside_its_truncation_bin(container, method):
    for bits in range(1, min(container, 15) + 1):
        levels, codes = _truncated_levels(bits, container, seed=bits)
        out = upscale_depth(Image(codes), None, DepthSettings(method=method, in_bits=bits, convention="truncate"), device="cpu").image.pixels
        assert out.dtype == np.uint16
        # the 16-bit value truncates to the input level...
        np.testing.assert_array_equal(out.astype(np.int64) >> (16 - bits), levels, err_msg=f"{bits}-bit {method}")
        if bits < container:  # ...and lies inside the container codes that truncate to it
            top = (1 << container) - 1
            shift = container - bits
            value = out.astype(np.float64) / 65535
            assert np.all(value >= (levels << shift) / top - 1e-12), f"{bits}-bit in {container} below its bin"
            assert np.all(value <= (((levels + 1) << shift) - 1) / top + 1e-12), f"{bits}-bit in {container} above it"


def test_truncate_bin_centre_is_the_middle_of_the_container_codes():
    # 4-bit levels in an 8-bit file: level 15 stands for codes 240..255, whose middle is 247.5
    codes = np.full((8, 8, 3), 240, np.uint8)
    out = upscale_depth(Image(codes), None, DepthSettings(method="midpoint", in_bits=4, convention="truncate"), device="cpu").image.pixels
    assert abs(out[0, 0, 0] / 257 - 247.5) < 0.01


def _clipped_scene(bits: int) -> tuple[Image, np.ndarray, np.ndarray]:
    """A smooth gradient with a clipped highlight (true value 1) and a crushed shadow (true value 0)."""
    y, x = np.mgrid[0:96, 0:128] / np.array([96.0, 128.0])[:, None, None]
    truth = np.repeat((0.15 + 0.7 * x)[..., None], 3, axis=2)
    truth[:, 96:] = 1.0
    truth[:, :20] = 0.0
    top = (1 << bits) - 1
    codes = np.rint(np.rint(truth * top) * (255 / top)).astype(np.uint8)
    return Image(codes, significant_bits=bits if bits < 8 else None), truth, codes


@pytest.mark.parametrize("method", ["midpoint", "contour", "learned"])
@pytest.mark.parametrize("bits", [7, 8])
def test_end_codes_keep_the_end_of_the_range_from_7_bits(method, bits):
    image, truth, codes = _clipped_scene(bits)
    out = upscale_depth(image, None, DepthSettings(method=method, in_bits=bits), device="cpu").image.pixels
    assert np.all(out[codes == 255] == 65535) and np.all(out[codes == 0] == 0)
    # never worse than the bin centre on those pixels: they are exactly it
    ends = (codes == 0) | (codes == 255)
    centre = codes.astype(np.float64) / 255
    assert np.abs(out[ends] / 65535 - truth[ends]).max() <= np.abs(centre[ends] - truth[ends]).max()


def test_end_codes_may_move_inside_their_half_bin_below_7_bits():
    ramp = np.repeat(np.linspace(0, 1, 256)[None, :, None], 3, axis=2).repeat(32, axis=0)
    codes = (np.rint(ramp * 15) * 17).astype(np.uint8)
    out = upscale_depth(Image(codes, significant_bits=4), None, DepthSettings(method="contour"), device="cpu").image.pixels
    levels = np.rint(codes / 17.0)
    np.testing.assert_array_equal(requantize_u16(out, 4), levels)
    assert np.any(out[codes == 0] > 0)  # the gradient's darkest band rises inside level 0's half-bin


def test_result_says_when_the_codes_need_more_bits_than_the_depth_read():
    """A depth mismatch is data on the result (the CLI words it): truncated levels read as bin centres name the
    depth they are; a depth below what plain codes need says so without one; codes that fit give None."""
    from bdx.depth import DepthMismatch

    rng = np.random.default_rng(3)
    levels = rng.integers(0, 64, (16, 16, 3), dtype=np.uint8)
    shifted = Image(levels << 2, significant_bits=6)  # 6-bit levels with zero-filled low bits
    assert upscale_depth(shifted, None, DepthSettings(method="midpoint")).mismatch == DepthMismatch(bits=6, content_bits=8, truncated_levels=6)
    assert upscale_depth(shifted, None, DepthSettings(method="midpoint", convention="truncate")).mismatch is None
    plain = Image(rng.integers(0, 256, (16, 16, 3), dtype=np.uint8))
    assert upscale_depth(plain, None, DepthSettings(method="midpoint", in_bits=5)).mismatch == DepthMismatch(bits=5, content_bits=8, truncated_levels=None)
    assert upscale_depth(plain, None, DepthSettings(method="midpoint")).mismatch is None


def test_display_codes_dequantize_8_bit_codes_stored_in_a_16_bit_file_as_the_8_bit_file():
    """A 16-bit file without sBIT was passed through as 16-bit: enhance-lowlight and ldr2hdr banded 8-bit content
    that the same codes in an 8-bit file had dequantized."""
    from bdx.depth import display_codes

    codes = (gradient16(48, 64) >> 8).astype(np.uint8)
    eight = display_codes(Image(codes), "contour", "cpu")
    sixteen = display_codes(Image(codes.astype(np.uint16) * 257), "contour", "cpu")
    shifted = display_codes(Image(codes.astype(np.uint16) << 8), "midpoint", "cpu")  # truncate convention
    assert len(np.unique(eight)) > 4 * len(np.unique(codes))  # the gradient restored between the codes
    np.testing.assert_array_equal(sixteen, eight)
    assert len(np.unique(shifted)) == len(np.unique(codes)) and not np.array_equal(shifted, codes.astype(np.uint16)[..., None] << 8)
    real = gradient16(48, 64)
    np.testing.assert_array_equal(display_codes(Image(real), "midpoint", "cpu")[..., 0], real[..., 0])


@pytest.mark.parametrize("changes, message", [
    ({"in_bits": 4.5}, "in_bits must be a whole number between 1 and 15, not 4.5"),
    ({"in_bits": True}, "in_bits must be a whole number between 1 and 15, not True"),
    ({"method": "learned", "ensemble": 2.0}, "ensemble must be one of 1, 2, 4, 8, not 2.0"),
    ({"method": "learned", "ensemble": "2"}, "ensemble must be one of 1, 2, 4, 8, not '2'"),
])
def test_depth_settings_refuse_values_of_the_wrong_type(changes, message):
    """A float depth or ensemble raised TypeError later, True ran as 1 bit, and '2' was refused as "not 2"."""
    with pytest.raises(SettingUsageError, match=re.escape(message)):
        DepthSettings(**changes)


def test_build_dequantizer_rejects_a_depth_outside_1_to_15():
    from bdx.depth import DepthSettings, build_dequantizer
    from bdx.errors import SettingUsageError

    for bits in (0, 16, "4"):
        with pytest.raises(SettingUsageError, match="bits must be a whole number between 1 and 15"):
            build_dequantizer(DepthSettings(method="midpoint"), bits)
