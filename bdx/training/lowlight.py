"""Training of the curve estimator: zero-reference (the Zero-DCE losses) from folders of photos, or
reference-supervised from dark/well-exposed pairs.

Zero-reference: the losses ask for spatial consistency with the input, well-exposed
16x16 patches (mean ``exposure`` ~0.6), grey-world colour and smooth curve maps.
Images are resized so the long side is the network's context size, with random flips
and 90-degree turns.

With pairs (a JSON list of ``{"input": ..., "reference": ...}`` paths, relative to the
file): each dark frame is resized to ``frame_size`` on its long side, the network sees it
at its context size (as at inference), the curves and the gamma post-step are applied at
that size, and the loss compares the result with the reference frame: by default the
mean over images of the log of each image's squared error (``pair_loss="psnr"``: what a
mean of per-image PSNRs measures, so scenes with dark references weigh as much as bright
ones), or the plain mean squared error (``"mse"``). Pairs are split for validation by a
hash of the reference's name, so a scene's frames stay on one side.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Callable, Collection, Literal, get_args

import cv2
import numpy as np
import torch
from torch.nn import functional as F

from bdx.errors import BdxError, InputError, SettingError, problem_of
from bdx.io import IMAGE_EXTENSIONS, RAW_EXTENSIONS, read_image, to_float
from bdx.lowlight.curves import apply_curves
from bdx.lowlight.models import CurveNet, CurveNetConfig, fit_long_side
from bdx.models import load_model
from bdx.training.data import find_files, is_validation, read_pairs_list
from bdx.training.loop import LoopSettings, TrainState, check_run_settings, check_start, run_training, save_trained

PairLoss = Literal["psnr", "mse"]
PAIR_LOSSES: tuple[PairLoss, ...] = get_args(PairLoss)


@dataclass
class LowlightTrainConfig:
    """Settings of one run (recorded in the checkpoint and the weights' metadata)."""

    steps: int = 3000
    minutes: float | None = None  # a time budget: the run ends (and its schedule completes) by then, whatever the steps
    batch_size: int = 8
    lr: float = 1e-3
    width: int = 16
    context_size: int = 256
    global_context: bool = True  # the network's image-wide branch (CurveNetConfig.global_context)
    members: int = 1  # networks trained side by side, each on its own loss, whose maps are averaged
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
    gamma: float = 1.0  # the gamma post-step saved with the weights (and applied in the reference loss)
    init: str | None = None  # name of the weights the run started from
    pairs: str | None = None  # name of the pairs file of a reference-supervised run
    frame_size: int = 256  # long side the pairs' frames are resized to
    pair_loss: PairLoss = "psnr"  # reference-supervised loss (see the module's docstring)


def colour_constancy_loss(enhanced: torch.Tensor) -> torch.Tensor:
    """Grey world: the channel means of each image should agree."""
    mean_r, mean_g, mean_b = enhanced.mean(dim=(2, 3)).unbind(1)
    d_rg, d_rb, d_gb = (mean_r - mean_g) ** 2, (mean_r - mean_b) ** 2, (mean_g - mean_b) ** 2
    return torch.sqrt(d_rg**2 + d_rb**2 + d_gb**2 + 1e-12).mean()  # the epsilon keeps the gradient finite at grey


def spatial_consistency_loss(original: torch.Tensor, enhanced: torch.Tensor) -> torch.Tensor:
    """Differences between neighbouring 4x4 regions should survive enhancement."""
    a = F.avg_pool2d(original.mean(1, keepdim=True), 4)
    b = F.avg_pool2d(enhanced.mean(1, keepdim=True), 4)
    loss = a.new_zeros(())
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


def member_maps(net, x: torch.Tensor, each_member: bool) -> tuple[torch.Tensor, int]:
    """The curve maps of ``x``, and how many rows each image has: one (the members' mean), or with ``each_member``
    one per member of a :class:`CurveNet` ensemble (images' rows adjacent), so each member learns on its own loss."""
    if not each_member:
        return net(x), 1
    maps = net(x, each_member=True)
    return maps.flatten(0, 1), maps.shape[1]


def zero_reference_loss(
    net, images: torch.Tensor, config: LowlightTrainConfig, each_member: bool = False
) -> tuple[torch.Tensor, dict[str, float]]:
    """The weighted sum of the four losses, and each term for reporting (``each_member``: see :func:`member_maps`)."""
    params, rows = member_maps(net, images, each_member)
    images = images.repeat_interleave(rows, 0)
    enhanced = apply_curves(images, params)
    terms = {
        "tv": smoothness_loss(params),
        "spatial": spatial_consistency_loss(images, enhanced),
        "colour": colour_constancy_loss(enhanced),
        "exposure": exposure_loss(enhanced, config.exposure),
    }
    total = (
        config.weight_tv * terms["tv"]
        + config.weight_spatial * terms["spatial"]
        + config.weight_colour * terms["colour"]
        + config.weight_exposure * terms["exposure"]
    )
    return total, {k: float(v.detach()) for k, v in terms.items()}


def reference_errors(
    net, dark: torch.Tensor, reference: torch.Tensor, context_size: int, gamma: float, each_member: bool = False
) -> torch.Tensor:
    """Per-image mean squared error (N,) between the enhanced ``dark`` batch and ``reference``, the curves
    estimated on a copy whose long side is ``context_size`` and applied at full size, then the ``gamma``
    post-step (as at inference); with ``each_member``, one error per image and member (see :func:`member_maps`)."""
    small = F.interpolate(dark, size=fit_long_side(dark.shape[-2], dark.shape[-1], context_size), mode="area")
    maps, rows = member_maps(net, small, each_member)
    dark, reference = dark.repeat_interleave(rows, 0), reference.repeat_interleave(rows, 0)
    params = F.interpolate(maps, size=dark.shape[-2:], mode="bilinear", align_corners=False)
    enhanced = apply_curves(dark, params).clamp(1e-6, 1.0)
    if gamma != 1.0:
        enhanced = enhanced.pow(1.0 / gamma)
    return (enhanced - reference).pow(2).mean(dim=(1, 2, 3))


def pair_errors(net, pairs: list[tuple[np.ndarray, np.ndarray]], context_size: int, gamma: float) -> list[float]:
    """:func:`reference_errors` of each (dark, reference) pair of (H, W, 3) frames, one at a time (their sizes may
    differ), on the network's device."""
    device = next(net.parameters()).device
    as_batch = lambda frame: torch.from_numpy(frame).permute(2, 0, 1)[None].to(device)  # noqa: E731
    with torch.no_grad():
        return [float(reference_errors(net, as_batch(dark), as_batch(reference), context_size, gamma)[0]) for dark, reference in pairs]


PSNR_LOSS_FLOOR = 1e-5  # squared error below which the psnr loss stops rewarding (50 dB)


def reference_loss(
    net,
    dark: torch.Tensor,
    reference: torch.Tensor,
    context_size: int,
    gamma: float,
    pair_loss: PairLoss = "psnr",
    each_member: bool = False,
) -> torch.Tensor:
    """The training loss against references: ``psnr`` (mean log10 squared error per image, scaled so its
    gradients match the plain error's order of magnitude) or ``mse`` (``each_member``: see :func:`member_maps`)."""
    errors = reference_errors(net, dark, reference, context_size, gamma, each_member)
    if pair_loss == "mse":
        return errors.mean()
    return 0.01 * torch.log10(errors + PSNR_LOSS_FLOOR).mean()


def load_pairs(pairs_file: Path, size: int) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """(reference name, dark, reference) of every pair listed in ``pairs_file``, resized to ``size`` on the long
    side; a pair whose frames differ in size is a one-line error."""
    pairs = []
    for entry in read_pairs_list(pairs_file):
        frames = []
        for key in ("input", "reference"):
            try:
                codes = read_image(pairs_file.parent / entry[key]).pixels
            except BdxError as exc:
                raise BdxError(f"{pairs_file}: {entry[key]}: {problem_of(exc)}") from None
            if codes.dtype.kind == "f":  # scene-linear values are not the display frames the curves learn from
                raise InputError(f"{pairs_file}: {entry[key]}: a float (scene-linear) image; pairs are 8- or 16-bit display frames")
            pixels = to_float(codes)
            if pixels.shape[2] == 1:
                pixels = np.repeat(pixels, 3, axis=2)
            frames.append(pixels[..., :3])
        if frames[0].shape != frames[1].shape:
            raise BdxError(f"{pairs_file}: {entry['input']} and {entry['reference']} differ in size")
        height, width = fit_long_side(frames[0].shape[0], frames[0].shape[1], size)
        dark, reference = (
            np.ascontiguousarray(cv2.resize(f, (width, height), interpolation=cv2.INTER_AREA), dtype=np.float32) for f in frames
        )
        pairs.append((Path(entry["reference"]).name, dark, reference))
    return pairs


def sample_pairs(
    pairs: list[tuple[np.ndarray, np.ndarray]],
    batch_size: int,
    rng: np.random.Generator,
) -> tuple[torch.Tensor, torch.Tensor]:
    """A batch of whole pairs (one size), each flipped left-right at random, the same way in both frames."""
    chosen = [pairs[i] for i in rng.integers(len(pairs), size=batch_size)]
    flips = rng.random(batch_size) < 0.5

    def stack(frames: list[np.ndarray]) -> torch.Tensor:
        flipped = [np.ascontiguousarray(f[:, ::-1] if flip else f) for f, flip in zip(frames, flips)]
        return torch.from_numpy(np.stack(flipped)).permute(0, 3, 1, 2).contiguous()

    return stack([d for d, _ in chosen]), stack([r for _, r in chosen])


def load_training_images(folders: list[Path], size: int, exclude: Collection[str] = frozenset()) -> list[tuple[str, np.ndarray]]:
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
        small = cv2.resize(
            pixels, (max(8, round(pixels.shape[1] * scale)), max(8, round(pixels.shape[0] * scale))), interpolation=cv2.INTER_AREA
        )
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
        patch = np.rot90(patch, int(rng.integers(0, 4)))
        if side < crop:
            patch = cv2.resize(np.ascontiguousarray(patch), (crop, crop), interpolation=cv2.INTER_LINEAR)
        batch.append(np.ascontiguousarray(patch))
    return torch.from_numpy(np.stack(batch)).permute(0, 3, 1, 2).contiguous()


def train_lowlight(
    data: list[Path],
    output: Path,
    config: LowlightTrainConfig,
    *,
    exclude: Collection[str] = frozenset(),
    pairs: Path | None = None,
    init: Path | None = None,
    resume: Path | None = None,
    device: str = "cpu",
    workers: int = 0,
    report: Callable[[int, dict], None] | None = None,
) -> TrainState:
    """Train (or resume) bdx's curve estimator; checkpoints to ``<output>.ckpt.pt``, weights to ``output``.

    ``pairs``: a pairs file for reference-supervised training (``data`` and ``exclude`` are then unused).
    ``init``: bdx curve weights to start from (their width, context size and global branch are kept).
    ``workers``: processes that synthesize batches ahead of the optimizer (0: this one, between steps).
    """
    check_run_settings(config)
    check_start(init, resume)
    if init is not None:
        loaded = load_model(init, "lowlight")
        if not isinstance(loaded.net, CurveNet):
            raise SettingError(f"{init.name}: not bdx curve weights ({loaded.architecture}); {{init}} needs a bdx low-light file")
        start = loaded.net
        config = replace(
            config,
            width=start.config.width,
            context_size=start.config.context_size,
            global_context=start.config.global_context,
            members=start.config.members,
            init=init.name,
        )
    net = CurveNet(
        CurveNetConfig(
            width=config.width,
            context_size=config.context_size,
            gamma=config.gamma,
            global_context=config.global_context,
            members=config.members,
        )
    )
    if init is not None:
        net.load_state_dict(start.state_dict())
    config = replace(config, pairs=pairs.name if pairs is not None else None)  # the objective this run trains
    if pairs is not None:
        sample, loss_fn, validate, extra = _pairs_objective(net, pairs, config)
    else:
        sample, loss_fn, validate, extra = _zero_reference_objective(net, data, config, exclude)
    settings = LoopSettings(
        steps=config.steps,
        lr=config.lr,
        validate_every=config.validate_every,
        checkpoint_every=config.checkpoint_every,
        seed=config.seed,
        minutes=config.minutes,
    )
    state = run_training(
        net,
        sample,
        loss_fn,
        settings,
        Path(str(output) + ".ckpt.pt"),
        validate=validate,
        resume=resume,
        device=device,
        workers=workers,
        report=report,
        config=asdict(config),
    )
    save_trained(state, output, config, **extra)
    return state


Objective = tuple[Callable, Callable, Callable | None, dict]  # batch sampler, loss, validation (None: no validation data), metadata


def _zero_reference_objective(net: CurveNet, data: list[Path], config: LowlightTrainConfig, exclude: Collection[str]) -> Objective:
    """The zero-reference losses on random crops of the images under ``data``."""
    loaded = load_training_images(data, config.context_size, exclude)
    train = [p for n, p in loaded if not is_validation(n, config.validation_fraction)]
    val = [p for n, p in loaded if is_validation(n, config.validation_fraction)]
    if not train:
        train, val = val, []
    crop = config.crop

    def sample(rng: np.random.Generator) -> torch.Tensor:
        return sample_images(train, config.batch_size, crop, rng)

    def loss_fn(model, batch: torch.Tensor) -> torch.Tensor:
        images = batch.to(next(net.parameters()).device)
        return zero_reference_loss(model, images, config, each_member=True)[0]

    def validate(model) -> dict:
        rng = np.random.default_rng(4321)
        images = sample_images(val, min(16, 2 * len(val)), crop, rng).to(next(net.parameters()).device)
        total, terms = zero_reference_loss(model, images, config)
        enhanced = apply_curves(images, model(images))
        return {
            "val_loss": float(total),
            **{f"val_{k}": v for k, v in terms.items()},
            "val_mean_in": float(images.mean()),
            "val_mean_out": float(enhanced.mean()),
        }

    return sample, loss_fn, validate if val else None, {"excluded_files": len(exclude)}


def _pairs_objective(net: CurveNet, pairs_file: Path, config: LowlightTrainConfig) -> Objective:
    """Reference-supervised training (see the module's docstring)."""
    loaded = load_pairs(pairs_file, config.frame_size)
    if len({d.shape for _, d, _ in loaded}) > 1:
        raise BdxError(f"{pairs_file}: reference-supervised training needs frames of one aspect ratio")
    train = [(d, r) for name, d, r in loaded if not is_validation(name, config.validation_fraction)]
    val = [(d, r) for name, d, r in loaded if is_validation(name, config.validation_fraction)]
    if not train:
        train, val = val, []

    def sample(rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        return sample_pairs(train, config.batch_size, rng)

    def loss_fn(model, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        dark, reference = batch
        target = next(net.parameters()).device
        return reference_loss(
            model, dark.to(target), reference.to(target), config.context_size, config.gamma, config.pair_loss, each_member=True
        )

    def validate(model) -> dict:
        errors = pair_errors(model, val, config.context_size, config.gamma)
        return {"val_loss": float(np.mean(errors)), "val_psnr": float(np.mean([-10 * np.log10(e) for e in errors]))}

    return sample, loss_fn, validate if val else None, {"pairs": len(loaded)}
