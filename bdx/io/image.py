"""The in-memory image record shared by every bdx command."""

from __future__ import annotations

import numbers
import os
from dataclasses import dataclass, replace

import numpy as np

from bdx.errors import BdxError, InputError, check_flag, plain_scalars
from bdx.io.metadata import EXIF_APP1_HEADER, PNG_COLOUR_CHUNKS


@dataclass
class Image:
    """Decoded pixels plus what must travel with them to the output.

    ``pixels`` is (H, W, C) with C = 1 (gray) or 3 (RGB), dtype uint8, uint16 or
    float32. ``alpha`` is (H, W), or None; it is carried to the
    output untouched (rescaled only when the container depth changes). ``linear``: the pixels are
    scene-linear light (EXR, Radiance HDR, a RAW read linear); False: display (sRGB-encoded) values. Writers
    convert where a container's convention differs (:func:`bdx.io.write.for_container`).
    """

    pixels: np.ndarray
    alpha: np.ndarray | None = None
    icc_profile: bytes | None = None
    significant_bits: int | None = None  # declared by the file: a PNG's sBIT, a TIFF's 4-, 10- or 12-bit samples
    source_format: str = ""
    orientation: int = 1
    exif: bytes | None = None  # the source's EXIF (TIFF-structured; a leading Exif\0\0 is dropped), written with orientation 1
    linear: bool = False
    stored_float_bits: int | None = None  # a float file's stored sample size: 16 (half), 32 or 64 (decoded to float32)
    premultiplied: bool = False  # colour premultiplied by alpha (a TIFF's associated alpha), kept so in TIFF and EXR
    colour_chunks: tuple[tuple[bytes, bytes], ...] = ()  # a PNG's gAMA, cHRM, sRGB, cICP (type, body), written to PNG

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Pixels (H, W) or (H, W, 1 or 3) of uint8, uint16 or float32, at least 1x1; alpha (H, W) (or (H, W, 1))
        of one of those types (rescaled to the pixels' container when written). Anything else is an
        :class:`InputError` here, not an odd failure later (or a wrong file: colour written into alpha). Run when
        made, and again by every task and writer (fields assigned since are checked there)."""
        self.pixels = _checked_plane(self.pixels, "pixels")
        if self.pixels.ndim != 3 or self.pixels.shape[2] not in (1, 3):
            raise InputError(f"pixels must be (height, width) or (height, width, 1 or 3), not of shape {self.pixels.shape}")
        if self.alpha is not None:
            self.alpha = _checked_plane(self.alpha, "alpha", is_alpha=True)
            if self.alpha.ndim == 3 and self.alpha.shape[2] == 1:
                self.alpha = self.alpha[..., 0]
            if self.alpha.shape != self.pixels.shape[:2]:
                raise InputError(f"alpha must be (height, width) = {self.pixels.shape[:2]}, not of shape {self.alpha.shape}")
        self._check_metadata()

    def _check_metadata(self) -> None:
        """significant_bits within the container, orientation an EXIF code, profiles as bytes."""
        plain_scalars(self)  # NumPy scalars as the Python values they hold (uint8 bit arithmetic would overflow)
        bits = self.significant_bits
        if bits is not None:
            container = 8 * self.pixels.dtype.itemsize
            if self.is_float or isinstance(bits, bool) or not isinstance(bits, numbers.Integral) or not 1 <= bits <= container:
                raise InputError(f"significant_bits must be None or a whole number from 1 to {container} for these pixels, not {bits!r}")
        for flag in ("linear", "premultiplied"):
            check_flag(flag, getattr(self, flag))
        orientation = self.orientation
        if isinstance(orientation, bool) or not isinstance(orientation, numbers.Integral) or not 1 <= orientation <= 8:
            raise InputError(f"orientation must be an EXIF orientation from 1 to 8, not {orientation!r}")
        for name in ("icc_profile", "exif"):
            value = getattr(self, name)
            if isinstance(value, (bytearray, memoryview)):
                setattr(self, name, bytes(value))
            elif value is not None and not isinstance(value, bytes):
                raise InputError(f"{name} must be bytes or None, not {type(value).__name__}")
        chunks = self.colour_chunks
        if not isinstance(chunks, (tuple, list)) or not all(_is_colour_chunk(chunk) for chunk in chunks):
            kinds = ", ".join(c.decode() for c in PNG_COLOUR_CHUNKS)
            raise InputError(f"colour_chunks must be (type, body) pairs of bytes, the type one of {kinds}, not {chunks!r:.80}")
        self.colour_chunks = tuple((bytes(kind), bytes(body)) for kind, body in chunks)
        if self.exif is not None and self.exif.startswith(EXIF_APP1_HEADER):  # as Pillow and piexif give it
            self.exif = self.exif[len(EXIF_APP1_HEADER) :]

    @property
    def height(self) -> int:
        return int(self.pixels.shape[0])

    @property
    def width(self) -> int:
        return int(self.pixels.shape[1])

    @property
    def channels(self) -> int:
        return int(self.pixels.shape[2])

    @property
    def significant_bits_source(self) -> str:
        """Where :attr:`significant_bits` was declared: the TIFF tag or the PNG chunk."""
        return "BitsPerSample" if self.source_format == "tiff" else "sBIT"

    @property
    def container_bits(self) -> int:
        """Bits per sample of the decoded container: 8, 16, or 32 for float."""
        return {np.dtype(np.uint8): 8, np.dtype(np.uint16): 16}.get(self.pixels.dtype, 32)

    @property
    def sample_type(self) -> str:
        """The file's sample type as stored: uint8, uint16, half, float or double."""
        if not self.is_float:
            return str(self.pixels.dtype)
        return {16: "half", 64: "double"}.get(self.stored_float_bits or 32, "float")

    @property
    def stored_bits(self) -> int:
        """Bits per sample as the file stored them (:attr:`container_bits` is the decoded container)."""
        return (self.stored_float_bits or 32) if self.is_float else self.container_bits

    @property
    def is_float(self) -> bool:
        return self.pixels.dtype.kind == "f"

    def with_pixels(self, pixels: np.ndarray, **changes) -> "Image":
        """A copy with new pixels (same size); alpha and metadata are kept, but for float pixels the significant
        bits (a property of integer codes)."""
        if isinstance(pixels, np.ndarray) and pixels.ndim == 2:
            pixels = pixels[..., None]
        if not isinstance(pixels, np.ndarray) or pixels.shape[:2] != self.pixels.shape[:2]:
            shape = getattr(pixels, "shape", type(pixels).__name__)
            raise InputError(f"with_pixels keeps the image size {self.pixels.shape[:2]}: pixels of {shape} do not fit it")
        if pixels.dtype.kind == "f":
            changes.setdefault("significant_bits", None)
        return replace(self, pixels=pixels, **changes)


SAMPLE_TYPES = (np.dtype(np.uint8), np.dtype(np.uint16), np.dtype(np.float32))


def _is_colour_chunk(chunk: object) -> bool:
    """A PNG colour chunk as :attr:`Image.colour_chunks` holds it: (type, body), bytes, a known colour type."""
    return (
        isinstance(chunk, (tuple, list))
        and len(chunk) == 2
        and all(isinstance(part, (bytes, bytearray, memoryview)) for part in chunk)
        and bytes(chunk[0]) in PNG_COLOUR_CHUNKS
    )


def check_image(image: object) -> None:
    """A :class:`TypeError` unless ``image`` is an :class:`Image` (a file name or an array is not), saying how to
    make one; an :class:`InputError` when its fields no longer make one (assigned after it was made)."""
    if not isinstance(image, Image):
        hint = "read a file: bdx.read_image(path)" if isinstance(image, (str, os.PathLike)) else "wrap an array: bdx.Image(pixels)"
        raise TypeError(f"image must be a bdx.Image ({hint}), not {type(image).__name__}")
    image.validate()


def non_finite(image: Image) -> str | None:
    """What of a float image is NaN or infinite ("3 NaN/Inf alpha samples"), None when nothing is: such files are
    refused when read and never written."""
    for plane, what in ((image.pixels, "samples"), (image.alpha, "alpha samples")):
        if plane is not None and plane.dtype.kind == "f":
            bad = int(np.count_nonzero(~np.isfinite(plane)))
            if bad:
                return f"{bad} NaN/Inf {what}"
    return None


def _checked_plane(array: object, what: str, is_alpha: bool = False) -> np.ndarray:
    """``array`` as pixels or alpha of an :class:`Image` (a 2-D array gains a channel axis when it is pixels)."""
    if not isinstance(array, np.ndarray):
        raise InputError(f"{what} must be a NumPy array, not {type(array).__name__}")
    if not array.dtype.isnative and array.dtype.newbyteorder("=") in SAMPLE_TYPES:  # big-endian (PGM, FITS buffers)
        array = array.astype(array.dtype.newbyteorder("="))
    if array.dtype not in SAMPLE_TYPES:
        raise InputError(f"{what} must be uint8, uint16 or float32, not {array.dtype}")
    if array.ndim == 2 and not is_alpha:
        array = array[..., None]
    if array.ndim not in (2, 3) or array.shape[0] == 0 or array.shape[1] == 0:
        raise InputError(f"{what} must be (height, width[, channels]) of at least 1x1, not of shape {array.shape}")
    return array


def to_float(pixels: np.ndarray) -> np.ndarray:
    """Integer code values to float32 in [0, 1]; float input is returned as float32."""
    if pixels.dtype == np.uint8:
        return pixels.astype(np.float32) / np.float32(255)
    if pixels.dtype == np.uint16:
        return pixels.astype(np.float32) / np.float32(65535)
    if pixels.dtype.kind == "f":
        return pixels.astype(np.float32, copy=False)
    raise BdxError(f"unsupported sample type {pixels.dtype}")


def convert_depth(pixels: np.ndarray, bits: int) -> np.ndarray:
    """Convert samples to an 8-bit, 16-bit or float32 (bits=32) container.

    Integer-to-integer conversions are exact where they can be (8 to 16 bits
    multiplies by 257); float values are clipped to [0, 1] and rounded.
    """
    if bits == 32:
        return to_float(pixels)
    target = {8: np.uint8, 16: np.uint16}.get(bits)
    if target is None:
        raise ValueError(f"bits must be 8, 16 or 32, not {bits}")
    if pixels.dtype == target:
        return pixels
    if pixels.dtype == np.uint8 and bits == 16:
        return pixels.astype(np.uint16) * np.uint16(257)
    if pixels.dtype == np.uint16 and bits == 8:
        return np.rint(pixels.astype(np.float32) / 257).astype(np.uint8)
    scale = (1 << bits) - 1
    values = np.clip(to_float(pixels), 0.0, 1.0) * scale
    return np.rint(values).astype(target)


def straight_alpha(image: Image) -> Image:
    """``image`` with colour no longer premultiplied by its alpha (for formats whose alpha is straight, such as
    PNG); pixels with zero alpha keep their values. Integer colour is rounded to its container.

    >>> rgba = Image(np.full((1, 1, 3), 64, np.uint8), alpha=np.full((1, 1), 128, np.uint8), premultiplied=True)
    >>> straight_alpha(rgba).pixels.ravel().tolist()
    [128, 128, 128]
    """
    if not image.premultiplied or image.alpha is None:
        return image
    alpha = to_float(image.alpha)[..., None]
    covered = alpha > 0
    colour = np.where(covered, to_float(image.pixels) / np.where(covered, alpha, 1), to_float(image.pixels))
    if image.is_float:
        pixels = colour.astype(np.float32)
    else:
        top = np.iinfo(image.pixels.dtype).max
        pixels = np.rint(np.clip(colour, 0, 1) * top).astype(image.pixels.dtype)
    return replace(image, pixels=pixels, premultiplied=False)
