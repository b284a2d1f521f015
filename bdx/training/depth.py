"""Training the learned dequantizer from folders of high-precision references.

Pairs are synthesized on the fly: a random crop of a reference becomes a truth through
a realistic pipeline (:mod:`bdx.training.pipeline`: camera curves and clipping for
scene-linear references, tone jitter for display ones, sensor noise and sharpening that
belong to the truth) and is quantized to a random depth (8 bits for a set share of the
crops, else 3 to 10), 8-bit copies sometimes through JPEG. References are 16-bit images
as they are, 8-bit photos of at least 1 MP box-averaged 4x4 (16 samples per pixel), and
float images (EXR, Radiance) kept scene-linear. Whole files are held out for validation.
From 7 bits up the loss leaves out the end codes (0 and the top level), which inference
keeps at the bin centre.
With the contour prior, each crop is quantized with ``prior_context`` pixels of
surrounding context, so the contour offsets near its border see what they would
see inside a whole image.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Callable, cast

import cv2
import numpy as np
import torch

from bdx.color import scene_linear
from bdx.dequant.learned import DequantNet, DequantNetConfig, Prior, contour_prior, dequantize_levels, grow_from, level_grid, offset_reach
from bdx.errors import BdxError, SettingUsageError
from bdx.io import IMAGE_EXTENSIONS, RAW_EXTENSIONS, read_image, to_float
from bdx.models import load_model
from bdx.quantization import end_bins_pinned, max_level
from bdx.training.data import check_reference_size, find_files, split_by_name
from bdx.training.loop import LoopSettings, TrainState, check_run_settings, check_start, read_checkpoint, run_training, save_trained
from bdx.training.pipeline import PipelineSettings, jpeg_round_trip, render_truth

MIN_PHOTO_PIXELS = 1_000_000
TARGET_LIMIT = 0.95  # training targets lie within this share of the offsets' reach (tanh's input stays below 1.9)
DEFAULT_WIDTHS = (32, 64)  # the shipped network's size (depth-contour-gated-v9)
DEFAULT_BLOCKS = (2, 1)
DEFAULT_PRIOR: Prior = "contour-l1-3"  # the shipped network's prior
DEFAULT_HEAD_KERNEL = 1  # the shipped network's head


@dataclass
class DepthTrainConfig:
    """Settings of one training run (all recorded in the checkpoint and the weights' metadata)."""

    steps: int = 2000
    minutes: float | None = None  # a time budget: the run ends (and its schedule completes) by then, whatever the steps
    batch_size: int = 16
    crop: int = 128
    lr: float = 2e-3
    min_bits: int = 3
    max_bits: int = 10
    eight_bit_fraction: float = 0.35  # share of crops quantized to 8 bits (the rest: uniform from min_bits to max_bits)
    noise_probability: float = 0.0  # noise added to the input only (the truth stays clean: teaches denoising)
    dither_probability: float = 0.0
    jpeg_probability: float = 0.15  # of 8-bit crops
    truth_noise_probability: float = 0.5  # sensor-like noise that is part of the truth
    sharpen_probability: float = 0.2
    clip_probability: float = 0.25
    tone_probability: float = 0.3
    validation_fraction: float = 0.15
    validate_every: int = 200
    checkpoint_every: int = 200
    seed: int = 0
    widths: tuple[int, ...] | None = None  # per level; None: the checkpoint's (--resume), the start weights' (--init), else DEFAULT_WIDTHS
    blocks: tuple[int, ...] | None = None  # None: likewise, else DEFAULT_BLOCKS
    prior: Prior | None = None  # None: like --resume / --init, else DEFAULT_PRIOR
    gate: bool | None = None  # offsets scaled by a predicted confidence; None: like --resume / --init, else True
    norm: bool | None = None  # per-pixel normalised residual branches; None: like --resume / --init, else False
    gate_limit: float | None = None  # gate logits clamped to +-gate_limit (0: unbounded); None: likewise, else 0
    tone_head: bool | None = None  # a predicted tone per block interpolated as the prior; None: likewise, else False
    head_kernel: int | None = None  # 1 or 3; None: like --resume / --init, else DEFAULT_HEAD_KERNEL
    prior_context: int = 32  # pixels of context around each crop when computing the prior
    synthetic_fraction: float = 0.0  # share of crops replaced by noise-free smooth synthetic fields
    upscale_fraction: float = 0.0  # share of crops cut from a reference enlarged 2-4x (smooth, like a CG render)
    balance_folders: bool = False  # every --data folder gives the same share of crops (else: in proportion to pixels)
    init: str | None = None  # weights file the run started from (fine-tuning), by name


@dataclass
class Batch:
    """Synthesized training pairs: bin centres, references, bits per sample and (with a prior) prior offsets."""

    centres: torch.Tensor
    targets: torch.Tensor
    bits: list[int]
    prior: torch.Tensor | None = None

    def to(self, device: torch.device) -> "Batch":
        prior = None if self.prior is None else self.prior.to(device)
        return Batch(self.centres.to(device), self.targets.to(device), self.bits, prior)


@dataclass
class Reference:
    name: str
    pixels: np.ndarray  # (H, W, 3) float32: display values in [0, 1], or scene-linear with median grey at 1
    source: int = 0  # which --data folder it came from
    linear: bool = False


def reference_from_file(path: Path) -> Reference | None:
    """A high-precision reference from an image file, or None if the file cannot serve as one (an unreadable
    file's error names it)."""
    image = read_image(path)
    if image.is_float and not image.linear:  # a float TIFF holds display values: its light, as an EXR holds it
        image = scene_linear(image)
    linear = image.is_float
    if linear:
        radiance = np.clip(image.pixels, 0, None)
        pixels = radiance / (float(np.median(radiance.mean(axis=-1))) or 1.0)
    elif image.container_bits == 16 and not image.significant_bits:
        pixels = to_float(image.pixels)
    elif image.width * image.height >= MIN_PHOTO_PIXELS:
        small = (image.width // 4, image.height // 4)
        pixels = cv2.resize(to_float(image.pixels), small, interpolation=cv2.INTER_AREA)
    else:
        return None
    check_reference_size(path, *pixels.shape[:2])
    if pixels.ndim == 2 or pixels.shape[-1] == 1:
        pixels = np.repeat(pixels.reshape(pixels.shape[0], pixels.shape[1], 1), 3, axis=-1)
    return Reference(path.name, np.ascontiguousarray(pixels, dtype=np.float32), linear=linear)


def find_references(folders: list[Path]) -> list[Path]:
    """Every image file under the folders, sorted (camera RAW excluded)."""
    return sorted(find_files(folders, IMAGE_EXTENSIONS - RAW_EXTENSIONS))


def load_references(data: list[Path]) -> list[Reference]:
    """Every usable reference in the ``data`` folders, each tagged with its folder's index, in the order of
    their resolved paths: the validation crops are drawn in this order, so ``../data`` and ``/abs/data``
    give the same figures."""
    sources = {path: source for source, folder in enumerate(data) for path in find_references([folder])}
    references, skipped = [], []
    for path in sorted(sources, key=lambda p: p.resolve()):
        reference = reference_from_file(path)
        if reference is None:
            skipped.append(path.name)
        else:
            references.append(replace(reference, source=sources[path]))
    if not references and skipped:
        listed = ", ".join(skipped[:3]) + (f" and {len(skipped) - 3} more" if len(skipped) > 3 else "")
        raise BdxError(
            f"no usable reference image: {listed} {'holds' if len(skipped) == 1 else 'hold'} fewer than 16 bits and "
            f"{'has' if len(skipped) == 1 else 'have'} fewer than {MIN_PHOTO_PIXELS:,} pixels "
            "(such photos serve as references only box-averaged 4x4; give 16-bit or float files, or larger photos)"
        )
    return references


def split_references(references: list[Reference], fraction: float) -> tuple[list[Reference], list[Reference]]:
    """Training and validation references; at least one of each when there are two or more files, and a lone
    file trains without validation whatever its name."""
    train, val = split_by_name(references, lambda r: r.name, fraction)
    if not train:
        raise BdxError("need at least one usable reference image for training")
    return train, val


def sample_batch(references: list[Reference], config: DepthTrainConfig, rng: np.random.Generator) -> Batch:
    """One synthesized batch of ``config.crop``-pixel crops."""
    weights = sampling_weights(references, config.balance_folders)
    with_prior = config.prior != "none"  # None (not chosen yet) is the default, DEFAULT_PRIOR
    margin = config.prior_context if with_prior else 0
    size = config.crop + 2 * margin
    settings = pipeline_settings(config)
    rendered = replace(settings, noise_probability=0.0, sharpen_probability=0.0, clip_probability=0.0)  # smooth, unclipped
    multiple = grid_of(config)
    crops, centres, bits_list = [], [], []
    for _ in range(config.batch_size):
        linear, synthetic = False, rng.random() < config.synthetic_fraction
        if synthetic:
            ref = smooth_field(size, rng)
        else:
            reference = references[rng.choice(len(references), p=weights)]
            ref, linear = reference.pixels, reference.linear
            if rng.random() < config.upscale_fraction:
                ref = enlarged_region(ref, size, rng)
        crop = min(size, ref.shape[0], ref.shape[1]) // multiple * multiple
        y = rng.integers(0, ref.shape[0] - crop + 1)
        x = rng.integers(0, ref.shape[1] - crop + 1)
        patch = ref[y : y + crop, x : x + crop]
        if rng.random() < 0.5:
            patch = patch[:, ::-1]
        patch = np.ascontiguousarray(np.rot90(patch, int(rng.integers(0, 4))))
        patch = np.pad(patch, ((0, size - crop),) * 2 + ((0, 0),), mode="reflect")
        truth = render_truth(patch, linear, rendered if synthetic else settings, rng)
        bits = 8 if rng.random() < config.eight_bit_fraction else int(rng.integers(config.min_bits, config.max_bits + 1))
        centres.append(degrade(truth, bits, config, rng))
        crops.append(truth)
        bits_list.append(bits)
    to_tensor = lambda a: torch.from_numpy(np.stack(a).astype(np.float32)).permute(0, 3, 1, 2)  # noqa: E731
    inner = (slice(None), slice(None), slice(margin, margin + config.crop), slice(margin, margin + config.crop))
    batch = Batch(to_tensor(centres)[inner], to_tensor(crops)[inner], bits_list)
    if with_prior:
        levels = np.stack([np.rint(c * max_level(b)).astype(np.int32) for c, b in zip(centres, bits_list)])
        steps = [1.0 / max_level(b) for b in bits_list]
        batch.prior = contour_prior(levels.transpose(0, 3, 1, 2), steps, prior=config.prior or DEFAULT_PRIOR, margin=margin)
    return batch


def grid_of(config: DepthTrainConfig) -> int:
    """The size grid of the network a config trains (:attr:`DequantNet.multiple`): crops are cut on it."""
    return level_grid(len(config.widths or DEFAULT_WIDTHS))


def pipeline_settings(config: DepthTrainConfig) -> PipelineSettings:
    """The truth pipeline's settings of a training config."""
    return PipelineSettings(
        noise_probability=config.truth_noise_probability,
        sharpen_probability=config.sharpen_probability,
        clip_probability=config.clip_probability,
        tone_probability=config.tone_probability,
    )


def sampling_weights(references: list[Reference], balance_folders: bool = False) -> np.ndarray:
    """Probability of drawing each reference: in proportion to its pixels, within its folder when
    ``balance_folders`` gives every folder the same share."""
    area = np.array([r.pixels.shape[0] * r.pixels.shape[1] for r in references], dtype=np.float64)
    if balance_folders:
        sources = np.array([r.source for r in references])
        for source in np.unique(sources):
            area[sources == source] /= area[sources == source].sum()
    return area / area.sum()


def enlarged_region(pixels: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
    """A random region of ``pixels`` enlarged 2 to 4 times (bicubic), at least ``size`` pixels wide where the
    image allows: content as smooth as a rendered frame's, with the image's own colours and shapes."""
    scale = rng.uniform(2.0, 4.0)
    source = min(math.ceil(size / scale) + 2, pixels.shape[0], pixels.shape[1])
    y = rng.integers(0, pixels.shape[0] - source + 1)
    x = rng.integers(0, pixels.shape[1] - source + 1)
    enlarged = round(source * scale)
    return cv2.resize(pixels[y : y + source, x : x + source], (enlarged, enlarged), interpolation=cv2.INTER_CUBIC)


def smooth_field(size: int, rng: np.random.Generator) -> np.ndarray:
    """A noise-free smooth (size, size, 3) image in [0, 1]: a random tilted ramp, a radial glow and a few wide
    Gaussian blobs, with a slightly different tone per channel (skies, vignettes, studio backdrops)."""
    y, x = np.mgrid[0:size, 0:size].astype(np.float32) / np.float32(size)
    angle = rng.uniform(0, 2 * np.pi)
    field = rng.uniform(0.05, 0.6) * (np.cos(angle) * x + np.sin(angle) * y)
    cy, cx = rng.uniform(-0.5, 1.5, 2)
    field = field + rng.uniform(0, 0.5) * np.exp(-((y - cy) ** 2 + (x - cx) ** 2) / rng.uniform(0.2, 2.0))
    for _ in range(rng.integers(0, 4)):
        by, bx = rng.uniform(0, 1, 2)
        field = field + rng.uniform(-0.2, 0.2) * np.exp(-((y - by) ** 2 + (x - bx) ** 2) / rng.uniform(0.02, 0.5))
    field = field - field.min()
    field = field / max(float(field.max()), 1e-6) * rng.uniform(0.05, 0.9) + rng.uniform(0.0, 0.1)
    tones = [np.clip(field, 0, 1) ** np.float32(rng.uniform(0.8, 1.25)) for _ in range(3)]
    return np.stack(tones, axis=-1).astype(np.float32)


def degrade(patch: np.ndarray, bits: int, config: DepthTrainConfig, rng: np.random.Generator) -> np.ndarray:
    """Bin centres of ``patch`` quantized to ``bits``, after optional noise or random dither; 8-bit samples may be
    JPEG-compressed (the network then sees the decoded 8-bit codes as levels)."""
    levels = max_level(bits)
    noisy = patch
    if rng.random() < config.noise_probability:
        noisy = patch + rng.normal(0, rng.uniform(0, 0.5) / levels, patch.shape).astype(np.float32)
    elif rng.random() < config.dither_probability:
        noisy = patch + rng.uniform(-0.5, 0.5, patch.shape).astype(np.float32) / levels
    quantized = np.clip(np.rint(noisy * levels), 0, levels)
    if bits == 8 and rng.random() < config.jpeg_probability:
        quantized = jpeg_round_trip(quantized, rng)
    return quantized / levels


def batch_loss(net, batch: Batch) -> torch.Tensor:
    """Mean squared error in units of each sample's quantization step (every depth counts alike), less the
    end codes of the depths whose ends inference keeps at the bin centre (:func:`end_bins_pinned`).

    The targets are first brought inside :data:`TARGET_LIMIT` of the offsets' reach: the output cannot leave the
    bins, a JPEG crop's truth, often several steps away, would otherwise dominate the gradient with errors no
    offset can reach, and a target at the reach itself would ask the offsets' tanh for an infinite input (the
    activations of a deep network grew without bound chasing clipped and JPEG pixels).
    """
    steps = [1.0 / max_level(b) for b in batch.bits]
    out = dequantize_levels(net, batch.centres, steps, batch.prior)
    scale = torch.tensor(steps, dtype=torch.float32, device=out.device).view(-1, 1, 1, 1)
    limit = offset_reach(scale) * TARGET_LIMIT
    targets = torch.minimum(torch.maximum(batch.targets, batch.centres - limit), batch.centres + limit)
    pinned = torch.tensor([end_bins_pinned(b, "centre") for b in batch.bits], device=out.device).view(-1, 1, 1, 1)
    inner = (~pinned | ((batch.centres > 0) & (batch.centres < 1))).float()
    return (((out - targets) / scale).pow(2) * inner).sum() / inner.sum().clamp(min=1.0)


def validation_gain(net: DequantNet, references: list[Reference], config: DepthTrainConfig) -> dict[str, float]:
    """Mean PSNR gain (dB) over the bin centre on fixed validation crops at 4, 6 and 8 bits, made by the training
    pipeline with a fixed seed (and, with a prior, the prior's own gain on the same crops)."""
    rng = np.random.default_rng(1234)
    result = {}
    with torch.no_grad():
        for bits in (4, 6, 8):
            gains, prior_gains = [], []
            for ref in references:
                fixed = DepthTrainConfig(
                    batch_size=4,
                    crop=128,
                    min_bits=bits,
                    max_bits=bits,
                    eight_bit_fraction=0.0,
                    prior=config.prior,
                    prior_context=config.prior_context,
                )
                batch = sample_batch([ref], fixed, rng)
                out = dequantize_levels(net, batch.centres, 1.0 / max_level(bits), batch.prior)
                mse_centre = ((batch.centres - batch.targets) ** 2).mean().item()
                gains.append(_gain_db(mse_centre, ((out - batch.targets) ** 2).mean().item()))
                if batch.prior is not None:
                    step = torch.tensor(1.0 / max_level(bits))
                    prior_out = batch.centres + offset_reach(step) * batch.prior
                    prior_gains.append(_gain_db(mse_centre, ((prior_out - batch.targets) ** 2).mean().item()))
            result[f"gain_db_{bits}bit"] = float(np.mean(gains)) if gains else float("nan")
            if prior_gains:
                result[f"prior_gain_db_{bits}bit"] = float(np.mean(prior_gains))
    return result


def _gain_db(mse_before: float, mse_after: float) -> float:
    return 10 * math.log10(max(mse_before, 1e-20) / max(mse_after, 1e-20))


def _with_network_size(config: DepthTrainConfig, start: DequantNet | None, resume: Path | None) -> DepthTrainConfig:
    """``config`` with its widths, blocks, gate, prior, norm, gate limit and tone head filled in where unset: from the
    checkpoint to resume, else from the weights to start from, else the defaults (a fresh network is gated and has the
    contour prior)."""
    widths, blocks, gate, prior, norm, gate_limit, tone_head, head_kernel = None, None, None, None, None, None, None, None
    if resume is not None:
        saved = read_checkpoint(resume).get("config") or {}
        widths, blocks, gate, prior = saved.get("widths"), saved.get("blocks"), saved.get("gate"), saved.get("prior")
        norm, gate_limit, tone_head = saved.get("norm"), saved.get("gate_limit"), saved.get("tone_head")
        head_kernel = saved.get("head_kernel", 3)  # a checkpoint from before the setting had a 3x3 head
    elif start is not None:
        widths, blocks, gate, prior = start.config.widths, start.config.blocks, start.config.gate, start.config.prior
        norm, gate_limit, tone_head = start.config.norm, start.config.gate_limit, start.config.tone_head
        head_kernel = start.config.head_kernel
    chosen_gate = config.gate if config.gate is not None else (True if gate is None and start is None else bool(gate))
    chosen_widths = tuple(config.widths or widths or DEFAULT_WIDTHS)
    chosen_blocks = tuple(config.blocks or blocks or DEFAULT_BLOCKS)
    if len(chosen_widths) != len(chosen_blocks):
        raise SettingUsageError(f"{{widths}} and {{blocks}} need one value per network level, not {chosen_widths} and {chosen_blocks}")
    if resume is not None:  # settings without weights of their own would load silently into a different network
        for name, given, saved_value, unset in (
            ("norm", config.norm, norm, False),
            ("gate_limit", config.gate_limit, gate_limit, 0.0),
            ("tone_head", config.tone_head, tone_head, False),
            ("head_kernel", config.head_kernel, head_kernel, 3),
        ):
            kept = saved_value if saved_value is not None else unset
            if given is not None and given != kept:
                raise SettingUsageError(f"{{{name}}} {given} differs from the checkpoint's ({kept}): a resumed run keeps its network")
    chosen_tone_head = bool(tone_head) if config.tone_head is None else config.tone_head
    chosen_prior = config.prior or prior or ("none" if chosen_tone_head else DEFAULT_PRIOR)
    if chosen_tone_head and chosen_prior != "none":
        raise SettingUsageError(f"{{tone_head}} is the network's own prior: it takes {{prior}} none, not {chosen_prior}")
    grid = level_grid(len(chosen_widths))
    if config.crop < grid:
        raise SettingUsageError(f"{{crop}} {config.crop} is smaller than the network's {grid}-pixel grid ({len(chosen_widths)} levels)")
    return replace(
        config,
        widths=chosen_widths,
        blocks=chosen_blocks,
        gate=chosen_gate,
        prior=chosen_prior,
        norm=bool(norm) if config.norm is None else config.norm,
        gate_limit=float(gate_limit or 0.0) if config.gate_limit is None else config.gate_limit,
        tone_head=chosen_tone_head,
        head_kernel=int(head_kernel or DEFAULT_HEAD_KERNEL) if config.head_kernel is None else config.head_kernel,
    )


def train_depth(
    data: list[Path],
    output: Path,
    config: DepthTrainConfig,
    *,
    resume: Path | None = None,
    init: Path | None = None,
    device: str = "cpu",
    workers: int = 0,
    report: Callable[[int, dict], None] | None = None,
) -> TrainState:
    """Train (or resume) the dequantizer; checkpoints to ``<output>.ckpt.pt``, weights to ``output``.

    ``init``: weights of the same architecture to start from (fine-tuning) instead of a fresh network.
    ``workers``: processes that synthesize batches ahead of the optimizer (0: this one, between steps).
    """
    check_run_settings(config)
    check_start(init, resume)
    train_refs, val_refs = split_references(load_references(data), config.validation_fraction)
    start = cast(DequantNet, load_model(init, "depth").net) if init is not None else None
    config = _with_network_size(config, start, resume)
    assert config.widths is not None and config.blocks is not None and config.gate is not None  # filled in above
    assert config.prior is not None
    net = DequantNet(
        DequantNetConfig(
            widths=tuple(config.widths),
            blocks=tuple(config.blocks),
            prior=config.prior,
            gate=config.gate,
            norm=bool(config.norm),
            gate_limit=float(config.gate_limit or 0.0),
            tone_head=bool(config.tone_head),
            head_kernel=int(config.head_kernel or DEFAULT_HEAD_KERNEL),
        )
    )
    if start is not None and init is not None:
        try:
            grow_from(net, start)  # the same network, or a narrower / shallower one
        except ValueError:
            raise BdxError(f"{init.name}: its network ({start.config}) does not fit in the one to train ({net.config})") from None
        config = replace(config, init=init.name)  # recorded in the checkpoint and the weights' metadata

    def sample(rng: np.random.Generator) -> Batch:
        return sample_batch(train_refs, config, rng)

    def loss_fn(model, batch: Batch) -> torch.Tensor:
        return batch_loss(model, batch.to(next(net.parameters()).device))

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
        validate=(lambda n: validation_gain(n, val_refs, config)) if val_refs else None,
        resume=resume,
        device=device,
        workers=workers,
        report=report,
        config=asdict(config),
    )
    save_trained(state, output, config, train_files=[r.name for r in train_refs], validation_files=[r.name for r in val_refs])
    return state
