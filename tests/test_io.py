"""Image I/O: every bit kept, metadata carried, damaged files refused with one line."""

from __future__ import annotations

import io
import re
import struct
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest

from bdx.color import linear_to_srgb, srgb_to_linear
from bdx.errors import BdxError, InputError, SettingError
from bdx.io import Image, decode_image, encode_image, read_image, to_float, write_image
from bdx.io.metadata import PNG_SIGNATURE, png_chunk

from conftest import gradient16, minimal_icc, write_raw_exr

RNG = np.random.default_rng(0)


@pytest.mark.parametrize("fmt", ["png", "tiff"])
@pytest.mark.parametrize("bits", [8, 16])
@pytest.mark.parametrize("channels,with_alpha", [(1, False), (1, True), (3, False), (3, True)])
def test_lossless_round_trip(fmt, bits, channels, with_alpha):
    dtype = np.uint8 if bits == 8 else np.uint16
    pixels = RNG.integers(0, 2**bits, size=(13, 17, channels), dtype=np.int64).astype(dtype)
    alpha = RNG.integers(0, 2**bits, size=(13, 17), dtype=np.int64).astype(dtype) if with_alpha else None
    image = Image(pixels, alpha, icc_profile=minimal_icc())
    back = decode_image(encode_image(image, fmt, bits=bits), f"x.{fmt}")
    assert back.pixels.dtype == dtype and back.pixels.shape == pixels.shape
    np.testing.assert_array_equal(back.pixels, pixels)
    if with_alpha:
        np.testing.assert_array_equal(back.alpha, alpha)
    else:
        assert back.alpha is None
    assert back.icc_profile == minimal_icc()


def test_16bit_png_keeps_more_than_256_values_per_channel(tmp_path):
    pixels = gradient16(64, 1024)
    path = write_image(tmp_path / "g.png", Image(pixels), bits=16)
    back = read_image(path)
    for channel in range(3):
        assert np.unique(back.pixels[..., channel]).size > 256
    np.testing.assert_array_equal(back.pixels, pixels)


def test_sbit_written_and_read(tmp_path):
    path = write_image(tmp_path / "q.png", Image(np.full((4, 4, 3), 17, np.uint8)), bits=8, significant_bits=4)
    assert read_image(path).significant_bits == 4


def _jpeg_with_orientation(pixels: np.ndarray, orientation: int) -> bytes:
    ok, buffer = cv2.imencode(".jpg", pixels[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, 100])
    data = buffer.tobytes()
    tiff = b"MM\0*" + struct.pack(">I", 8) + struct.pack(">H", 1) + struct.pack(">HHIHH", 0x0112, 3, 1, orientation, 0)
    tiff += struct.pack(">I", 0)
    body = b"Exif\0\0" + tiff
    return data[:2] + b"\xff\xe1" + struct.pack(">H", len(body) + 2) + body + data[2:]


@pytest.mark.parametrize("orientation,expected_shape", [(1, (16, 32)), (3, (16, 32)), (6, (32, 16)), (8, (32, 16))])
def test_exif_orientation_applied(orientation, expected_shape):
    pixels = np.zeros((16, 32, 3), np.uint8)
    pixels[:, :8] = 255  # bright left edge
    image = decode_image(_jpeg_with_orientation(pixels, orientation), "x.jpg")
    assert image.pixels.shape[:2] == expected_shape
    assert image.orientation == orientation
    bright = image.pixels[..., 1] > 128
    if orientation == 1:
        assert bright[:, :8].all()
    if orientation == 3:
        assert bright[:, -8:].all()
    if orientation == 6:  # rotate 90 CW: left edge goes to the top
        assert bright[:8].all()
    if orientation == 8:  # rotate 90 CCW: left edge goes to the bottom
        assert bright[-8:].all()


def _exif_blob(orientation: int) -> bytes:
    """A little-endian TIFF-structured EXIF blob: Make "TestCam" and the orientation."""
    make = b"TestCam\0"
    entries = struct.pack("<HHII", 0x010F, 2, len(make), 8 + 2 + 2 * 12 + 4) + struct.pack("<HHIHH", 0x0112, 3, 1, orientation, 0)
    return b"II*\0" + struct.pack("<I", 8) + struct.pack("<H", 2) + entries + struct.pack("<I", 0) + make


@pytest.mark.parametrize("target_format", ["png", "jpeg", "tiff"])
def test_exif_given_with_its_jpeg_prefix_is_carried_upright(target_format):
    """EXIF bytes as Pillow and piexif give them (b"Exif\\0\\0" first) were written with the prefix doubled (JPEG),
    into a non-conforming eXIf chunk (PNG) or dropped (TIFF), their orientation 6 left in place for viewers to
    rotate upright pixels again."""
    from bdx.io.metadata import exif_orientation, parse_jpeg, parse_png

    image = Image(np.zeros((4, 6, 3), np.uint8), exif=b"Exif\0\0" + _exif_blob(6))
    assert image.exif == _exif_blob(6)
    out = encode_image(image, target_format, bits=8)
    if target_format == "tiff":
        assert decode_image(out, "x.tiff").exif is not None and b"TestCam" in decode_image(out, "x.tiff").exif
        return
    exif = (parse_png(out) if target_format == "png" else parse_jpeg(out)).exif
    assert exif is not None and exif.startswith(b"II*\0") and exif_orientation(exif) == 1


def test_encoder_options_are_checked_and_formats_named_by_their_extensions():
    """exr_half="no" wrote half floats (a truthy string); fmt="jpg" or "TIF" was an unknown format although the
    extensions work; bits=12 was a plain BdxError."""
    image = Image(np.full((2, 2, 3), 0.5, np.float32), linear=True)
    with pytest.raises(SettingError, match="exr_half must be True or False, not 'no'"):
        encode_image(image, "exr", exr_half="no")
    with pytest.raises(SettingError, match="bits must be one of 8, 16, not 12"):
        encode_image(image, "png", bits=12)
    with pytest.raises(SettingError, match="fmt must be one of tiff, png, exr, jpeg, hdr, not 'webp'"):
        encode_image(image, "webp")
    for name, fmt in (("jpg", "jpeg"), ("TIF", "tiff"), (".png", "png"), ("EXR", "exr")):
        assert decode_image(encode_image(image, name, bits=8), f"x.{fmt}").source_format == fmt


def test_big_endian_samples_are_taken_in_native_order():
    """A uint16 array stored big-endian (PGM, FITS buffers) was refused as "not uint16, but >u2"."""
    codes = np.arange(48, dtype=np.uint16).reshape(4, 4, 3) * 1000
    image = Image(codes.astype(">u2"), alpha=np.full((4, 4), 7, ">u2"))
    assert image.pixels.dtype == np.uint16 and image.pixels.dtype.isnative
    np.testing.assert_array_equal(image.pixels, codes)
    assert image.alpha is not None and image.alpha.dtype.isnative and int(image.alpha[0, 0]) == 7


@pytest.mark.parametrize("source_format", ["png", "jpeg"])
@pytest.mark.parametrize("target_format", ["png", "jpeg"])
def test_exif_is_carried_to_png_and_jpeg_with_the_orientation_set_upright(source_format, target_format):
    from bdx.io.metadata import exif_orientation, parse_jpeg, parse_png

    pixels = np.zeros((16, 32, 3), np.uint8)
    pixels[:, :8] = 255
    if source_format == "png":
        data = encode_image(Image(pixels), "png", bits=8)
        ihdr_end = len(PNG_SIGNATURE) + 25
        data = data[:ihdr_end] + png_chunk(b"eXIf", _exif_blob(6)) + data[ihdr_end:]
    else:
        plain = encode_image(Image(pixels), "jpeg")
        body = b"Exif\0\0" + _exif_blob(6)
        data = plain[:2] + b"\xff\xe1" + struct.pack(">H", len(body) + 2) + body + plain[2:]
    image = decode_image(data, f"x.{source_format}")
    assert image.pixels.shape[:2] == (32, 16)  # stored upright
    out = encode_image(image.with_pixels(image.pixels), target_format, bits=8)
    exif = (parse_png(out) if target_format == "png" else parse_jpeg(out)).exif
    assert exif is not None and b"TestCam" in exif and exif_orientation(exif) == 1
    again = decode_image(out, f"y.{target_format}")
    assert again.pixels.shape[:2] == (32, 16) and again.orientation == 1  # not turned a second time


