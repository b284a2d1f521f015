"""Decoding: format sniffed from the bytes, all bits kept, orientation applied."""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Callable

import cv2
import numpy as np

from bdx.errors import BdxError, InputError, UsageError
from bdx.io.image import Image, non_finite, straight_alpha
from bdx.io.metadata import PNG_SIGNATURE, apply_orientation, exif_from_tiff, parse_jpeg, parse_png, parse_webp
from bdx.io.native import captured_native_output
from bdx.quantization import codes_from_levels

# camera RAW formats LibRaw decodes, by the names cameras give them
RAW_EXTENSIONS = frozenset(
    (
        ".nef .nrw .cr2 .cr3 .crw .arw .srf .sr2 .dng .rw2 .rwl .orf .raf .pef .srw .raw .dcr .kdc .mrw .x3f .3fr .fff .iiq .erf .mef .mos"
    ).split()
)
IMAGE_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".webp", ".exr", ".hdr", ".pic"} | RAW_EXTENSIONS)
DEFAULT_MAX_PIXELS = 1 << 30


def max_pixels() -> int:
    """Largest image (in pixels) bdx will decode; ``BDX_MAX_PIXELS`` overrides (a positive whole number, ``2e9``
    written either way); any other value is a :class:`UsageError`."""
    text = os.environ.get("BDX_MAX_PIXELS", "").strip()
    if not text:
        return DEFAULT_MAX_PIXELS
    try:
        value = float(text.replace("_", ""))
    except ValueError:
        value = float("nan")
    if not (value >= 1 and value.is_integer()):  # NaN fails too
        raise UsageError(f"BDX_MAX_PIXELS must be a positive whole number of pixels, not {text!r}")
    return int(value)


def describe_pixels(count: int) -> str:
    """A pixel count for a message: megapixels when it has some, else pixels."""
    return f"{count / 1e6:.0f} MP" if count >= 1_000_000 else f"{count} pixels"


def sniff_format(data: bytes, name: str = "") -> str:
    """Container format from the leading bytes; the extension decides only between TIFF and camera RAW (most RAW
    formats are TIFF inside), so a PNG or JPEG named ``.dng`` is read as what it is."""
    if data.startswith(PNG_SIGNATURE):
        return "png"
    if data.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if data.startswith(b"BM"):
        return "bmp"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    if data.startswith(b"\x76\x2f\x31\x01"):
        return "exr"
    if data.startswith(b"#?RADIANCE") or data.startswith(b"#?RGBE"):
        return "hdr"
    if Path(name).suffix.lower() in RAW_EXTENSIONS:
        return "raw"
    if data[:4] in TIFF_SIGNATURES:
        return "tiff"
    for signature, kind in UNSUPPORTED_SIGNATURES:
        if data.startswith(signature) or (signature.startswith(b"ftyp") and data[4:12] == signature):
            raise InputError(f"{kind} files are not supported; convert it to PNG or TIFF first")
    raise InputError("not a supported image (unrecognised file signature)")


TIFF_SIGNATURES = (b"II*\0", b"MM\0*", b"II+\0", b"MM\0+")  # classic and BigTIFF, both byte orders
UNSUPPORTED_SIGNATURES = (  # formats recognised only to say so
    (b"GIF87a", "GIF"),
    (b"GIF89a", "GIF"),
    (b"8BPS", "Photoshop (PSD)"),
    (b"\0\0\0\x0cjP  ", "JPEG 2000"),
    (b"\xff\x4f\xff\x51", "JPEG 2000"),  # a bare codestream (.j2k, .j2c): start of codestream, then the size marker
    (b"ftypheic", "HEIC"),
    (b"ftypheix", "HEIC"),
    (b"ftypmif1", "HEIF"),
    (b"ftypavif", "AVIF"),
)


def _check_size(width: int, height: int) -> None:
    if width <= 0 or height <= 0:
        raise InputError("image has zero width or height")
    limit = max_pixels()
    if width * height > limit:
        raise InputError(
            f"image is {width}x{height} = {describe_pixels(width * height)}, above the limit of "
            f"{describe_pixels(limit)} (set BDX_MAX_PIXELS to raise it)"
        )


