"""Training the LDR to HDR network from scene-linear references.

Each sample: a scene-linear reference (EXR, Radiance HDR, or a bracket merge),
a random exposure that puts a random high percentile (85th to 99.5th) of
luminance at the clip point, a random camera response from a realistic family
(or one fixed curve, for a known camera),
clipping, 8-bit quantization and (sometimes) JPEG. The target is the exposed
linear reference, on one of two scales (``target_scale``): ``exposure`` keeps the
exposure's own (1.0 = the level the camera curve was exposed for, which lies one to
eight times below its clip point depending on the curve); ``input`` scales each
image so its well-exposed pixels match the linearized input in the median, the
convention of ``ldr2hdr``'s output and the scale the benchmark fits, so the network
need not guess the camera's exposure. Loss: L1 in the mu-law domain on every
feedback iteration, plus an L1 term on mu-law gradients. The global branch sees
the whole exposed reference downscaled, as it does at inference.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Callable, Literal, get_args

import cv2
import numpy as np
import torch

from bdx.color import luminance, srgb_to_linear
from bdx.errors import BdxError, SettingError, SettingUsageError, problem_of
from bdx.hdr.models import HEADS, FeedbackConfig, FeedbackHDRNet, with_headroom
from bdx.hdr.tonemap import HEADROOM, Camera, random_camera, to_domain
from bdx.io import read_image
from bdx.metrics import CLIPPED, fit_scale, input_scale_ev, psnr_mu, trusted_pixels, well_exposed_pixels
from bdx.models import load_model
from bdx.training.data import check_reference_size, find_files, is_validation, read_pairs_list
from bdx.training.loop import LoopSettings, TrainState, check_run_settings, check_start, run_training, save_trained

HDR_SUFFIXES = {".exr", ".hdr"}
Supervise = Literal["all", "last"]  # which feedback iterations the loss sees
SUPERVISED: tuple[Supervise, ...] = get_args(Supervise)
TargetScale = Literal["exposure", "input"]  # the targets' scale (see the module's docstring)
TARGET_SCALES: tuple[TargetScale, ...] = get_args(TargetScale)


@dataclass
class HdrTrainConfig:
    """Settings of one run (recorded in the checkpoint and the weights' metadata)."""

    steps: int = 3000
    minutes: float | None = None  # a time budget: the run ends (and its schedule completes) by then, whatever the steps
    batch_size: int = 8
    crop: int = 128
    lr: float = 1e-3
    width: int = 32
    iterations: int = 4
    state_scale: int = 1
    supervise: Supervise = "all"  # "all": every iteration's estimate is in the loss (as FHDR); "last": only the final one
    camera: tuple[float, ...] | None = None  # (gamma, shoulder[, white]) of one fixed camera; None: a random one per sample
    init: str | None = None  # name of the weights the run started from
    jpeg_probability: float = 0.3
    gradient_weight: float = 0.5
    clipped_weight: float | None = None  # weight of an extra L1 term over the clipped pixels (hdr_loss; None: as the init, else 0)
    naive_weight: float | None = None  # weight of the term against doing worse than the naive curve (hdr_loss; None: as the init, else 0)
    plain_fraction: float | None = None  # share of plain sRGB / gamma hard-clip training cameras (None: FAMILY_SHARES)
    target_scale: TargetScale | None = None  # None: as the init, else "exposure"
    head: str | None = None  # output head (bdx.hdr.models.HEADS; None: the init's own, else curve); a new one starts anew
    histogram_bins: int | None = None  # the global branch reads the context's histogram (None: as the init, else 0)
    headroom: float | None = None  # the brightest output, x the clip point (None: as the init, else HEADROOM); targets are capped there
    pairs_fraction: float = 0.25  # share of samples that are a real camera frame against its reference (with pairs)
    augment: bool = True
    validation_fraction: float = 0.25
    validate_every: int = 250
    checkpoint_every: int = 250
    seed: int = 0


@dataclass
class Scene:
    name: str
    linear: np.ndarray  # (H, W, 3) float32, scene-linear, non-negative
    trusted: np.ndarray | None = None  # (H, W) bool: pixels clear of resampling ringing (None: all)
    frames: list[np.ndarray] = field(default_factory=list)  # real 8-bit camera frames of the scene, (H, W, 3) uint8


PAIR_FRAME_CLIPPED = 0.5  # a real frame with more clipped pixels than this teaches little
PAIR_FRAME_MEAN = 0.03  # nor one this dark (mean display value)


def load_hdr_pairs(pairs_file: Path) -> list[Scene]:
    """Real camera frames and the scene-linear reference each shows (a bracket's merge), from a JSON list of
    ``{"input": LDR file, "reference": HDR file}`` (paths relative to the list): one :class:`Scene` per reference,
    its usable frames attached (8-bit, the reference's size, at most half clipped and not black)."""
    scenes: dict[str, Scene] = {}
    for entry in read_pairs_list(pairs_file):
        reference = pairs_file.parent / entry["reference"]
        if entry["reference"] not in scenes:
            (scene,) = find_scenes([reference])
            scenes[entry["reference"]] = scene
        scene = scenes[entry["reference"]]
        try:
            frame = read_image(pairs_file.parent / entry["input"])
        except BdxError as exc:
            raise BdxError(f"{pairs_file}: {entry['input']}: {problem_of(exc)}") from None
        if frame.is_float or frame.pixels.shape[2] < 3 or frame.pixels.shape[:2] != scene.linear.shape[:2]:
            raise BdxError(f"{pairs_file}: {entry['input']}: needs an 8- or 16-bit RGB frame of its reference's size")
        codes = frame.pixels[..., :3] if frame.pixels.dtype == np.uint8 else (frame.pixels[..., :3] >> 8).astype(np.uint8)
        if (codes.max(axis=-1) >= 255).mean() <= PAIR_FRAME_CLIPPED and codes.mean() >= 255 * PAIR_FRAME_MEAN:
            scene.frames.append(np.ascontiguousarray(codes))
    return [scene for scene in scenes.values() if scene.frames]


KNOWN_SUFFIX = ".known.png"
"""Beside a reference ``x.exr``, ``x.known.png`` (8-bit grey, the reference's size) marks with 0 the pixels whose
truth is only a lower bound (a bracket merge's pixels saturated in every frame): inputs are rendered from them,
losses and benchmarks leave them out."""


def known_truth_path(reference: Path) -> Path:
    """Where the map of ``reference``'s known pixels lies (:data:`KNOWN_SUFFIX`)."""
    return reference.with_name(reference.stem + KNOWN_SUFFIX)


def write_known_truth(reference: Path, known: np.ndarray) -> None:
    """Write ``known`` ((H, W) bool) as ``reference``'s map of known pixels (:data:`KNOWN_SUFFIX`)."""
    from bdx.io import Image, write_image

    write_image(known_truth_path(reference), Image(np.where(known, 255, 0).astype(np.uint8)[..., None]), fmt="png", bits=8)


def read_known_truth(reference: Path, shape: tuple[int, int]) -> np.ndarray | None:
    """(H, W) bool: the pixels of ``reference`` (of ``shape``) whose truth is known, from its map
    (:data:`KNOWN_SUFFIX`); None where it has none."""
    path = known_truth_path(reference)
    if not path.is_file():
        return None
    known = read_image(path).pixels
    if known.shape[:2] != tuple(shape):
        raise BdxError(f"{path}: {known.shape[1]}x{known.shape[0]}, not its reference's {shape[1]}x{shape[0]}")
    return known[..., 0] > 0


def reference_trust(reference: Path, raw: np.ndarray) -> np.ndarray:
    """(H, W) bool: the pixels of ``reference`` (its pixels ``raw``, negative values not yet clipped) to score and
    train on: clear of resampling ringing (:func:`bdx.metrics.trusted_pixels`) and known, not a lower bound
    (its map, :data:`KNOWN_SUFFIX`, where it has one)."""
    trusted = trusted_pixels(raw)
    known = read_known_truth(reference, raw.shape[:2])
    return trusted if known is None else trusted & known


def find_scenes(folders: list[Path]) -> list[Scene]:
    """Every EXR / Radiance file under the folders, negative values clamped to 0, and its trusted pixels
    (:func:`reference_trust`): the loss leaves the others out."""
    files = find_files(folders, HDR_SUFFIXES)
    scenes = []
    for path in files:
        image = read_image(path)
        check_reference_size(path, image.height, image.width)
        raw = np.nan_to_num(image.pixels.astype(np.float32))
        if raw.shape[2] == 1:
            raw = np.repeat(raw, 3, axis=2)
        raw = raw[..., :3]
        trusted = reference_trust(path, raw)
        pixels = np.ascontiguousarray(np.clip(raw, 0, None))
        scenes.append(Scene(f"{path.parent.name}/{path.name}", pixels, None if trusted.all() else trusted))
    if not scenes:
        raise BdxError("no HDR references (.exr, .hdr) found")
    return scenes


def expose(linear: np.ndarray, percentile: float) -> float:
    """The exposure that puts ``percentile`` of luminance at the clip point."""
    level = float(np.percentile(luminance(linear), percentile))
    return 1.0 / max(level, 1e-6)


def render_ldr(linear: np.ndarray, camera: Camera, jpeg_quality: int | None) -> np.ndarray:
    """Clip, apply the camera curve, quantize to 8 bits (and JPEG); display values in [0, 1]."""
    display = camera(linear)
    codes = np.clip(np.rint(display * 255), 0, 255).astype(np.uint8)
    if jpeg_quality is not None:
        ok, data = cv2.imencode(".jpg", codes[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, jpeg_quality])
        decoded = cv2.imdecode(data, cv2.IMREAD_COLOR) if ok else None
        if decoded is not None:
            codes = decoded[..., ::-1]
    return codes.astype(np.float32) / 255


def fixed_camera(config: HdrTrainConfig) -> Camera | None:
    """The run's one known camera (gamma family), or None for random cameras."""
    return Camera("gamma", tuple(config.camera)) if config.camera else None


def context_image(display: np.ndarray, size: int) -> np.ndarray:
    """The copy the global branch sees: ``size`` px on the long side."""
    scale = min(1.0, size / max(display.shape[:2]))
    target = (max(1, round(display.shape[1] * scale)), max(1, round(display.shape[0] * scale)))
    return cv2.resize(display, target, interpolation=cv2.INTER_AREA)


def sample_pair(scene: Scene, config: HdrTrainConfig, rng: np.random.Generator, context_size: int):
    """(LDR crop, linear target, trusted mask, context image) from one of the scene's real camera frames: the
    camera's own curve, noise and JPEG; the target on the input's scale (nothing else says what exposure it had)."""
    frame = scene.frames[rng.integers(len(scene.frames))].astype(np.float32) / 255
    linear, trusted = scene.linear, None if scene.trusted is None else scene.trusted.astype(np.float32)
    context = context_image(frame, context_size)
    stops = input_scale_ev(context_image(linear, context_size), context)
    side = min(config.crop, linear.shape[0], linear.shape[1]) // 4 * 4
    y = rng.integers(0, linear.shape[0] - side + 1)
    x = rng.integers(0, linear.shape[1] - side + 1)
    ldr, target = (
        frame[y : y + side, x : x + side],
        linear[y : y + side, x : x + side] * np.float32(2.0**stops if np.isfinite(stops) else 1.0),
    )
    mask = np.ones((side, side), np.float32) if trusted is None else trusted[y : y + side, x : x + side]
    return ldr, target, mask, context


def sample_batch(
    scenes: list[Scene], config: HdrTrainConfig, rng: np.random.Generator, context_size: int, paired: list[Scene] | None = None
):
    """(LDR crops, linear targets, per-sample context images) for one step: rendered through random cameras, and a
    share (``config.pairs_fraction``) from the real camera frames of ``paired`` scenes."""
    inputs, targets, contexts = [], [], []
    for _ in range(config.batch_size):
        if paired and rng.random() < config.pairs_fraction:
            ldr, target, mask, context = sample_pair(paired[rng.integers(len(paired))], config, rng, context_size)
        else:
            ldr, target, mask, context = sample_rendered(scenes[rng.integers(len(scenes))], config, rng, context_size)
        if ldr.shape[0] < config.crop:
            ldr, target, mask = (cv2.resize(a, (config.crop, config.crop), interpolation=cv2.INTER_LINEAR) for a in (ldr, target, mask))
        if rng.random() < 0.5:
            ldr, target, mask = ldr[:, ::-1], target[:, ::-1], mask[:, ::-1]
        inputs.append(np.ascontiguousarray(ldr))
        # untrusted truth is NaN: hdr_loss leaves it out
        capped = np.minimum(target, config.headroom or HEADROOM)
        targets.append(np.ascontiguousarray(np.where(mask[..., None] >= 1.0, capped, np.float32(np.nan))))
        contexts.append(context)
    to_tensor = lambda a: torch.from_numpy(np.stack(a)).permute(0, 3, 1, 2).contiguous()  # noqa: E731
    return to_tensor(inputs), to_tensor(targets), contexts


def sample_rendered(chosen: Scene, config: HdrTrainConfig, rng: np.random.Generator, context_size: int):
    """One square crop of ``chosen`` rendered through a random camera: (LDR, linear target on the training scale,
    trust mask, the whole scene's context image). The crop is at most ``config.crop`` a side (smaller scenes give
    smaller crops)."""
    scene = chosen.linear
    trusted = None if chosen.trusted is None else chosen.trusted.astype(np.float32)
    if config.augment:  # more scenes out of few: random scale and white balance
        scale = rng.uniform(0.35, 1.0)
        if scale < 0.95 and min(scene.shape[:2]) * scale >= config.crop:
            size = (round(scene.shape[1] * scale), round(scene.shape[0] * scale))
            scene = cv2.resize(scene, size, interpolation=cv2.INTER_AREA)
            if trusted is not None:
                trusted = cv2.resize(trusted, size, interpolation=cv2.INTER_AREA)
        scene = scene * rng.uniform(0.8, 1.25, 3).astype(np.float32)
    exposure = expose(scene, rng.uniform(85, 99.5))
    camera = fixed_camera(config) or random_camera(rng, config.plain_fraction)
    quality = int(rng.integers(70, 96)) if rng.random() < config.jpeg_probability else None
    exposed = scene * np.float32(exposure)
    small = context_image(exposed, context_size)
    context = render_ldr(small, camera, None)
    stops = input_scale_ev(small, context) if config.target_scale == "input" else 0.0
    factor = np.float32(2.0**stops if np.isfinite(stops) else 1.0)
    side = min(config.crop, scene.shape[0], scene.shape[1]) // 4 * 4
    y = rng.integers(0, scene.shape[0] - side + 1)
    x = rng.integers(0, scene.shape[1] - side + 1)
    target = exposed[y : y + side, x : x + side]
    mask = np.ones((side, side), np.float32) if trusted is None else trusted[y : y + side, x : x + side]
    return render_ldr(target, camera, quality), target * factor, mask, context


def context_tensors(contexts: list[np.ndarray], device) -> list[torch.Tensor]:
    """Each sample's context image as a (1, 3, h, w) tensor (they differ in size)."""
    return [torch.from_numpy(c).permute(2, 0, 1)[None].to(device) for c in contexts]


NAIVE_FLOOR = 2e-3  # mu-law L1 added to both errors of the naive-curve term: below it two crops count as equally good


def hdr_loss(
    outputs: list[torch.Tensor],
    target: torch.Tensor,
    gradient_weight: float,
    clipped: torch.Tensor | None = None,
    clipped_weight: float = 0.0,
    naive: torch.Tensor | None = None,
    naive_weight: float = 0.0,
    headroom: float = HEADROOM,
) -> torch.Tensor:
    """Mean over iterations of L1 in the mu-law domain plus ``gradient_weight`` x L1 of mu-law gradients; with
    ``clipped`` (N, 1, H, W: the input's clipped pixels) plus ``clipped_weight`` x the L1 over those pixels alone,
    so highlights weigh in the loss whatever share of the crop they cover; with ``naive`` (the input linearized by
    the sRGB curve, on the target's scale) plus ``naive_weight`` x the mean over samples of how far a sample's L1 is
    above the naive curve's, as a log ratio (0 where it is not above): a relative penalty, like the dB of the
    benchmark, that weighs most where the naive curve is nearly exact. Target pixels that are NaN (untrusted
    truth) are left out of every term. Outputs are in the domain of :func:`bdx.hdr.tonemap.to_domain` over
    ``headroom``."""
    trusted = torch.isfinite(target).all(1, keepdim=True).float()  # NaN marks truth not to learn from
    reference = to_domain(torch.nan_to_num(target), headroom)
    total = reference.new_zeros(())
    weights = clipped.float() * trusted if clipped is not None and clipped_weight > 0 else None
    channels = reference.shape[1]
    naive_error = None
    if naive is not None and naive_weight > 0:
        naive_error = _per_sample_mean((to_domain(naive, headroom) - reference).abs(), trusted)
    for out in outputs:
        error = (out - reference).abs()
        total = total + (error * trusted).sum() / (trusted.sum() * channels).clamp_min(1.0)
        for dim in (2, 3):
            both = trusted.narrow(dim, 1, trusted.shape[dim] - 1) * trusted.narrow(dim, 0, trusted.shape[dim] - 1)
            step_error = (out.diff(dim=dim) - reference.diff(dim=dim)).abs() * both
            total = total + gradient_weight * step_error.sum() / (both.sum() * channels).clamp_min(1.0)
        if weights is not None:
            total = total + clipped_weight * (error * weights).sum() / (weights.sum() * channels).clamp_min(1.0)
        if naive_error is not None:
            ratio = (_per_sample_mean(error, trusted) + NAIVE_FLOOR) / (naive_error + NAIVE_FLOOR)
            total = total + naive_weight * ratio.log().clamp_min(0.0).mean()
    return total / len(outputs)


def _per_sample_mean(error: torch.Tensor, trusted: torch.Tensor) -> torch.Tensor:
    """Mean of each sample of (N, C, H, W) ``error`` over its trusted pixels ((N, 1, H, W) weights), (N,)."""
    counted = (trusted.sum((1, 2, 3)) * error.shape[1]).clamp_min(1.0)
    return (error * trusted).sum((1, 2, 3)) / counted


def clipped_mask(ldr: torch.Tensor) -> torch.Tensor:
    """Pixels of an LDR batch (N, 3, H, W) in [0, 1] with any channel at the top 8-bit code, (N, 1, H, W)."""
    return ldr.amax(1, keepdim=True) >= CLIPPED


@dataclass
class HeldoutCase:
    """One evaluation image: a held-out scene exposed so a given luminance percentile reaches the clip point."""

    scene: str
    percentile: float
    target: np.ndarray  # (H, W, 3) scene-linear reference, capped at the network's headroom
    ldr: np.ndarray  # (H, W, 3) the 8-bit rendering through a random camera curve, in [0, 1]
    family: str = ""  # the camera curve's family (bdx.hdr.tonemap.Camera.family)


def heldout_cases(
    scenes: list[Scene], seed: int, cameras: int = 1, camera: Camera | None = None, headroom: float = HEADROOM
) -> list[HeldoutCase]:
    """Each scene at the 90th and 98th percentile exposures, cropped to a multiple of 4, through ``cameras``
    fixed-seed camera curves each (more curves average out how well each one happens to be guessed), or
    through the one ``camera`` when given."""
    rng = np.random.default_rng(seed)
    cases = []
    for scene in scenes:
        for percentile in (90.0, 98.0):
            exposed = scene.linear * np.float32(expose(scene.linear, percentile))
            h, w = exposed.shape[0] // 4 * 4, exposed.shape[1] // 4 * 4
            exposed = exposed[:h, :w]
            target = np.minimum(exposed, headroom)  # one reference for every camera's rendering
            if scene.trusted is not None:  # untrusted truth is NaN: left out of the scores
                target = np.where(scene.trusted[:h, :w, None], target, np.float32(np.nan))
            for _ in range(1 if camera else cameras):  # one fixed curve renders every exposure once
                curve = camera or random_camera(rng)
                cases.append(HeldoutCase(scene.name, percentile, target, render_ldr(exposed, curve, None), curve.family))
    return cases


def predict_iterations(net: FeedbackHDRNet, ldr: np.ndarray, context_size: int) -> list[np.ndarray]:
    """Scene-linear (H, W, 3) predictions after every feedback iteration, for a whole (untiled) image
    (padded to the network's multiple the way the tiler pads borders)."""
    from bdx.tiling import pad_image

    device = next(net.parameters()).device
    height, width = ldr.shape[:2]
    x = torch.from_numpy(pad_image(ldr, 0, -height % net.multiple, 0, -width % net.multiple)).permute(2, 0, 1)[None]
    with torch.inference_mode():
        context = net.global_features(torch.from_numpy(context_image(ldr, context_size)).permute(2, 0, 1)[None].to(device))
        outputs = net(x.to(device), context, all_iterations=True)
    return [net.to_linear(out)[0, :, :height, :width].permute(1, 2, 0).cpu().numpy() for out in outputs]


def validation_scores(net: FeedbackHDRNet, scenes: list[Scene], context_size: int, camera: Camera | None = None) -> dict[str, float]:
    """Mean PSNR-mu on fixed exposures of the held-out scenes (through ``camera`` when given): the network
    (last and first iteration) and the classical baseline, each prediction's scale fitted to the reference over
    the input's well-exposed pixels, as the benchmark does; and the network's mean per camera family
    (``val_psnr_mu_<family>``), since families pull a network different ways."""
    from bdx.hdr.classical import expand_highlights

    scores: dict[str, list[float]] = {"val_psnr_mu": [], "val_psnr_mu_1iter": [], "val_psnr_mu_classical": []}
    for case in heldout_cases(scenes, seed=99, camera=camera, headroom=net.config.headroom):
        outputs = predict_iterations(net, case.ldr, context_size)
        trusted = np.isfinite(case.target).all(axis=-1)
        target, fit = case.target[trusted], well_exposed_pixels(case.ldr)[trusted]
        scored = lambda prediction: psnr_mu(fit_scale(prediction[trusted], target, fit), target)  # noqa: E731
        scores["val_psnr_mu"].append(scored(outputs[-1]))
        scores.setdefault(f"val_psnr_mu_{case.family}", []).append(scores["val_psnr_mu"][-1])
        scores["val_psnr_mu_1iter"].append(scored(outputs[0]))
        scores["val_psnr_mu_classical"].append(scored(expand_highlights(case.ldr)))
    return {k: float(np.mean(v)) for k, v in scores.items() if v}


def load_grown(net: FeedbackHDRNet, start: FeedbackHDRNet) -> None:
    """``start``'s weights into ``net``, which may have another head (it keeps its own, zero: the naive curve) or
    a histogram input to its global branch (its new inputs start with zero weight): the result at the start is
    ``start``'s trunk unchanged."""
    own = net.state_dict()
    for name, value in start.state_dict().items():
        if name.startswith("reconstruct.") and net.config.head != start.config.head:
            continue
        if name == "global_branch.to_film.weight" and own[name].shape != value.shape:
            own[name] = torch.zeros_like(own[name])
            own[name][:, : value.shape[1]] = value
            continue
        own[name] = value
    net.load_state_dict(own)


def train_hdr(
    data: list[Path],
    output: Path,
    config: HdrTrainConfig,
    *,
    init: Path | None = None,
    resume: Path | None = None,
    pairs: Path | None = None,
    device: str = "cpu",
    workers: int = 0,
    report: Callable[[int, dict], None] | None = None,
) -> TrainState:
    """Train (or resume) the HDR network; checkpoints to ``<output>.ckpt.pt``, weights to ``output``.

    ``init``: weights to start from (fine-tuning); the network keeps their width, iterations and state scale.
    ``pairs``: real camera frames against their references (:func:`load_hdr_pairs`), a ``config.pairs_fraction``
    share of the samples; those of references on the validation side of the split are left out.
    ``workers``: processes that synthesize batches ahead of the optimizer (0: this one, between steps).
    """
    check_run_settings(config)
    check_start(init, resume)
    start = None
    trained: dict = {}  # the init's own training settings, which a fine-tune keeps unless told otherwise
    if init is not None:
        model = load_model(init, "hdr")
        loaded = model.net
        if not isinstance(loaded, FeedbackHDRNet):
            raise SettingError(f"{init.name}: not bdx HDR weights; {{init}} needs a bdx HDR file")
        start = loaded
        trained = model.metadata.get("train_config") or {}
        config = replace(
            config, width=start.config.width, iterations=start.config.iterations, state_scale=start.config.state_scale, init=init.name
        )
    config = replace(
        config,
        target_scale=config.target_scale or trained.get("target_scale", "exposure"),
        clipped_weight=config.clipped_weight if config.clipped_weight is not None else float(trained.get("clipped_weight", 0.0)),
        naive_weight=config.naive_weight if config.naive_weight is not None else float(trained.get("naive_weight", 0.0)),
    )
    clipped_weight = float(config.clipped_weight or 0.0)
    naive_weight = float(config.naive_weight or 0.0)
    if config.supervise not in SUPERVISED:
        raise BdxError(f"supervise must be one of {', '.join(SUPERVISED)}, not {config.supervise!r}")
    if config.target_scale not in TARGET_SCALES:
        raise BdxError(f"target_scale must be one of {', '.join(TARGET_SCALES)}, not {config.target_scale!r}")
    if config.head is not None and config.head not in HEADS:
        raise BdxError(f"head must be one of {', '.join(HEADS)}, not {config.head!r}")
    if pairs is not None and config.target_scale != "input":
        raise SettingUsageError("real frames ({pairs}) train on the input's scale: give {target_scale} input")
    if naive_weight > 0 and config.target_scale != "input":
        raise SettingUsageError("{naive_weight} compares with the naive curve on the input's scale: give {target_scale} input")
    scenes = find_scenes(data)
    paired = [s for s in load_hdr_pairs(pairs) if not is_validation(s.name, config.validation_fraction)] if pairs else []
    if pairs is not None and not paired:
        raise BdxError(f"{pairs}: no usable frame of a reference on the training side of the split")
    train = [s for s in scenes if not is_validation(s.name, config.validation_fraction)]
    val = [s for s in scenes if is_validation(s.name, config.validation_fraction)]
    if not train:
        train, val = val, []
    shape = FeedbackConfig(width=config.width, iterations=config.iterations, state_scale=config.state_scale)
    base = start.config if start is not None else shape
    bins = base.histogram_bins if config.histogram_bins is None else config.histogram_bins
    head = config.head or (base.head if start is not None else "curve")
    headroom = float(config.headroom or base.headroom)
    config = replace(config, head=head, histogram_bins=bins, headroom=headroom)  # recorded as built
    net = FeedbackHDRNet(replace(base, head=head, histogram_bins=bins))
    if start is not None:
        load_grown(net, start)
    if headroom != net.config.headroom:
        net = with_headroom(net, headroom)  # the start's outputs unchanged below its own headroom
    context_size = net.config.context_size

    def sample(rng: np.random.Generator):
        return sample_batch(train, config, rng, context_size, paired)

    def loss_fn(model, batch) -> torch.Tensor:
        x, target, contexts = batch
        device_ = next(net.parameters()).device
        x = x.to(device_)
        # context images go through forward, so DDP also synchronises the global branch's gradients
        outputs = model(x, context_images=context_tensors(contexts, device_), all_iterations=True)
        supervised = outputs if config.supervise == "all" else outputs[-1:]
        clipped = clipped_mask(x) if clipped_weight > 0 else None
        naive = srgb_to_linear(x) if naive_weight > 0 else None
        return hdr_loss(
            [o.float() for o in supervised],
            target.to(device_),
            config.gradient_weight,
            clipped,
            clipped_weight,
            naive,
            naive_weight,
            headroom,
        )

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
        validate=(lambda n: validation_scores(n, val, context_size, fixed_camera(config))) if val else None,
        resume=resume,
        device=device,
        workers=workers,
        report=report,
        config=asdict(config),
    )
    save_trained(state, output, config, train_files=[s.name for s in train], validation_files=[s.name for s in val])
    return state
