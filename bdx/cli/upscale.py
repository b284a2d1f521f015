"""``bdx upscale-depth``: dequantize 8-bit (or k-bit) images to 16 bits without banding."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from bdx.assets import default_weights
from bdx.cli import app
from bdx.cli import options as opt
from bdx.cli.common import (
    check_choice,
    check_device,
    check_path_option,
    check_tile_option,
    command_errors,
    container_losses,
    describe_depth_mismatch,
    joined_warnings,
    output_format,
    parse_in_bits,
    plan_batch,
    read_source,
    write_target,
)
from bdx.errors import UsageError
from bdx.models import load_model


@app.command(
    "upscale-depth",
    epilog="Examples:  bdx upscale-depth in.png -o out.tiff   ·   bdx upscale-depth photos_q4/ -o out/ --format png"
    "   ·   bdx upscale-depth --in-bits 6 --method midpoint a.png -o a16.png",
)
def upscale_depth_command(
    inputs: opt.Inputs,
    output: opt.Output = None,
    method: Annotated[
        str,
        typer.Option(
            help="learned (contour refined by the shipped network, or --weights), contour (classical, "
            "content-adaptive) or midpoint (bin centre)."
        ),
    ] = "learned",
    weights: Annotated[
        Optional[str], typer.Option(help="Weights file for --method learned (safetensors; default: shipped weights).")
    ] = None,
    ensemble: Annotated[
        int,
        typer.Option(
            help="--method learned: average the model over 1, 2, 4 or 8 flips and transposes of the input "
            "(2: up to +0.14 dB at 8->16 on held-out images, about 1.3x slower; 8: about 3x slower)."
        ),
    ] = 1,
    self_check: Annotated[
        bool,
        typer.Option(
            metavar=opt.FLAG,
            help="--method learned, 8 bits and more: test the network on the image itself (decimated 4x4, one bit coarser) "
            "and keep its offsets only where they help there (about 1.1 times the time).",
        ),
    ] = True,
    in_bits: Annotated[str, typer.Option(help="Bit depth of the input content: auto (sBIT, else detected) or N.")] = "auto",
    out_bits: Annotated[int, typer.Option(help="Output bits per sample: 16, the only depth it writes.")] = 16,
    fmt: Annotated[
        Optional[str], typer.Option("--format", help="tiff, png or exr (scene-linear float; default: from -o, else tiff).")
    ] = None,
    convention: opt.Convention = "centre",
    relax: Annotated[bool, typer.Option(metavar=opt.FLAG, help="Allow outputs outside the input's quantization bins.")] = False,
    device: opt.Device = "auto",
    precision: opt.Precision = "auto",
    tile: opt.Tile = None,
    overwrite: opt.Overwrite = False,
    skip_existing: opt.SkipExisting = False,
    shard: opt.Shard = None,
    json_lines: opt.Json = False,
    quiet: opt.Quiet = False,
) -> None:
    """Dequantize images to 16 bits: smooth gradients, every value inside its input bin."""
    from bdx.depth import DEPTH_METHODS, DepthSettings, upscale_depth
    from bdx.device import PRECISIONS
    from bdx.io.write import FORMAT_EXTENSIONS
    from bdx.quantization import CONVENTIONS

    with command_errors():
        check_tile_option(tile)
        settings = DepthSettings(
            method=check_choice("--method", method, DEPTH_METHODS),
            in_bits=parse_in_bits(in_bits),
            convention=check_choice("--convention", convention, CONVENTIONS),
            relax=relax,
            ensemble=ensemble,
            precision=check_choice("--precision", precision, PRECISIONS),
            tile=tile,
            self_check=self_check,
        )
        check_device(device)
        if out_bits != 16:
            raise UsageError(f"--out-bits must be 16 (the only output depth), not {out_bits}")
        chosen = output_format(fmt, output, ("tiff", "png", "exr"))
        check_path_option("--weights", weights)
        if weights is not None and method != "learned":
            raise UsageError("--weights applies to --method learned only")
        # given weights load once for the batch, failing before it starts; the shipped ones follow each input's depth
        model = load_model(weights, "depth") if method == "learned" and weights is not None else None
        if method == "learned" and weights is None:
            default_weights("depth")  # a clear error now when the install has none
        batch = plan_batch(inputs, output, shard, extension=FORMAT_EXTENSIONS[chosen], file_suffix="_16bit", dir_suffix="_16bit")

    def process(source, target, reporter):
        image = read_source(source)
        result = upscale_depth(image, model, settings, device=device, progress=reporter.tiles)
        write_target(target, result.image, chosen, bits=16, exr_half=False)  # EXR output is made scene-linear there
        record = {
            "method": method,
            "ensemble": ensemble,
            "precision": result.precision,
            "in_bits": result.in_bits,
            "self_check_kept": result.kept,
            "weights": result.weights,
            "width": image.width,
            "height": image.height,
        }
        mismatch = result.mismatch
        warning = joined_warnings(
            container_losses(image, chosen),
            describe_depth_mismatch(mismatch, told=settings.in_bits is not None) if mismatch is not None else None,
        )
        if warning:
            record["warning"] = warning
        return record

    with command_errors():
        status = batch.run(
            process, label="upscale-depth", overwrite=overwrite, skip_existing=skip_existing, quiet=quiet, json_lines=json_lines
        )
    raise typer.Exit(status)
