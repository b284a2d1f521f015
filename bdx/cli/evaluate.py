"""``bdx eval depth``: fidelity, quantization-safety and banding metrics for dequantized images."""

from __future__ import annotations

import glob
import math
import sys
from pathlib import Path
from typing import Annotated, Any, Callable, Optional

import typer

from bdx.cli import eval_app
from bdx.cli import options as opt
from bdx.cli.common import (
    EXIT_FAILED,
    EXIT_OK,
    check_choice,
    check_path_option,
    command_errors,
    describe_depth_mismatch,
    describe_exception,
    expand_inputs,
    json_line,
    one_line,
    parse_in_bits,
)
from bdx.errors import BdxError, SettingError, UsageError, problem_of

SUMMARY_COLUMNS = (
    ("psnr", "PSNR dB", "{:.2f}"),
    ("ssim", "SSIM", "{:.4f}"),
    ("psnr_linear", "PSNR lin", "{:.2f}"),
    ("delta_e_ok", "ΔEok×100", "{:.3f}"),
    ("requant_match", "requant", "{:.2%}"),
    ("within_0.5_step", "≤½ step", "{:.2%}"),
    ("pred_zero_diff_g0.6", "zero Δ γ0.6", "{:.3f}"),
    ("pred_zero_run_g0.6", "zero run γ0.6", "{:.2f}"),
    ("pred_zero_diff_g1.6", "zero Δ γ1.6", "{:.3f}"),
    ("pred_distinct", "distinct/ch", "{:.0f}"),
    ("idempotence_drift_mean", "drift", "{:.3f}"),
)


def index_images(given: str, flag: str, paired: bool = True) -> dict[tuple[str, ...], Path]:
    """Images under ``given`` (a file, a folder or a quoted glob; the value of ``flag``) keyed by relative folder
    and stem (a file is its own entry); ``paired`` False: by the whole relative name, as nothing is paired by it."""
    check_path_option(flag, given)
    root = Path(given)
    if root.is_file():
        return {(root.stem if paired else root.name,): root}
    if not root.is_dir() and not glob.has_magic(str(root)):  # a missing input is exit status 1, as in every command
        raise BdxError(f"{root}: no such file or folder")
    images = expand_inputs([str(root)])
    for name, problem in images.problems:
        raise BdxError(f"{name}: {problem}")
    found: dict[tuple[str, ...], Path] = {}
    for source in images.sources:
        assert source.path is not None  # a folder or a glob finds files
        key = (source.relative.with_suffix("") if paired else source.relative).parts
        if key in found:
            raise UsageError(f"{found[key]} and {source.path} have the same name; cannot pair them")
        found[key] = source.path
    return found


def one_reference_for_all(ref: Path, predictions: dict[Path, dict[tuple[str, ...], Path]]) -> bool:
    """Whether one reference file serves every prediction whatever its name: only when each ``--pred`` is one
    image (else predictions pair with the reference by name, and the others have none)."""
    return ref.is_file() and all(len(images) == 1 for images in predictions.values())


def read_paired(path: Path, role: str):
    """A reference or input image, its errors naming it: a failed pair is reported under the prediction's name."""
    from bdx.io import read_image

    try:
        return read_image(path)
    except BdxError as exc:
        raise BdxError(f"{role} {path}: {problem_of(exc)}") from None


def method_labels(folders) -> dict[Path, str]:
    """Each ``--pred``'s row label: its folder's name, or the path as given where two names clash."""
    names = [str(folder) if glob.has_magic(str(folder)) else folder.name or str(folder) for folder in folders]
    return {folder: name if names.count(name) == 1 else str(folder) for folder, name in zip(folders, names)}