def read_image(path: str | os.PathLike, *, raw_linear: bool = False) -> Image:
    """Read an image file with every bit of its samples, its alpha and its ICC profile.

    EXIF orientation is applied, so the returned pixels are upright. Raises
    :class:`BdxError` with a one-line message for anything that cannot be read (an :class:`InputError` naming
    ``path``).
    """
    path = Path(path)
    try:
        if not path.exists():
            raise InputError("no such file")
        if path.is_dir():
            raise InputError("is a directory")
        if path.is_char_device() or path.is_block_device() or path.is_socket():  # /dev/zero would be read until memory ran out
            raise InputError("is a device, not an image file")
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise InputError(f"cannot read: {exc.strerror or exc}") from None
        return decode_image(data, name=path.name, raw_linear=raw_linear)
    except InputError as exc:
        raise InputError(exc.problem, file=str(path)) from None


def decode_image(data: bytes, name: str = "<stdin>", *, raw_linear: bool = False) -> Image:
    """Decode an encoded image held in memory (see :func:`read_image`)."""
    if not data:
        raise InputError("file is empty")
    fmt = sniff_format(data, name)
    decoder = _DECODERS[fmt]
    if fmt == "raw":  # LibRaw prints its own warnings: caught (OpenCV's and OpenEXR's decoders catch theirs)
        try:
            with captured_native_output():
                image = decoder(data, raw_linear)
        except InputError as raw_error:
            if data[:4] not in TIFF_SIGNATURES:
                raise
            try:  # a plain TIFF under a RAW name (RAW files are TIFF-like)
                fmt, image = "tiff", _DECODERS["tiff"](data)
            except InputError:
                raise raw_error from None
    else:
        image = decoder(data)
    image.source_format = fmt
    bad = non_finite(image)
    if bad is not None:
        raise InputError(f"{fmt.upper()} holds {bad}")
    return image


# --------------------------------------------------------------------------- helpers


def _from_opencv(array: np.ndarray | None, what: str) -> tuple[np.ndarray, np.ndarray | None]:
    """OpenCV's BGR(A)/gray array to (RGB or gray pixels, alpha)."""
    if array is None:
        raise InputError(f"cannot decode {what} (corrupt or truncated data)")
    if array.ndim == 2:
        return array[..., None], None
    if array.shape[2] == 4:
        return array[..., 2::-1].copy(), array[..., 3].copy()
    if array.shape[2] == 3:
        return array[..., ::-1].copy(), None
    return array[..., :1].copy(), None


def _opencv_decode(data: bytes, flags: int = cv2.IMREAD_UNCHANGED) -> np.ndarray | None:
    """OpenCV's decode, its libraries' messages caught: a corrupt JPEG (libjpeg says so and still returns
    pixels, grey where data is missing) is an error."""
    buffer = np.frombuffer(data, dtype=np.uint8)
    with captured_native_output() as native:
        try:
            array = cv2.imdecode(buffer, flags)
        except cv2.error:
            array = None
    if "Corrupt JPEG data" in native.text or "Premature end of JPEG" in native.text:
        detail = "premature end of data segment" if "premature end" in native.text.lower() else "bad data"
        raise InputError(f"corrupt or truncated JPEG ({detail})")
    return array


def _oriented(image: Image) -> Image:
    if image.orientation != 1:
        image.pixels = apply_orientation(image.pixels, image.orientation)
        if image.alpha is not None:
            image.alpha = apply_orientation(image.alpha, image.orientation)
    return image


# --------------------------------------------------------------------------- decoders


