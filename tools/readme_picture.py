"""The README's opening picture: what each of bdx's three main commands does, before and after.

Rows: the bundled banded sky after a strong tone edit (the 8-bit input against ``upscale-depth``'s 16 bits,
both edited alike); a dark DICM photograph against ``enhance-lowlight``; a photo with a clipped sun as
exposure steps of the linearized 8-bit input against ``ldr2hdr``'s reconstruction. Writes an 8-bit PNG.

    python tools/readme_picture.py --out docs/images/overview.png
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np

from bdx.color import linear_to_srgb, srgb_to_linear
from bdx.depth import upscale_depth
from bdx.hdr.reconstruct import ldr_to_hdr
from bdx.io import Image, read_image, to_float
from bdx.lowlight.enhance import enhance_lowlight

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
HEIGHT = 240  # every panel's height


def fit(image: np.ndarray, height: int = HEIGHT) -> np.ndarray:
    """A float [0, 1] image area-resized to ``height`` rows."""
    width = round(image.shape[1] * height / image.shape[0])
    return cv2.resize(image.astype(np.float32), (width, height), interpolation=cv2.INTER_AREA)


def labelled(image: np.ndarray, text: str) -> np.ndarray:
    """8-bit RGB with a caption in its top-left corner."""
    out = np.ascontiguousarray(np.clip(np.rint(image * 255), 0, 255).astype(np.uint8))
    (width, height), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, 0.6, 1)
    out[: height + 16, : width + 16] //= 3  # a dark band behind the caption
    cv2.putText(out, text, (8, height + 8), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (255, 255, 255), 1, cv2.LINE_AA)
    return out


def edit(image: np.ndarray) -> np.ndarray:
    """A strong tone edit (shadows lifted and contrast raised), as a colorist might push a sky."""
    return np.clip((image**0.45 - 0.55) * 2.2 + 0.5, 0, 1)


def depth_row() -> list[np.ndarray]:
    source = read_image(ROOT / "docs" / "example" / "banded_sky.png")
    before = to_float(source.pixels)
    after = to_float(upscale_depth(source).image.pixels)
    return [labelled(edit(fit(before, 2 * HEIGHT)), "5-bit input, edited"),
            labelled(edit(fit(after, 2 * HEIGHT)), "bdx upscale-depth, same edit")]


def lowlight_row() -> list[np.ndarray]:
    source = read_image(SHARED / "lowlight" / "DICM" / "12.jpg")
    after = enhance_lowlight(source).image
    return [labelled(fit(to_float(source.pixels)), "dark photo"), labelled(fit(to_float(after.pixels)), "bdx enhance-lowlight")]


def hdr_row() -> list[np.ndarray]:
    source = read_image(SHARED / "photos" / "lomiri-wallpapers-16.04__sunset_by_Aitzol_Berasategi.jpg")
    small = Image(np.rint(fit(to_float(source.pixels), HEIGHT) * 255).astype(np.uint8))
    naive = srgb_to_linear(to_float(small.pixels))
    hdr = ldr_to_hdr(small).image.pixels
    tiles = []
    for stops in (0, -2, -4):
        scale = np.float32(2.0**stops)
        tiles.append(labelled(linear_to_srgb(np.clip(naive * scale, 0, 1)), f"8-bit input {stops:+d} EV"))
    for stops in (-2, -4):
        scale = np.float32(2.0**stops)
        tiles.append(labelled(linear_to_srgb(np.clip(hdr * scale, 0, 1)), f"bdx ldr2hdr {stops:+d} EV"))
    return [tiles[0], tiles[1], tiles[3], tiles[2], tiles[4]]


def grid(rows: list[list[np.ndarray]], gap: int = 6) -> np.ndarray:
    """Rows of panels, each row centred on a white canvas as wide as the widest row."""
    joined = []
    for row in rows:
        height = max(panel.shape[0] for panel in row)
        pieces = []
        for panel in row:
            pieces += [panel, np.full((height, gap, 3), 255, np.uint8)]
        joined.append(np.concatenate(pieces[:-1], axis=1))
    width = max(row.shape[1] for row in joined)
    canvas = []
    for row in joined:
        pad = width - row.shape[1]
        canvas.append(np.pad(row, ((0, gap), (pad // 2, pad - pad // 2), (0, 0)), constant_values=255))
    return np.concatenate(canvas)[:-gap]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "images" / "overview.png")
    args = parser.parse_args()
    picture = grid([depth_row(), lowlight_row(), hdr_row()])
    cv2.imwrite(str(args.out), cv2.cvtColor(picture, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_PNG_COMPRESSION, 9])
    print(f"wrote {args.out} ({picture.shape[1]}x{picture.shape[0]})")


if __name__ == "__main__":
    main()