def score_pairs(
    predictions: dict[Path, dict[tuple[str, ...], Path]],
    refs: dict[tuple[str, ...], Path] | None,
    inputs: dict[tuple[str, ...], Path] | None,
    *,
    single: bool,
    prepare: Callable[[Path | None, Path | None], Any],
    score: Callable[[Path, Any], dict],
    json_lines: bool,
) -> tuple[dict[str, list[dict]], int]:
    """Score every prediction against its reference (and input), pairing by relative name.

    ``prepare(ref_path, input_path)`` runs once per name (so references and
    inputs are read once, whatever the number of methods); ``score(pred_path,
    prepared)`` once per prediction. A failure is one error line and the rest
    carry on. Returns the records per method label and the number of failures.
    """
    labels = method_labels(list(predictions))
    per_method: dict[str, list[dict]] = {label: [] for label in labels.values()}
    failed = 0

    def pick(index: dict[tuple[str, ...], Path] | None, key: tuple[str, ...]) -> Path | None:
        """The file of ``index`` for ``key``: the only one when a single file serves every prediction, else by name
        (a folder of inputs beside one reference file pairs by name: its first file was taken for every one)."""
        if index is None:
            return None
        return next(iter(index.values())) if single and len(index) == 1 else index.get(key)

    for key in sorted({key for images in predictions.values() for key in images}):
        ref_path, input_path = pick(refs, key), pick(inputs, key)
        try:
            if refs is not None and ref_path is None:
                raise BdxError("no reference with the same name")
            if inputs is not None and input_path is None:
                raise BdxError("no input with the same name")
            prepared, reason = prepare(ref_path, input_path), None
        except Exception as exc:  # the reference or input is unusable: every prediction of it fails
            prepared, reason = None, describe_exception(exc)
        for folder, images in predictions.items():
            if key not in images:
                continue
            record: dict = {"method": labels[folder], "pred": str(images[key])}
            if ref_path is not None:
                record["ref"] = str(ref_path)
            try:
                if reason is not None:
                    raise BdxError(reason)
                record.update(score(images[key], prepared))
                record["status"] = "ok"
                per_method[labels[folder]].append(record)
            except Exception as exc:  # one line per failed pair, then carry on
                failed += 1
                record.update(status="error", error=describe_exception(exc, file_named=True))
                sys.stderr.write(one_line(f"bdx: error: {images[key]}: {record['error']}") + "\n")
            if json_lines:
                sys.stdout.write(json_line(record) + "\n")
    return per_method, failed


@eval_app.command(
    "depth",
    epilog="Example:  bdx eval depth --pred out_contour --pred out_midpoint --ref photos --input photos_q4",
)
def eval_depth(
    pred: Annotated[list[str], typer.Option(help="Dequantized results (file, folder or quoted glob); repeat to compare methods.")],
    ref: Annotated[str, typer.Option(help="High-bit-depth references (file or folder).")],
    input_: Annotated[Optional[str], typer.Option("--input", help="The quantized inputs (enables bin metrics).")] = None,
    in_bits: Annotated[str, typer.Option(help="Input bit depth: auto (sBIT, else detected) or N.")] = "auto",
    convention: opt.Convention = "centre",
    method: Annotated[
        Optional[str], typer.Option(help="Re-run this method on the re-quantized output to measure idempotence drift.")
    ] = None,
    json_lines: opt.Json = False,
) -> None:
    """Compare dequantized images with references: PSNR/SSIM (sRGB and linear), ΔE, bin safety, banding."""
    from bdx.depth import DEPTH_METHODS, depth_mismatch
    from bdx.evaluation import depth_reference, evaluate_depth
    from bdx.io import read_image
    from bdx.quantization import CONVENTIONS

    with command_errors():
        bin_convention = check_choice("--convention", convention, CONVENTIONS)
        rerun = check_choice("--method", method, DEPTH_METHODS) if method is not None else None
        bits = parse_in_bits(in_bits)
        if input_ is None:  # these describe (or re-run) the quantized inputs: without them they would do nothing
            for flag, given in (("--in-bits", bits is not None), ("--convention", bin_convention != "centre"), ("--method", rerun)):
                if given:
                    raise UsageError(f"{flag} applies to the quantized inputs: give them with --input")
        refs = index_images(ref, "--ref")
        inputs = index_images(input_, "--input") if input_ is not None else None
        predictions = {Path(p): index_images(p, "--pred") for p in pred}
        single = one_reference_for_all(Path(ref), predictions)

    def prepare(ref_path: Path | None, input_path: Path | None):
        assert ref_path is not None  # references are required here
        source = read_paired(input_path, "input") if input_path is not None else None
        reference = read_paired(ref_path, "reference")
        try:
            prepared = depth_reference(reference, source, bits=bits, convention=bin_convention)
        except SettingError as exc:  # the input's depth or convention: name the input, not the prediction
            raise type(exc)(f"input {input_path}: {exc.template}") from None
        if prepared.source is not None and source is not None:  # bin metrics on misread levels would mislead: say so once per input
            mismatch = depth_mismatch(source, prepared.source.bits, prepared.source.content_bits, bin_convention)
            if mismatch is not None:
                warning = describe_depth_mismatch(mismatch, told=bits is not None)
                prepared.stats["warning"] = warning
                sys.stderr.write(one_line(f"bdx: warning: {input_path}: {warning}") + "\n")
        return prepared

    per_method, failed = score_pairs(
        predictions,
        refs,
        inputs,
        single=single,
        prepare=prepare,
        json_lines=json_lines,
        score=lambda path, reference: evaluate_depth(read_image(path), reference, method=rerun),
    )
    summary = {label: summarise(records) for label, records in per_method.items() if records}
    if inputs is not None:
        baseline = baseline_records(per_method)
        if baseline:
            summary["input (bin centre)"] = baseline
    finish(summary, failed, json_lines)


