"""Shared fixtures: small generated images and a CLI runner."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from bdx.io import Image, write_image

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def gradient16(height: int = 96, width: int = 128, channels: int = 3) -> np.ndarray:
    """A smooth 16-bit test scene (different curve per channel)."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    base = 0.5 + 0.4 * np.sin(x / max(width, 2) * 3.0) * np.cos(y / max(height, 2) * 2.0)
    planes = [base, base**1.5, 1 - base][:channels]
    return np.rint(np.stack(planes, axis=-1) * 65535).astype(np.uint16)


def minimal_icc() -> bytes:
    """A structurally valid (empty) ICC profile: header plus a zero-entry tag table."""
    header = bytearray(132)
    header[0:4] = (132).to_bytes(4, "big")
    header[12:16] = b"mntr"
    header[16:20] = b"RGB "
    header[20:24] = b"XYZ "
    header[36:40] = b"acsp"
    return bytes(header)


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


@pytest.fixture
def make_png(tmp_path):
    """Write a PNG from an array and return its path."""

    def make(name: str, pixels: np.ndarray, alpha=None, bits: int | None = None, sbit: int | None = None, **meta) -> Path:
        if pixels.ndim == 2:
            pixels = pixels[..., None]
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        bits = bits or (16 if pixels.dtype == np.uint16 else 8)
        write_image(path, Image(pixels, alpha, **meta), bits=bits, significant_bits=sbit)
        return path

    return make


def write_raw_exr(path: Path, pixels: np.ndarray) -> Path:
    """An RGB float EXR written with OpenEXR itself, whatever its values (bdx's writer refuses NaN and Inf)."""
    import OpenEXR

    channels = {name: np.ascontiguousarray(pixels[..., index], dtype=np.float32) for index, name in enumerate("RGB")}
    OpenEXR.File({"compression": OpenEXR.ZIP_COMPRESSION, "type": OpenEXR.scanlineimage}, channels).write(str(path))
    return path
