"""``bdx train``: train bdx models from folders of images, degradations synthesized on the fly."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Callable, Mapping, Optional

import typer

from bdx.cli import app
from bdx.cli import options as opt
from bdx.cli.common import check_choice, check_path_option, check_range, check_weights_target, command_errors

train_app = typer.Typer(help="Train a model from folders of images (degradations synthesized on the fly).", no_args_is_help=True)
app.add_typer(train_app, name="train")


def _shipped_or(init: Path | None, task: str) -> Path | None:
    """``--init``: the word ``shipped`` stands for bdx's own weights for ``task``."""
    if init is not None and str(init) == "shipped":
        from bdx.assets import default_weights, has_default_weights
        from bdx.errors import BdxError

        if not has_default_weights(task):
            raise BdxError(f"--init shipped: this install holds no {task} weights (give --init FILE)")
        return default_weights(task)
    return init


def _levels(flag: str, value: str | None, least: int, most: int) -> tuple[int, ...] | None:
    """One whole number per network level from a comma-separated option (two levels at least), or None."""
    from bdx.errors import UsageError

    if value is None:
        return None
    try:
        numbers = tuple(int(part) for part in value.split(","))
    except ValueError:
        raise UsageError(f"{flag} takes comma-separated whole numbers (one per level), not {value!r}") from None
    if len(numbers) < 2 or min(numbers) < least or max(numbers) > most:
        raise UsageError(f"{flag} needs two levels or more, each from {least} to {most}: {value!r}")
    return numbers


def _given(ctx: typer.Context, renamed: Mapping[str, tuple[str, ...]] | None = None) -> set[str]:
    """The run settings chosen on the command line (or through the environment), by their names in the run's
    config (``renamed``: an option's config names where they differ); a resumed run keeps its checkpoint's others."""
    sources = {name: ctx.get_parameter_source(name) for name in ctx.params}
    chosen = {name for name, source in sources.items() if source is not None and source.name not in ("DEFAULT", "DEFAULT_MAP")}
    return {config_name for name in chosen for config_name in (renamed or {}).get(name, (name,))}


def data_paths(given: list[str]) -> list[Path]:
    """``--data`` values as paths; an empty one (an unset shell variable) is a usage error, not the working folder."""
    for value in given:
        check_path_option("--data", value)
    return [Path(value) for value in given]


