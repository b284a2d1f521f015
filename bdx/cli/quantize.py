"""``bdx quantize``: reduce bit depth to make training and test pairs."""

from __future__ import annotations

from typing import Annotated

import typer

from bdx.cli import app
from bdx.cli import options as opt
from bdx.cli.common import apply_shard, command_errors, expand_inputs, plan_outputs, read_source, run_batch, write_target
from bdx.errors import UsageError


@app.command(
    epilog="Examples:  bdx quantize --bits 4 photos/   ·   bdx quantize --bits 5 --dither floyd-steinberg a.png -o a5.png"
    "   ·   bdx quantize --bits 10 --convention truncate raw16/ -o raw10/"
)
def quantize(
    inputs: opt.Inputs,
    bits: Annotated[int, typer.Option("--bits", "-b", help="Bits per sample to keep, 1 to 15.")],
    output: opt.Output = None,
    method: Annotated[str, typer.Option(help="linear (2^N levels) or kmeans (per-image palette of 2^N colours).")] = "linear",
    dither: Annotated[str, typer.Option(help="none, ordered, random or floyd-steinberg.")] = "none",
    convention: opt.Convention = "centre",
    seed: Annotated[int, typer.Option(help="Seed for random dithering and k-means.")] = 0,
    overwrite: opt.Overwrite = False,
    skip_existing: opt.SkipExisting = False,
    shard: opt.Shard = None,
    json_lines: opt.Json = False,
    quiet: opt.Quiet = False,
) -> None:
    """Reduce images to N bits per sample (PNG; 8-bit container up to 8 bits, 16-bit above, sBIT set)."""
    from bdx.dither import DITHER_METHODS
    from bdx.quantization import CONVENTIONS, check_bits, container_for
    from bdx.reduce import QUANTIZE_METHODS, quantize_image

    with command_errors():
        check_bits(bits)
        _choice("--method", method, QUANTIZE_METHODS)
        _choice("--dither", dither, DITHER_METHODS)
        _choice("--convention", convention, CONVENTIONS)
        found = expand_inputs(inputs)
        sources = apply_shard(found.sources, shard)
        plan = plan_outputs(sources, output, extension=".png", file_suffix=f"_q{bits}", dir_suffix=f"_q{bits}")

    def process(source, target, reporter):
        image = read_source(source)
        reduced = quantize_image(image, bits, method=method, dither=dither, convention=convention, seed=seed)
        container = container_for(bits) if method == "linear" else 8
        write_target(target, reduced, "png", bits=container, significant_bits=reduced.significant_bits)
        return {"bits": bits, "method": method, "dither": dither, "width": image.width, "height": image.height}

    status = run_batch(
        sources,
        plan.targets,
        process,
        problems=found.problems,
        overwrite=overwrite,
        skip_existing=skip_existing,
        quiet=quiet,
        json_lines=json_lines,
        label="quantize",
        create_folders=not plan.explicit_file,
    )
    raise typer.Exit(status)


def _choice(flag: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise UsageError(f"{flag} must be one of {', '.join(choices)}, not {value!r}")