def _decode_png(data: bytes) -> Image:
    info = parse_png(data)
    if "acTL" in info.chunk_types:  # read as its first frame, the animation would be lost without a word
        raise InputError("animated PNG (APNG); bdx reads one image per file: export the frames first")
    _check_size(info.width, info.height)
    pixels, alpha = _from_opencv(_opencv_decode(data), "PNG")
    if info.color_type in (0, 4) and pixels.shape[2] == 3:
        pixels = pixels[..., :1].copy()
    if info.grey_key is not None and alpha is None:  # OpenCV applies a colour image's tRNS key, not a grey one's
        alpha = _grey_key_alpha(pixels[..., 0], info.grey_key, info.bit_depth)
    sbit = info.significant_bits
    container = 16 if pixels.dtype == np.uint16 else 8
    image = Image(
        pixels=pixels,
        alpha=alpha,
        icc_profile=info.icc_profile,
        significant_bits=sbit if sbit and sbit < container else None,
        orientation=info.orientation,
        exif=info.exif,
        colour_chunks=tuple(info.colour_chunks),
    )
    return _oriented(image)


def _grey_key_alpha(grey: np.ndarray, key: int, bit_depth: int) -> np.ndarray:
    """Alpha of a grey PNG whose tRNS chunk names one transparent value (at ``bit_depth``; 1-, 2- and 4-bit
    samples arrive scaled to 8 bits)."""
    if bit_depth < 8:
        key = key * 255 // ((1 << bit_depth) - 1)
    opaque = np.iinfo(grey.dtype).max
    return np.where(grey == key, 0, opaque).astype(grey.dtype)


def _decode_jpeg(data: bytes) -> Image:
    info = parse_jpeg(data)
    if info.components == 4:
        raise InputError("CMYK JPEG is not supported; convert it to RGB first")
    if info.components not in (1, 3):
        raise InputError(f"JPEG with {info.components} components is not supported")
    if info.precision != 8 or info.lossless:
        kind = f"{info.precision}-bit {'lossless ' if info.lossless else ''}JPEG"
        raise InputError(f"{kind} is not supported (bdx reads 8-bit baseline and progressive JPEG); convert it to 16-bit TIFF or PNG")
    _check_size(info.width, info.height)
    pixels, _ = _from_opencv(_opencv_decode(data), "JPEG")
    return _oriented(Image(pixels=pixels, icc_profile=info.icc_profile, orientation=info.orientation, exif=info.exif))


def _decode_webp(data: bytes) -> Image:
    icc, orientation, exif = parse_webp(data)
    pixels, alpha = _from_opencv(_opencv_decode(data), "WebP")
    _check_size(pixels.shape[1], pixels.shape[0])
    return _oriented(Image(pixels=pixels, alpha=alpha, icc_profile=icc, orientation=orientation, exif=exif))


def _decode_bmp(data: bytes) -> Image:
    pixels, alpha = _from_opencv(_opencv_decode(data), "BMP")
    _check_size(pixels.shape[1], pixels.shape[0])
    return Image(pixels=pixels, alpha=alpha)


def _decode_hdr(data: bytes) -> Image:
    resolution = _radiance_resolution(data)
    if len(resolution) == 4 and (resolution[0], resolution[2]) != (b"-Y", b"+X"):
        line = " ".join(part.decode("latin-1") for part in resolution)
        raise InputError(f"Radiance HDR with pixel order '{line}' is not supported (only the standard -Y H +X W)")
    size = _radiance_size(resolution)
    if size is not None:
        _check_size(*size)
    array = _opencv_decode(data, cv2.IMREAD_ANYDEPTH | cv2.IMREAD_COLOR)
    pixels, _ = _from_opencv(array, "Radiance HDR")
    return Image(pixels=pixels.astype(np.float32), linear=True)


def _radiance_resolution(data: bytes) -> list[bytes]:
    """The words of a Radiance file's resolution line (``-Y 480 +X 640`` after the header's blank line); empty
    when there is no blank line in the first 64 KiB."""
    end = data.find(b"\n\n", 0, 65536)
    return data[end + 2 : end + 2 + 64].split(b"\n", 1)[0].split() if end >= 0 else []


def _radiance_size(line: list[bytes]) -> tuple[int, int] | None:
    """(width, height) from the words of a resolution line (:func:`_radiance_resolution`); None when they do not
    make one (the decoder then says what is wrong)."""
    if len(line) != 4 or line[0][1:] not in (b"Y", b"X") or line[2][1:] not in (b"Y", b"X") or line[0][1:] == line[2][1:]:
        return None
    try:
        first, second = int(line[1]), int(line[3])
    except ValueError:
        return None
    return (second, first) if line[0][1:] == b"Y" else (first, second)