@train_app.command(
    "depth",
    epilog="Example:  bdx train depth --data refs16/ --data photos/ -o depth.safetensors --steps 20000"
    "   ·   torchrun --nproc-per-node 2 -m bdx train depth --data photos/ -o d.safetensors",
)
def train_depth_command(
    ctx: typer.Context,
    data: Annotated[list[str], typer.Option(help="Reference images, folders or quoted globs (16-bit, >=1 MP photos, EXR); repeatable.")],
    output: opt.WeightsOutput = Path("depth.safetensors"),
    steps: opt.Steps = 2000,
    minutes: opt.Minutes = None,
    batch_size: Annotated[int, typer.Option(help="Crops per step (per process).")] = 16,
    crop: Annotated[int, typer.Option(help="Crop size in pixels (rounded down to a multiple of 8).")] = 128,
    lr: opt.LearningRate = 2e-3,
    prior: Annotated[
        Optional[str],
        typer.Option(
            help="contour-l1-3: refine the contour method's offsets, found with city-block distances and levels split into "
            "3 residue classes (the shipped model); contour-l1: the same with 4 classes (a third more of the prior's work); "
            "contour: 4 classes and Euclidean distances (twice that again); none: start from the bin centre. By default "
            "as --resume or --init, else contour-l1-3.",
            show_default=False,
        ),
    ] = None,
    synthetic_fraction: Annotated[
        float, typer.Option(help="Share of crops replaced by noise-free smooth synthetic fields (skies, backdrops).")
    ] = 0.0,
    upscale_fraction: Annotated[
        float, typer.Option(help="Share of crops cut from a reference enlarged 2-4x (smooth content, like a rendered frame).")
    ] = 0.0,
    balance_folders: Annotated[
        bool,
        typer.Option(metavar=opt.FLAG, help="Draw the same share of crops from every --data folder (default: in proportion to pixels)."),
    ] = False,
    eight_bit_fraction: Annotated[
        float, typer.Option(help="Share of crops quantized to 8 bits (the rest: a depth drawn from --bits).")
    ] = 0.35,
    bits: Annotated[tuple[int, int], typer.Option(metavar="MIN MAX", help="Smallest and largest depth of the other crops.")] = (3, 10),
    truth_noise_probability: Annotated[
        float,
        typer.Option(help="Share of crops whose truth gets sensor-like noise (part of the truth, as in a real photo's 8 bits)."),
    ] = 0.5,
    validate_every: opt.ValidateEvery = 200,
    checkpoint_every: opt.CheckpointEvery = 200,
    validation_fraction: Annotated[
        float, typer.Option(help="Share of files held out for validation (chosen by a hash of the file name).")
    ] = 0.15,
    widths: Annotated[
        Optional[str],
        typer.Option(
            metavar="W1,W2[,W3...]",
            help="Channels per level (1/4, 1/8, then each level half the resolution of the one above), comma-separated; "
            "by default those of --resume or --init, else 32,64 (the shipped network's).",
        ),
    ] = None,
    blocks: Annotated[
        Optional[str],
        typer.Option(
            metavar="B1,B2[,B3...]",
            help="Residual blocks per level, one per --widths entry; by default those of --resume or --init, else 2,1.",
        ),
    ] = None,
    init: Annotated[
        Optional[Path],
        typer.Option(
            help="Weights to start from (fine-tune): a file, or 'shipped' for bdx's own; the same network, or a "
            "narrower or shallower one (grown to --widths / --blocks with its output unchanged)."
        ),
    ] = None,
    gate: Annotated[
        Optional[bool],
        typer.Option(
            "--gate/--no-gate",
            metavar=opt.FLAG,
            help="Scale the offsets by a predicted confidence (falls back to the bin centre where "
            "the content cannot tell); by default as --resume or --init, else on.",
            show_default=False,
        ),
    ] = None,
    norm: Annotated[
        Optional[bool],
        typer.Option(
            "--norm/--no-norm",
            metavar=opt.FLAG,
            help="Residual branches read their input normalised per pixel (trains deep networks from scratch without "
            "their activations growing); by default as --resume or --init, else off.",
            show_default=False,
        ),
    ] = None,
    gate_limit: Annotated[
        Optional[float],
        typer.Option(help="Clamp the gate's logits to +-this (0: unbounded); by default as --resume or --init, else 0."),
    ] = None,
    tone_head: Annotated[
        Optional[bool],
        typer.Option(
            "--tone-head/--no-tone-head",
            metavar=opt.FLAG,
            help="The network also predicts a tone per 4x4 block, interpolated to every pixel as its own prior "
            "(with --prior none); by default as --resume or --init, else off.",
            show_default=False,
        ),
    ] = None,
    head_kernel: Annotated[
        Optional[int],
        typer.Option(
            help="Kernel of the network's output layer, 1 or 3; by default as --resume or --init, else 1 (the shipped network's).",
            show_default=False,
        ),
    ] = None,
    resume: opt.Resume = None,
    seed: opt.Seed = 0,
    device: opt.Device = "auto",
    workers: opt.Workers = 0,
    quiet: opt.Quiet = False,
    overwrite: opt.Overwrite = False,
) -> None:
    """Train the learned bit-depth dequantizer (one network for 3- to 10-bit input)."""
    from bdx.dequant.learned import HEAD_KERNELS, PRIORS
    from bdx.device import resolve_device
    from bdx.errors import UsageError
    from bdx.training.depth import DepthTrainConfig, train_depth
    from bdx.training.loop import check_start, resumed_config

    with command_errors():
        chosen_prior = check_choice("--prior", prior, PRIORS) if prior is not None else None
        level_widths, level_blocks = _levels("--widths", widths, 1, 1024), _levels("--blocks", blocks, 0, 64)
        if level_widths and level_blocks and len(level_widths) != len(level_blocks):
            raise UsageError(f"--widths and --blocks need one value per level: {len(level_widths)} and {len(level_blocks)} given")
        if gate_limit is not None:
            check_range("--gate-limit", gate_limit, 0.0, 50.0)
        if head_kernel is not None and head_kernel not in HEAD_KERNELS:
            raise UsageError(f"--head-kernel must be one of {', '.join(map(str, HEAD_KERNELS))}, not {head_kernel}")
        if not 1 <= bits[0] <= bits[1] <= 15:
            raise UsageError(f"--bits takes two depths from 1 to 15, the smaller first, not {bits[0]} {bits[1]}")
        config = DepthTrainConfig(
            steps=steps,
            minutes=minutes,
            batch_size=batch_size,
            crop=crop // 8 * 8 if crop >= 16 else crop,  # rounded down to the network's grid; a bad value is reported as given
            lr=lr,
            validate_every=validate_every,
            checkpoint_every=checkpoint_every,
            seed=seed,
            validation_fraction=validation_fraction,
            prior=chosen_prior,
            synthetic_fraction=synthetic_fraction,
            upscale_fraction=upscale_fraction,
            widths=level_widths,
            blocks=level_blocks,
            balance_folders=balance_folders,
            gate=gate,
            norm=norm,
            gate_limit=gate_limit,
            tone_head=tone_head,
            head_kernel=head_kernel,
            eight_bit_fraction=eight_bit_fraction,
            truth_noise_probability=truth_noise_probability,
            min_bits=bits[0],
            max_bits=bits[1],
        )
        check_start(init, resume)  # before the checkpoint is read
        renamed = {"bits": ("min_bits", "max_bits")}
        config = resumed_config(config, resume, _given(ctx, renamed))  # a resumed run keeps the settings not given
        torch_device = str(resolve_device(device))

        report = _step_reporter(
            config.steps,
            quiet,
            "gain_db_4bit",
            lambda r: (
                f"val gain over bin centre: 4-bit {r['gain_db_4bit']:+.2f} dB, 6-bit {r['gain_db_6bit']:+.2f} dB, "
                f"8-bit {r['gain_db_8bit']:+.2f} dB"
            ),
        )
        init = _shipped_or(init, "depth")
        check_weights_target(output, overwrite, resume, init)  # after usage checks; --resume continues it
        state = train_depth(data_paths(data), output, config, resume=resume, init=init, device=torch_device, workers=workers, report=report)
    _say_written(output, state)