def summarise(records: list[dict]) -> dict:
    """Mean of every numeric metric over a method's images (list metrics are averaged per image first).

    An infinite value (the PSNR of an image identical to its reference) is left out of the mean, which would
    otherwise be infinite whatever the other images scored, and counted as ``<metric>_infinite``."""
    summary: dict = {"images": len(records)}
    for key in dict.fromkeys(key for record in records for key in record):  # every image's metrics, in order met
        values = [r[key] for r in records if r.get(key) is not None]  # None: not applicable to that image
        if values and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
            finite = [v for v in values if math.isfinite(v)]  # NaN marks "not applicable" (e.g. no clipped pixels)
            infinite = [v for v in values if math.isinf(v)]
            if infinite:
                summary[f"{key}_infinite"] = len(infinite)
            summary[key] = float(sum(finite) / len(finite)) if finite else float(infinite[0] if infinite else "nan")
        elif values and all(isinstance(v, list) for v in values):
            summary[key] = float(sum(sum(v) / len(v) for v in values) / len(values))
    return summary


def baseline_records(per_method: dict[str, list[dict]]) -> dict:
    """The quantized input's own banding figures, for comparison with every method."""
    records = next((r for r in per_method.values() if r), [])
    if not records:
        return {}
    picked = [
        {key.replace("input_", "pred_"): value for key, value in record.items() if key.startswith("input_") and key != "input_distinct"}
        | {"pred_distinct": record["input_distinct"]}
        for record in records
    ]
    return summarise(picked)


def finish(summary: dict, failed: int, json_lines: bool, columns=SUMMARY_COLUMNS, title: str = "bdx eval depth (means over images)"):
    """Write the summary (a JSON line, or a table) and exit: 0, or the failure status when a pair failed."""
    write_summary(summary, json_lines, columns, title)
    raise typer.Exit(EXIT_FAILED if failed else EXIT_OK)


def write_summary(summary: dict, json_lines: bool, columns=SUMMARY_COLUMNS, title: str = "bdx eval depth (means over images)") -> None:
    """The summary as a JSON line, or a table (none when no image was scored)."""
    if json_lines:
        sys.stdout.write(json_line({"summary": summary}) + "\n")
    elif summary:
        print_summary(summary, columns, title)


def print_summary(summary: dict, columns=SUMMARY_COLUMNS, title: str = "bdx eval depth (means over images)") -> None:
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    table = Table(title=title)
    table.add_column("method")
    table.add_column("n", justify="right")
    for _, heading, _ in columns:
        table.add_column(heading, justify="right")
    for label, row in summary.items():
        cells = [escape(label), str(row.get("images", ""))]  # labels are folder names: text, never markup
        for key, _, form in columns:
            cell = form.format(row[key]) if key in row else "-"
            perfect = row.get(f"{key}_infinite", 0)  # identical images, left out of the mean: say how many
            if perfect and key in row and math.isfinite(row[key]):
                cell += f" (+{perfect} ∞)"
            cells.append(cell)
        table.add_row(*cells)
    Console(width=None if sys.stdout.isatty() else 200).print(table)


LOWLIGHT_COLUMNS = (
    ("psnr", "PSNR dB", "{:.2f}"),
    ("ssim", "SSIM", "{:.4f}"),
    ("delta_e_ok", "ΔEok×100", "{:.3f}"),
    ("mean_brightness", "mean", "{:.3f}"),
    ("flat_noise", "flat noise", "{:.2f}"),
    ("clipped", "clipped", "{:.2%}"),
    ("colour_cast", "cast×100", "{:.2f}"),
    ("distinct", "distinct/ch", "{:.0f}"),
    ("pred_zero_diff_g0.6", "zero Δ γ0.6", "{:.3f}"),
)


