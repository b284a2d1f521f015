"""Can the camera curve be told from the copy the HDR network's global branch sees?

A diagnostic for issue 5: a small CNN (with a 32-bin histogram per channel) is
trained on 128 px copies of exposed, camera-rendered HDR scenes to predict log2 of
the linear value the camera curve maps to display 0.5. That value sets the
absolute scale of the mid-tones. It prints the R^2 and RMSE (in stops) on scenes
held out by the HDR weights' file-level split (validation fraction 0.25). An R^2
near 0 means the copy does not tell the curve, so no global branch can fix the
scale error from it.

``--view crop`` asks the same of 128 px crops at the scene's full resolution
(local cues such as edge profiles and colour mixtures, but less of the scene).

    python benchmarks/hdr_curve_probe.py --data ../shared/data/hdr --data /tmp/sice_merged
    python benchmarks/hdr_curve_probe.py --data ../shared/data/hdr --data /tmp/sice_merged --view crop
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from bdx.hdr.tonemap import camera_response, random_camera
from bdx.training.data import is_validation
from bdx.training.hdr import context_image, expose, find_scenes, render_ldr

SIZE = 128
GRID = np.linspace(0, 1, 4097, dtype=np.float32)


def mid_grey_stops(camera: tuple[float, float]) -> float:
    """log2 of the linear value the curve maps to display 0.5."""
    return float(np.log2(GRID[np.searchsorted(camera_response(GRID, *camera), 0.5)] + 1e-6))


def sample(scenes, rng: np.random.Generator, count: int, view: str = "copy") -> tuple[torch.Tensor, torch.Tensor]:
    """Copies as at inference (render at 512 px, then area-downscale to 128 px), or full-resolution
    128 px crops (``view="crop"``); padded to a square."""
    copies, targets = [], []
    for _ in range(count):
        scene = scenes[rng.integers(len(scenes))].linear * rng.uniform(0.8, 1.25, 3).astype(np.float32)
        exposed = scene * np.float32(expose(scene, rng.uniform(85, 99.5)))
        camera = random_camera(rng)
        if view == "crop":  # the curve acts per pixel, so cropping before rendering is the same as after
            y = rng.integers(max(1, exposed.shape[0] - SIZE + 1))
            x = rng.integers(max(1, exposed.shape[1] - SIZE + 1))
            copy = render_ldr(exposed[y : y + SIZE, x : x + SIZE], camera, None)
        else:
            copy = context_image(render_ldr(context_image(exposed, 4 * SIZE), camera, None), SIZE)[:SIZE, :SIZE]
        copies.append(np.pad(copy, ((0, SIZE - copy.shape[0]), (0, SIZE - copy.shape[1]), (0, 0)), mode="edge"))
        targets.append(mid_grey_stops(camera))
    return torch.from_numpy(np.stack(copies)).permute(0, 3, 1, 2).contiguous(), torch.tensor(targets)[:, None]


class Probe(nn.Module):
    def __init__(self, bins: int = 32) -> None:
        super().__init__()
        self.bins = bins
        layers, channels = [], 3
        for width in (32, 64, 64, 64):
            layers += [nn.Conv2d(channels, width, 3, 2, 1), nn.LeakyReLU(0.1)]
            channels = width
        self.convs = nn.Sequential(*layers)
        self.head = nn.Sequential(nn.Linear(2 * channels + 3 * bins, 128), nn.LeakyReLU(0.1), nn.Linear(128, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = self.convs(x)
        centres = (torch.arange(self.bins) + 0.5) / self.bins
        histogram = (1 - (x[:, :, None] - centres[:, None, None]).abs() * self.bins).clamp_min(0).mean(dim=(3, 4))
        return self.head(torch.cat([features.mean(dim=(2, 3)), features.amax(dim=(2, 3)), histogram.flatten(1)], 1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, action="append", required=True)
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--view", choices=("copy", "crop"), default="copy")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    out = args.out or Path(f"benchmarks/results/hdr_curve_probe{'' if args.view == 'copy' else '_crop'}.json")
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    scenes = find_scenes(args.data)
    train = [s for s in scenes if not is_validation(s.name, 0.25)]
    held_out = [s for s in scenes if is_validation(s.name, 0.25)]
    val_x, val_y = sample(held_out, np.random.default_rng(1), 400, args.view)
    net, rng = Probe(), np.random.default_rng(0)
    optimizer = torch.optim.Adam(net.parameters(), 1e-3)
    history, start = [], time.perf_counter()
    for step in range(1, args.steps + 1):
        x, y = sample(train, rng, 32, args.view)
        loss = ((net(x) - y) ** 2).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if step % 500 == 0 or step == args.steps:
            with torch.no_grad():
                error = float(((net(val_x) - val_y) ** 2).mean())
            row = {"step": step, "val_r2": 1 - error / float(val_y.var()), "val_rmse_stops": error**0.5,
                   "target_sd_stops": float(val_y.std()), "seconds": time.perf_counter() - start}
            history.append(row)
            print(json.dumps(row), flush=True)
    out.parent.mkdir(parents=True, exist_ok=True)
    record = {"view": args.view, "train_scenes": len(train), "held_out_scenes": len(held_out), "history": history}
    out.write_text(json.dumps(record, indent=1))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