def _decode_tiff(data: bytes) -> Image:
    import tifffile

    try:
        with tifffile.TiffFile(io.BytesIO(data)) as tif:
            if not len(tif.pages):
                raise InputError("cannot decode TIFF (no image: corrupt or truncated header)")
            page = tif.pages.first
            images = 1 + sum(1 for other in tif.pages[1:] if not int(getattr(other, "subfiletype", 0)) & 1)
            if images > 1:  # reduced-resolution pages (previews, pyramids) are not counted
                raise InputError(f"TIFF holds {images} images (pages); bdx reads one image per file: split it first (e.g. tiffsplit)")
            photometric = int(page.photometric)
            if photometric == 5:
                raise InputError("CMYK TIFF is not supported; convert it to RGB first")
            if photometric not in (0, 1, 2, 3, 6):
                raise InputError(f"TIFF photometric interpretation {photometric} is not supported")
            if page.axes not in ("YX", "YXS", "SYX"):  # ZYX: a volume (its slices would be read as rows of channels)
                raise InputError(f"TIFF with axes {page.axes} (depth {page.imagedepth}) is not supported; one 2D image per page")
            _check_size(int(page.imagewidth), int(page.imagelength))
            # JPEG-compressed YCbCr comes out of the codec as RGB; other YCbCr samples are converted below
            ycbcr = _ycbcr_tags(page.tags) if photometric == 6 and int(page.compression) not in (6, 7) else None
            array = page.asarray()
            tags = page.tags
            icc = tags[34675].value if 34675 in tags else None
            orientation = int(tags[274].value) if 274 in tags else 1
            axes = page.axes
            extrasamples = tuple(page.extrasamples or ())
            sample_bits = int(page.bitspersample)
            colormap = page.colormap if photometric == 3 else None
    except BdxError:
        raise
    except Exception as exc:  # tifffile raises many exception types for damaged files
        raise InputError(f"cannot decode TIFF ({type(exc).__name__}: {str(exc).splitlines()[0][:120]})") from None
    if axes.startswith("S") and array.ndim == 3:
        array = np.moveaxis(array, 0, -1)
    if array.ndim == 2:
        array = array[..., None]
    if array.ndim != 3:
        raise InputError(f"TIFF with axes {axes!r} is not supported")
    if array.dtype == bool:
        array = array.astype(np.uint8) * np.uint8(255)
    if colormap is not None:
        table = np.asarray(colormap).T  # (2**bits, 3), 16-bit values
        extra = array[..., 1:].astype(np.uint16)  # an alpha sample beside the index, on the table's 16-bit scale
        if array.dtype == np.uint8:
            extra *= np.uint16(257)
        array = np.concatenate([table[array[..., 0]].astype(np.uint16), extra], axis=-1)
    float_bits = 8 * array.dtype.itemsize if array.dtype.kind == "f" else None
    if array.dtype.kind == "f":
        array = array.astype(np.float32)
    elif array.dtype not in (np.uint8, np.uint16):
        raise InputError(f"TIFF sample type {array.dtype} is not supported (8/16-bit or float only)")
    if ycbcr is not None:
        array = _ycbcr_to_rgb(array, *ycbcr)
    container = 8 * array.dtype.itemsize
    significant = None
    if array.dtype.kind == "u" and colormap is None and 1 < sample_bits < container:  # 4-, 10-, 12-bit samples
        array, significant = codes_from_levels(array, sample_bits, container), sample_bits
    if photometric == 0:  # white is zero: the grey sample is inverted, an alpha sample beside it is not
        grey = array[..., :1]
        array = np.concatenate([np.iinfo(array.dtype).max - grey if array.dtype.kind == "u" else 1.0 - grey, array[..., 1:]], axis=-1)
    color = 1 if photometric in (0, 1) else 3
    if array.shape[2] < color:
        raise InputError("TIFF has fewer samples than its colour model needs")
    is_alpha = bool(extrasamples) and int(extrasamples[0]) in (1, 2)  # ASSOCALPHA, UNASSALPHA; 0 is unspecified data
    dropped = array.shape[2] - color - int(is_alpha)
    if dropped > 1:  # one unspecified extra sample is left out (TIFF's meaning of it); more is another kind of image
        raise InputError(
            f"TIFF holds {array.shape[2]} samples per pixel ({color} colour, {dropped} extra): bdx reads grey or RGB "
            "with at most one alpha channel"
        )
    alpha = array[..., color].copy() if is_alpha and array.shape[2] > color else None
    image = Image(
        pixels=np.ascontiguousarray(array[..., :color]),
        alpha=alpha,
        premultiplied=alpha is not None and int(extrasamples[0]) == 1,
        significant_bits=significant,
        icc_profile=bytes(icc) if icc else None,
        orientation=orientation if 1 <= orientation <= 8 else 1,
        stored_float_bits=float_bits,
        exif=exif_from_tiff(data),
    )
    return _oriented(image)


