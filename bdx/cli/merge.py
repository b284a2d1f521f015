"""``bdx merge-brackets``: merge an exposure bracket into one scene-linear EXR."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated, Optional

import typer

from bdx.cli import app
from bdx.cli import options as opt
from bdx.cli.common import check_target, command_errors, container_losses, joined_warnings
from bdx.errors import BdxError, UsageError

MAX_TIME_RATIO = 2.0**30  # 30 stops between the shortest and longest frame: beyond it a merge leaves float32


@app.command(
    "merge-brackets",
    epilog="Examples:  bdx merge-brackets a.jpg b.jpg c.jpg -o scene.exr   ·   bdx merge-brackets *.jpg -o s.exr --times 1/60,1/15,1/4",
)
def merge_brackets_command(
    inputs: Annotated[
        list[str],
        typer.Argument(
            help="Aligned 8- or 16-bit exposures of one scene: files, folders or globs (a folder's or glob's files sorted by name).",
            show_default=False,
        ),
    ],
    output: Annotated[Path, typer.Option("--output", "-o", help="EXR (or .hdr) file to write.")],
    times: Annotated[
        Optional[str], typer.Option(help="Exposure times in the frames' order, e.g. 1/60,1/15,1/4 (default: estimated).")
    ] = None,
    overwrite: Annotated[bool, typer.Option(metavar=opt.FLAG, help="Replace the output if it exists.")] = False,
    json_lines: opt.Json = False,
) -> None:
    """Merge exposures into scene-linear HDR, estimating the camera response (and the exposure ratios when not given)."""
    from bdx.cli.common import describe_exception, json_line

    record: dict = {"inputs": inputs, "output": str(output)}
    with command_errors():
        try:
            frames, times_found, warning = _merge(inputs, output, times, overwrite)
        except BdxError as exc:  # a failed merge is a JSON record too; usage errors are the command line's
            if json_lines and not isinstance(exc, UsageError):
                typer.echo(json_line({**record, "status": "error", "error": describe_exception(exc)}))
            raise
    if warning:  # on stderr with --json too, as in every command
        typer.echo(f"bdx: warning: {warning}", err=True)
    if json_lines:
        extra = {"warning": warning} if warning else {}
        typer.echo(json_line({**record, "inputs": [str(f) for f in frames], "status": "ok", "times": times_found, **extra}))
        return
    typer.echo(f"wrote {output}  (relative exposures {', '.join(f'{t:.3g}' for t in times_found)})")


def _merge(inputs: list[str], output: Path, times: str | None, overwrite: bool) -> tuple[list[Path], list[float], str | None]:
    """Read, check and merge the frames, write the output; the frames, their relative exposures, and what the
    output could not keep (a warning, or None)."""
    import numpy as np

    from bdx.cli.common import Source, expand_inputs, image_extensions
    from bdx.hdr.merge import merge_brackets
    from bdx.io import Image, format_from_path, read_image, write_image

    fmt = format_from_path(output)
    if fmt not in ("exr", "hdr"):
        raise UsageError("-o must end in .exr or .hdr")
    # a folder's float images are merges (an earlier run's output among them), not exposures
    found = expand_inputs(inputs, image_extensions() - {".exr", ".hdr", ".pic"})
    if found.problems:
        name, problem = found.problems[0]
        raise BdxError(f"{name}: {problem}")
    if any(source.path is None for source in found.sources):
        raise UsageError("merge-brackets reads files, not standard input")
    frames = [source.path for source in found.sources if source.path is not None]
    if len(frames) < 2:
        raise UsageError(
            f"merge-brackets needs at least two exposures of the scene; the inputs name {len(frames)} distinct "
            + ("file" if len(frames) == 1 else "files")
        )
    parsed = _parse_times(times) if times is not None else None
    if parsed is not None and len(parsed) != len(frames):
        raise UsageError(f"--times gives {len(parsed)} times for {len(frames)} frames")
    check_target(
        Source(frames[0], Path(frames[0].name)),
        output,
        overwrite=overwrite,
        create_folders=False,
        inputs=frozenset(frame.resolve() for frame in frames),
        can_skip=False,
    )
    images = [read_image(f) for f in frames]
    pixels = []
    for path, image in zip(frames, images):
        if image.is_float:
            raise BdxError(f"{path.name}: already a float image")
        first = images[0]
        if (image.width, image.height, image.channels) != (first.width, first.height, first.channels):
            raise BdxError(
                f"{path.name} is {image.width}x{image.height}x{image.channels} but {frames[0].name} is "
                f"{first.width}x{first.height}x{first.channels}: the frames of one scene share size and colour"
            )
        rgb = image.pixels if image.channels == 3 else np.repeat(image.pixels[..., :1], 3, axis=2)
        pixels.append(rgb)
    merged = merge_brackets(pixels, parsed)
    result = Image(merged.linear, linear=True, icc_profile=images[0].icc_profile)
    write_image(output, result, fmt=fmt, exr_half=False)
    alpha = any(image.alpha is not None for image in images)
    saturated = merged.saturated_share
    warning = joined_warnings(
        "the frames' alpha channels are not merged (the output has none)" if alpha else None,
        container_losses(result, fmt),
        f"{saturated:.1%} of the pixels are saturated even in the darkest frame: their radiance is only a lower bound "
        "(a shorter exposure would measure it)"
        if saturated >= SATURATED_WARNING
        else None,
    )
    return frames, merged.frame_times, warning


SATURATED_WARNING = 0.001  # the share of saturated pixels (bdx.hdr.merge.Merge.saturated) worth a warning


def _parse_times(text: str) -> list[float]:
    values = []
    for part in text.split(","):
        try:
            if "/" in part:
                numerator, denominator = part.split("/")
                values.append(float(numerator) / float(denominator))
            else:
                values.append(float(part))
        except (ValueError, ZeroDivisionError):
            raise UsageError(f"--times: cannot read {part!r} as a time") from None
        if not (math.isfinite(values[-1]) and values[-1] > 0):
            raise UsageError(f"--times: {part!r} is not a positive exposure time")
    if len(set(values)) < len(values):
        raise UsageError("--times: every frame needs its own exposure time (two are equal)")
    if max(values) / min(values) > MAX_TIME_RATIO:
        raise UsageError(f"--times: the longest exposure is {max(values) / min(values):.3g} times the shortest; at most {MAX_TIME_RATIO:g}")
    return values