def test_jpeg_icc_carried_through_png_and_tiff(tmp_path):
    jpeg = encode_image(Image(RNG.integers(0, 255, (8, 8, 3)).astype(np.uint8), icc_profile=minimal_icc()), "jpeg")
    image = decode_image(jpeg, "x.jpg")
    assert image.icc_profile == minimal_icc()
    for fmt in ("png", "tiff"):
        assert decode_image(encode_image(image, fmt, bits=16), f"x.{fmt}").icc_profile == minimal_icc()


def _with_chunks(png: bytes, *chunks: bytes) -> bytes:
    """``png`` with ``chunks`` inserted right after IHDR."""
    ihdr_end = len(PNG_SIGNATURE) + 8 + 13 + 4
    return png[:ihdr_end] + b"".join(chunks) + png[ihdr_end:]


def test_png_gamma_and_chromaticities_are_carried_to_png_but_not_past_a_conversion_to_srgb():
    """A PNG whose colour is declared by gAMA and cHRM (no ICC profile) came out of bdx without them: a viewer then
    read its samples as sRGB."""
    gama = (b"gAMA", struct.pack(">I", 100000))  # gamma 1.0
    chrm = (b"cHRM", struct.pack(">8I", 31270, 32900, 64000, 33000, 30000, 60000, 15000, 6000))
    plain = encode_image(Image(RNG.integers(0, 255, (6, 7, 3)).astype(np.uint8)), "png")
    image = decode_image(_with_chunks(plain, png_chunk(*gama), png_chunk(*chrm)), "x.png")
    assert image.colour_chunks == (gama, chrm)
    back = decode_image(encode_image(image.with_pixels(image.pixels.astype(np.uint16) * 257), "png", bits=16), "y.png")
    assert back.colour_chunks == (gama, chrm)
    linear = Image(RNG.random((6, 7, 3)).astype(np.float32), linear=True, colour_chunks=(gama,))  # written as sRGB
    assert decode_image(encode_image(linear, "png"), "z.png").colour_chunks == ()


@pytest.mark.parametrize("half", [True, False])
@pytest.mark.parametrize("channels,with_alpha", [(3, False), (3, True), (1, False)])
def test_exr_round_trip(half, channels, with_alpha):
    pixels = (RNG.random((9, 11, channels)) * 50).astype(np.float32)
    alpha = RNG.random((9, 11)).astype(np.float32) if with_alpha else None
    back = decode_image(encode_image(Image(pixels, alpha, linear=True), "exr", exr_half=half), "x.exr")
    tolerance = 1e-3 if half else (1e-6 if with_alpha else 0)  # premultiplied in the file, divided back on reading
    np.testing.assert_allclose(back.pixels, pixels, rtol=tolerance)
    assert (back.alpha is not None) == with_alpha
    assert back.sample_type == ("half" if half else "float")


def test_exr_is_read_and_written_in_memory_whatever_the_temporary_folder(tmp_path, monkeypatch):
    """EXR went through a temporary file: a full temporary folder made a good file 'No space left on device' and a
    write an internal error naming a path the user never gave."""
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "missing"))
    pixels = (RNG.random((5, 6, 3)) * 4).astype(np.float32)
    back = decode_image(encode_image(Image(pixels, linear=True), "exr", exr_half=False), "x.exr")
    np.testing.assert_array_equal(back.pixels, pixels)


def test_exr_with_nan_is_refused(tmp_path):
    pixels = np.ones((4, 4, 3), np.float32)
    pixels[1, 2, 0] = np.nan
    pixels[3, 3, 1] = np.inf
    data = write_raw_exr(tmp_path / "x.exr", pixels).read_bytes()
    with pytest.raises(BdxError, match="NaN/Inf"):
        decode_image(data, "x.exr")


def test_exr_with_nan_alpha_is_refused(tmp_path):
    """The colour was checked but not the alpha: a NaN alpha sample made every channel of the output NaN."""
    import OpenEXR

    colour, alpha = np.full((6, 8), 0.2, np.float32), np.ones((6, 8), np.float32)
    alpha[2, 2] = np.nan
    header = {"compression": OpenEXR.ZIP_COMPRESSION, "type": OpenEXR.scanlineimage}
    OpenEXR.File(header, {"R": colour, "G": colour, "B": colour, "A": alpha}).write(str(tmp_path / "a.exr"))
    with pytest.raises(BdxError, match="1 NaN/Inf alpha samples"):
        read_image(tmp_path / "a.exr")


def test_half_exr_writes_near_black_values_as_zero_but_refuses_an_image_scaled_under_its_range():
    """Dark 16-bit photos through ldr2hdr --method classical were refused ("values fall below the smallest half
    float") for values 24 stops under the clip point; an image whose whole range lies under it still is."""
    photo = np.full((10, 10, 3), 0.2, np.float32)
    photo[:5] = 1.5e-8  # half the pixels near black: 16-bit code 64 through a 2.6 power curve
    back = decode_image(encode_image(Image(photo, linear=True), "exr"), "x.exr")
    assert back.pixels[5:].min() == pytest.approx(0.2, rel=1e-3) and back.pixels[:5].max() < 1e-7
    with pytest.raises(BdxError, match="below the smallest half float .* give exr_half=False$"):  # the library's parameter
        encode_image(Image(photo * np.float32(2.0**-30), linear=True), "exr")
    assert decode_image(encode_image(Image(photo * np.float32(2.0**-30), linear=True), "exr", exr_half=False), "x.exr").pixels.max() > 0


def test_radiance_hdr_round_trip():
    pixels = (RNG.random((5, 6, 3)) * 10 + 0.1).astype(np.float32)
    back = decode_image(encode_image(Image(pixels, linear=True), "hdr"), "x.hdr")
    assert back.linear
    # RGBE shares one exponent: each channel is exact to 1/128 of the pixel's largest channel
    assert np.all(np.abs(back.pixels - pixels) <= pixels.max(axis=-1, keepdims=True) / 128)


def test_writers_convert_between_display_values_and_scene_linear_light_as_the_container_needs(tmp_path):
    """The library wrote display codes into EXR as if they were light, and scene-linear light into PNG as if it
    were display values (only the CLI converted); the image's ``linear`` flag now decides, in the writer."""
    codes = np.array([[[0, 128, 255]]], np.uint8)
    write_image(tmp_path / "d.exr", Image(codes), exr_half=False)
    exr = read_image(tmp_path / "d.exr")
    assert exr.linear
    np.testing.assert_allclose(exr.pixels, srgb_to_linear(codes / np.float32(255)), rtol=1e-6)
    light = np.array([[[0.0, 0.2140, 1.0], [4.0, 0.5, 0.05]]], np.float32)
    write_image(tmp_path / "l.png", Image(light, linear=True), bits=16)
    np.testing.assert_allclose(read_image(tmp_path / "l.png").pixels / 65535, linear_to_srgb(np.clip(light, 0, 1)), atol=1 / 65535)
    write_image(tmp_path / "l.tif", Image(light, linear=True), bits=32)  # display values, the curve extended above 1
    float_tiff = read_image(tmp_path / "l.tif")
    assert not float_tiff.linear
    np.testing.assert_allclose(float_tiff.pixels, linear_to_srgb(light), rtol=1e-6)
    write_image(tmp_path / "l.exr", float_tiff, exr_half=False)  # and back to the same light, 4.0 included
    np.testing.assert_allclose(read_image(tmp_path / "l.exr").pixels, light, rtol=1e-5, atol=1e-7)
    write_image(tmp_path / "again.exr", exr, exr_half=False)  # linear to linear: untouched
    np.testing.assert_array_equal(read_image(tmp_path / "again.exr").pixels, exr.pixels)