def _ycbcr_tags(tags) -> tuple[tuple[float, float, float], tuple[float, ...]]:
    """A YCbCr TIFF page's luma coefficients and reference black and white (TIFF 6.0 defaults where absent)."""
    if 530 in tags and tuple(tags[530].value) != (1, 1):
        raise InputError(f"YCbCr TIFF with chroma subsampled {tuple(tags[530].value)} is not supported; convert it to RGB first")
    coefficients = _rationals(tags[529].value, 3) if 529 in tags else (0.299, 0.587, 0.114)
    reference = _rationals(tags[532].value, 6) if 532 in tags else ()
    return (coefficients[0], coefficients[1], coefficients[2]), reference


def _rationals(value, count: int) -> tuple[float, ...]:
    """A tag of ``count`` RATIONALs as floats (tifffile gives them as numerator, denominator pairs, flattened)."""
    values = [float(v) for v in np.ravel(value)]
    if len(values) == 2 * count:
        values = [n / d if d else 0.0 for n, d in zip(values[::2], values[1::2])]
    if len(values) != count:
        raise InputError(f"YCbCr TIFF with a malformed colour tag ({len(values)} values, {count} expected)")
    return tuple(values)


def _ycbcr_to_rgb(array: np.ndarray, coefficients: tuple[float, float, float], reference: tuple[float, ...]) -> np.ndarray:
    """YCbCr samples (TIFF 6.0, section 21) as RGB codes of the same type; samples past the third are kept."""
    if array.dtype.kind != "u" or array.shape[2] < 3:
        raise InputError("YCbCr TIFF needs 8- or 16-bit samples, three per pixel")
    top = float(np.iinfo(array.dtype).max)
    half = (top + 1) / 2
    default: tuple[float, ...] = (0.0, top, half, top, half, top)
    black_white = reference if len(reference) == 6 else default
    if top > 255 and max(black_white) <= 255:  # an 8-bit reference on 16-bit samples (as tifffile writes it)
        black_white = default if black_white == (0, 255, 128, 255, 128, 255) else tuple(v * 257 for v in black_white)
    red, green, blue = coefficients
    sample = array[..., :3].astype(np.float64)
    luma = (sample[..., 0] - black_white[0]) * top / max(black_white[1] - black_white[0], 1e-9)
    cb, cr = ((sample[..., i] - black_white[2 * i]) * (half - 1) / max(black_white[2 * i + 1] - black_white[2 * i], 1e-9) for i in (1, 2))
    r = cr * (2 - 2 * red) + luma
    b = cb * (2 - 2 * blue) + luma
    g = (luma - blue * b - red * r) / green
    rgb = np.clip(np.rint(np.stack([r, g, b], axis=-1)), 0, top).astype(array.dtype)
    return np.concatenate([rgb, array[..., 3:]], axis=-1)


