"""``bdx quantize``: reduce bit depth to make training and test pairs."""

from __future__ import annotations

from typing import Annotated

import typer

from bdx.cli import app
from bdx.cli import options as opt
from bdx.cli.common import check_choice, command_errors, output_format, plan_batch, read_source, write_target


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
    """Reduce images to N bits per sample (PNG; 8-bit container up to 8 bits, 16-bit above or with a 16-bit alpha; sBIT set)."""
    from bdx.dither import DITHER_METHODS
    from bdx.quantization import CONVENTIONS, check_bits
    from bdx.reduce import QUANTIZE_METHODS, check_method_bits, check_method_convention, check_seed, quantize_image

    with command_errors():
        check_bits(bits)
        check_seed(seed)
        check_choice("--method", method, QUANTIZE_METHODS)
        check_method_bits(method, bits)
        check_choice("--dither", dither, DITHER_METHODS)
        check_choice("--convention", convention, CONVENTIONS)
        check_method_convention(method, convention)
        output_format(None, output, ("png",))
        batch = plan_batch(inputs, output, shard, extension=".png", file_suffix=f"_q{bits}", dir_suffix=f"_q{bits}")

    def process(source, target, reporter):
        image = read_source(source)
        reduced = quantize_image(image, bits, method=method, dither=dither, convention=convention, seed=seed)
        write_target(target, reduced, "png", bits=reduced.container_bits, significant_bits=reduced.significant_bits)
        return {"bits": bits, "method": method, "dither": dither, "width": image.width, "height": image.height}

    with command_errors():
        status = batch.run(process, label="quantize", overwrite=overwrite, skip_existing=skip_existing, quiet=quiet, json_lines=json_lines)
    raise typer.Exit(status)
