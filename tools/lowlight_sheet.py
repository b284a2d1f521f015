"""Before/after picture of ``enhance-lowlight`` on dark DICM photographs (a black background, a night sky).

Columns: the input as shot, the model given with ``--before`` run without the neutral-shadows step (for
example a curve model trained with the zero-reference losses only), and bdx's default. The night sky is shown with ``--target-mean 0.45``, where
casts and halos show most. Writes an 8-bit PNG for the docs.

    git show 02bdda9:weights/lowlight-curvenet-v1.safetensors > /tmp/zero_reference.safetensors
    python tools/lowlight_sheet.py --before /tmp/zero_reference.safetensors --out docs/images/lowlight_before_after.png
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np

from bdx.io import read_image, to_float
from bdx.lowlight.enhance import EnhanceSettings, enhance_lowlight
from bdx.models import load_model

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "lowlight" / "DICM"
SCENES = (("12.jpg", None), ("01.jpg", 0.45))  # a black background; a night sky round a lit tower
HEIGHT = 300


def _panel(pixels: np.ndarray, label: str) -> np.ndarray:
    """8-bit BGR panel of height :data:`HEIGHT` with a caption."""
    rgb = to_float(pixels)[..., :3]
    width = round(rgb.shape[1] * HEIGHT / rgb.shape[0])
    small = cv2.resize(rgb, (width, HEIGHT), interpolation=cv2.INTER_AREA)
    panel = np.ascontiguousarray(np.rint(np.clip(small, 0, 1) * 255).astype(np.uint8)[..., ::-1])
    cv2.putText(panel, label, (8, 22), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (255, 255, 255), 2, cv2.LINE_AA)
    cv2.putText(panel, label, (8, 22), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (0, 0, 0), 1, cv2.LINE_AA)
    return panel


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", type=Path, required=True, help="the weights of the left-hand result")
    parser.add_argument("--dicm", type=Path, default=SHARED)
    parser.add_argument("--out", type=Path, default=Path("docs/images/lowlight_before_after.png"))
    args = parser.parse_args()
    before, after = load_model(args.before, "lowlight"), load_model(None, "lowlight")
    rows = []
    for name, target in SCENES:
        image = read_image(args.dicm / name)
        suffix = f", target mean {target}" if target else ""
        panels = [_panel(image.pixels, f"{name} input")]
        for label, model, neutral in (("before", before, 0.0), ("bdx default", after, 1.0)):
            settings = EnhanceSettings(target_mean=target, neutral_shadows=neutral)
            panels.append(_panel(enhance_lowlight(image, model, settings, device="cpu").image.pixels, label + suffix))
        rows.append(np.hstack(panels))
    width = max(r.shape[1] for r in rows)
    sheet = np.vstack([np.pad(r, ((0, 0), (0, width - r.shape[1]), (0, 0))) for r in rows])
    args.out.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(args.out), sheet)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