@eval_app.command(
    "lowlight",
    epilog="Example:  bdx eval lowlight --pred out_bdx --pred out_zerodce --ref well_exposed/   ·   bdx eval lowlight --pred bright/",
)
def eval_lowlight(
    pred: Annotated[list[str], typer.Option(help="Enhanced results (file, folder or quoted glob); repeat to compare methods.")],
    ref: Annotated[Optional[str], typer.Option(help="Well-exposed references with the same names (enables PSNR, SSIM, ΔE).")] = None,
    json_lines: opt.Json = False,
) -> None:
    """Score enhanced low-light images: full-reference figures when --ref is given, no-reference figures always."""
    from bdx.evaluation import evaluate_lowlight
    from bdx.io import read_image

    with command_errors():
        refs = index_images(ref, "--ref") if ref is not None else None
        predictions = {Path(p): index_images(p, "--pred", paired=ref is not None) for p in pred}
        single = ref is not None and one_reference_for_all(Path(ref), predictions)

    per_method, failed = score_pairs(
        predictions,
        refs,
        None,
        single=single,
        json_lines=json_lines,
        prepare=lambda ref_path, _input: read_paired(ref_path, "reference") if ref_path is not None else None,
        score=lambda path, reference: evaluate_lowlight(read_image(path), reference),
    )
    summary = {label: summarise(records) for label, records in per_method.items() if records}
    finish(summary, failed, json_lines, LOWLIGHT_COLUMNS, "bdx eval lowlight (means over images)")


HDR_COLUMNS = (
    ("psnr_mu", "PSNR-μ dB", "{:.2f}"),
    ("psnr_log", "PSNR log dB", "{:.2f}"),
    ("ssim_mu", "SSIM-μ", "{:.4f}"),
    ("scale_error_ev", "scale err EV", "{:.2f}"),
    ("clipped_fraction", "clipped", "{:.2%}"),
    ("clipped_error", "clipped err", "{:.4f}"),
)


@eval_app.command(
    "hdr",
    epilog="Example:  bdx eval hdr --pred out_learned --pred out_classical --ref refs_exr/ --input ldr/ --sheet sheet.png",
)
def eval_hdr(
    pred: Annotated[list[str], typer.Option(help="Reconstructed HDR (EXR/HDR file, folder or quoted glob); repeat to compare methods.")],
    ref: Annotated[str, typer.Option(help="Scene-linear references with the same names.")],
    input_: Annotated[Optional[str], typer.Option("--input", help="The LDR inputs (enables clipped-region error).")] = None,
    sheet_: Annotated[Optional[str], typer.Option("--sheet", help="Write a side-by-side PNG at -3, 0 and +3 EV.")] = None,
    json_lines: opt.Json = False,
) -> None:
    """Score HDR reconstructions: PSNR-μ (μ=5000, 99th-percentile normalised), log PSNR, SSIM-μ, clipped-region error."""
    from bdx.evaluation import evaluate_hdr, exposure_sheet
    from bdx.io import Image, read_image, write_image

    with command_errors():
        refs = index_images(ref, "--ref")
        inputs = index_images(input_, "--input") if input_ is not None else None
        predictions = {Path(p): index_images(p, "--pred") for p in pred}
        single = one_reference_for_all(Path(ref), predictions)
        check_path_option("--sheet", sheet_)
        sheet = Path(sheet_) if sheet_ is not None else None
        if sheet is not None:  # before any scoring: a bad sheet path found at the end would waste the run
            if sheet.suffix.lower() != ".png":
                raise UsageError(f"--sheet must name a .png file, not {sheet}")
            if sheet.exists():
                raise BdxError(f"{sheet} exists (the sheet never replaces a file: remove it or choose another --sheet)")
            from bdx.io.write import check_output_folder

            check_output_folder(sheet.parent)

    sheet_rows: list = []

    def score(path: Path, prepared) -> dict:
        reference, source = prepared
        prediction = read_image(path)
        record = evaluate_hdr(prediction, reference, source)
        if sheet is not None and len(sheet_rows) < 24:
            if not any(image is reference for _, image in sheet_rows):  # the reference once, before its first result
                sheet_rows.append(("ref", reference))
            sheet_rows.append((path.parent.name, prediction))
        return record

    def prepare(ref_path: Path | None, input_path: Path | None):
        assert ref_path is not None  # references are required here
        return read_paired(ref_path, "reference"), read_paired(input_path, "input") if input_path else None

    per_method, failed = score_pairs(
        predictions,
        refs,
        inputs,
        single=single,
        json_lines=json_lines,
        score=score,
        prepare=prepare,
    )
    summary = {label: summarise(records) for label, records in per_method.items() if records}
    write_summary(summary, json_lines, HDR_COLUMNS, "bdx eval hdr (means over images)")  # kept if the sheet fails
    if sheet is not None and sheet_rows:
        with command_errors():
            write_image(sheet, Image(exposure_sheet(sheet_rows)), fmt="png", bits=8)
    raise typer.Exit(EXIT_FAILED if failed else EXIT_OK)
