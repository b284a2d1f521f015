"""A tiny synthetic DNG (RGGB Bayer mosaic, 12-bit) for RAW-path tests; written with tifffile."""

from __future__ import annotations

import io

import numpy as np
import tifffile


def synthetic_dng(height: int = 64, width: int = 96) -> bytes:
    """A horizontally red, vertically green ramp scene, mosaicked RGGB, as DNG bytes."""
    y, x = np.mgrid[0:height, 0:width]
    scene = np.stack([x / width, y / height, np.full((height, width), 0.5)], axis=-1) * 0.6 + 0.1
    cfa = np.zeros((height, width), np.uint16)
    cfa[0::2, 0::2] = scene[0::2, 0::2, 0] * 4000
    cfa[0::2, 1::2] = scene[0::2, 1::2, 1] * 4000
    cfa[1::2, 0::2] = scene[1::2, 0::2, 1] * 4000
    cfa[1::2, 1::2] = scene[1::2, 1::2, 2] * 4000
    identity = [10000, 10000, 0, 10000, 0, 10000, 0, 10000, 10000, 10000, 0, 10000, 0, 10000, 0, 10000, 10000, 10000]
    tags = [
        (50706, "B", 4, (1, 4, 0, 0), True),  # DNGVersion
        (50707, "B", 4, (1, 1, 0, 0), True),  # DNGBackwardVersion
        (50708, "s", 0, "bdx synthetic camera", True),  # UniqueCameraModel
        (33421, "H", 2, (2, 2), True),  # CFARepeatPatternDim
        (33422, "B", 4, (0, 1, 1, 2), True),  # CFAPattern RGGB
        (50717, "I", 1, 4095, True),  # WhiteLevel
        (50714, "I", 1, 0, True),  # BlackLevel
        (50721, "2i", 9, identity, True),  # ColorMatrix1
        (50778, "H", 1, 21, True),  # CalibrationIlluminant1 = D65
        (50728, "2I", 3, (10000,) * 6, True),  # AsShotNeutral
    ]
    buffer = io.BytesIO()
    tifffile.imwrite(buffer, cfa, photometric=32803, extratags=tags, subfiletype=0)
    return buffer.getvalue()
