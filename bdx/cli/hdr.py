"""``bdx ldr2hdr``: single-image LDR to scene-linear HDR, written as EXR."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from bdx.cli import app
from bdx.cli import options as opt
from bdx.cli.common import (
    check_choice,
    check_device,
    check_path_option,
    check_tile_option,
    command_errors,
    container_losses,
    joined_warnings,
    output_format,
    plan_batch,
    read_source,
    write_target,
)
from bdx.errors import UsageError
from bdx.models import load_model


@app.command(
    "ldr2hdr",
    epilog="Examples:  bdx ldr2hdr photo.jpg -o photo.exr   ·   bdx ldr2hdr shots/ -o hdr/ --peak-nits 1000"
    "   ·   bdx ldr2hdr a.png -o a.exr --method classical   ·   bdx ldr2hdr a.jpg -o a.hdr",
)
def ldr2hdr_command(
    inputs: opt.Inputs,
    output: opt.Output = None,
    method: Annotated[str, typer.Option(help="learned (feedback network) or classical (linearize + expand highlights).")] = "learned",
    weights: Annotated[
        Optional[str],
        typer.Option(help="Weights file for --method learned: bdx's (default: shipped), or a published FHDR or ExpandNet checkpoint."),
    ] = None,
    dequantize: opt.Dequantize = "auto",
    iterations: Annotated[
        Optional[int], typer.Option(help="Feedback iterations (default: as trained; FHDR files other than the two published ones: 1).")
    ] = None,
    exposure: Annotated[float, typer.Option(help="Scale the result by 2^EV.")] = 0.0,
    peak_nits: Annotated[
        Optional[float], typer.Option(help="Scale so the brightest 0.01 % of pixels are this many cd/m² (1.0 = 1 cd/m²).")
    ] = None,
    fmt: Annotated[Optional[str], typer.Option("--format", help="exr or hdr (default: from -o, else exr).")] = None,
    sample_type: Annotated[Optional[str], typer.Option(help="EXR sample type: half (the default) or float.")] = None,
    precision: Annotated[Optional[str], typer.Option(hidden=True, help="Former name of --sample-type.")] = None,
    device: opt.Device = "auto",
    tile: opt.Tile = None,
    overwrite: opt.Overwrite = False,
    skip_existing: opt.SkipExisting = False,
    shard: opt.Shard = None,
    json_lines: opt.Json = False,
    quiet: opt.Quiet = False,
) -> None:
    """Reconstruct scene-linear HDR from 8-bit (or 16-bit) photos: undo the curve and quantization, recover highlights."""
    from bdx.depth import DISPLAY_DEQUANTIZERS
    from bdx.hdr.reconstruct import HDR_METHODS, HdrSettings
    from bdx.io.write import EXR_SAMPLE_TYPES, HALF_MAX

    with command_errors():
        check_tile_option(tile)
        hdr_method = check_choice("--method", method, HDR_METHODS)
        front_end = check_choice("--dequantize", dequantize, DISPLAY_DEQUANTIZERS)
        if precision is not None:  # the option's former name (elsewhere --precision is the arithmetic's)
            check_choice("--precision", precision, EXR_SAMPLE_TYPES)
            if sample_type is not None and sample_type != precision:
                raise UsageError(f"--precision {precision} and --sample-type {sample_type} disagree: give --sample-type alone")
            sample_type = precision
        if sample_type is not None:
            check_choice("--sample-type", sample_type, EXR_SAMPLE_TYPES)
        check_device(device)
        chosen = output_format(fmt, output, ("exr", "hdr"))
        if sample_type is not None and chosen != "exr":
            raise UsageError(f"--sample-type applies to EXR output, not {chosen}")
        settings = HdrSettings(  # checks each value's range first
            method=hdr_method, dequantize=front_end, iterations=iterations, exposure=exposure, peak_nits=peak_nits, tile=tile
        )
        half = sample_type != "float"
        if half and peak_nits is not None and peak_nits > HALF_MAX:
            raise UsageError(f"--peak-nits {peak_nits:g} is beyond the largest half float ({HALF_MAX:g}): add --sample-type float")
        check_path_option("--weights", weights)
        if weights is not None and hdr_method != "learned":
            raise UsageError("--weights applies to --method learned only")
        # loaded once for the batch, failing before it starts
        model = load_model(weights, "hdr") if hdr_method == "learned" else None
        batch = plan_batch(inputs, output, shard, extension="." + chosen, file_suffix="_hdr", dir_suffix="_hdr")

    def process(source, target, reporter):
        from bdx.hdr.reconstruct import ldr_to_hdr

        image = read_source(source)
        result = ldr_to_hdr(image, model, settings, device=device, progress=reporter.tiles)
        write_target(target, result.image, chosen, exr_half=half)
        record = {
            "method": method,
            "width": image.width,
            "height": image.height,
            "peak": result.peak,
            "mean": float(result.image.pixels.mean()),
        }
        if model is not None:
            record["model"] = model.architecture
        warning = joined_warnings(
            container_losses(image, chosen),
            "the result is black: there is no peak for --peak-nits to place" if peak_nits is not None and result.peak == 0 else None,
        )
        if warning:
            record["warning"] = warning
        return record

    with command_errors():
        status = batch.run(process, label="ldr2hdr", overwrite=overwrite, skip_existing=skip_existing, quiet=quiet, json_lines=json_lines)
    raise typer.Exit(status)
