"""Lossless image I/O: every read keeps all bits, every write is atomic.

Decoding is done by OpenCV (PNG, JPEG, BMP, WebP, Radiance), tifffile (TIFF),
OpenEXR (EXR) and rawpy (camera RAW); container metadata (ICC profile, sBIT,
EXIF orientation) is read from the bytes by :mod:`bdx.io.metadata`. Pillow is
never used: it silently reads 16-bit RGB PNG as 8-bit.
"""

from __future__ import annotations

from bdx.io.image import Image, convert_depth, to_float
from bdx.io.read import IMAGE_EXTENSIONS, RAW_EXTENSIONS, decode_image, read_image
from bdx.io.write import OUTPUT_FORMATS, atomic_write_bytes, encode_image, format_from_path, write_image

__all__ = [
    "IMAGE_EXTENSIONS",
    "OUTPUT_FORMATS",
    "RAW_EXTENSIONS",
    "Image",
    "atomic_write_bytes",
    "convert_depth",
    "decode_image",
    "encode_image",
    "format_from_path",
    "read_image",
    "to_float",
    "write_image",
]