def test_an_unknown_extension_names_the_parameter_that_gives_the_format(tmp_path):
    with pytest.raises(BdxError, match="give fmt") as caught:
        write_image(tmp_path / "x.xyz", Image(np.zeros((2, 2, 3), np.uint8)))
    assert "{" not in str(caught.value) and not list(tmp_path.iterdir())
    write_image(tmp_path / "x.xyz", Image(np.zeros((2, 2, 3), np.uint8)), fmt="png")
    assert read_image(tmp_path / "x.xyz").pixels.shape == (2, 2, 3)


def test_bmp_and_webp_decode():
    pixels = RNG.integers(0, 255, (6, 7, 3)).astype(np.uint8)
    for ext, params in ((".bmp", []), (".webp", [cv2.IMWRITE_WEBP_QUALITY, 101])):
        ok, buffer = cv2.imencode(ext, pixels[..., ::-1], params)
        image = decode_image(buffer.tobytes(), "x" + ext)
        np.testing.assert_array_equal(image.pixels, pixels)


def test_one_by_one_images():
    for dtype in (np.uint8, np.uint16):
        pixels = np.array([[[1, 2, 3]]], dtype=dtype)
        for fmt in ("png", "tiff"):
            bits = 8 if dtype == np.uint8 else 16
            back = decode_image(encode_image(Image(pixels), fmt, bits=bits), f"x.{fmt}")
            np.testing.assert_array_equal(back.pixels, pixels)


