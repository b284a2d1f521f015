"""``bdx info``: what an image file holds."""

from __future__ import annotations

import sys
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from bdx.cli import app
from bdx.cli import options as opt
from bdx.cli.common import Source, command_errors, expand_inputs, image_extensions, read_source, run_batch
from bdx.io.metadata import icc_description

_ORIENTATIONS = {
    1: "normal",
    2: "mirrored",
    3: "rotated 180",
    4: "flipped",
    5: "transposed",
    6: "rotated 90 CW",
    7: "transversed",
    8: "rotated 90 CCW",
}


def describe(source: Source) -> dict:
    """Size, channels, container, effective bit depth, colour profile and orientation of one image file; task,
    architecture, parameters and tiling of a weights file."""
    from bdx.models import WEIGHT_SUFFIXES
    from bdx.quantization import detect_bits

    if source.path is not None and source.path.suffix.lower() in WEIGHT_SUFFIXES:
        return describe_weights(source.path)
    image = read_source(source)
    record: dict = {
        "format": image.source_format,
        "width": image.width,
        "height": image.height,
        "channels": image.channels,
        "alpha": image.alpha is not None,
        "container_bits": image.stored_bits,
        "sample_type": image.sample_type,
    }
    if image.is_float:
        record.update(effective_bits=None, bit_depth_source="float", convention=None)
    elif image.significant_bits:
        record.update(effective_bits=image.significant_bits, bit_depth_source=image.significant_bits_source, convention=None)
    else:
        bits, convention = detect_bits(image.pixels, image.container_bits)
        record.update(effective_bits=bits, bit_depth_source="code values", convention=convention)
    record["icc_profile"] = icc_description(image.icc_profile)
    record["orientation"] = _ORIENTATIONS.get(image.orientation, "normal")
    return record


def describe_weights(path: Path) -> dict:
    """What a weights file holds, through bdx's model registry."""
    from bdx.errors import TrainingCheckpointError, WeightsError
    from bdx.models import identify, parameter_count

    try:
        model = identify(path)
    except TrainingCheckpointError as exc:
        return {
            "format": "weights",
            "task": None,
            "architecture": "training checkpoint",
            "parameters": exc.parameters,
            "halo": None,
            "bfloat16": None,
            "steps": exc.step,
        }
    except WeightsError as exc:  # the batch names the file already
        raise WeightsError(str(exc).removeprefix(f"{path.name}: ")) from None
    record: dict = {
        "format": "weights",
        "task": model.task,
        "architecture": model.architecture,
        "parameters": parameter_count(model.net),
        "halo": model.tiling.halo,
        "bfloat16": model.bfloat16,
    }
    if "steps" in model.metadata:
        record["steps"] = model.metadata["steps"]
    return record


@app.command(epilog="Examples:  bdx info photo.png   ·   bdx info --json shots/ | jq .effective_bits   ·   bdx info Epoch99.pth")
def info(inputs: opt.Inputs, json_lines: opt.Json = False) -> None:
    """Print size, channels, container and effective bit depth, colour profile and orientation; for a weights
    file, its task, architecture, parameters and tiling halo."""
    from rich.markup import escape  # file names are text, never markup

    from bdx.models import WEIGHT_SUFFIXES

    with command_errors():
        found = expand_inputs(inputs, image_extensions() | WEIGHT_SUFFIXES)  # a folder's weights files too
    rows: list[dict] = []

    def process(source, target, reporter):
        record = describe(source)
        rows.append({"input": source.display, **record})
        return record

    status = run_batch(
        found.sources,
        [None] * len(found.sources),
        process,
        problems=found.problems,
        quiet=True,
        json_lines=json_lines,
    )
    weights = [row for row in rows if row["format"] == "weights"]
    rows = [row for row in rows if row["format"] != "weights"]
    console = Console(width=None if sys.stdout.isatty() else 200)
    if not json_lines and weights:
        listing = Table("file", "task", "architecture", "parameters", "halo", "bfloat16", "steps")
        for row in weights:
            listing.add_row(
                escape(row["input"]),
                row["task"] or "-",
                row["architecture"],
                f"{row['parameters']:,}",
                "-" if row["halo"] is None else str(row["halo"]),
                {True: "yes", False: "no", None: "-"}[row["bfloat16"]],
                str(row.get("steps", "-")),
            )
        console.print(listing)
    if not json_lines and rows:
        table = Table("file", "format", "size", "ch", "alpha", "container", "effective bits", "profile", "orientation")
        for row in rows:
            bits = "float" if row["effective_bits"] is None else f"{row['effective_bits']} ({row['bit_depth_source']})"
            table.add_row(
                escape(row["input"]),
                row["format"],
                f"{row['width']}x{row['height']}",
                str(row["channels"]),
                "yes" if row["alpha"] else "no",
                {"half": "half float", "float": "float", "double": "64-bit float"}.get(row["sample_type"], f"{row['container_bits']}-bit"),
                bits,
                escape(row["icc_profile"] or "-"),
                row["orientation"],
            )
        console.print(table)
    raise typer.Exit(status)