@train_app.command(
    "lowlight",
    epilog="Examples:  bdx train lowlight --data sice/ -o lowlight.safetensors --steps 3000 --exclude-from heldout.txt\n\n"
    "bdx train lowlight --pairs sice/train_pairs.json --init shipped -o lowlight.safetensors --steps 3000 --lr 5e-4",
)
def train_lowlight_command(
    ctx: typer.Context,
    data: Annotated[
        Optional[list[str]], typer.Option(help="Image files, folders or quoted globs (any exposures; no references needed); repeatable.")
    ] = None,
    pairs: Annotated[
        Optional[Path],
        typer.Option(
            help='JSON list of {"input": dark frame, "reference": well-exposed frame} (paths relative '
            "to the file): train against the references instead of the zero-reference losses."
        ),
    ] = None,
    init: Annotated[
        Optional[Path], typer.Option(help="bdx low-light weights to start from (fine-tune), or 'shipped' for bdx's own.")
    ] = None,
    gamma: Annotated[float, typer.Option(help="Gamma post-step saved with the weights (with --pairs, trained through).")] = 1.0,
    frame_size: Annotated[int, typer.Option(help="With --pairs: long side the frames are resized to.")] = 256,
    context_size: Annotated[
        int, typer.Option(help="Long side of the copy the curves are estimated on (the shipped weights: 16); --init keeps its own.")
    ] = 256,
    global_context: Annotated[
        bool, typer.Option(metavar=opt.FLAG, help="Give the network its image-wide branch (scene brightness); --init keeps its own.")
    ] = True,
    members: Annotated[
        int,
        typer.Option(
            help="Networks trained side by side, each on its own loss, whose curve maps are averaged at inference "
            "(the shipped weights: 3); --init keeps its own."
        ),
    ] = 1,
    pair_loss: Annotated[
        str, typer.Option(help="With --pairs: psnr (mean over images of the log squared error, as a mean PSNR weighs them) or mse.")
    ] = "psnr",
    output: opt.WeightsOutput = Path("lowlight.safetensors"),
    steps: opt.Steps = 3000,
    minutes: opt.Minutes = None,
    batch_size: Annotated[int, typer.Option(help="Images per step (per process).")] = 8,
    lr: opt.LearningRate = 1e-3,
    exclude_from: Annotated[
        Optional[Path], typer.Option(help="Text file of file names (one per line) never to train on, e.g. a test split.")
    ] = None,
    exposure_level: Annotated[float, typer.Option(help="Target mean of 16x16 patches in the exposure loss.")] = 0.6,
    smoothness_weight: Annotated[float, typer.Option(help="Weight of the curve maps' total variation.")] = 1600.0,
    validate_every: opt.ValidateEvery = 250,
    checkpoint_every: opt.CheckpointEvery = 250,
    resume: opt.Resume = None,
    seed: opt.Seed = 0,
    device: opt.Device = "auto",
    workers: opt.Workers = 0,
    quiet: opt.Quiet = False,
    overwrite: opt.Overwrite = False,
) -> None:
    """Train bdx's low-light curve estimator with the zero-reference losses (no ground truth needed), or against
    reference frames with --pairs."""
    from bdx.device import resolve_device
    from bdx.errors import BdxError, UsageError
    from bdx.training.loop import check_start, resumed_config
    from bdx.training.lowlight import PAIR_LOSSES, LowlightTrainConfig, train_lowlight

    with command_errors():
        loss = check_choice("--pair-loss", pair_loss, PAIR_LOSSES)
        if (data is None) == (pairs is None):
            raise UsageError("give --data (zero-reference training) or --pairs (against references), one of them")
        check_range("--context-size", context_size, 8, 4096)
        check_range("--frame-size", frame_size, 16, 4096)
        check_range("--gamma", gamma, 0.2, 5.0)
        check_range("--members", members, 1, 16)
        check_range("--exposure-level", exposure_level, 0.0, 1.0, above_low=True)
        check_range("--smoothness-weight", smoothness_weight, 0.0, 1e6)
        init = _shipped_or(init, "lowlight")
        exclude: set[str] = set()
        if exclude_from is not None:
            try:
                exclude = {line.strip() for line in exclude_from.read_text(errors="surrogateescape").splitlines() if line.strip()}
            except OSError as exc:
                raise BdxError(f"cannot read {exclude_from}: {exc.strerror}") from None
        config = LowlightTrainConfig(
            steps=steps,
            minutes=minutes,
            batch_size=batch_size,
            lr=lr,
            validate_every=validate_every,
            checkpoint_every=checkpoint_every,
            seed=seed,
            exposure=exposure_level,
            weight_tv=smoothness_weight,
            gamma=gamma,
            frame_size=frame_size,
            context_size=context_size,
            global_context=global_context,
            members=members,
            pair_loss=loss,
        )
        check_start(init, resume)  # before the checkpoint is read
        renamed = {"exposure_level": ("exposure",), "smoothness_weight": ("weight_tv",)}
        config = resumed_config(config, resume, _given(ctx, renamed))  # a resumed run keeps the settings not given
        torch_device = str(resolve_device(device))

        report = _step_reporter(
            config.steps,
            quiet,
            "val_loss",
            lambda r: (
                f"val PSNR against the references {r['val_psnr']:.2f} dB"
                if "val_psnr" in r
                else f"val loss {r['val_loss']:.4f}  val mean brightness {r['val_mean_in']:.3f} -> {r['val_mean_out']:.3f}"
            ),
        )
        check_weights_target(output, overwrite, resume, init)  # after usage checks; --resume continues it
        state = train_lowlight(
            data_paths(data or []),
            output,
            config,
            exclude=exclude,
            pairs=pairs,
            init=init,
            resume=resume,
            device=torch_device,
            workers=workers,
            report=report,
        )
    _say_written(output, state)