@pytest.mark.parametrize("fmt", ["png", "jpeg", "tiff"])
def test_truncated_files_are_refused(fmt):
    data = encode_image(Image(RNG.integers(0, 255, (64, 64, 3)).astype(np.uint8)), fmt, bits=8)
    with pytest.raises(BdxError) as info:
        decode_image(data[: len(data) // 2], f"x.{fmt}")
    assert "\n" not in str(info.value)


def test_corrupt_png_crc_is_refused():
    data = bytearray(encode_image(Image(np.zeros((8, 8, 3), np.uint8)), "png", bits=8))
    data[40] ^= 0xFF
    with pytest.raises(BdxError, match="corrupt|truncated"):
        decode_image(bytes(data), "x.png")


def test_text_renamed_png_and_empty_file(tmp_path):
    (tmp_path / "notes.png").write_text("this is not an image")
    (tmp_path / "empty.png").write_bytes(b"")
    with pytest.raises(BdxError, match="unrecognised"):
        read_image(tmp_path / "notes.png")
    with pytest.raises(BdxError, match="empty"):
        read_image(tmp_path / "empty.png")
    with pytest.raises(BdxError, match="no such file"):
        read_image(tmp_path / "missing.png")


def test_cmyk_tiff_and_jpeg_are_refused():
    import io

    import tifffile

    buffer = io.BytesIO()
    tifffile.imwrite(buffer, np.zeros((4, 4, 4), np.uint8), photometric="separated")
    with pytest.raises(BdxError, match="CMYK"):
        decode_image(buffer.getvalue(), "x.tif")
    jpeg = bytearray(encode_image(Image(np.zeros((8, 8, 3), np.uint8)), "jpeg"))
    sof = jpeg.find(b"\xff\xc0")
    jpeg[sof + 9] = 4  # component count in the frame header
    with pytest.raises(BdxError, match="CMYK"):
        decode_image(bytes(jpeg), "x.jpg")


def test_multi_page_tiff_is_refused_but_a_preview_page_is_not():
    """A two-page TIFF was read as its first page without a word: the second image was silently lost."""
    import io

    import tifffile

    two = io.BytesIO()
    with tifffile.TiffWriter(two) as tif:
        tif.write(np.zeros((8, 8, 3), np.uint16), photometric="rgb")
        tif.write(np.full((8, 8, 3), 9, np.uint16), photometric="rgb")
    with pytest.raises(BdxError, match="holds 2 images"):
        decode_image(two.getvalue(), "x.tif")
    with_preview = io.BytesIO()
    with tifffile.TiffWriter(with_preview) as tif:
        tif.write(np.full((8, 8, 3), 7, np.uint16), photometric="rgb")
        tif.write(np.zeros((4, 4, 3), np.uint16), photometric="rgb", subfiletype=1)  # a reduced-resolution preview
    assert (decode_image(with_preview.getvalue(), "x.tif").pixels == 7).all()


def test_volumetric_tiff_is_refused_not_read_as_a_strip_of_channels():
    """A 4-slice 10x12 volume was read as a 4x10 grey image (its rows taken as channels), without a word."""
    import io

    import tifffile

    buffer = io.BytesIO()
    tifffile.imwrite(buffer, np.zeros((4, 10, 12), np.uint8), photometric="minisblack", volumetric=True, tile=(4, 16, 16))
    with pytest.raises(BdxError, match="ZYX"):
        decode_image(buffer.getvalue(), "volume.tif")


def test_headers_cut_short_get_a_plain_reason():
    """A TIFF whose first page is past its end said `IndexError: 0`; an EXR holding its magic number only said
    `Unable to open '' for read`."""
    tiff = encode_image(Image(np.zeros((4, 4, 3), np.uint8)), "tiff", bits=8)
    with pytest.raises(BdxError, match=r"^cannot decode TIFF \(no image: corrupt or truncated header\)$"):
        decode_image(tiff[:8], "cut.tif")
    exr = encode_image(Image(np.zeros((4, 4, 3), np.float32)), "exr")
    with pytest.raises(BdxError, match=r"^cannot decode EXR \(corrupt or truncated header\)$"):
        decode_image(exr[:4], "cut.exr")
    with pytest.raises(BdxError, match=r"^cannot decode EXR \(corrupt or truncated data\)$"):
        decode_image(encode_image(Image(RNG.random((48, 64, 3)).astype(np.float32)), "exr")[:400], "cut.exr")


def test_huge_image_refused_before_decoding():
    ihdr = struct.pack(">IIBBBBB", 100_000, 100_000, 8, 2, 0, 0, 0)
    data = PNG_SIGNATURE + png_chunk(b"IHDR", ihdr) + png_chunk(b"IDAT", zlib.compress(b"")) + png_chunk(b"IEND", b"")
    with pytest.raises(BdxError, match="above the limit"):
        decode_image(data, "huge.png")


def test_the_pixel_limit_holds_for_radiance_files_and_names_small_sizes_in_pixels(monkeypatch):
    """The Radiance reader never checked the limit; a 64x48 image was "0 MP, above the limit of 0 MP"."""
    data = encode_image(Image(np.full((48, 64, 3), 0.5, np.float32)), "hdr")
    monkeypatch.setenv("BDX_MAX_PIXELS", "100")
    with pytest.raises(BdxError, match=r"^image is 64x48 = 3072 pixels, above the limit of 100 pixels"):
        decode_image(data, "a.hdr")
    monkeypatch.setenv("BDX_MAX_PIXELS", "3072")
    assert decode_image(data, "a.hdr").pixels.shape == (48, 64, 3)


@pytest.mark.parametrize("value, limit", [("2e9", 2_000_000_000), ("5_000", 5000), (" 7 ", 7), ("-1", None), ("0", None), ("1.5", None), ("lots", None), ("nan", None)])
def test_bdx_max_pixels_takes_positive_whole_numbers_only(monkeypatch, value, limit):
    from bdx.io.read import max_pixels

    monkeypatch.setenv("BDX_MAX_PIXELS", value)
    if limit is None:
        with pytest.raises(BdxError, match="BDX_MAX_PIXELS must be a positive whole number"):
            max_pixels()
    else:
        assert max_pixels() == limit


def test_float_tiff_and_gray_alpha_png(tmp_path):
    pixels = RNG.random((5, 5, 3)).astype(np.float32)
    back = decode_image(encode_image(Image(pixels), "tiff", bits=32), "x.tif")
    np.testing.assert_array_equal(back.pixels, pixels)
    assert back.sample_type == "float"
    gray = RNG.integers(0, 65535, (5, 6, 1)).astype(np.uint16)
    alpha = RNG.integers(0, 65535, (5, 6)).astype(np.uint16)
    back = decode_image(encode_image(Image(gray, alpha), "png", bits=16), "x.png")
    assert back.channels == 1
    np.testing.assert_array_equal(back.alpha, alpha)


@pytest.mark.parametrize("compression,predictor", [("lzw", False), ("lzw", True), ("zlib", True), ("packbits", False)])
def test_compressed_16bit_tiffs_decode_exactly(tmp_path, compression, predictor):
    """LZW with a horizontal predictor is what Photoshop and Lightroom write; tifffile needs imagecodecs for it."""
    import tifffile

    pixels = gradient16(24, 300)
    path = tmp_path / "compressed.tif"
    tifffile.imwrite(path, pixels, photometric="rgb", compression=compression, predictor=predictor or None)
    back = read_image(path)
    assert back.pixels.dtype == np.uint16
    np.testing.assert_array_equal(back.pixels, pixels)
    assert all(len(np.unique(back.pixels[..., c])) > 256 for c in range(3))


@pytest.mark.parametrize("bits, container", [(4, np.uint8), (10, np.uint16), (12, np.uint16)])
def test_tiff_samples_of_fewer_bits_are_scaled_to_their_container_and_declared(tmp_path, bits, container):
    """A 12-bit scan was read as 16-bit values up to 4095 (nearly black, and "already 16 significant bits")."""
    import tifffile

    levels = np.tile(np.arange(2**bits) % 2**bits, (3, 1)).astype(container)
    tifffile.imwrite(tmp_path / "a.tif", levels, bitspersample=bits, photometric="minisblack")
    image = read_image(tmp_path / "a.tif")
    top = np.iinfo(container).max
    assert image.pixels.dtype == container and image.significant_bits == bits
    np.testing.assert_array_equal(image.pixels[..., 0], np.rint(levels * (top / (2**bits - 1))).astype(container))


def test_a_tiff_extra_sample_that_is_not_alpha_is_dropped(tmp_path):
    import tifffile

    pixels = np.zeros((8, 8, 4), np.uint8)
    pixels[..., :3] = 200
    tifffile.imwrite(tmp_path / "a.tif", pixels, photometric="rgb", extrasamples=["unspecified"])
    tifffile.imwrite(tmp_path / "b.tif", pixels, photometric="rgb", extrasamples=["unassalpha"])
    unspecified, alpha = read_image(tmp_path / "a.tif"), read_image(tmp_path / "b.tif")
    assert unspecified.alpha is None and unspecified.pixels.shape == (8, 8, 3)
    assert alpha.alpha is not None and not alpha.alpha.any()


@pytest.mark.parametrize("samples,photometric,extra", [(5, "minisblack", None), (5, "rgb", ["unspecified", "unspecified"]),
                                                       (3, "minisblack", None)])
def test_a_tiff_with_more_extra_samples_than_one_is_refused_not_read_as_its_first_channels(tmp_path, samples, photometric, extra):
    """A 5-sample grey TIFF was read as its first channel, four of five lost without a word."""
    import tifffile

    pixels = np.random.default_rng(0).integers(0, 256, (16, 16, samples)).astype(np.uint8)
    options = {"extrasamples": extra} if extra else {}
    tifffile.imwrite(tmp_path / "m.tif", pixels, photometric=photometric, planarconfig="contig", **options)
    with pytest.raises(InputError, match=rf"TIFF holds {samples} samples per pixel \(\d colour, \d extra\)"):
        read_image(tmp_path / "m.tif")


def test_an_animated_webp_is_refused_not_read_as_its_first_frame(tmp_path):
    """OpenCV decodes an animated WebP's first frame: bdx wrote it as the result, exit 0."""
    still = cv2.imencode(".webp", np.full((4, 4, 3), 90, np.uint8))[1].tobytes()
    animation = b"ANIM" + struct.pack("<I", 6) + bytes(6)  # background colour and loop count
    animated = still[:12] + animation + still[12:]
    animated = animated[:4] + struct.pack("<I", len(animated) - 8) + animated[8:]
    (tmp_path / "a.webp").write_bytes(animated)
    with pytest.raises(InputError, match="animated WebP"):
        read_image(tmp_path / "a.webp")
    (tmp_path / "s.webp").write_bytes(still)
    assert read_image(tmp_path / "s.webp").pixels.shape == (4, 4, 3)


def test_an_animated_png_is_refused_not_read_as_its_first_frame(tmp_path):
    still = encode_image(Image(np.full((4, 4, 3), 90, np.uint8)), "png", bits=8)
    control = png_chunk(b"acTL", struct.pack(">II", 3, 0))  # three frames, looping
    animated = still[:33] + control + still[33:]  # after IHDR (8-byte signature + 25-byte chunk)
    (tmp_path / "a.png").write_bytes(animated)
    with pytest.raises(InputError, match="animated PNG"):
        read_image(tmp_path / "a.png")
    (tmp_path / "s.png").write_bytes(still)
    assert read_image(tmp_path / "s.png").pixels.shape == (4, 4, 3)


@pytest.mark.parametrize("data,kind", [(b"GIF89a" + bytes(40), "GIF"), (b"\0\0\0\x18ftypheic" + bytes(40), "HEIC"),
                                       (b"8BPS" + bytes(40), "Photoshop (PSD)"), (b"\0\0\0\x0cjP  \r\n" + bytes(40), "JPEG 2000"),
                                       (b"\xff\x4f\xff\x51\x00\x2f" + bytes(40), "JPEG 2000")])
def test_known_unsupported_formats_are_named(data, kind):
    with pytest.raises(InputError, match=rf"^{re.escape(kind)} files are not supported; convert it to PNG or TIFF first$"):
        decode_image(data, "x.bin")


def test_a_plain_tiff_under_a_raw_name_is_read_as_the_tiff_it_is(tmp_path):
    pixels = RNG.integers(0, 65535, (6, 5, 3)).astype(np.uint16)
    (tmp_path / "x.nef").write_bytes(encode_image(Image(pixels), "tiff"))
    image = read_image(tmp_path / "x.nef")
    np.testing.assert_array_equal(image.pixels, pixels)
    assert image.source_format == "tiff"
    (tmp_path / "y.nef").write_bytes(b"not a raw file at all" * 4)
    with pytest.raises(InputError, match="RAW"):
        read_image(tmp_path / "y.nef")


def test_jpeg_compressed_tiff_decodes(tmp_path):
    import tifffile

    pixels = (gradient16(32, 48) >> 8).astype(np.uint8)
    path = tmp_path / "jpeg.tif"
    tifffile.imwrite(path, pixels, photometric="rgb", compression="jpeg", compressionargs={"level": 95})
    back = read_image(path)
    assert back.pixels.shape == pixels.shape and back.pixels.dtype == np.uint8
    assert np.abs(back.pixels.astype(int) - pixels).mean() < 3


def test_atomic_write_leaves_nothing_on_failure(tmp_path, monkeypatch):
    import os

    target = tmp_path / "out.png"
    target.write_bytes(b"previous")

    def broken_replace(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(BdxError, match="No space"):
        write_image(target, Image(np.zeros((4, 4, 3), np.uint8)), bits=8)
    assert target.read_bytes() == b"previous"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.png"]


def test_an_interrupt_just_after_the_temporary_file_is_made_leaves_nothing(tmp_path, monkeypatch):
    """Ctrl-C landing between the temporary file's creation and the cleanup's start left an empty .bdx-tmp."""
    import os

    from bdx.io import write as writer

    real_open = os.open

    def interrupted_open(*args, **kwargs):
        real_open(*args, **kwargs)  # the file exists, then the interrupt arrives
        raise KeyboardInterrupt

    monkeypatch.setattr(writer.os, "open", interrupted_open)
    with pytest.raises(KeyboardInterrupt):
        write_image(tmp_path / "out.png", Image(np.zeros((4, 4, 3), np.uint8)), bits=8)
    assert list(tmp_path.iterdir()) == []


def test_a_temporary_name_taken_by_another_file_is_skipped_not_removed(tmp_path, monkeypatch):
    import secrets

    names = iter(["aaaaaaaaaaaa", "bbbbbbbbbbbb"])
    monkeypatch.setattr(secrets, "token_hex", lambda n: next(names))
    taken = tmp_path / ".out.png.aaaaaaaaaaaa.bdx-tmp"
    taken.write_bytes(b"someone else's")
    write_image(tmp_path / "out.png", Image(np.zeros((4, 4, 3), np.uint8)), bits=8)
    assert taken.read_bytes() == b"someone else's" and sorted(p.name for p in tmp_path.iterdir()) == [taken.name, "out.png"]


@pytest.mark.parametrize("extra", ["depth.Z", "Z"])
def test_a_multilayer_exr_is_read_from_its_colour_layer(tmp_path, extra):
    """A render's EXR with a depth layer sorting before its colour layer was refused ('no R,G,B or Y channels')."""
    import OpenEXR

    rng = np.random.default_rng(0)
    rgb = rng.random((6, 8, 3)).astype(np.float32)
    channels = {f"diffuse.{c}": np.ascontiguousarray(rgb[..., i]) for i, c in enumerate("RGB")}
    channels[extra] = rng.random((6, 8)).astype(np.float32) * 100
    path = tmp_path / "layers.exr"
    OpenEXR.File({"compression": OpenEXR.ZIP_COMPRESSION, "type": OpenEXR.scanlineimage}, channels).write(str(path))
    image = read_image(path)
    assert image.is_float and image.channels == 3
    np.testing.assert_array_equal(image.pixels, rgb)


def test_exr_alpha_is_premultiplied_in_the_file_and_straight_in_bdx(tmp_path):
    """EXR's convention (and compositors') is colour premultiplied by alpha; bdx's images hold straight colour."""
    import OpenEXR

    rng = np.random.default_rng(2)
    colour = rng.random((6, 8, 3)).astype(np.float32) * 4
    alpha = np.where(rng.random((6, 8)) < 0.2, 0.0, rng.random((6, 8))).astype(np.float32)
    path = tmp_path / "a.exr"
    write_image(path, Image(colour, alpha=alpha, linear=True), exr_half=False)
    with OpenEXR.File(str(path), separate_channels=True) as exr:
        stored = exr.channels()
        np.testing.assert_allclose(stored["R"].pixels, colour[..., 0] * alpha, rtol=1e-6)
    back = read_image(path)
    covered = alpha > 0
    np.testing.assert_allclose(back.pixels[covered], colour[covered], rtol=1e-5)
    np.testing.assert_array_equal(back.alpha, alpha)


def test_associated_tiff_alpha_stays_associated_in_tiff_and_exr_and_is_made_straight_for_png(tmp_path):
    """A premultiplied (assocalpha) TIFF was written back as straight alpha: its colour changed meaning."""
    import tifffile

    rng = np.random.default_rng(4)
    alpha = rng.integers(16384, 65536, (8, 10), dtype=np.uint16)
    straight = rng.integers(0, 65536, (8, 10, 3), dtype=np.uint16)
    premultiplied = np.rint(straight.astype(np.float64) * alpha[..., None] / 65535).astype(np.uint16)
    source = tmp_path / "assoc.tif"
    tifffile.imwrite(source, np.concatenate([premultiplied, alpha[..., None]], axis=2), photometric="rgb", extrasamples=["assocalpha"])
    image = read_image(source)
    assert image.premultiplied and np.array_equal(image.pixels, premultiplied)
    write_image(tmp_path / "out.tif", image)
    with tifffile.TiffFile(tmp_path / "out.tif") as tiff:
        assert tuple(tiff.pages[0].extrasamples) == (1,) and np.array_equal(tiff.asarray()[..., :3], premultiplied)
    write_image(tmp_path / "out.png", image)
    png = read_image(tmp_path / "out.png")
    assert not png.premultiplied and np.abs(png.pixels.astype(int) - straight).max() <= 3  # rounding, amplified by 1/alpha
    write_image(tmp_path / "out.exr", image, exr_half=False)
    exr = read_image(tmp_path / "out.exr")  # straight colour made scene-linear, premultiplied once in the file, read back straight
    expected = srgb_to_linear((premultiplied / alpha[..., None].astype(np.float64)).astype(np.float32))
    np.testing.assert_allclose(exr.pixels, expected, rtol=2e-3, atol=1e-4)  # straight colour rounded to 16 bits first


@pytest.mark.parametrize("task", ["lowlight", "hdr"])
def test_associated_and_straight_alpha_of_one_picture_give_one_result(tmp_path, task):
    """The curves were applied to colour x alpha: an associated-alpha TIFF came out 3x too dark (ldr2hdr) or too
    bright (enhance-lowlight) beside the straight file of the same picture."""
    import tifffile

    from bdx.hdr.reconstruct import HdrSettings, ldr_to_hdr
    from bdx.lowlight.enhance import EnhanceSettings, enhance_lowlight

    alpha = np.full((64, 64, 1), 255, np.uint8)
    alpha[:, 32:] = 128
    straight = np.concatenate([np.full((64, 64, 3), 100, np.uint8), alpha], axis=2)
    associated = straight.copy()
    associated[..., :3] = np.rint(100 * alpha.astype(np.float64) / 255).astype(np.uint8)
    tifffile.imwrite(tmp_path / "s.tif", straight, photometric="rgb", extrasamples=["unassalpha"])
    tifffile.imwrite(tmp_path / "a.tif", associated, photometric="rgb", extrasamples=["assocalpha"])
    if task == "hdr":
        run = lambda path: ldr_to_hdr(read_image(path), settings=HdrSettings(method="classical", dequantize="none"), device="cpu").image  # noqa: E731
    else:
        run = lambda path: enhance_lowlight(read_image(path), settings=EnhanceSettings(dequantize="none"), device="cpu").image  # noqa: E731
    one, other = run(tmp_path / "s.tif"), run(tmp_path / "a.tif")
    assert not other.premultiplied and np.array_equal(one.alpha, other.alpha)
    np.testing.assert_allclose(to_float(other.pixels), to_float(one.pixels), atol=2e-3)


@pytest.mark.parametrize("pixels, alpha, message", [
    (np.zeros((4, 4, 4), np.uint8), None, "not of shape (4, 4, 4)"),  # RGBA as pixels: colour was written into alpha
    (np.zeros((4, 4, 2), np.uint8), None, "not of shape (4, 4, 2)"),
    (np.zeros((0, 4, 3), np.uint8), None, "at least 1x1"),
    (np.zeros((4, 4, 3), np.int32), None, "uint8, uint16 or float32, not int32"),
    (np.zeros((4, 4, 3), bool), None, "not bool"),
    (np.zeros((4, 4, 3), np.float64), None, "not float64"),
    ([[1, 2]], None, "a NumPy array, not list"),
    (np.zeros((4, 4, 3), np.uint8), np.zeros((4, 5), np.uint8), "alpha must be (height, width) = (4, 4)"),
])
def test_an_image_record_refuses_what_no_file_could_hold(pixels, alpha, message):
    with pytest.raises(BdxError, match=re.escape(message)):
        Image(pixels, alpha)


def test_an_image_record_takes_gray_and_alpha_with_a_channel_axis():
    image = Image(np.zeros((4, 5), np.uint16), alpha=np.zeros((4, 5, 1), np.uint8))
    assert image.pixels.shape == (4, 5, 1) and image.alpha is not None and image.alpha.shape == (4, 5)


@pytest.mark.parametrize("order", ["<", ">"])
def test_an_exif_orientation_stored_as_a_long_is_read_and_reset(order):
    """Some writers store the orientation as a LONG: it was ignored (pixels not turned, and a PNG output kept 6)."""
    from bdx.io.metadata import exif_orientation, exif_upright

    mark = b"II" if order == "<" else b"MM"
    blob = mark + struct.pack(order + "HI", 42, 8) + struct.pack(order + "H", 1) + struct.pack(order + "HHII", 0x0112, 4, 1, 6) + b"\0\0\0\0"
    assert exif_orientation(blob) == 6
    upright = exif_upright(blob)
    assert exif_orientation(upright) == 1 and len(upright) == len(blob)


@pytest.mark.parametrize("fmt", ["exr", "png", "tiff"])
def test_float_samples_that_are_not_finite_are_not_written(tmp_path, fmt):
    pixels = np.full((4, 4, 3), 0.5, np.float32)
    pixels[1, 1, 1] = np.nan
    with pytest.raises(BdxError, match="holds 1 NaN/Inf samples; nothing written"):
        write_image(tmp_path / f"a.{fmt}", Image(pixels))
    assert not list(tmp_path.iterdir())


def test_a_long_legal_output_name_is_written():
    """The temporary file beside the target has a shortened name: with the whole name in it, a 246-character
    target (legal: 255 is the usual limit) failed with 'File name too long'."""
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        target = Path(folder) / ("b" * 250 + ".png")
        write_image(target, Image(np.zeros((4, 4, 3), np.uint8)), bits=8)
        assert read_image(target).pixels.shape == (4, 4, 3) and len(list(Path(folder).iterdir())) == 1


def test_unwritable_output_folder(tmp_path):
    with pytest.raises(BdxError, match="does not exist"):
        write_image(tmp_path / "missing" / "x.png", Image(np.zeros((2, 2, 3), np.uint8)), bits=8)
    with pytest.raises(BdxError):
        write_image("/proc/bdx-cannot-write-here.png", Image(np.zeros((2, 2, 3), np.uint8)), bits=8)


def test_garbage_raw_file_gets_one_line_error(tmp_path):
    path = tmp_path / "shot.dng"
    path.write_bytes(b"II*\0" + b"\0" * 100)
    with pytest.raises(BdxError, match="RAW") as caught:
        read_image(path)
    assert "b'" not in str(caught.value)  # LibRaw's reason is text, not a bytes literal


def test_a_jpeg_declaring_far_more_pixels_than_its_bytes_can_hold_is_refused_before_decoding(tmp_path):
    flat = encode_image(Image(np.full((512, 512, 3), 128, np.uint8)), "jpeg")  # the least data a real image needs
    assert read_image(_written(tmp_path / "flat.jpg", flat)).pixels.shape == (512, 512, 3)
    bomb = bytearray(encode_image(Image(np.arange(64 * 64 * 3, dtype=np.uint8).reshape(64, 64, 3)), "jpeg"))
    struct.pack_into(">HH", bomb, bomb.find(b"\xff\xc0") + 5, 30000, 30000)  # a 900 MP frame header, 5 KB of data
    with pytest.raises(BdxError, match="truncated JPEG \\(30000x30000 declared"):
        read_image(_written(tmp_path / "bomb.jpg", bytes(bomb)))


def _written(path, data: bytes):
    path.write_bytes(data)
    return path


def test_a_png_or_jpeg_named_as_raw_is_read_as_what_it_is(tmp_path):
    pixels = np.arange(48, dtype=np.uint8).reshape(4, 4, 3)
    for fmt, name in (("png", "shot.dng"), ("jpeg", "shot.nef")):
        path = tmp_path / name
        path.write_bytes(encode_image(Image(pixels), fmt, bits=8))
        image = read_image(path)
        assert image.pixels.shape == (4, 4, 3) and image.container_bits == 8


@pytest.mark.parametrize("name", ["x.crw", "x.X3F", "x.mrw", "x.3fr", "x.iiq"])
def test_raw_formats_that_are_no_tiff_go_to_the_raw_decoder(name):
    with pytest.raises(InputError, match="cannot decode camera RAW"):  # LibRaw's refusal, not "unrecognised file signature"
        decode_image(b"II\x1a\x00\x00\x00HEAPCCDR" + bytes(40), name)


@pytest.mark.skipif(not (__import__("conftest").SHARED_DATA / "photos16").is_dir(), reason="shared data absent")
def test_a_canon_crw_raw_is_decoded_to_16_bits():
    """CRW (Canon's RAW before CR2) is no TIFF: only its name says it is a camera RAW; it read as an unknown file."""
    from conftest import SHARED_DATA

    image = read_image(SHARED_DATA / "photos16" / "imagemeta_canon_eos_d30.crw")
    assert image.pixels.dtype == np.uint16 and image.pixels.shape[2] == 3 and min(image.pixels.shape[:2]) > 1000


@pytest.mark.skipif(not (__import__("conftest").SHARED_DATA / "hdr16-crops").is_dir(), reason="shared data absent")
def test_real_16bit_crops_read_as_16bit():
    from conftest import SHARED_DATA

    files = [p for p in sorted((SHARED_DATA / "hdr16-crops").rglob("*16bit*.png")) if "srgb8" not in p.name]
    assert files
    for path in files[:5]:
        image = read_image(path)
        assert image.container_bits == 16
        assert max(np.unique(image.pixels[..., c]).size for c in range(image.channels)) > 256


def test_camera_raw_decodes_to_16bit(tmp_path):
    from dng import synthetic_dng

    path = tmp_path / "shot.dng"
    path.write_bytes(synthetic_dng())
    srgb = read_image(path)
    linear = read_image(path, raw_linear=True)
    assert srgb.pixels.dtype == np.uint16 and srgb.pixels.shape == (64, 96, 3)
    assert np.unique(srgb.pixels[..., 0]).size > 256 or np.unique(srgb.pixels).size > 256
    assert linear.linear and not srgb.linear
    assert srgb.pixels[..., 1].mean() > linear.pixels[..., 1].mean()  # sRGB encoding lifts mid-tones
    red = srgb.pixels[..., 0].astype(float)
    assert red[:, -8:].mean() > red[:, :8].mean()  # the red ramp runs left to right


def _camera_exif(end: str) -> bytes:
    """A TIFF-structured EXIF blob in byte order ``end`` as cameras write it: Make, Model and orientation 6 in
    IFD0, an Exif IFD (exposure 1/125 s, f/2.8, ISO 400, an Interop pointer) and a GPS IFD (latitude ref N)."""
    def entry(tag: int, kind: int, count: int, value: bytes) -> bytes:
        return struct.pack(end + "HHI", tag, kind, count) + value.ljust(4, b"\0")

    def long(value: int) -> bytes:
        return struct.pack(end + "I", value)

    make, model = b"TestCam\0", b"Model X1\0"
    ifd0_size = 2 + 5 * 12 + 4
    text = 8 + ifd0_size
    exif_at = text + len(make) + len(model) + 1  # one pad byte: even
    exif_size = 2 + 4 * 12 + 4
    values = exif_at + exif_size
    gps_at = values + 16
    ifd0 = struct.pack(end + "H", 5) + b"".join([
        entry(271, 2, len(make), long(text)), entry(272, 2, len(model), long(text + len(make))),
        entry(274, 3, 1, struct.pack(end + "H", 6)), entry(34665, 4, 1, long(exif_at)), entry(34853, 4, 1, long(gps_at)),
    ]) + long(0)
    exif_ifd = struct.pack(end + "H", 4) + b"".join([
        entry(33434, 5, 1, long(values)), entry(33437, 5, 1, long(values + 8)),
        entry(34855, 3, 1, struct.pack(end + "H", 400)), entry(40965, 4, 1, long(0)),
    ]) + long(0)
    rationals = struct.pack(end + "IIII", 1, 125, 28, 10)
    gps_ifd = struct.pack(end + "H", 1) + entry(1, 2, 2, b"N\0") + long(0)
    header = (b"II*\0" if end == "<" else b"MM\0*") + long(8)
    return header + ifd0 + make + model + b"\0" + exif_ifd + rationals + gps_ifd


@pytest.mark.parametrize("end", ["<", ">"])
def test_exif_is_carried_to_tiff(end):
    """Make and Model as IFD0 tags, the Exif and GPS IFDs as sub-IFDs (the Interop pointer dropped), in the
    EXIF's own byte order; the pixels and the ICC profile as without EXIF."""
    import tifffile

    pixels = np.random.default_rng(0).integers(0, 65536, (20, 30, 3), dtype=np.uint16)
    data = encode_image(Image(pixels, icc_profile=b"icc-profile", exif=_camera_exif(end)), "tiff")
    with tifffile.TiffFile(io.BytesIO(data)) as tiff:
        tags = tiff.pages[0].tags
        assert tiff.byteorder == end and np.array_equal(tiff.asarray(), pixels)
        assert (tags["Make"].value, tags["Model"].value, tags["InterColorProfile"].value) == ("TestCam", "Model X1", b"icc-profile")
        exif = tags["ExifTag"].value
        assert exif["ExposureTime"] == (1, 125) and exif["FNumber"] == (28, 10) and exif["ISOSpeedRatings"] == 400
        assert "InteroperabilityTag" not in exif and tags["GPSTag"].value["GPSLatitudeRef"] == "N"
        assert "Orientation" not in tags or tags["Orientation"].value == 1  # the pixels are stored upright
        codes = [tag.code for tag in tiff.pages[0].tags.values()]
        assert codes == sorted(codes)
    # a TIFF input carries the same to the next TIFF, PNG or JPEG
    again = decode_image(data, "x.tiff")
    assert again.pixels.shape == (20, 30, 3) and again.exif is not None
    with tifffile.TiffFile(io.BytesIO(encode_image(again, "tiff"))) as tiff:
        assert tiff.pages[0].tags["ExifTag"].value == exif and tiff.pages[0].tags["Model"].value == "Model X1"
    from bdx.io.metadata import parse_jpeg

    carried = parse_jpeg(encode_image(again, "jpeg")).exif
    assert carried is not None and b"TestCam" in carried


def test_exif_text_that_is_not_ascii_is_carried_to_tiff_as_its_bytes():
    """Cameras and editors write UTF-8 or Latin-1 in ASCII-typed tags (a copyright sign): TIFF output keeps the
    bytes instead of failing."""
    notice = "\u00a9 2024 Studio \u00e9t\u00e9".encode()
    entry = struct.pack(">HHII", 33432, 2, len(notice) + 1, 26)
    exif = b"MM\0*" + struct.pack(">I", 8) + struct.pack(">H", 1) + entry + struct.pack(">I", 0) + notice + b"\0"
    data = encode_image(Image(np.zeros((4, 6, 3), np.uint16), exif=exif), "tiff")
    assert notice + b"\0" in data and b"tifffile" not in data
    again = decode_image(data, "x.tiff")
    assert again.exif is not None and notice in again.exif
    assert notice in encode_image(again, "tiff")  # and on to the next TIFF


def test_unreadable_exif_is_left_out_of_a_tiff():
    pixels = np.zeros((4, 4, 3), np.uint16)
    for broken in (b"II*\0\xff\xff\xff\xff", b"MM\0*\0\0\0\x08\0\x05", b"nonsense"):
        data = encode_image(Image(pixels, exif=broken), "tiff")
        assert np.array_equal(decode_image(data, "x.tiff").pixels, pixels)


def _grey_png(rows: list[bytes], width: int, depth: int, key: int) -> bytes:
    """A grey PNG (colour type 0) whose tRNS chunk makes the value ``key`` transparent."""
    header = struct.pack(">IIBBBBB", width, len(rows), depth, 0, 0, 0, 0)
    pixels = zlib.compress(b"".join(b"\0" + row for row in rows))
    return (PNG_SIGNATURE + png_chunk(b"IHDR", header) + png_chunk(b"tRNS", struct.pack(">H", key))
            + png_chunk(b"IDAT", pixels) + png_chunk(b"IEND", b""))


@pytest.mark.parametrize("depth", [2, 8, 16])
def test_a_grey_png_transparent_value_becomes_alpha(tmp_path, depth):
    values = [0, 1, 2, 3] if depth == 2 else [0, 50, 100, 150]
    if depth == 2:
        rows = [bytes([values[0] << 6 | values[1] << 4 | values[2] << 2 | values[3]])] * 2
    else:
        rows = [np.array(values, ">u2" if depth == 16 else np.uint8).tobytes()] * 2
    image = decode_image(_grey_png(rows, 4, depth, values[1]))
    opaque = 65535 if depth == 16 else 255
    assert image.alpha is not None
    np.testing.assert_array_equal(image.alpha.reshape(2, 4), [[opaque, 0, opaque, opaque]] * 2)
    written = read_image(write_image(tmp_path / "out.png", image))  # and it is carried to the output
    assert written.alpha is not None and int(written.alpha.reshape(-1)[1]) == 0


def _with_photometric(data: bytes, value: int) -> bytes:
    """A little-endian TIFF with its first page's PhotometricInterpretation (tag 262) set to ``value``."""
    out = bytearray(data)
    (offset,) = struct.unpack("<I", out[4:8])
    for i in range(struct.unpack("<H", out[offset : offset + 2])[0]):
        entry = offset + 2 + 12 * i
        if struct.unpack("<H", out[entry : entry + 2])[0] == 262:
            out[entry + 8 : entry + 10] = struct.pack("<H", value)
    return bytes(out)


def test_tiff_alpha_is_read_as_stored_beside_min_is_white_grey_and_palette_indices(tmp_path):
    """MinIsWhite inverted the alpha with the grey (transparent became opaque); a palette TIFF's alpha sample was
    dropped."""
    import tifffile

    grey = np.tile((np.arange(48) * 5).astype(np.uint8), (32, 1))
    alpha = np.full((32, 48), 200, np.uint8)
    alpha[:, :10] = 0
    tifffile.imwrite(tmp_path / "white.tif", np.dstack([grey, alpha]), photometric="miniswhite", extrasamples=["unassalpha"])
    image = read_image(tmp_path / "white.tif")
    np.testing.assert_array_equal(image.alpha, alpha)
    np.testing.assert_array_equal(image.pixels[..., 0], 255 - grey)

    indices = np.tile((np.arange(48) % 16).astype(np.uint8), (32, 1))
    table = np.tile(np.arange(256, dtype=np.uint16) * 257, (3, 1))
    table[0, :16] = np.arange(16) * 4000  # red differs from green and blue
    buffer = io.BytesIO()
    tifffile.imwrite(buffer, np.dstack([indices, alpha]), photometric="minisblack", extrasamples=["unassalpha"],
                     extratags=[(320, "H", table.size, table.ravel().tolist(), True)])
    (tmp_path / "palette.tif").write_bytes(_with_photometric(buffer.getvalue(), 3))
    image = read_image(tmp_path / "palette.tif")
    assert image.pixels.shape == (32, 48, 3) and image.pixels.dtype == np.uint16
    np.testing.assert_array_equal(image.pixels[..., 0], table[0][indices])
    np.testing.assert_array_equal(image.alpha, alpha.astype(np.uint16) * 257)


def test_valid_files_bdx_cannot_decode_are_named_for_what_they_are_not_called_corrupt():
    """A 12-bit JPEG, a lossless JPEG and a bottom-up Radiance file were reported as corrupt or truncated data."""
    jpeg = bytearray(encode_image(Image(np.full((8, 8, 3), 90, np.uint8)), "jpeg"))
    frame = jpeg.index(b"\xff\xc0")
    twelve = bytes(jpeg[: frame + 4]) + b"\x0c" + bytes(jpeg[frame + 5 :])
    with pytest.raises(InputError, match="^12-bit JPEG is not supported"):
        decode_image(twelve, "x.jpg")
    lossless = bytes(jpeg[: frame + 1]) + b"\xc3" + bytes(jpeg[frame + 2 :])
    with pytest.raises(InputError, match="^8-bit lossless JPEG is not supported"):
        decode_image(lossless, "x.jpg")
    pixel = bytes([128, 128, 128, 129])
    bottom_up = b"#?RADIANCE\nFORMAT=32-bit_rle_rgbe\n\n+Y 2 +X 3\n" + pixel * 6
    with pytest.raises(InputError, match=r"pixel order '\+Y 2 \+X 3' is not supported"):
        decode_image(bottom_up, "x.hdr")
    standard = decode_image(bottom_up.replace(b"+Y 2", b"-Y 2"), "x.hdr")
    assert standard.pixels.shape == (2, 3, 3) and standard.linear


def test_a_luminance_chroma_exr_is_refused_not_read_as_grey(tmp_path):
    """Y, RY, BY channels were read as a grey image (Y alone), the colour dropped without a word."""
    import OpenEXR

    y, x = np.mgrid[0:8, 0:12]
    channels = {"Y": (x / 12).astype(np.float16), "RY": np.full((8, 12), 0.5, np.float16), "BY": np.full((8, 12), -0.3, np.float16)}
    OpenEXR.File({"compression": OpenEXR.ZIP_COMPRESSION, "type": OpenEXR.scanlineimage}, channels).write(str(tmp_path / "yc.exr"))
    with pytest.raises(InputError, match=r"yc\.exr: luminance/chroma EXR \(Y, RY, BY channels\) is not supported"):
        read_image(tmp_path / "yc.exr")
    OpenEXR.File({"compression": OpenEXR.ZIP_COMPRESSION, "type": OpenEXR.scanlineimage}, {"Y": channels["Y"]}).write(
        str(tmp_path / "y.exr"))
    assert read_image(tmp_path / "y.exr").channels == 1  # luminance alone is grey
    # two colour channels of three: named as what is needed (it said "no R,G,B or Y channels (has G, R)")
    OpenEXR.File({"compression": OpenEXR.ZIP_COMPRESSION, "type": OpenEXR.scanlineimage},
                 {"R": np.zeros((8, 12), np.float16), "G": np.ones((8, 12), np.float16)}).write(str(tmp_path / "rg.exr"))
    with pytest.raises(InputError, match=r"\.exr: EXR needs R, G and B channels, or Y \(it has G, R\)$"):
        read_image(tmp_path / "rg.exr")


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_an_uncompressed_ycbcr_tiff_is_converted_to_rgb(tmp_path, dtype):
    """YCbCr samples were read as if they were RGB: (200, 50, 10) came out as (90, 82, 206), status 0."""
    import tifffile

    top = float(np.iinfo(dtype).max)
    rgb = np.random.default_rng(0).integers(0, int(top) + 1, (12, 16, 3)).astype(np.float64)
    y = 0.299 * rgb[..., 0] + 0.587 * rgb[..., 1] + 0.114 * rgb[..., 2]
    half = (top + 1) / 2
    cb = (rgb[..., 2] - y) / (2 - 2 * 0.114) + half
    cr = (rgb[..., 0] - y) / (2 - 2 * 0.299) + half
    ycbcr = np.clip(np.rint(np.stack([y, cb, cr], -1)), 0, top).astype(dtype)
    tifffile.imwrite(tmp_path / "ycc.tif", ycbcr, photometric="ycbcr", subsampling=(1, 1))
    back = read_image(tmp_path / "ycc.tif").pixels.astype(np.float64)
    assert np.abs(back - rgb).max() <= 2
    with tifffile.TiffFile(tmp_path / "ycc.tif", mode="r+b") as tif:
        tif.pages.first.tags[530].overwrite((2, 2))
    with pytest.raises(InputError, match=r"YCbCr TIFF with chroma subsampled \(2, 2\) is not supported"):
        read_image(tmp_path / "ycc.tif")


def test_a_multi_part_exr_is_refused_not_read_as_its_first_part(tmp_path):
    """A two-part (stereo) EXR was read as its first part alone, status 0, the other view dropped unsaid."""
    import OpenEXR

    header = {"compression": OpenEXR.ZIP_COMPRESSION, "type": OpenEXR.scanlineimage}
    parts = [OpenEXR.Part(dict(header, name=name), {k: np.full((8, 8), value, np.float32) for k in "RGB"})
             for name, value in (("left", 0.5), ("right", 2.0))]
    OpenEXR.File(parts).write(str(tmp_path / "stereo.exr"))
    with pytest.raises(InputError, match=r"\.exr: EXR holds 2 parts \(left, right\); bdx reads one image per file"):
        read_image(tmp_path / "stereo.exr")


@pytest.mark.skipif(not Path("/dev/zero").is_char_device(), reason="needs /dev/zero")
def test_a_device_is_refused_not_read_until_memory_runs_out():
    with pytest.raises(InputError, match="^/dev/zero: is a device, not an image file$"):
        read_image("/dev/zero")


@pytest.mark.parametrize("suffix", [".exr", ".hdr"])
def test_an_image_with_significant_bits_writes_to_a_float_format(tmp_path, suffix):
    """read_image of a PNG with sBIT then write_image to EXR (docs/bit-depth.md's example) raised "significant_bits
    must be None or a whole number from 1 to 32 for these pixels, not 6"."""
    codes = (np.arange(64, dtype=np.uint8) * 4).reshape(8, 8, 1).repeat(3, axis=2)
    write_image(tmp_path / "s6.png", Image(codes, significant_bits=6), bits=8, significant_bits=6)
    image = read_image(tmp_path / "s6.png")
    assert image.significant_bits == 6
    write_image(tmp_path / f"s6{suffix}", image)
    linear = read_image(tmp_path / f"s6{suffix}").pixels
    np.testing.assert_allclose(linear[0, 1, 0], ((4 / 255 + 0.055) / 1.055) ** 2.4 if 4 / 255 > 0.04045 else 4 / 255 / 12.92, rtol=0.02)


@pytest.mark.parametrize("chunks", [((b"IDAT", b"x"),), ((b"gAMA",),), (("gAMA", b"\0\0\xb1\x8f"),), b"gAMA"])
def test_colour_chunks_that_are_no_png_colour_chunks_are_refused(chunks):
    """A chunk of type IDAT was written into the PNG (a corrupt file); a malformed tuple was a ValueError later."""
    with pytest.raises(InputError, match="colour_chunks must be"):
        Image(np.zeros((2, 2, 3), np.uint8), colour_chunks=chunks)
    gamma = Image(np.zeros((2, 2, 3), np.uint8), colour_chunks=[(b"gAMA", b"\0\0\xb1\x8f")])
    assert decode_image(encode_image(gamma, "png", bits=8), "x.png").colour_chunks == ((b"gAMA", b"\0\0\xb1\x8f"),)


def test_read_image_errors_name_the_file_and_keep_the_problem_apart(tmp_path):
    """A library caller reading many files got "no such file" or "file is empty" without the file's name."""
    (tmp_path / "empty.png").write_bytes(b"")
    for name, problem in (("missing.png", "no such file"), ("empty.png", "file is empty")):
        with pytest.raises(InputError) as caught:
            read_image(tmp_path / name)
        assert str(caught.value) == f"{tmp_path / name}: {problem}" and caught.value.problem == problem



def test_hdr_scores_read_a_float_tiff_as_the_light_it_holds_and_png_colour_chunks_decode_from_a_bytearray(tmp_path):
    """A float TIFF of bdx's HDR output (display values since it is read so) was scored as radiance: 18.3 dB
    against its own EXR instead of a perfect score; a PNG with a gAMA chunk decoded from a bytearray was refused."""
    from bdx.evaluation import evaluate_hdr

    light = np.random.default_rng(0).uniform(0.01, 8.0, (16, 16, 3)).astype(np.float32)
    write_image(tmp_path / "r.exr", Image(light, linear=True), exr_half=False)
    write_image(tmp_path / "p.tiff", Image(light, linear=True), bits=32)
    assert evaluate_hdr(read_image(tmp_path / "p.tiff"), read_image(tmp_path / "r.exr"))["psnr_mu"] > 60
    gamma = encode_image(Image(np.zeros((2, 2, 3), np.uint8), colour_chunks=((b"gAMA", b"\0\0\xb1\x8f"),)), "png", bits=8)
    assert decode_image(bytearray(gamma), "x.png").colour_chunks == ((b"gAMA", b"\0\0\xb1\x8f"),)
