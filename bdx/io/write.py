"""Encoding and atomic writes: a file appears complete or not at all."""

from __future__ import annotations

import io
import os
import secrets
import struct
import zlib
from pathlib import Path
from typing import Literal, cast, get_args

import cv2
import numpy as np

from bdx.errors import BdxError, SettingError, check_flag, check_number, check_setting
from bdx.io.image import Image, check_image, convert_depth, non_finite, straight_alpha, to_float
from bdx.io.metadata import (
    PLACEHOLDERS,
    PNG_SIGNATURE,
    exif_upright,
    jpeg_add_exif,
    jpeg_add_icc,
    png_add_chunks,
    png_chunk,
    tiff_add_exif,
    tiff_exif,
)

OutputFormat = Literal["tiff", "png", "exr", "jpeg", "hdr"]
OUTPUT_FORMATS: tuple[OutputFormat, ...] = get_args(OutputFormat)
ExrSampleType = Literal["half", "float"]
HALF_MAX = 65504.0  # the largest finite half-float
HALF_MIN = 2.0**-24  # the smallest positive (subnormal) half-float
HALF_REACH = 2.0**-20  # values this far under an image's brightest (20 stops) may round to zero in a half EXR
EXR_SAMPLE_TYPES: tuple[ExrSampleType, ...] = get_args(ExrSampleType)
_EXTENSION_FORMATS = {
    ".tif": "tiff",
    ".tiff": "tiff",
    ".png": "png",
    ".exr": "exr",
    ".jpg": "jpeg",
    ".jpeg": "jpeg",
    ".hdr": "hdr",
}
FORMAT_EXTENSIONS = {"tiff": ".tiff", "png": ".png", "exr": ".exr", "jpeg": ".jpg", "hdr": ".hdr"}


def format_from_path(path: str | os.PathLike) -> str | None:
    """Output format implied by a file extension, or None."""
    return _EXTENSION_FORMATS.get(Path(path).suffix.lower())


def encode_image(
    image: Image,
    fmt: str,
    *,
    bits: int = 16,
    exr_half: bool = True,
    significant_bits: int | None = None,
    jpeg_quality: int = 95,
) -> bytes:
    """Encode an image to bytes.

    ``bits`` is the container depth for PNG and TIFF (8 or 16; TIFF also 32 for
    float); EXR and Radiance HDR are always float. Colour is converted where the image and the container
    disagree (:func:`for_container`). ``significant_bits`` writes a
    PNG sBIT chunk. Float samples must be finite: NaN or Inf is an error (a reader refuses such files, and
    integer formats would turn them into black). JPEG and Radiance HDR hold no alpha: it is left out.
    """
    check_image(image)
    fmt = format_named(fmt)
    check_flag("exr_half", exr_half)
    if fmt in ("png", "tiff"):
        check_setting("bits", bits, (8, 16) if fmt == "png" else (8, 16, 32))
    bad = non_finite(image)
    if bad is not None:
        raise BdxError(f"the image holds {bad}; nothing written")
    check_number("jpeg_quality", jpeg_quality, 1, 100, whole=True)
    if significant_bits is not None:
        check_number("significant_bits", significant_bits, 1, 16, whole=True)
    image = for_container(image, fmt, bits)
    if fmt == "png":  # PNG's alpha is straight
        return _encode_png(straight_alpha(image), bits, significant_bits)
    if fmt == "tiff":
        return _encode_tiff(image, bits)
    if fmt == "jpeg":  # JPEG and Radiance hold no alpha: it is left out, the colour written straight
        return _encode_jpeg(straight_alpha(image), jpeg_quality)
    if fmt == "exr":
        return _encode_exr(image, exr_half)
    return _encode_hdr(straight_alpha(image))


def format_named(fmt: object) -> OutputFormat:
    """An output format named as :data:`OUTPUT_FORMATS` does, or by its extension in any case ("jpg", "TIF",
    ".png"); else a :class:`SettingUsageError`.

    >>> format_named("JPG"), format_named("tif")
    ('jpeg', 'tiff')
    """
    if isinstance(fmt, str):
        named = fmt.lower()
        fmt = _EXTENSION_FORMATS.get(named if named.startswith(".") else "." + named, named)
    check_setting("fmt", fmt, OUTPUT_FORMATS)
    return cast(OutputFormat, fmt)


def write_image(
    path: str | os.PathLike,
    image: Image,
    fmt: str | None = None,
    *,
    bits: int = 16,
    exr_half: bool = True,
    significant_bits: int | None = None,
    jpeg_quality: int = 95,
) -> Path:
    """Encode (:func:`encode_image`, whose options these are) and atomically write an image; the format follows
    ``fmt`` or the extension."""
    path = Path(path)
    fmt = fmt or format_from_path(path)
    if fmt is None:
        raise SettingError(f"cannot tell the output format from {path.name!r}; give {{fmt}}")
    data = encode_image(image, fmt, bits=bits, exr_half=exr_half, significant_bits=significant_bits, jpeg_quality=jpeg_quality)
    atomic_write_bytes(path, data)
    return path


