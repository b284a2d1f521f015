"""Side-by-side picture of ``ldr2hdr`` on a clipped sun: the truth, the 8-bit input, bdx's default and
``--method classical``, each shown at three exposures so the highlights' reconstruction is visible.

The scene is the held-out panorama ``blender/forest`` of the HDR benchmark (``benchmarks/hdr_suite.py``), cropped
around the sun, exposed one stop over with its median at 0.18 and rendered through the Hable filmic curve to
8 bits, as in the benchmark. Every prediction's scale is fitted to the truth as there (median ratio over
well-exposed pixels). Columns: 0, -3 and -6 stops. Writes an 8-bit picture (JPEG or PNG, by the extension) for the docs.

    python tools/hdr_sheet.py --out docs/images/hdr_clipped_sun.jpg
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from hdr_suite import CURVES, STOPS_OVER, predict, references  # noqa: E402

from bdx.assets import default_weights  # noqa: E402
from bdx.color import linear_to_srgb  # noqa: E402
from bdx.metrics import fit_scale, well_exposed_pixels  # noqa: E402
from bdx.models import load_model  # noqa: E402

SCENE = "blender/forest"  # a rendered panorama: its sun is free of the resampling ringing of the photographed ones
CROP = (slice(110, 290), slice(480, 750))  # rows, columns around the sun
STOPS = (0.0, -3.0, -6.0)
HEIGHT = 200


def _cell(linear: np.ndarray, stop: float, label: str) -> np.ndarray:
    """8-bit BGR view of ``linear`` at ``stop`` EV (clipped, sRGB), enlarged to :data:`HEIGHT`, with a caption."""
    display = linear_to_srgb(np.clip(linear * np.float32(2.0**stop), 0, 1))
    width = round(display.shape[1] * HEIGHT / display.shape[0])
    big = cv2.resize(display.astype(np.float32), (width, HEIGHT), interpolation=cv2.INTER_LINEAR)
    cell = np.ascontiguousarray(np.rint(big * 255).astype(np.uint8)[..., ::-1])
    for colour, thickness in (((0, 0, 0), 3), ((255, 255, 255), 1)):
        cv2.putText(cell, label, (6, 18), cv2.FONT_HERSHEY_SIMPLEX, 0.5, colour, thickness, cv2.LINE_AA)
    return cell


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "images" / "hdr_clipped_sun.jpg")
    args = parser.parse_args()
    weights = default_weights("hdr")
    linear = {name: image for name, image, _ in references(weights, Path("/nonexistent"), 0)}[SCENE]
    exposed = linear * np.float32(2**STOPS_OVER)
    truth = (exposed * np.float32(0.18))[CROP]
    codes = np.clip(np.rint(CURVES["hable"](exposed) * 255), 0, 255).astype(np.uint8)[CROP]
    ldr = codes.astype(np.float32) / 255
    well_exposed = well_exposed_pixels(ldr)
    model = load_model(weights, "hdr")
    rows = {"truth": truth}
    for label, method in (("8-bit input", "naive"), ("bdx (default)", "learned"), ("classical", "classical")):
        rows[label] = fit_scale(predict(method, codes, model), truth, well_exposed)
    sheet = np.concatenate(
        [np.concatenate([_cell(image, stop, f"{label}, {stop:+.0f} EV") for stop in STOPS], axis=1) for label, image in rows.items()],
        axis=0,
    )
    if not cv2.imwrite(str(args.out), sheet):
        raise SystemExit(f"cannot write {args.out}")
    print(f"wrote {args.out} ({sheet.shape[1]}x{sheet.shape[0]})")


if __name__ == "__main__":
    main()
