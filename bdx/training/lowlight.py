"""Zero-reference training of the curve estimator (the Zero-DCE losses), from folders of photos.

No reference images are needed: the losses ask for spatial consistency with the
input, well-exposed 16x16 patches (mean ``exposure`` ~0.6), grey-world colour and
smooth curve maps. Images are resized so the long side is the network's context
size (what it sees at inference), with random flips and 90-degree turns.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import cv2
import numpy as np
import torch
from torch.nn import functional as F

from bdx.errors import BdxError
from bdx.io import IMAGE_EXTENSIONS, RAW_EXTENSIONS, read_image, to_float
from bdx.lowlight.curves import apply_curves
from bdx.lowlight.models import CurveNet, CurveNetConfig, save_curve_net
from bdx.training.data import find_files, is_validation
from bdx.training.loop import LoopSettings, TrainState, run_training


@dataclass
class LowlightTrainConfig:
    """Settings of one run (recorded in the checkpoint and the weights' metadata)."""

    steps: int = 3000
    batch_size: int = 8
    lr: float = 1e-3
    width: int = 16
    context_size: int = 256
    crop: int = 128
    exposure: float = 0.6
    weight_tv: float = 1600.0
    weight_spatial: float = 1.0
    weight_colour: float = 5.0
    weight_exposure: float = 10.0
    validation_fraction: float = 0.05
    validate_every: int = 250
    checkpoint_every: int = 250
    seed: int = 0


def colour_constancy_loss(enhanced: torch.Tensor) -> torch.Tensor:
    """Grey world: the channel means of each image should agree."""
    mean_r, mean_g, mean_b = enhanced.mean(dim=(2, 3)).unbind(1)
    d_rg, d_rb, d_gb = (mean_r - mean_g) ** 2, (mean_r - mean_b) ** 2, (mean_g - mean_b) ** 2
    return torch.sqrt(d_rg**2 + d_rb**2 + d_gb**2 + 1e-12).mean()  # the epsilon keeps the gradient finite at grey


def spatial_consistency_loss(original: torch.Tensor, enhanced: torch.Tensor) -> torch.Tensor:
    """Differences between neighbouring 4x4 regions should survive enhancement."""
    a = F.avg_pool2d(original.mean(1, keepdim=True), 4)
    b = F.avg_pool2d(enhanced.mean(1, keepdim=True), 4)
    loss = 0.0
    for shift in ((0, 1), (0, -1), (1, 0), (-1, 0)):
        da = a - torch.roll(a, shifts=shift, dims=(2, 3))
        db = b - torch.roll(b, shifts=shift, dims=(2, 3))
        loss = loss + ((da - db) ** 2)[:, :, 1:-1, 1:-1].mean()
    return loss


def exposure_loss(enhanced: torch.Tensor, level: float, patch: int = 16) -> torch.Tensor:
    """Mean brightness of each 16x16 patch should be near ``level``."""
    return ((F.avg_pool2d(enhanced.mean(1, keepdim=True), patch) - level) ** 2).mean()


def smoothness_loss(params: torch.Tensor) -> torch.Tensor:
    """Total variation of the curve maps (squared differences, per direction)."""
    dy = (params[:, :, 1:, :] - params[:, :, :-1, :]).pow(2).mean()
    dx = (params[:, :, :, 1:] - params[:, :, :, :-1]).pow(2).mean()
    return 2 * (dx + dy)


def zero_reference_loss(net, images: torch.Tensor, config: LowlightTrainConfig) -> tuple[torch.Tensor, dict[str, float]]:
    """The weighted sum of the four losses, and each term for reporting."""
    params = net(images)
    enhanced = apply_curves(images, params)
    terms = {
        "tv": smoothness_loss(params),
        "spatial": spatial_consistency_loss(images, enhanced),
        "colour": colour_constancy_loss(enhanced),
        "exposure": exposure_loss(enhanced, config.exposure),
    }
    total = (
        config.weight_tv * terms["tv"] + config.weight_spatial * terms["spatial"]
        + config.weight_colour * terms["colour"] + config.weight_exposure * terms["exposure"]
    )
    return total, {k: float(v.detach()) for k, v in terms.items()}


def load_training_images(
    folders: list[Path], size: int, exclude: set[str] = frozenset()
) -> list[tuple[str, np.ndarray]]:
    """Every image under ``folders`` (names in ``exclude`` skipped), resized to ``size`` on the long side."""
    files = find_files(folders, IMAGE_EXTENSIONS - RAW_EXTENSIONS)
    images = []
    for path in files:
        if path.name in exclude:
            continue
        image = read_image(path)
        pixels = to_float(image.pixels)
        if image.is_float:
            continue
        if pixels.shape[2] == 1:
            pixels = np.repeat(pixels, 3, axis=2)
        scale = size / max(pixels.shape[:2])
        small = cv2.resize(pixels, (max(8, round(pixels.shape[1] * scale)), max(8, round(pixels.shape[0] * scale))),
                           interpolation=cv2.INTER_AREA)
        images.append((path.name, np.ascontiguousarray(small[..., :3], dtype=np.float32)))
    if not images:
        raise BdxError("no usable training images found")
    return images


def sample_images(images: list[np.ndarray], batch_size: int, crop: int, rng: np.random.Generator) -> torch.Tensor:
    """A batch of random square crops with random flips and quarter turns."""
    batch = []
    for _ in range(batch_size):
        pixels = images[rng.integers(len(images))]
        side = min(crop, pixels.shape[0], pixels.shape[1])
        y = rng.integers(0, pixels.shape[0] - side + 1)
        x = rng.integers(0, pixels.shape[1] - side + 1)
        patch = pixels[y : y + side, x : x + side]
        if rng.random() < 0.5:
            patch = patch[:, ::-1]
        patch = np.rot90(patch, rng.integers(0, 4))
        if side < crop:
            patch = cv2.resize(np.ascontiguousarray(patch), (crop, crop), interpolation=cv2.INTER_LINEAR)
        batch.append(np.ascontiguousarray(patch))
    return torch.from_numpy(np.stack(batch)).permute(0, 3, 1, 2).contiguous()


def train_lowlight(
    data: list[Path],
    output: Path,
    config: LowlightTrainConfig,
    *,
    exclude: set[str] = frozenset(),
    resume: Path | None = None,
    device: str = "cpu",
    report: Callable[[int, dict], None] | None = None,
) -> TrainState:
    """Train (or resume) bdx's curve estimator; checkpoints to ``<output>.ckpt.pt``, weights to ``output``."""
    loaded = load_training_images(data, config.context_size, exclude)
    train = [p for n, p in loaded if not is_validation(n, config.validation_fraction)]
    val = [p for n, p in loaded if is_validation(n, config.validation_fraction)]
    if not train:
        train, val = val, []
    net = CurveNet(CurveNetConfig(width=config.width, context_size=config.context_size))
    crop = config.crop

    def loss_fn(model, rng):
        images = sample_images(train, config.batch_size, crop, rng).to(next(net.parameters()).device)
        return zero_reference_loss(model, images, config)[0]

    def validate(model) -> dict:
        rng = np.random.default_rng(4321)
        images = sample_images(val, min(16, 2 * len(val)), crop, rng).to(next(net.parameters()).device)
        total, terms = zero_reference_loss(model, images, config)
        enhanced = apply_curves(images, model(images))
        return {"val_loss": float(total), **{f"val_{k}": v for k, v in terms.items()},
                "val_mean_in": float(images.mean()), "val_mean_out": float(enhanced.mean())}

    settings = LoopSettings(
        steps=config.steps, lr=config.lr, validate_every=config.validate_every,
        checkpoint_every=config.checkpoint_every, seed=config.seed,
    )
    state = run_training(
        net, loss_fn, settings, Path(str(output) + ".ckpt.pt"), validate=validate if val else None,
        resume=resume, device=device, report=report, config=asdict(config),
    )
    if state.rank == 0:
        save_curve_net(state.net, output, extra={"train_config": asdict(config), "steps": state.step,
                                                 "excluded_files": len(exclude), "history": state.history[-1:]})
    return state