@train_app.command(
    "hdr",
    epilog="Example:  bdx train hdr --data hdr/ --data merges/ -o hdr.safetensors --steps 3000",
)
def train_hdr_command(
    ctx: typer.Context,
    data: Annotated[list[str], typer.Option(help="Scene-linear references (.exr, .hdr), folders or quoted globs; repeatable.")],
    output: opt.WeightsOutput = Path("hdr.safetensors"),
    steps: opt.Steps = 3000,
    minutes: opt.Minutes = None,
    batch_size: Annotated[int, typer.Option(help="Crops per step (per process).")] = 8,
    crop: Annotated[int, typer.Option(help="Crop size in pixels (rounded down to the network's multiple: 4 x --state-scale).")] = 128,
    lr: opt.LearningRate = 1e-3,
    iterations: Annotated[
        Optional[int], typer.Option(help="Feedback iterations (1: a feed-forward model). (default 4; with --init, the weights' own)")
    ] = None,
    width: Annotated[
        Optional[int], typer.Option(help="Channels of the network at 1/4 resolution. (default 32; with --init, the weights' own)")
    ] = None,
    state_scale: Annotated[
        Optional[int], typer.Option(help="The feedback state runs at 1/(4 x this) resolution. (default 1; with --init, the weights' own)")
    ] = None,
    supervise: Annotated[str, typer.Option(help="Iterations in the loss: all (as FHDR) or last.")] = "all",
    head: Annotated[
        Optional[str],
        typer.Option(
            help="Output head: curve (one tone curve per 4x4 block shared by the channels, per-channel corrections near "
            "the clip point only) or rgb (a correction per channel). (default curve; with --init, the weights' own; "
            "another one given with --init starts anew on the weights' trunk)"
        ),
    ] = None,
    histogram_bins: Annotated[
        Optional[int],
        typer.Option(
            help="The global branch also reads the image's per-channel histogram in this many bins (0: not). "
            "(default 0; with --init, the weights' own; given with --init, new inputs start at zero weight)"
        ),
    ] = None,
    headroom: Annotated[
        Optional[float],
        typer.Option(
            help="The brightest output the network can give, in units of the input's clip point; targets are capped "
            "there. Given with --init, the weights are rescaled so their outputs below their own headroom stay the "
            "same. (default 32; with --init, the weights' own)",
            show_default=False,
        ),
    ] = None,
    clipped_weight: Annotated[
        Optional[float],
        typer.Option(
            help="Weight of an extra loss term over the input's clipped pixels alone (0: none). (default 0; with --init, the weights' own)",
            show_default=False,
        ),
    ] = None,
    naive_weight: Annotated[
        Optional[float],
        typer.Option(
            help="Weight of a loss term against doing worse than the naive inverse sRGB curve: each crop's error above "
            "the naive curve's, as a log ratio, so crops the naive curve nearly gets right weigh most. Needs --target-scale "
            "input. (default 0; with --init, the weights' own)",
            show_default=False,
        ),
    ] = None,
    plain_fraction: Annotated[
        Optional[float],
        typer.Option(
            help="Share of training cameras that are a plain sRGB or gamma hard clip, the other families scaled to "
            "the rest (default 0.15).",
            show_default=False,
        ),
    ] = None,
    target_scale: Annotated[
        Optional[str],
        typer.Option(
            help="Scale of the targets: exposure (the camera's exposure, 1.0 at its reference level) or input (each "
            "image matched to its linearized input over well-exposed pixels, the scale ldr2hdr outputs). (default "
            "exposure; with --init, the weights' own)",
            show_default=False,
        ),
    ] = None,
    camera: Annotated[
        Optional[tuple[float, float]],
        typer.Option(
            metavar="GAMMA SHOULDER",
            help="Train (and validate) for one known camera curve, a gamma with a shoulder (e.g. 2.2 0.3), instead of "
            "random cameras of five families (gamma with shoulder, plain sRGB clip, filmic, ACES-like, log).",
        ),
    ] = None,
    init: Annotated[Optional[Path], typer.Option(help="HDR weights to start from (fine-tune), or 'shipped' for bdx's own.")] = None,
    pairs: Annotated[
        Optional[Path],
        typer.Option(
            help='Real camera frames against the HDR references they show: a JSON list of {"input": LDR, "reference": '
            "EXR} (paths relative to it; python tools/sice_merges.py writes one). Needs --target-scale input."
        ),
    ] = None,
    pairs_fraction: Annotated[float, typer.Option(help="With --pairs: share of samples that are a real frame.")] = 0.25,
    validation_fraction: Annotated[float, typer.Option(help="Share of files held out for validation (by name hash).")] = 0.25,
    validate_every: opt.ValidateEvery = 250,
    checkpoint_every: opt.CheckpointEvery = 250,
    resume: opt.Resume = None,
    seed: opt.Seed = 0,
    device: opt.Device = "auto",
    workers: opt.Workers = 0,
    quiet: opt.Quiet = False,
    overwrite: opt.Overwrite = False,
) -> None:
    """Train the LDR-to-HDR feedback network on exposures, camera curves, clipping and JPEG synthesized on the fly."""
    from bdx.device import resolve_device
    from bdx.errors import UsageError
    from bdx.hdr.models import HEADS, MAX_HEADROOM
    from bdx.hdr.reconstruct import MAX_ITERATIONS
    from bdx.training.hdr import SUPERVISED, TARGET_SCALES, HdrTrainConfig, train_hdr
    from bdx.training.loop import check_start, resumed_config

    with command_errors():
        network = {"--iterations": iterations, "--width": width, "--state-scale": state_scale}
        if init is not None and any(value is not None for value in network.values()):  # fine-tuning keeps the network
            given = next(flag for flag, value in network.items() if value is not None)
            raise UsageError(f"{given} shapes a new network; --init fine-tunes the weights' own network as it is")
        defaults = HdrTrainConfig()
        iterations = defaults.iterations if iterations is None else iterations
        width = defaults.width if width is None else width
        state_scale = defaults.state_scale if state_scale is None else state_scale
        check_range("--iterations", iterations, 1, MAX_ITERATIONS)
        check_range("--width", width, 4, 512)
        check_range("--state-scale", state_scale, 1, 8)
        chosen_supervise = check_choice("--supervise", supervise, SUPERVISED)
        if clipped_weight is not None:
            check_range("--clipped-weight", clipped_weight, 0.0, 100.0)
        if naive_weight is not None:
            check_range("--naive-weight", naive_weight, 0.0, 100.0)
        chosen_scale = None if target_scale is None else check_choice("--target-scale", target_scale, TARGET_SCALES)
        chosen_head = None if head is None else check_choice("--head", head, HEADS)
        if histogram_bins is not None:
            check_range("--histogram-bins", histogram_bins, 0, 256)
        if headroom is not None:
            check_range("--headroom", headroom, 2.0, MAX_HEADROOM)
        if camera is not None and not (1.0 <= camera[0] <= 4.0 and 0.0 <= camera[1] <= 1.0):
            raise UsageError("--camera takes GAMMA (1 to 4) and SHOULDER (0 to 1)")
        from bdx.training.loop import MAX_CROP

        check_range("--crop", crop, 16, MAX_CROP)  # before the rounding up to the network's grid below
        multiple = 4 * state_scale
        config = HdrTrainConfig(
            steps=steps,
            minutes=minutes,
            batch_size=batch_size,
            crop=max(4 * multiple, crop // multiple * multiple),
            lr=lr,
            iterations=iterations,
            width=width,
            state_scale=state_scale,
            supervise=chosen_supervise,
            clipped_weight=clipped_weight,
            naive_weight=naive_weight,
            plain_fraction=plain_fraction,
            target_scale=chosen_scale,
            head=chosen_head,
            histogram_bins=histogram_bins,
            headroom=headroom,
            pairs_fraction=pairs_fraction,
            camera=camera,
            validation_fraction=validation_fraction,
            validate_every=validate_every,
            checkpoint_every=checkpoint_every,
            seed=seed,
        )
        check_start(init, resume)  # before the checkpoint is read
        config = resumed_config(config, resume, _given(ctx))  # a resumed run keeps the settings not given
        torch_device = str(resolve_device(device))

        from bdx.hdr.tonemap import FAMILY_SHARES

        def per_family(record: dict) -> str:
            scores = {family: record.get(f"val_psnr_mu_{family}") for family in FAMILY_SHARES}
            return ", ".join(f"{family} {score:.2f}" for family, score in scores.items() if score is not None)

        report = _step_reporter(
            config.steps,
            quiet,
            "val_psnr_mu",
            lambda r: (
                f"val PSNR-mu {r['val_psnr_mu']:.2f} dB "
                f"(iteration 1: {r['val_psnr_mu_1iter']:.2f}, classical: {r['val_psnr_mu_classical']:.2f}; {per_family(r)})"
            ),
        )
        init = _shipped_or(init, "hdr")
        check_weights_target(output, overwrite, resume, init)  # after usage checks; --resume continues it
        state = train_hdr(
            data_paths(data), output, config, init=init, resume=resume, pairs=pairs, device=torch_device, workers=workers, report=report
        )
    _say_written(output, state)


def _step_reporter(steps: int, quiet: bool, marker: str, describe: Callable[[dict], str]) -> Callable[[int, dict], None]:
    """A training-loop callback printing one line to stderr every ``--validate-every`` steps, with the validation
    figures when the record holds ``marker`` (there may be no validation files)."""

    def report(step: int, record: dict) -> None:
        if quiet or not record.get("milestone"):
            return
        figures = describe(record) if marker in record else "(no validation files)"
        typer.echo(f"step {step}/{steps}  loss {record['loss']:.4f}  {figures}  ({record['seconds']:.0f} s)", err=True)

    return report


def _say_written(output: Path, state) -> None:
    """The run's last line, once (by rank 0 of a torchrun launch)."""
    if state.rank == 0:
        typer.echo(f"wrote {output} after {state.step} steps")
