"""``bdx enhance-lowlight``: brighten dark photos with pixel-wise curves, in 16 bits."""

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
from bdx.models import load_model

MEAN_TOLERANCE = 0.01  # a target mean missed by more than this is reported


@app.command(
    "enhance-lowlight",
    epilog="Examples:  bdx enhance-lowlight dark.jpg -o out.tiff   ·   bdx enhance-lowlight DICM/ -o bright/ --format png"
    "   ·   bdx enhance-lowlight frame.dng -o frame.exr   ·   bdx enhance-lowlight a.jpg -o a.tiff --weights Epoch99.pth",
)
def enhance_lowlight_command(
    inputs: opt.Inputs,
    output: opt.Output = None,
    weights: Annotated[
        Optional[str],
        typer.Option(
            help="bdx safetensors (default: shipped weights), or a published Zero-DCE, Zero-DCE-improved, Zero-DCE++ or SCI checkpoint."
        ),
    ] = None,
    dequantize: opt.Dequantize = "auto",
    denoise: Annotated[float, typer.Option(help="Denoising strength in dark, lifted areas (0: off).")] = 1.0,
    neutral_shadows: Annotated[
        float, typer.Option(help="Fade colour the input cannot support (near black) to grey; strength, 0: off.")
    ] = 1.0,
    gamma: Annotated[
        Optional[float], typer.Option(help="Gamma applied after the curves (>1 brightens; default: the model's own, 1.0 for bdx's).")
    ] = None,
    target_mean: Annotated[Optional[float], typer.Option(help="Choose the gamma that brings mean brightness to this value (0-1).")] = None,
    fmt: Annotated[Optional[str], typer.Option("--format", help="tiff, png or exr (default: from -o, else tiff).")] = None,
    device: opt.Device = "auto",
    tile: opt.Tile = None,
    overwrite: opt.Overwrite = False,
    skip_existing: opt.SkipExisting = False,
    shard: opt.Shard = None,
    json_lines: opt.Json = False,
    quiet: opt.Quiet = False,
) -> None:
    """Brighten dark images (JPEG, PNG, TIFF, camera RAW) to smooth 16-bit results: same size, no crop."""
    from bdx.depth import DISPLAY_DEQUANTIZERS
    from bdx.io.write import FORMAT_EXTENSIONS
    from bdx.lowlight.enhance import EnhanceSettings

    with command_errors():
        check_tile_option(tile)
        front_end = check_choice("--dequantize", dequantize, DISPLAY_DEQUANTIZERS)
        check_device(device)
        chosen = output_format(fmt, output, ("tiff", "png", "exr"))
        settings = EnhanceSettings(
            dequantize=front_end,
            denoise=denoise,
            gamma=gamma,
            target_mean=target_mean,
            neutral_shadows=neutral_shadows,
            tile=tile,
        )
        check_path_option("--weights", weights)
        model = load_model(weights, "lowlight")  # once for the batch, failing before it starts
        batch = plan_batch(inputs, output, shard, extension=FORMAT_EXTENSIONS[chosen], file_suffix="_bright", dir_suffix="_bright")

    def process(source, target, reporter):
        from bdx.lowlight.enhance import enhance_lowlight

        image = read_source(source)
        result = enhance_lowlight(image, model, settings, device=device, progress=reporter.tiles)
        write_target(target, result.image, chosen, bits=16, exr_half=True)  # EXR output is made scene-linear there
        record = {"model": model.architecture, "gamma": round(result.gamma, 4), "width": image.width, "height": image.height}
        clipped = image.is_float and float(image.pixels.max(initial=0.0)) > 1.0
        negative = image.is_float and float(image.pixels.min(initial=0.0)) < 0.0
        target = settings.target_mean
        missed = result.mean is not None and target is not None and abs(result.mean - target) > MEAN_TOLERANCE
        warning = joined_warnings(
            container_losses(image, chosen),
            f"values above 1.0 ({'highlights of a scene-linear input' if image.linear else 'of a float display image'}) were clipped: "
            "enhancement works on display values"
            if clipped
            else None,
            "negative values were clipped to 0" if negative else None,
            f"no gamma from 0.1 to 10 brings the mean brightness to {target:g}: gamma {result.gamma:.2f} gives {result.mean:.3f}"
            if missed
            else None,
        )
        if warning:
            record["warning"] = warning
        return record

    with command_errors():
        status = batch.run(
            process,
            label="enhance-lowlight",
            overwrite=overwrite,
            skip_existing=skip_existing,
            quiet=quiet,
            json_lines=json_lines,
        )
    raise typer.Exit(status)