def _decode_exr(data: bytes) -> Image:
    import OpenEXR

    try:  # from memory (no temporary file: a full or small temporary folder made a good file unreadable)
        with captured_native_output():
            exr = OpenEXR.File(io.BytesIO(data), separate_channels=True)
            parts = [part.name() for part in exr.parts]
            channels = {name: ch.pixels for name, ch in exr.channels().items()}
            header = exr.header()
    except Exception as exc:
        detail = (str(exc).splitlines() or [""])[0]
        # OpenEXR's words ("Unable to open", "Invalid part index '0': file has 0 parts") are of its internals
        where = "header" if "Unable to open" in detail or "header" in detail.lower() else "data"
        raise InputError(f"cannot decode EXR (corrupt or truncated {where})") from None
    if len(parts) > 1:  # stereo views, render passes: reading the first alone would drop the others unsaid
        raise InputError(f"EXR holds {len(parts)} parts ({', '.join(map(str, parts))}); bdx reads one image per file: split it first")
    (x0, y0), (x1, y1) = header["dataWindow"]
    _check_size(int(x1 - x0 + 1), int(y1 - y0 + 1))
    layer = _pick_exr_layer(channels)
    if all(k in layer for k in "RGB"):
        pixels = np.stack([layer[k] for k in "RGB"], axis=-1)
    elif "RY" in layer or "BY" in layer:  # OpenEXR's luminance/chroma (RgbaYca) encoding: read as grey it loses colour
        raise InputError("luminance/chroma EXR (Y, RY, BY channels) is not supported; save it with R, G, B channels")
    elif "Y" in layer:
        pixels = layer["Y"][..., None]
    else:
        raise InputError(f"EXR needs R, G and B channels, or Y (it has {', '.join(sorted(channels))})")
    alpha = layer.get("A")
    image = Image(
        pixels=pixels.astype(np.float32),
        alpha=None if alpha is None else alpha.astype(np.float32),
        linear=True,
        stored_float_bits=8 * pixels.dtype.itemsize,
        premultiplied=alpha is not None,  # EXR's convention
    )
    return straight_alpha(image)  # bdx works with straight colour


def _pick_exr_layer(channels: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The channels of one layer, by their short names: the unnamed layer, else the first named one (in name
    order) with colour (R, G, B) or luminance (Y), else the first."""
    layers: dict[str, dict[str, np.ndarray]] = {}
    for name, values in channels.items():
        layer, _, short = name.rpartition(".")
        layers.setdefault(layer, {})[short] = values
    order = sorted(layers, key=lambda layer: (layer != "", layer))
    with_colour = [layer for layer in order if {"R", "G", "B"} <= set(layers[layer]) or "Y" in layers[layer]]
    return layers[(with_colour or order)[0]]


def _decode_raw(data: bytes, linear: bool) -> Image:
    import rawpy

    try:
        with rawpy.imread(io.BytesIO(data)) as raw:
            _check_size(raw.sizes.width, raw.sizes.height)
            rgb = raw.postprocess(
                output_bps=16,
                gamma=(1.0, 1.0) if linear else (2.4, 12.92),
                no_auto_bright=True,
                use_camera_wb=True,
                output_color=rawpy.ColorSpace.sRGB,
            )
    except BdxError:
        raise
    except Exception as exc:
        reason = exc.args[0] if exc.args else ""
        reason = reason.decode(errors="replace") if isinstance(reason, bytes) else str(reason)  # LibRaw's are bytes
        if type(exc).__name__ == "LibRawIOError":  # read from memory: the data ran out, not the disk
            reason = "not a camera RAW file, or cut short"
        elif type(exc).__name__ == "LibRawFileUnsupportedError":
            reason = "a camera or format LibRaw does not read"
        else:
            reason = f"{type(exc).__name__}: {reason[:120]}"
        raise InputError(f"cannot decode camera RAW ({reason})") from None
    return Image(pixels=np.ascontiguousarray(rgb), linear=linear)


_DECODERS: dict[str, Callable[..., Image]] = {
    "png": _decode_png,
    "jpeg": _decode_jpeg,
    "tiff": _decode_tiff,
    "bmp": _decode_bmp,
    "webp": _decode_webp,
    "exr": _decode_exr,
    "hdr": _decode_hdr,
    "raw": _decode_raw,
}