def check_output_folder(folder: Path) -> None:
    """A :class:`BdxError` unless ``folder`` is an existing folder: it is missing, or something else (a file)."""
    if not folder.is_dir():
        raise BdxError(f"{folder} is not a folder" if folder.exists() else f"output folder does not exist: {folder}")


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write to a temporary file in the same folder, fsync, then rename over ``path``. The temporary file is
    removed whatever stops the write, an interrupt included (its name is known before it exists)."""
    path = Path(path)
    folder = path.parent if str(path.parent) else Path(".")
    check_output_folder(folder)
    temporary: Path | None = None
    try:
        while True:
            # the name shortened: a temporary name longer than the longest name a folder takes would fail a legal target
            temporary = folder / f".{path.name[:100]}.{secrets.token_hex(6)}.bdx-tmp"
            try:
                fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o600)
                break
            except FileExistsError:  # another file's name: not ours to remove
                temporary = None
            except OSError as exc:
                temporary = None
                raise BdxError(f"cannot write to {folder}: {exc.strerror or exc}") from None
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temporary, 0o666 & ~_umask())
        os.replace(temporary, path)
    except BaseException as exc:
        if temporary is not None:
            try:
                os.unlink(temporary)
            except OSError:
                pass
        if isinstance(exc, OSError):
            raise BdxError(f"cannot write {path}: {exc.strerror or exc}") from None
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


LINEAR_FORMATS = ("exr", "hdr")  # containers of scene-linear light; the others hold display (sRGB) values


def for_container(image: Image, fmt: str, bits: int = 16) -> Image:
    """The image as ``fmt`` stores it: display values become scene-linear light for EXR and Radiance HDR
    (the inverse sRGB curve), and a scene-linear image (``image.linear``) is sRGB-encoded, clipped to [0, 1],
    for PNG, JPEG and integer TIFF. A 32-bit float TIFF holds display values too (as :func:`read_image` reads
    it): scene-linear light is sRGB-encoded with the curve extended above 1, not clipped.

    >>> for_container(Image(np.full((1, 1, 3), 255, np.uint8)), "exr").pixels[0, 0].tolist()
    [1.0, 1.0, 1.0]
    >>> for_container(Image(np.full((1, 1, 3), 0.214, np.float32), linear=True), "png").pixels[0, 0].round(3).tolist()
    [0.5, 0.5, 0.5]
    """
    from bdx.color import linear_to_srgb, scene_linear

    to_linear = fmt in LINEAR_FORMATS and not image.linear
    to_display = image.linear and fmt not in LINEAR_FORMATS
    if not (to_linear or to_display):
        return image
    image = straight_alpha(image)  # colour curves apply to straight colour
    if to_linear:
        return scene_linear(image)
    light = to_float(image.pixels)
    keep_range = fmt == "tiff" and bits == 32  # float samples: the extended curve, nothing clipped
    return image.with_pixels(linear_to_srgb(light if keep_range else np.clip(light, 0.0, 1.0)), linear=False, colour_chunks=())


# --------------------------------------------------------------------------- encoders


def _to_opencv(pixels: np.ndarray, alpha: np.ndarray | None) -> np.ndarray:
    if pixels.shape[2] == 1:
        base = pixels[..., 0]
        if alpha is None:
            return np.ascontiguousarray(base)
        base = np.repeat(pixels, 3, axis=2)
    else:
        base = pixels[..., ::-1]
    if alpha is not None:
        base = np.concatenate([base, alpha[..., None]], axis=2)
    return np.ascontiguousarray(base)


def _imencode(ext: str, array: np.ndarray, params: list[int] | None = None) -> bytes:
    ok, buffer = cv2.imencode(ext, array, params or [])
    if not ok:
        raise BdxError(f"encoding {ext} failed")
    return buffer.tobytes()


def _encode_png(image: Image, bits: int, significant_bits: int | None) -> bytes:
    pixels = convert_depth(image.pixels, bits)
    alpha = None if image.alpha is None else convert_depth(image.alpha, bits)
    gray = pixels.shape[2] == 1
    if gray and alpha is not None:
        data = _encode_png_gray_alpha(pixels[..., 0], alpha)
    else:
        data = _imencode(".png", _to_opencv(pixels, alpha), [cv2.IMWRITE_PNG_COMPRESSION, 6])
    sbit = None
    if significant_bits and significant_bits < bits:
        sbit = (significant_bits,) * (1 if gray else 3) + ((bits,) if alpha is not None else ())
    exif = exif_upright(image.exif) if image.exif else None
    return png_add_chunks(data, icc_profile=image.icc_profile, significant_bits=sbit, exif=exif, colour_chunks=image.colour_chunks)


def _encode_png_gray_alpha(gray: np.ndarray, alpha: np.ndarray) -> bytes:
    """PNG colour type 4 (gray + alpha), which OpenCV cannot write."""
    interleaved = np.stack([gray, alpha], axis=-1).astype(gray.dtype.newbyteorder(">"))
    rows = interleaved.reshape(gray.shape[0], -1).view(np.uint8)
    up = rows - np.vstack([np.zeros_like(rows[:1]), rows[:-1]])  # PNG "Up" filter, mod 256
    raw = np.hstack([np.full((rows.shape[0], 1), 2, np.uint8), up]).tobytes()
    ihdr = struct.pack(">IIBBBBB", gray.shape[1], gray.shape[0], gray.dtype.itemsize * 8, 4, 0, 0, 0)
    return PNG_SIGNATURE + png_chunk(b"IHDR", ihdr) + png_chunk(b"IDAT", zlib.compress(raw, 6)) + png_chunk(b"IEND", b"")


def _encode_tiff(image: Image, bits: int) -> bytes:
    import tifffile

    pixels = convert_depth(image.pixels, bits)
    extrasamples = None
    if image.alpha is not None:
        pixels = np.concatenate([pixels, convert_depth(image.alpha, bits)[..., None]], axis=2)
        extrasamples = ("assocalpha",) if image.premultiplied else ("unassalpha",)
    photometric = "minisblack" if image.pixels.shape[2] == 1 else "rgb"
    if pixels.shape[2] == 1:
        pixels = pixels[..., 0]
    exif = tiff_exif(image.exif) if image.exif else None
    extratags: list[tuple[int, str, int, object, bool]] = []
    if exif is not None:  # text tags as they are; the sub-IFD pointers as placeholders, set once the file is written
        extratags = [(tag, "s", 0, text, True) for tag, text in exif.text_tags]
        extratags += [(PLACEHOLDERS[tag], "I", 1, 0, True) for tag in exif.sub_ifds]
    buffer = io.BytesIO()
    tifffile.imwrite(
        buffer,
        pixels,
        photometric=photometric,
        extrasamples=extrasamples,
        compression="zlib",
        predictor=bits != 32,
        iccprofile=image.icc_profile,
        metadata=None,
        software=False,  # not tifffile's name over the input's own (carried with the EXIF's text tags)
        byteorder=exif.byteorder if exif is not None else None,
        extratags=extratags,
    )
    data = buffer.getvalue()
    return tiff_add_exif(data, exif) if exif is not None and exif.sub_ifds else data


def _encode_jpeg(image: Image, quality: int) -> bytes:
    pixels = convert_depth(image.pixels, 8)
    data = _imencode(".jpg", _to_opencv(pixels, None), [cv2.IMWRITE_JPEG_QUALITY, quality])
    return jpeg_add_exif(jpeg_add_icc(data, image.icc_profile), exif_upright(image.exif) if image.exif else None)


def _encode_exr(image: Image, half: bool) -> bytes:
    import OpenEXR

    dtype = np.float16 if half else np.float32
    pixels = to_float(image.pixels)
    if half:  # beyond 65504 a half is infinite: refuse rather than write a clipped file
        reach = float(np.abs(pixels).max(initial=0.0))
        if reach > HALF_MAX:
            raise SettingError(f"values reach {reach:.6g}, beyond the largest half float ({HALF_MAX:g}): give {{exr_half=False}}")
        # values that round to zero as halves, counted where they matter: within HALF_REACH of the image's brightest
        # (near black, 24 stops under a clip point at 1.0, zero is what they are; an image scaled far down is lost)
        positive = pixels > 0
        floor = np.float32(float(pixels.max(initial=0.0)) * HALF_REACH)
        lost = int(np.count_nonzero(positive & (pixels < HALF_MIN / 2) & (pixels >= floor)))
        if lost > 0.01 * max(int(np.count_nonzero(positive)), 1):
            raise SettingError(
                f"{lost} values fall below the smallest half float ({HALF_MIN:.3g}) and would be written as 0: give {{exr_half=False}}"
            )
    names = "RGB" if pixels.shape[2] == 3 else "Y"
    alpha = None if image.alpha is None else to_float(image.alpha)
    if alpha is not None and not image.premultiplied:  # EXR colour is premultiplied by its alpha
        pixels = pixels * alpha[..., None]
    channels = {name: np.ascontiguousarray(pixels[..., i].astype(dtype)) for i, name in enumerate(names)}
    if alpha is not None:
        channels["A"] = np.ascontiguousarray(alpha.astype(dtype))
    header = {"compression": OpenEXR.ZIP_COMPRESSION, "type": OpenEXR.scanlineimage}
    buffer = io.BytesIO()  # in memory: a temporary file failed in a full or small temporary folder
    OpenEXR.File(header, channels).write(buffer)
    return buffer.getvalue()


def _encode_hdr(image: Image) -> bytes:
    pixels = to_float(image.pixels)
    if pixels.shape[2] == 1:
        pixels = np.repeat(pixels, 3, axis=2)
    return _imencode(".hdr", np.ascontiguousarray(pixels[..., ::-1]))
