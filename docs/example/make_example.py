"""Regenerate docs/example/banded_sky.png: a smooth synthetic scene quantized to 5 bits (visible banding).

Run:  python docs/example/make_example.py
"""

from pathlib import Path

import numpy as np

from bdx.io import Image, write_image
from bdx.reduce import quantize_image


def smooth_scene(height: int = 384, width: int = 512) -> np.ndarray:
    """A sky gradient with a soft sun and a shaded hill, as 16-bit sRGB."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    v, u = y / height, x / width
    sky = np.stack([0.25 + 0.45 * v, 0.45 + 0.35 * v, 0.85 - 0.15 * v], axis=-1)
    sun = np.exp(-(((u - 0.72) ** 2 + (v - 0.28) ** 2) / 0.012))[..., None] * np.array([0.55, 0.4, 0.1])
    hill = v > 0.72 + 0.08 * np.sin(u * 5.0)
    ground = np.stack([0.18 + 0.2 * u, 0.3 + 0.15 * (1 - v), 0.12 + 0.05 * u], axis=-1)
    scene = np.where(hill[..., None], ground, np.clip(sky + sun, 0, 1))
    return np.rint(scene * 65535).astype(np.uint16)


if __name__ == "__main__":
    reference = Image(smooth_scene())
    banded = quantize_image(reference, 5)
    folder = Path(__file__).parent
    write_image(folder / "banded_sky.png", banded, bits=8, significant_bits=5)
    print(f"wrote {folder / 'banded_sky.png'}")
