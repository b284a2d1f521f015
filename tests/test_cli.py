"""The bdx command line as a user scripts it: outputs, JSON, exit codes, and every kind of bad input."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from bdx.cli import app
from bdx.io import Image, encode_image, read_image, write_image
from bdx.quantization import requantize_u16

from conftest import gradient16, write_raw_exr

REPO = Path(__file__).resolve().parents[1]


def run(runner, *args, **kw):
    return runner.invoke(app, [str(a) for a in args], catch_exceptions=False, **kw)


def error_lines(result) -> list[str]:
    return [line for line in result.stderr.splitlines() if line.strip()]


@pytest.fixture
def photos(tmp_path, make_png):
    """A folder of small 8-bit images in a nested tree (gray, RGB, RGBA among them)."""
    base = gradient16(48, 64)
    make_png("photos/a.png", (base >> 8).astype(np.uint8))
    make_png("photos/sub/b.png", (base[..., :1] >> 8).astype(np.uint8))
    make_png("photos/sub/c.png", (base >> 8).astype(np.uint8), alpha=np.full((48, 64), 128, np.uint8))
    return tmp_path / "photos"


def test_quantize_upscale_eval_pipeline(runner, photos, tmp_path):
    result = run(runner, "quantize", "--bits", "4", photos)
    assert result.exit_code == 0, result.stderr
    quantized = tmp_path / "photos_q4"
    assert sorted(p.relative_to(quantized).as_posix() for p in quantized.rglob("*.png")) == ["a.png", "sub/b.png", "sub/c.png"]
    assert read_image(quantized / "a.png").significant_bits == 4

    for method in ("contour", "midpoint"):
        result = run(runner, "upscale-depth", quantized, "-o", tmp_path / method, "--method", method, "--json")
        assert result.exit_code == 0, result.stderr
        records = [json.loads(line) for line in result.stdout.splitlines()]
        assert [r["status"] for r in records] == ["ok"] * 3 and all(r["in_bits"] == 4 for r in records)
    out = read_image(tmp_path / "contour" / "sub" / "c.tiff")
    assert out.pixels.dtype == np.uint16 and out.alpha is not None and out.channels == 3
    assert read_image(tmp_path / "contour" / "sub" / "b.tiff").channels == 1

    result = run(runner, "eval", "depth", "--pred", tmp_path / "contour", "--pred", tmp_path / "midpoint",
                 "--ref", photos, "--input", quantized, "--method", "contour", "--json")
    assert result.exit_code == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    summary = lines[-1]["summary"]
    assert summary["contour"]["psnr"] > summary["midpoint"]["psnr"]
    assert summary["contour"]["requant_match"] == 1.0
    assert summary["contour"]["pred_zero_diff_g0.6"] < summary["midpoint"]["pred_zero_diff_g0.6"]
    assert summary["contour"]["idempotence_drift_mean"] == 0.0
    table = run(runner, "eval", "depth", "--pred", tmp_path / "contour", "--ref", photos, "--input", quantized)
    assert "PSNR" in table.stdout and "contour" in table.stdout


def test_eval_names_both_sizes_when_prediction_and_reference_differ(runner, make_png):
    prediction = make_png("pred.png", np.full((10, 12, 3), 100, np.uint8))
    reference = make_png("ref.png", np.full((16, 20, 3), 100, np.uint8))
    result = run(runner, "eval", "depth", "--pred", prediction, "--ref", reference)
    assert result.exit_code == 1
    assert error_lines(result) == [f"bdx: error: {prediction}: prediction is 12x10x3, the reference is 20x16x3"]
    assert result.stdout == ""  # nothing scored: no empty table


def test_eval_pairs_a_folder_of_inputs_by_name_beside_one_reference_file(runner, make_png, tmp_path):
    """The folder's first file (0other.png) was taken as the input of a.png: bin figures of 0 % instead of 100 %."""
    ramp = np.repeat(np.linspace(0, 1, 64)[None, :, None], 48, axis=0) * np.ones(3)
    reference = make_png("ref/a.png", np.rint(ramp * 65535).astype(np.uint16))
    codes = np.rint(np.rint(ramp * 31) / 31 * 255).astype(np.uint8)
    prediction = make_png("pred/a.png", codes.astype(np.uint16) * 257)
    make_png("inp/a.png", codes)
    make_png("inp/0other.png", codes[:, ::-1].copy())
    result = run(runner, "eval", "depth", "--pred", prediction, "--ref", reference, "--input", tmp_path / "inp", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout.splitlines()[0])["requant_match"] == 1.0


def test_eval_takes_quoted_globs_like_folders(runner, make_png, tmp_path):
    """`--pred 'pred/*.tiff'` was refused: "no such file or folder"."""
    ramp = np.repeat(np.linspace(0, 1, 64)[None, :, None], 48, axis=0) * np.ones(3)
    make_png("ref/a.png", np.rint(ramp * 65535).astype(np.uint16))
    make_png("pred/a.png", np.rint(ramp * 255).astype(np.uint16) * 257)
    make_png("pred/notes.png", np.zeros((4, 4, 3), np.uint8))
    pattern = str(tmp_path / "pred" / "a.*")
    by_glob = run(runner, "eval", "depth", "--pred", pattern, "--ref", tmp_path / "ref", "--json")
    assert by_glob.exit_code == 0, by_glob.stderr
    records = [json.loads(line) for line in by_glob.stdout.splitlines()]
    assert [Path(r["pred"]).name for r in records[:-1]] == ["a.png"] and list(records[-1]["summary"]) == [pattern]
    nothing = run(runner, "eval", "depth", "--pred", str(tmp_path / "pred" / "*.exr"), "--ref", tmp_path / "ref")
    assert nothing.exit_code == 1 and error_lines(nothing) == [f"bdx: error: {tmp_path / 'pred' / '*.exr'}: no files match"]
    missing = run(runner, "eval", "depth", "--pred", tmp_path / "gone", "--ref", tmp_path / "ref")  # 1, as in every command
    assert missing.exit_code == 1 and error_lines(missing) == [f"bdx: error: {tmp_path / 'gone'}: no such file or folder"]


@pytest.mark.parametrize("task", ["depth", "lowlight", "hdr"])
def test_eval_names_the_reference_or_input_that_cannot_be_read(runner, make_png, tmp_path, task):
    """A good prediction beside an empty reference (or input) file: the line names the unreadable file, not only the
    prediction (it said `pred/a.png: file is empty`)."""
    pixels = np.full((8, 8, 3), 100, np.uint8)
    if task == "hdr":
        (tmp_path / "pred").mkdir()
        write_image(tmp_path / "pred" / "a.exr", Image(pixels.astype(np.float32) / 255), exr_half=False)
    else:
        make_png("pred/a.png", pixels)
    make_png("input/a.png", pixels)
    (tmp_path / "ref").mkdir()
    (tmp_path / "ref" / "a.png").write_bytes(b"")
    result = run(runner, "eval", task, "--pred", tmp_path / "pred", "--ref", tmp_path / "ref")
    assert result.exit_code == 1
    assert error_lines(result) == [f"bdx: error: {tmp_path / 'pred' / 'a'}{'.exr' if task == 'hdr' else '.png'}: "
                                   f"reference {tmp_path / 'ref' / 'a.png'}: file is empty"]
    if task != "lowlight":  # with a good reference and an empty input
        make_png("ref/a.png", pixels)
        (tmp_path / "input" / "a.png").write_bytes(b"")
        result = run(runner, "eval", task, "--pred", tmp_path / "pred", "--ref", tmp_path / "ref", "--input", tmp_path / "input")
        assert result.exit_code == 1 and f"input {tmp_path / 'input' / 'a.png'}: file is empty" in result.stderr


def test_upscale_depth_runs_the_shipped_network_for_each_inputs_depth_and_names_it(runner, make_png, tmp_path):
    from bdx.assets import default_weights

    base = gradient16(32, 40)
    four_bit = make_png("four.png", ((base >> 12) * 17).astype(np.uint8), sbit=4)
    eight_bit = make_png("eight.png", (base >> 8).astype(np.uint8))
    for source, bits in ((four_bit, 4), (eight_bit, 8)):
        result = run(runner, "upscale-depth", source, "-o", tmp_path / f"{bits}.tiff", "--json")
        record = json.loads(result.stdout)
        assert result.exit_code == 0 and record["in_bits"] == bits
        assert record["weights"] == default_weights("depth", bits).name
    given = default_weights("depth", 8)
    told = run(runner, "upscale-depth", four_bit, "-o", tmp_path / "given.tiff", "--weights", given, "--json")
    assert told.exit_code == 0 and json.loads(told.stdout)["weights"] == given.name  # --weights wins at any depth
    plain = run(runner, "upscale-depth", four_bit, "-o", tmp_path / "plain.tiff", "--method", "midpoint", "--json")
    assert plain.exit_code == 0 and json.loads(plain.stdout)["weights"] is None


def test_a_depth_below_the_content_warns_that_detail_is_rounded_away(runner, make_png, tmp_path):
    five_bit = np.rint(np.arange(32).repeat(4)[None, :, None] * (255 / 31)).astype(np.uint8).repeat(8, 0).repeat(3, 2)
    source = make_png("five.png", five_bit)
    stale_sbit = make_png("stale.png", five_bit, sbit=3)  # e.g. an sBIT chunk kept through an edit
    told = run(runner, "upscale-depth", source, "-o", tmp_path / "told.tiff", "--method", "midpoint", "--in-bits", "2", "--json")
    assert told.exit_code == 0
    assert error_lines(told) == [
        f"bdx: warning: {source}: treated as 2-bit (--in-bits), but its codes need 5 bits: the finer detail was rounded away"
    ]
    assert "rounded away" in json.loads(told.stdout)["warning"]
    from_sbit = run(runner, "upscale-depth", stale_sbit, "-o", tmp_path / "stale.tiff", "--method", "midpoint")
    assert from_sbit.exit_code == 0 and "3-bit (its sBIT chunk), but its codes need 5 bits" in from_sbit.stderr
    right = run(runner, "upscale-depth", source, "-o", tmp_path / "right.tiff", "--method", "midpoint", "--json")
    assert right.exit_code == 0 and error_lines(right) == [] and "warning" not in json.loads(right.stdout)


def test_per_channel_sbit_is_left_to_detection(runner, tmp_path):
    """An RGB565 PNG (sBIT 5,6,5) was read as 6-bit, the largest depth, and its red channel then warned that "its
    codes need 8 bits"."""
    from bdx.io.metadata import PNG_SIGNATURE, png_chunk

    levels = np.arange(64).repeat(2)[None, :].repeat(4, 0)
    red = np.rint((levels >> 1) * (255 / 31))
    green = np.rint(levels * (255 / 63))
    pixels = np.stack([red, green, red[:, ::-1]], axis=-1).astype(np.uint8)
    png = encode_image(Image(pixels), "png")
    at = len(PNG_SIGNATURE) + 8 + 13 + 4  # right after IHDR
    source = tmp_path / "rgb565.png"
    source.write_bytes(png[:at] + png_chunk(b"sBIT", bytes([5, 6, 5])) + png[at:])
    assert read_image(source).significant_bits is None
    result = run(runner, "upscale-depth", source, "-o", tmp_path / "out.tiff", "--method", "midpoint")
    assert result.exit_code == 0 and error_lines(result) == []
    assert np.unique(read_image(tmp_path / "out.tiff").pixels[..., 1]).size == 64


def test_top_bit_levels_read_as_bin_centres_warn_with_the_convention_to_use(runner, make_png, tmp_path):
    """`quantize --convention truncate` output (sBIT 6, codes = level << 2) read with the default convention:
    upscale-depth and eval depth warn with --convention truncate instead of claiming detail was rounded away (eval's
    bin metrics would mislead); with it, no warning."""
    six_bit = (np.arange(64).repeat(4)[None, :, None] << 2).astype(np.uint8).repeat(8, 0).repeat(3, 2)
    source = make_png("six.png", six_bit, sbit=6)
    misread = run(runner, "upscale-depth", source, "-o", tmp_path / "a.tiff", "--method", "midpoint", "--json")
    assert misread.exit_code == 0
    assert error_lines(misread) == [
        f"bdx: warning: {source}: treated as 6-bit (its sBIT chunk), its codes need 8 bits as bin centres, "
        "but they are 6-bit levels with zero-filled low bits: add --convention truncate"
    ]
    right = run(runner, "upscale-depth", source, "-o", tmp_path / "b.tiff", "--method", "midpoint", "--convention", "truncate", "--json")
    assert right.exit_code == 0 and error_lines(right) == [] and "warning" not in json.loads(right.stdout)
    reference = make_png("ref.png", six_bit.astype(np.uint16) * 257)  # any 16-bit reference of the same size
    scored = run(runner, "eval", "depth", "--pred", tmp_path / "b.tiff", "--ref", reference, "--input", source, "--json")
    assert scored.exit_code == 0 and "add --convention truncate" in json.loads(scored.stdout.splitlines()[0])["warning"]
    assert error_lines(scored) == [f"bdx: warning: {source}: " + json.loads(scored.stdout.splitlines()[0])["warning"]]
    told = run(runner, "eval", "depth", "--pred", tmp_path / "b.tiff", "--ref", reference, "--input", source,
               "--convention", "truncate", "--json")
    assert told.exit_code == 0 and error_lines(told) == [] and json.loads(told.stdout.splitlines()[0])["requant_match"] == 1.0


def test_coarse_levels_with_zero_filled_low_bits_and_no_sbit_warn_with_the_convention_to_use(runner, make_png, tmp_path):
    """An 8-bit file of 4-bit levels shifted up (no sBIT) was read as 8-bit bin centres: 16 output values, the banding
    unchanged, status ok and not a word; a flat image (one code) is no coarse depth and gets no warning."""
    ramp = np.linspace(0, 1, 64)
    source = make_png("t4.png", (np.outer(ramp, ramp) * 255).astype(np.uint8) // 16 * 16)
    misread = run(runner, "upscale-depth", source, "-o", tmp_path / "a.tiff", "--method", "midpoint", "--json")
    assert misread.exit_code == 0
    warning = "its codes are 4-bit levels with zero-filled low bits, which 8-bit bin centres leave banded: add --convention truncate"
    assert json.loads(misread.stdout)["warning"] == warning and error_lines(misread) == [f"bdx: warning: {source}: {warning}"]
    right = run(runner, "upscale-depth", source, "-o", tmp_path / "b.tiff", "--method", "contour", "--convention", "truncate", "--json")
    assert right.exit_code == 0 and "warning" not in json.loads(right.stdout)
    assert len(np.unique(read_image(tmp_path / "b.tiff").pixels)) > 100
    flat = make_png("flat.png", np.full((16, 16, 3), 128, np.uint8))
    quiet = run(runner, "upscale-depth", flat, "-o", tmp_path / "c.tiff", "--method", "midpoint", "--json")
    assert quiet.exit_code == 0 and "warning" not in json.loads(quiet.stdout)


def test_single_file_output_name_and_format(runner, make_png, tmp_path):
    source = make_png("x.png", (gradient16() >> 11 << 3).astype(np.uint8))
    assert run(runner, "upscale-depth", source).exit_code == 0
    assert (tmp_path / "x_16bit.tiff").exists()
    assert run(runner, "upscale-depth", source, "-o", tmp_path / "y.png").exit_code == 0
    assert read_image(tmp_path / "y.png").container_bits == 16
    assert run(runner, "upscale-depth", source, "-o", tmp_path / "z.exr").exit_code == 0
    exr = read_image(tmp_path / "z.exr")
    assert exr.is_float  # and scene-linear, EXR's convention (as enhance-lowlight writes it): the PNG's codes decoded
    from bdx.color import srgb_codes

    np.testing.assert_allclose(srgb_codes(exr.pixels).astype(int), read_image(tmp_path / "y.png").pixels, atol=1)
    assert run(runner, "upscale-depth", source, "-o", str(tmp_path / "w.tiff") + "/", "--method", "midpoint").exit_code == 0
    assert (tmp_path / "w.tiff" / "x.tiff").is_file()  # a trailing slash names a folder (it wrote the file w.tiff)


def test_a_file_output_for_a_folder_input_says_so(runner, make_png, tmp_path):
    """A folder holding one image with -o naming a file said 'there are 1 inputs'."""
    make_png("one/x.png", np.full((8, 8, 3), 34, np.uint8))
    result = run(runner, "quantize", "--bits", "4", tmp_path / "one", "-o", tmp_path / "y.png")
    assert result.exit_code == 2
    assert error_lines(result) == [f"bdx: error: -o {tmp_path / 'y.png'} names one file, but the input is a folder (give a folder)"]
    make_png("one/z.png", np.full((8, 8, 3), 34, np.uint8))
    assert "there are 2 inputs" in run(runner, "quantize", "--bits", "4", tmp_path / "one", "-o", tmp_path / "y.png").stderr


def test_an_output_folder_inside_the_input_folder_is_not_read_back(runner, make_png, tmp_path):
    make_png("d/a.png", np.full((8, 8, 3), 34, np.uint8))
    folder, out = tmp_path / "d", tmp_path / "d" / "out"
    assert run(runner, "upscale-depth", folder, "-o", out, "--method", "midpoint").exit_code == 0
    again = run(runner, "upscale-depth", folder, "-o", out, "--method", "midpoint", "--skip-existing", "--json")
    assert again.exit_code == 0 and sorted(p.name for p in out.rglob("*")) == ["a.tiff"]  # no out/out/a.tiff
    # left out, but not without a word: one warning line, and a record each
    assert error_lines(again) == [f"bdx: warning: {out / 'a.tiff'}: inside the output folder {out}: left out (name the file to process it)"]
    assert [(Path(r["input"]).name, r["status"]) for r in map(json.loads, again.stdout.splitlines())] == [("a.tiff", "skipped"), ("a.png", "skipped")]
    assert run(runner, "quantize", "--bits", "4", out, "-o", out / "q").exit_code == 0  # asked for by name: read
    assert (out / "q" / "a.png").exists()
    pattern = str(tmp_path / "d" / "**" / "*.png")  # a recursive glob is searched the same way
    for _ in range(2):
        assert run(runner, "quantize", "--bits", "3", pattern, "-o", tmp_path / "d" / "g", "--skip-existing").exit_code == 0
    assert sorted(p.relative_to(tmp_path / "d" / "g").as_posix() for p in (tmp_path / "d" / "g").rglob("*.png")) == ["a.png", "out/q/a.png"]
    make_png("e/o/x.png", np.full((8, 8, 3), 34, np.uint8))
    only_outputs = run(runner, "quantize", "--bits", "3", tmp_path / "e", "-o", tmp_path / "e" / "o")  # exit 0, not a word
    assert only_outputs.exit_code == 1 and error_lines(only_outputs) == [
        f"bdx: error: every input lies inside the output folder {tmp_path / 'e' / 'o'}: nothing to do"]


@pytest.mark.skipif(sys.platform == "win32", reason="pseudo-terminals are POSIX")
def test_an_image_is_never_written_to_a_terminal(make_png):
    import pty

    source = make_png("a.png", np.full((8, 8, 3), 34, np.uint8))
    leader, follower = pty.openpty()
    try:
        with open(source, "rb") as stdin:
            done = subprocess.run([sys.executable, "-m", "bdx", "upscale-depth", "-", "--method", "midpoint"], stdin=stdin,
                                  stdout=follower, stderr=subprocess.PIPE, text=True, timeout=120)
    finally:
        os.close(follower)
        os.close(leader)
    assert done.returncode == 2 and "the image would go to the terminal" in done.stderr


def test_info_prints_file_names_literally(runner, make_png, tmp_path):
    make_png("x[/red]y [edited].png", np.full((8, 8, 3), 34, np.uint8))
    result = run(runner, "info", tmp_path)
    assert result.exit_code == 0 and "x[/red]y [edited].png" in result.stdout


def test_existing_outputs_overwrite_and_skip(runner, make_png, tmp_path):
    source = make_png("x.png", np.full((8, 8, 3), 34, np.uint8), sbit=4)
    target = tmp_path / "x.tiff"
    assert run(runner, "upscale-depth", source, "-o", target).exit_code == 0
    again = run(runner, "upscale-depth", source, "-o", target)
    assert again.exit_code == 1 and "--overwrite" in again.stderr
    skip = run(runner, "upscale-depth", source, "-o", target, "--skip-existing", "--json")
    assert skip.exit_code == 0 and json.loads(skip.stdout)["status"] == "skipped"
    assert run(runner, "upscale-depth", source, "-o", target, "--overwrite").exit_code == 0
    folder_there = tmp_path / "out" / "x.tiff"
    folder_there.mkdir(parents=True)  # a folder where the output goes is no finished output: it was "skipped", exit 0
    blocked = run(runner, "upscale-depth", source, "-o", tmp_path / "out", "--skip-existing")
    assert blocked.exit_code == 1 and error_lines(blocked) == [f"bdx: error: {source}: output {folder_there} is a directory"]


def test_skip_existing_never_counts_an_input_as_an_output_already_made(runner, make_png, tmp_path):
    """An output folder equal to the input folder with --skip-existing reported every input as "skipped", exit 0,
    where without the flag the same run fails with "output path is the input file"."""
    folder = tmp_path / "sk"
    folder.mkdir()
    write_image(folder / "a.png", Image(np.zeros((8, 8), np.uint8)))
    for extra in ([], ["--skip-existing"]):
        result = run(runner, "upscale-depth", folder, "-o", folder, "--format", "png", "--method", "midpoint", "--json", *extra)
        assert result.exit_code == 1 and json.loads(result.stdout)["status"] == "error", extra
        assert "output path is the input file" in result.stderr
    same = run(runner, "quantize", "--bits", "4", folder, "-o", folder, "--skip-existing", "--json")
    assert same.exit_code == 1 and "output path is the input file" in same.stderr


def test_a_folder_that_cannot_be_read_is_an_error_not_skipped_unsaid(runner, tmp_path, monkeypatch):
    """A subfolder without read permission was left out of a folder's inputs with exit 0 and no message, and an
    unreadable input folder was reported as holding no images."""
    import os

    tree = tmp_path / "tree"
    (tree / "locked").mkdir(parents=True)
    write_image(tree / "a.png", Image(np.zeros((8, 8), np.uint8)))
    write_image(tree / "locked" / "b.png", Image(np.zeros((8, 8), np.uint8)))
    real_scandir = os.scandir
    denied = {tree / "locked"}

    def scandir(path="."):  # what a folder without read permission does (tests may run as root, who reads anything)
        if Path(path) in denied:
            raise PermissionError(13, "Permission denied", str(path))
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", scandir)
    result = run(runner, "quantize", "--bits", "4", tree, "-o", tmp_path / "out", "--json")
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert result.exit_code == 1
    assert {r["input"]: r["status"] for r in records} == {str(tree / "locked"): "error", str(tree / "a.png"): "ok"}
    assert f"{tree / 'locked'}: cannot read folder: Permission denied" in result.stderr
    denied.add(tree)
    top = run(runner, "quantize", "--bits", "4", tree, "-o", tmp_path / "out2")
    assert top.exit_code != 0 and "cannot read folder: Permission denied" in top.stderr and "holds no images" not in top.stderr


def test_refuses_to_overwrite_input(runner, make_png):
    source = make_png("x.png", np.full((8, 8, 3), 34, np.uint8), sbit=4)
    before = source.read_bytes()
    result = run(runner, "upscale-depth", source, "-o", source, "--overwrite")
    assert result.exit_code == 1 and "input" in result.stderr
    assert source.read_bytes() == before


def test_refuses_to_overwrite_another_input_of_the_batch(runner, make_png, tmp_path):
    """x.png's output name is x_q4.png, itself an input: --overwrite never replaces an input."""
    make_png("x.png", np.full((8, 8, 3), 34, np.uint8))
    other = make_png("x_q4.png", np.full((8, 8, 3), 200, np.uint8))
    before = other.read_bytes()
    result = run(runner, "quantize", "-b", "4", tmp_path / "x.png", other, "--overwrite")
    assert result.exit_code == 1 and "another input" in result.stderr and "Traceback" not in result.stderr
    assert other.read_bytes() == before


def test_colliding_outputs_refused_before_work(runner, make_png, tmp_path):
    a = make_png("one/x.png", np.full((8, 8, 3), 34, np.uint8), sbit=4)
    b = make_png("two/x.png", np.full((8, 8, 3), 51, np.uint8), sbit=4)
    result = run(runner, "upscale-depth", a, b, "-o", tmp_path / "out")
    assert result.exit_code == 2 and "both write" in result.stderr
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    "command,extension",
    [(["upscale-depth"], ".tiff"), (["enhance-lowlight", "--dequantize", "midpoint"], ".tiff"),
     (["ldr2hdr", "--dequantize", "midpoint"], ".exr")],
)
def test_bad_inputs_each_get_one_line_and_the_rest_still_run(runner, tmp_path, make_png, command, extension):
    good = make_png("in/good.png", ((gradient16() >> 12) * 17).astype(np.uint8))  # 4-bit levels as bin centres
    make_png("in/gray.png", ((gradient16(channels=1) >> 12) * 17).astype(np.uint8))
    make_png("in/alpha.png", ((gradient16() >> 12) * 17).astype(np.uint8), alpha=np.full((96, 128), 200, np.uint8))
    make_png("in/one.png", np.array([[[17, 34, 51]]], np.uint8))
    folder = tmp_path / "in"
    png = encode_image(Image((gradient16() >> 8).astype(np.uint8)), "png", bits=8)
    jpeg = encode_image(Image((gradient16() >> 8).astype(np.uint8)), "jpeg")
    tiff = encode_image(Image((gradient16() >> 8).astype(np.uint8)), "tiff", bits=8)
    (folder / "cutp.png").write_bytes(png[: len(png) // 2])
    (folder / "cutj.jpg").write_bytes(jpeg[: len(jpeg) // 2])
    (folder / "cutt.tif").write_bytes(tiff[: len(tiff) // 2])
    (folder / "text.png").write_text("hello")
    (folder / "zero.png").write_bytes(b"")
    nan = np.ones((4, 4, 3), np.float32)
    nan[0, 0, 0] = np.nan
    write_raw_exr(folder / "nan.exr", nan)

    result = run(runner, *command, folder, tmp_path / "missing.png", tmp_path / "nothing*.png", "-o", tmp_path / "out")
    assert result.exit_code == 1
    lines = error_lines(result)
    expected = {"missing.png", "nothing*.png", "cutp.png", "cutj.jpg", "cutt.tif", "text.png", "zero.png", "nan.exr"}
    assert len(lines) == len(expected)
    for name in expected:
        assert sum(name in line for line in lines) == 1, (name, lines)
    assert all(line.startswith("bdx: error: ") and "Traceback" not in line for line in lines)
    made = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert made == [f"{name}{extension}" for name in ("alpha", "good", "gray", "one")]
    out = read_image(tmp_path / "out" / f"good{extension}")
    assert out.pixels.dtype == (np.uint16 if extension == ".tiff" else np.float32)
    assert out.pixels.shape[:2] == (96, 128)
    assert read_image(tmp_path / "out" / f"alpha{extension}").alpha is not None
    assert good.exists()


def test_empty_directory_and_unwritable_outputs(runner, tmp_path, make_png):
    (tmp_path / "empty").mkdir()
    result = run(runner, "quantize", "--bits", "4", tmp_path / "empty")
    assert result.exit_code == 1 and "no images" in result.stderr
    source = make_png("x.png", np.full((8, 8, 3), 40, np.uint8))
    missing = run(runner, "quantize", "--bits", "4", source, "-o", tmp_path / "nope" / "x.png")
    assert missing.exit_code == 1 and "does not exist" in missing.stderr
    under_a_file = run(runner, "quantize", "--bits", "4", source, "-o", source / "x.png")
    assert under_a_file.exit_code == 1 and error_lines(under_a_file) == [f"bdx: error: {source}: {source} is not a folder"]
    readonly = run(runner, "quantize", "--bits", "4", source, "-o", "/proc/bdx-test-out.png")
    assert readonly.exit_code == 1 and len(error_lines(readonly)) == 1
    assert not list(tmp_path.glob("**/*.bdx-tmp"))


def test_empty_paths_never_mean_the_current_directory(runner, tmp_path, make_png, monkeypatch):
    """`bdx quantize --bits 4 "$UNSET"` must not process the working directory (Path("") is ".")."""
    make_png("here.png", np.full((8, 8, 3), 40, np.uint8))
    monkeypatch.chdir(tmp_path)
    before = sorted(p.name for p in tmp_path.rglob("*"))
    empty_input = run(runner, "quantize", "--bits", "4", "")
    assert empty_input.exit_code == 1
    assert error_lines(empty_input) == ["bdx: error: '': empty input path (an unset shell variable?)"]
    empty_output = run(runner, "quantize", "--bits", "4", "here.png", "-o", " ")
    assert empty_output.exit_code == 2 and "-o is empty" in empty_output.stderr
    for command in ("upscale-depth", "enhance-lowlight", "ldr2hdr"):  # read as the current folder: "." is a folder
        empty_weights = run(runner, command, "here.png", "-o", "x.exr" if command == "ldr2hdr" else "x.tiff", "--weights", "")
        assert empty_weights.exit_code == 2 and error_lines(empty_weights) == ["bdx: error: --weights is empty (an unset shell variable?)"]
    assert sorted(p.name for p in tmp_path.rglob("*")) == before


@pytest.mark.parametrize("bits,sixteen,message", [(0, False, "between 1 and 15"), (17, False, "between 1 and 15"),
                                                   (16, True, "between 1 and 15"), (8, False, "does not reduce")])
def test_quantize_bad_bits(runner, make_png, bits, sixteen, message):
    pixels = gradient16() if sixteen else (gradient16() >> 8).astype(np.uint8)
    source = make_png("x.png", pixels)
    result = run(runner, "quantize", "--bits", bits, source)
    assert result.exit_code == (1 if message == "does not reduce" else 2) and message in result.stderr
    assert len(error_lines(result)) == 1


def test_quantize_negative_seed_is_a_usage_error(runner, make_png):
    source = make_png("x.png", np.full((8, 8, 3), 40, np.uint8))
    result = run(runner, "quantize", "--bits", "2", "--dither", "random", "--seed", "-1", source)
    assert result.exit_code == 2 and error_lines(result) == ["bdx: error: --seed must be a whole number of at least 0, not -1"]


def test_quantize_16bit_to_10_and_kmeans_and_dither(runner, make_png, tmp_path):
    source = make_png("x.png", gradient16())
    assert run(runner, "quantize", "--bits", "10", source, "-o", tmp_path / "ten.png").exit_code == 0
    ten = read_image(tmp_path / "ten.png")
    assert ten.container_bits == 16 and ten.significant_bits == 10
    for extra in (["--method", "kmeans"], ["--dither", "floyd-steinberg"], ["--dither", "ordered", "--convention", "truncate"]):
        target = tmp_path / f"{extra[-1]}.png"
        assert run(runner, "quantize", "--bits", "3", source, "-o", target, *extra).exit_code == 0
    assert run(runner, "quantize", "--bits", "3", source, "--dither", "bogus").exit_code == 2
    palette = run(runner, "quantize", "--bits", "10", "--method", "kmeans", source, source, "-o", tmp_path / "k")
    assert palette.exit_code == 2 and error_lines(palette) == ["bdx: error: --method kmeans supports up to 8 bits (256 colours), not --bits 10"]
    palette = run(runner, "quantize", "--bits", "4", "--method", "kmeans", "--convention", "truncate", source, "-o", tmp_path / "k")
    assert palette.exit_code == 2 and error_lines(palette) == ["bdx: error: --convention applies to --method linear only"]


def test_quantize_does_not_raise_the_declared_depth_of_an_sbit_input(runner, make_png, tmp_path):
    """4-bit content (sBIT 4) quantized to 6 bits was written as sBIT 6, and upscale-depth then trusted 6."""
    source = make_png("x.png", gradient16())
    assert run(runner, "quantize", "--bits", "4", source, "-o", tmp_path / "q4.png").exit_code == 0
    result = run(runner, "quantize", "--bits", "6", tmp_path / "q4.png", "-o", tmp_path / "q6.png")
    assert result.exit_code == 1 and not (tmp_path / "q6.png").exists()
    assert error_lines(result) == [f"bdx: error: {tmp_path / 'q4.png'}: --bits 6 does not reduce an input of 4 significant bits (sBIT)"]
    assert run(runner, "quantize", "--bits", "3", tmp_path / "q4.png", "-o", tmp_path / "q3.png").exit_code == 0
    palette = run(runner, "quantize", "--bits", "6", "--method", "kmeans", tmp_path / "q4.png", "-o", tmp_path / "k6.png")
    assert palette.exit_code == 0, palette.stderr  # --bits of a palette counts colours (64), not bits per sample


@pytest.mark.parametrize("method", ["linear", "kmeans"])
def test_quantize_keeps_a_16bit_alpha_at_16_bits(runner, tmp_path, method):
    rng = np.random.default_rng(3)
    alpha = rng.integers(0, 65536, (24, 32), dtype=np.uint16)
    source = tmp_path / "rgba16.tif"
    write_image(source, Image(rng.integers(0, 65536, (24, 32, 3), dtype=np.uint16), alpha=alpha))
    result = run(runner, "quantize", "--bits", "2", "--method", method, source, "-o", tmp_path / "q.png")
    assert result.exit_code == 0, result.stderr
    out = read_image(tmp_path / "q.png")
    assert out.container_bits == 16 and out.alpha is not None and np.array_equal(out.alpha, alpha)
    assert len(np.unique(out.pixels)) <= 4 if method == "linear" else len(np.unique(out.pixels.reshape(-1, 3), axis=0)) <= 4


def test_shard_and_environment(runner, photos, tmp_path, monkeypatch):
    result = run(runner, "quantize", "--bits", "4", photos, "-o", tmp_path / "s", "--shard", "1/2", "--json")
    assert [Path(json.loads(line)["input"]).name for line in result.stdout.splitlines()] == ["b.png"]
    monkeypatch.setenv("SLURM_ARRAY_TASK_ID", "0")
    monkeypatch.setenv("SLURM_ARRAY_TASK_COUNT", "3")
    result = run(runner, "quantize", "--bits", "4", photos, "-o", tmp_path / "t", "--json")
    assert [Path(json.loads(line)["input"]).name for line in result.stdout.splitlines()] == ["a.png"]
    monkeypatch.setenv("SLURM_ARRAY_TASK_ID", "14")  # --array=10-14:2: the third task of three
    monkeypatch.setenv("SLURM_ARRAY_TASK_MIN", "10")
    monkeypatch.setenv("SLURM_ARRAY_TASK_STEP", "2")
    result = run(runner, "quantize", "--bits", "4", photos, "-o", tmp_path / "u", "--json")
    assert result.exit_code == 0 and [Path(json.loads(line)["input"]).name for line in result.stdout.splitlines()] == ["c.png"]
    assert run(runner, "quantize", "--bits", "4", photos, "--shard", "3/2").exit_code == 2


def test_a_shard_with_no_inputs_says_so_and_environment_errors_name_the_environment(runner, make_png, tmp_path, monkeypatch):
    """Under RANK=1 WORLD_SIZE=8 one input gave no output, no JSON and no word; a bad SLURM task id was
    reported as a bad --shard, an option never given."""
    source = make_png("x.png", np.full((8, 8, 3), 40, np.uint8))
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "8")
    result = run(runner, "quantize", "--bits", "4", source, "-o", tmp_path / "y.png")
    assert result.exit_code == 0 and "shard 1/8 holds none of the 1 input" in result.stderr
    monkeypatch.setenv("WORLD_SIZE", "1")
    result = run(runner, "quantize", "--bits", "4", source, "-o", tmp_path / "z.png")
    assert result.exit_code == 2 and "environment's shard" in result.stderr and "--shard" not in result.stderr


def test_shards_plan_outputs_over_every_input(runner, make_png, tmp_path):
    """Planned per shard, a.jpg's result replaced the input a.png of the other shard, and two shards wrote one
    file in turn: the whole run's plan decides, as without --shard."""
    folder = tmp_path / "d"
    make_png("d/a.png", np.full((8, 8, 3), 40, np.uint8))
    write_image(folder / "a.jpg", Image(np.full((8, 8, 3), 200, np.uint8)))
    original = (folder / "a.png").read_bytes()
    for shard in ("0/2", "1/2"):
        replace = run(runner, "quantize", "--bits", "4", folder, "-o", folder, "--overwrite", "--shard", shard)
        collide = run(runner, "quantize", "--bits", "4", folder, "-o", tmp_path / "out", "--shard", shard)
        assert replace.exit_code == 2 and "would both write" in replace.stderr
        assert collide.exit_code == 2 and "would both write" in collide.stderr
    assert (folder / "a.png").read_bytes() == original and not (tmp_path / "out").exists()
    make_png("e/b.png", np.full((8, 8, 3), 40, np.uint8))
    make_png("e/b_q4.png", np.full((8, 8, 3), 90, np.uint8))  # an input, and the other shard's output name
    kept = (tmp_path / "e" / "b_q4.png").read_bytes()
    result = run(runner, "quantize", "--bits", "4", tmp_path / "e" / "b.png", tmp_path / "e" / "b_q4.png", "--overwrite", "--shard", "0/2")
    assert result.exit_code == 1 and "refusing to overwrite an input" in result.stderr
    assert (tmp_path / "e" / "b_q4.png").read_bytes() == kept


def test_glob_input(runner, photos, tmp_path):
    result = run(runner, "quantize", "--bits", "4", str(photos / "**" / "*.png"), "-o", tmp_path / "g", "--json")
    assert result.exit_code == 0
    assert sorted(p.relative_to(tmp_path / "g").as_posix() for p in (tmp_path / "g").rglob("*.png")) == ["a.png", "sub/b.png", "sub/c.png"]


def test_glob_takes_only_images_and_a_file_found_twice_is_processed_once(runner, photos, tmp_path):
    """A glob that also matched notes.txt failed the batch on it; a.png named twice (by the folder and by name)
    was refused as two inputs writing one output."""
    (photos / "notes.txt").write_text("not an image")
    result = run(runner, "quantize", "--bits", "4", str(photos / "*"), str(photos / "a.png"), "-o", tmp_path / "g", "--json")
    assert result.exit_code == 0, result.output
    assert [Path(json.loads(line)["input"]).name for line in result.stdout.splitlines()] == ["a.png"]
    nothing = run(runner, "quantize", "--bits", "4", str(photos / "*.txt"), "-o", tmp_path / "h")
    assert nothing.exit_code == 1 and "none of them an image" in nothing.stderr and "Traceback" not in nothing.stderr


def test_info_reports_effective_depth(runner, make_png):
    source = make_png("x.png", (np.arange(64) % 16 * 17).astype(np.uint8).reshape(8, 8))
    result = run(runner, "info", "--json", source)
    record = json.loads(result.stdout)
    assert record["effective_bits"] == 4 and record["channels"] == 1 and record["bit_depth_source"] == "code values"
    assert record["sample_type"] == "uint8" and record["container_bits"] == 8 and "output" not in record  # info writes nothing


def test_info_of_a_folder_lists_its_weights_files_too(runner, make_png, tmp_path):
    """`bdx info weights/` said 'directory holds no images' though `bdx info weights/x.safetensors` works."""
    import shutil

    make_png("models/x.png", np.full((4, 4, 3), 40, np.uint8))
    shipped = sorted((REPO / "weights").glob("lowlight-*.safetensors"))[0]
    shutil.copy(shipped, tmp_path / "models" / shipped.name)
    result = run(runner, "info", "--json", tmp_path / "models")
    assert result.exit_code == 0, result.stderr
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert sorted(r["format"] for r in records) == ["png", "weights"]
    assert run(runner, "quantize", "--bits", "4", tmp_path / "models", "-o", tmp_path / "q").exit_code == 0  # images only


def test_a_training_checkpoint_is_described_by_info_and_refused_as_weights_with_its_step(runner, make_png, tmp_path):
    import torch

    from bdx.dequant.learned import DequantNet, DequantNetConfig

    net = DequantNet(DequantNetConfig(widths=(4, 8), blocks=(0, 0)))
    optimizer = torch.optim.AdamW(net.parameters())
    (tmp_path / "models").mkdir()
    checkpoint = tmp_path / "models" / "run.safetensors.ckpt.pt"
    torch.save({"model": net.state_dict(), "optimizer": optimizer.state_dict(), "step": 250, "history": [], "config": {}}, checkpoint)
    result = run(runner, "info", "--json", tmp_path / "models")
    assert result.exit_code == 0, result.stderr
    record = json.loads(result.stdout)
    assert record["architecture"] == "training checkpoint" and record["steps"] == 250
    assert record["parameters"] == sum(p.numel() for p in net.parameters())
    image = make_png("a.png", np.full((16, 16, 3), 40, np.uint8))
    refused = run(runner, "upscale-depth", "--weights", checkpoint, image, "-o", tmp_path / "out.png")
    assert refused.exit_code != 0 and error_lines(refused) == [
        "bdx: error: run.safetensors.ckpt.pt: a bdx training checkpoint (step 250), not weights: resume the training "
        "from it, or use the weights file its run wrote"
    ]
    assert not (tmp_path / "out.png").exists()


@pytest.mark.parametrize("half", [True, False])
def test_info_tells_half_from_float_exr(runner, tmp_path, half):
    path = write_image(tmp_path / "x.exr", Image(np.ones((4, 4, 3), np.float32), linear=True), exr_half=half)
    record = json.loads(run(runner, "info", "--json", path).stdout)
    assert (record["sample_type"], record["container_bits"]) == (("half", 16) if half else ("float", 32))
    assert ("half float" in run(runner, "info", path).stdout) == half


@pytest.mark.parametrize(("dtype", "expected"), [(np.float16, ("half", 16)), (np.float32, ("float", 32)), (np.float64, ("double", 64))])
def test_info_reports_a_float_tiffs_stored_sample_size(runner, tmp_path, dtype, expected):
    """A float64 TIFF was reported as 32-bit float (the size bdx decodes it to, not the file's)."""
    import tifffile

    tifffile.imwrite(tmp_path / "f.tiff", np.full((4, 4, 3), 0.5, dtype), photometric="rgb")
    record = json.loads(run(runner, "info", "--json", tmp_path / "f.tiff").stdout)
    assert (record["sample_type"], record["container_bits"]) == expected


def _bdx(*args, stdin=None):
    return subprocess.run([sys.executable, "-m", "bdx", *map(str, args)], input=stdin, capture_output=True, cwd=REPO, timeout=300)


def test_stdin_to_stdout_and_process_exit_codes(tmp_path):
    png = encode_image(Image(np.full((8, 8, 3), 34, np.uint8), significant_bits=4), "png", bits=8, significant_bits=4)
    done = _bdx("upscale-depth", "-", "-o", "-", "--format", "png", stdin=png)
    assert done.returncode == 0, done.stderr
    from bdx.io import decode_image

    image = decode_image(done.stdout, "out.png")
    assert image.container_bits == 16 and np.all(requantize_u16(image.pixels, 4) == 2)  # inside the input's bin
    assert np.abs(image.pixels.astype(int) - 34 * 257).max() < 0.05 * 17 * 257  # a flat input stays (nearly) flat
    assert _bdx("upscale-depth", tmp_path / "missing.png").returncode == 1
    clash = _bdx("quantize", "-b", "4", "--json", "-", stdin=png)  # blamed an "-o -" the user never gave
    assert clash.returncode == 2 and b"(-o -, the default for input from stdin): give -o FILE" in clash.stderr
    assert _bdx("upscale-depth", "--no-such-option").returncode == 2
    version = _bdx("--version")
    assert version.returncode == 0 and version.stdout.decode().startswith("bdx ")


def test_help_and_version_do_not_import_torch():
    code = (
        "import sys\n"
        "from bdx.cli import main\n"
        "for argv in (['bdx', '--help'], ['bdx', '--version'], ['bdx', 'upscale-depth', '--help'],\n"
        "             ['bdx', 'enhance-lowlight', '--help'], ['bdx', 'ldr2hdr', '--help'], ['bdx', 'train', 'hdr', '--help']):\n"
        "    sys.argv = argv\n"
        "    try:\n"
        "        main()\n"
        "    except SystemExit:\n"
        "        pass\n"
        "print('TORCH' if 'torch' in sys.modules else 'NO-TORCH')\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert done.stdout.strip().endswith("NO-TORCH"), done.stdout[-500:] + done.stderr[-500:]


def test_example_image_is_banded_and_restores(tmp_path, runner):
    example = REPO / "docs" / "example" / "banded_sky.png"
    image = read_image(example)
    assert image.significant_bits == 5
    result = run(runner, "upscale-depth", example, "-o", tmp_path / "sky.tiff")
    assert result.exit_code == 0
    restored = read_image(tmp_path / "sky.tiff").pixels
    assert all(np.unique(restored[..., c]).size > 256 for c in range(3))


def test_raw_input_through_quantize_and_info(runner, tmp_path):
    from dng import synthetic_dng

    path = tmp_path / "shot.dng"
    path.write_bytes(synthetic_dng())
    info = json.loads(run(runner, "info", "--json", path).stdout)
    assert info["format"] == "raw" and info["container_bits"] == 16
    result = run(runner, "quantize", "--bits", "8", path, "-o", tmp_path / "q.png")
    assert result.exit_code == 0, result.stderr
    assert read_image(tmp_path / "q.png").significant_bits is None  # an 8-bit container holds 8 bits


def test_conflicting_flags_are_usage_errors(runner, make_png):
    source = make_png("x.png", np.full((8, 8, 3), 34, np.uint8), sbit=4)
    both = run(runner, "upscale-depth", source, "--overwrite", "--skip-existing")
    assert both.exit_code == 2 and "exclude" in both.stderr
    mixed = run(runner, "upscale-depth", source, "-o", "-", "--json")
    assert mixed.exit_code == 2 and "--json" in mixed.stderr


def test_progress_goes_to_stderr_and_json_stays_clean(photos, tmp_path):
    env = dict(os.environ, BDX_PROGRESS="1")
    done = subprocess.run(
        [sys.executable, "-m", "bdx", "quantize", "--bits", "4", str(photos), "-o", str(tmp_path / "p"), "--json"],
        capture_output=True, text=True, cwd=REPO, env=env, timeout=300,
    )
    assert done.returncode == 0, done.stderr
    records = [json.loads(line) for line in done.stdout.splitlines()]
    assert len(records) == 3 and all(r["status"] == "ok" for r in records)


COMMANDS = ([], ["quantize"], ["upscale-depth"], ["enhance-lowlight"], ["ldr2hdr"], ["merge-brackets"], ["info"],
            ["eval", "depth"], ["eval", "lowlight"], ["eval", "hdr"], ["train", "depth"], ["train", "lowlight"], ["train", "hdr"])


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c) or "bdx")
def test_flags_are_shown_without_a_value_and_pairs_by_their_names_in_help(runner, command):
    """--self-check and --global-context showed <bool>; --bits and --camera showed <int,int>..., which fails as typed."""
    result = runner.invoke(app, [*command, "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0 and "--help" in result.output
    assert "<bool>" not in result.output and ",int>" not in result.output and ",float>" not in result.output


def test_library_errors_name_parameters_and_the_cli_names_options(runner, make_png):
    """The library speaks of its parameters (``in_bits``), the CLI of its options (``--in-bits``), one message."""
    from bdx.depth import DepthSettings, upscale_depth
    from bdx.errors import SettingError
    from bdx.io import Image

    codes = (np.arange(64) % 16 * 17).astype(np.uint8).reshape(8, 8, 1)
    with pytest.raises(SettingError, match="^in_bits 9 does not fit an input of 8 bits"):
        upscale_depth(Image(codes), None, DepthSettings(in_bits=9), device="cpu")
    source = make_png("x.png", codes)
    result = run(runner, "upscale-depth", source, "--in-bits", "9")
    assert result.exit_code == 1 and "--in-bits 9 does not fit an input of 8 bits" in result.stderr
    result = run(runner, "upscale-depth", source, "--method", "contour", "--ensemble", "2")
    assert result.exit_code == 2 and "--ensemble applies to --method learned only" in result.stderr
    result = run(runner, "upscale-depth", source, "--method", "contour", "--precision", "bfloat16")  # was ignored unsaid
    assert result.exit_code == 2 and "--precision applies to --method learned only" in result.stderr
    result = run(runner, "upscale-depth", source, "--in-bits", "16")
    assert result.exit_code == 2 and "--in-bits must be a whole number between 1 and 15, not 16" in result.stderr


@pytest.mark.parametrize("command,method,suffix", [("upscale-depth", "contour", ".tiff"), ("ldr2hdr", "classical", ".exr")])
def test_weights_for_a_method_without_a_model_is_a_usage_error(runner, make_png, tmp_path, command, method, suffix):
    source = make_png("x.png", np.full((8, 8, 3), 34, np.uint8), sbit=4)
    target = tmp_path / f"out{suffix}"
    result = run(runner, command, source, "-o", target, "--method", method, "--weights", tmp_path / "any.safetensors")
    assert result.exit_code == 2 and "--weights applies to --method learned only" in result.stderr
    assert not target.exists()


def test_format_contradicting_the_output_extension_is_a_usage_error(runner, make_png, tmp_path):
    source = make_png("x.png", np.full((8, 8, 3), 34, np.uint8), sbit=4)
    result = run(runner, "upscale-depth", source, "-o", tmp_path / "y.png", "--format", "exr")
    assert result.exit_code == 2 and "contradicts" in result.stderr and not (tmp_path / "y.png").exists()
    assert run(runner, "upscale-depth", source, "-o", tmp_path / "y.exr", "--format", "exr").exit_code == 0


@pytest.mark.parametrize("command,name", [(["quantize", "--bits", "4"], "q.tiff"), (["quantize", "--bits", "4"], "q.exr"),
                                          (["ldr2hdr"], "h.png"), (["upscale-depth"], "u.jpg")])
def test_an_output_extension_the_command_does_not_write_is_a_usage_error(runner, make_png, tmp_path, command, name):
    """`quantize -o q.tiff` wrote PNG bytes under a .tiff name; ldr2hdr -o h.png blamed a --format never given."""
    source = make_png("x.png", np.full((8, 8, 3), 34, np.uint8))
    result = run(runner, *command, source, "-o", tmp_path / name)
    assert result.exit_code == 2 and not (tmp_path / name).exists()
    assert error_lines(result)[0].startswith(f"bdx: error: -o {tmp_path / name} names a file of format ") and "--format" not in result.stderr
    assert run(runner, "quantize", "--bits", "4", source, "-o", tmp_path / "q.PNG").exit_code == 0


def test_merge_brackets_names_only_options_it_has(runner, make_png, tmp_path):
    """An existing output: merge-brackets has --overwrite but no --skip-existing, which its message offered."""
    frames = [make_png(f"b{i}.png", np.full((8, 8, 3), 40 * (i + 1), np.uint8)) for i in range(2)]
    (tmp_path / "m.exr").write_bytes(b"keep")
    result = run(runner, "merge-brackets", *frames, "-o", tmp_path / "m.exr")
    assert result.exit_code == 1
    assert error_lines(result) == [f"bdx: error: {tmp_path / 'm.exr'} exists (use --overwrite to replace it)"]
    assert (tmp_path / "m.exr").read_bytes() == b"keep"


def test_merge_brackets_of_a_folder_skips_merges_in_it_and_refuses_frames_that_differ(runner, make_png, tmp_path):
    """Run twice on a folder, merge-brackets read its own first output as a frame; grey and colour frames merged."""
    rng = np.random.default_rng(0)
    scene = rng.random((16, 24, 3))
    for i, gain in enumerate((0.5, 1.0, 2.0)):
        make_png(f"shots/f{i}.png", np.clip(scene * gain * 255, 0, 255).astype(np.uint8))
    assert run(runner, "merge-brackets", tmp_path / "shots", "-o", tmp_path / "shots" / "scene.exr").exit_code == 0
    again = run(runner, "merge-brackets", tmp_path / "shots", "-o", tmp_path / "shots" / "scene2.exr", "--json")
    assert again.exit_code == 0, again.stderr
    (record,) = [json.loads(line) for line in again.stdout.splitlines()]  # nothing else on stdout with --json
    assert record["status"] == "ok" and [Path(f).name for f in record["inputs"]] == ["f0.png", "f1.png", "f2.png"]
    assert len(record["times"]) == 3 and record["output"] == str(tmp_path / "shots" / "scene2.exr")
    make_png("mixed/a.png", np.full((16, 24, 3), 60, np.uint8))
    make_png("mixed/b.png", np.full((16, 24), 120, np.uint8))
    mixed = run(runner, "merge-brackets", tmp_path / "mixed", "-o", tmp_path / "m.exr")
    assert mixed.exit_code == 1 and error_lines(mixed) == [
        "bdx: error: b.png is 24x16x1 but a.png is 24x16x3: the frames of one scene share size and colour"
    ]
    assert not (tmp_path / "m.exr").exists()


@pytest.mark.parametrize("command", ["upscale-depth", "enhance-lowlight", "ldr2hdr"])
def test_an_unknown_device_is_a_usage_error_before_any_work(runner, make_png, tmp_path, command):
    """--device foo was one error per file (exit 1) after the output folder had been made."""
    sources = [make_png(f"{name}.png", np.full((8, 8, 3), 40, np.uint8)) for name in "ab"]
    result = run(runner, command, *sources, "-o", tmp_path / "out", "--device", "foo")
    assert result.exit_code == 2 and error_lines(result) == ["bdx: error: --device must be auto, cpu, cuda, cuda:N or mps, not 'foo'"]
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("name", ["cuda:abc", "cuda:", "cuda:-1", "cudax", "cuda:٣"])
def test_a_malformed_cuda_device_is_a_usage_error_even_where_cuda_is_present(runner, make_png, tmp_path, monkeypatch, name):
    """Only the "cuda" prefix was checked: on a machine with a GPU, cuda:abc reached torch.device as an internal error."""
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    source = make_png("a.png", np.full((8, 8, 3), 40, np.uint8))
    result = run(runner, "upscale-depth", source, "-o", tmp_path / "out", "--device", name, "--method", "midpoint")
    assert result.exit_code == 2 and error_lines(result) == [f"bdx: error: --device must be auto, cpu, cuda, cuda:N or mps, not {name!r}"]


def test_a_cuda_index_beyond_the_gpus_torch_sees_says_how_many_there_are(monkeypatch):
    import torch

    from bdx.device import resolve_device
    from bdx.errors import SettingError

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    assert resolve_device("cuda:0") == torch.device("cuda:0")
    with pytest.raises(SettingError, match=r"cuda:7 asked for, but torch sees 1 CUDA GPU \(cuda:0 to cuda:0\)"):
        resolve_device("cuda:7")


def test_a_cuda_index_on_a_machine_without_cuda_is_named_in_the_error(monkeypatch):
    """--device cuda:1 without CUDA said "--device cuda asked for", not the device the user named."""
    import torch

    from bdx.device import resolve_device
    from bdx.errors import SettingError

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(SettingError, match=r"^device cuda:1 asked for, but torch sees no CUDA GPU"):
        resolve_device("cuda:1")


def test_standard_input_twice_and_an_empty_format_are_usage_errors(runner, make_png, tmp_path):
    """`quantize - -` wrote the image, then failed on an empty second read; --format= acted as no --format."""
    source = make_png("a.png", np.full((8, 8, 3), 40, np.uint8))
    twice = runner.invoke(app, ["quantize", "--bits", "4", "-", "-"], input=source.read_bytes())
    assert twice.exit_code == 2 and error_lines(twice) == ["bdx: error: - (standard input) is given more than once; it holds one image"]
    assert twice.stdout_bytes == b""
    described = runner.invoke(app, ["info", "-", "-"], input=source.read_bytes())  # was an "internal error", exit 1
    assert described.exit_code == 2 and error_lines(described) == error_lines(twice)
    empty = run(runner, "upscale-depth", source, "-o", tmp_path / "x.tiff", "--format=", "--method", "midpoint")
    assert empty.exit_code == 2 and error_lines(empty) == ["bdx: error: --format is empty; give one of tiff, png, exr"]
    assert not (tmp_path / "x.tiff").exists()


@pytest.mark.parametrize("task", ["depth", "hdr", "lowlight"])
def test_train_with_both_init_and_resume_is_a_usage_error(runner, tmp_path, task):
    """Contradictory options exited 1, as a failed file does, instead of 2."""
    checkpoint = tmp_path / "run.safetensors.ckpt.pt"
    checkpoint.write_bytes(b"")
    (tmp_path / "data").mkdir()
    result = run(runner, "train", task, "--data", tmp_path / "data", "-o", tmp_path / "w.safetensors", "--init", "shipped",
                 "--resume", checkpoint, "--steps", "1", "-q")
    assert result.exit_code == 2
    assert error_lines(result) == ["bdx: error: start from weights (--init) or continue a checkpoint (--resume), not both"]


@pytest.mark.parametrize("task", ["depth", "hdr", "lowlight"])
def test_train_init_shipped_without_shipped_weights_names_the_train_option(runner, tmp_path, task, monkeypatch):
    """The message told the user to "pass --weights FILE", an option train does not have."""
    import bdx.assets

    monkeypatch.setattr(bdx.assets, "has_default_weights", lambda task: False)
    (tmp_path / "data").mkdir()
    result = run(runner, "train", task, "--data", tmp_path / "data", "-o", tmp_path / "w.safetensors", "--init", "shipped",
                 "--steps", "1", "-q")
    assert result.exit_code == 1
    assert error_lines(result) == [f"bdx: error: --init shipped: this install holds no {task} weights (give --init FILE)"]


def test_json_lines_show_a_file_names_odd_bytes_as_text_not_lone_surrogates():
    """A non-UTF-8 file name came out as a lone \\udcXX escape, which strict JSON parsers reject."""
    from bdx.cli.common import json_line

    name = os.fsdecode(b"caf\xe9.png")
    line = json_line({"input": name, "summary": {name: 1.0}})
    assert json_line({"input": Path(name)}) == json_line({"input": name})  # a Path the same
    assert "\\udc" not in line and json.loads(line) == {"input": "caf\\xe9.png", "summary": {"caf\\xe9.png": 1.0}}
    line.encode("utf-8")  # and the line itself is valid UTF-8


def test_error_lines_show_a_file_names_odd_bytes_as_json_does(runner, tmp_path):
    """On stderr the same name showed a lone surrogate escape (\\udce9) where --json showed \\xe9."""
    name = os.fsdecode(os.fsencode(tmp_path) + b"/caf\xe9.png")
    Path(name).write_bytes(b"")
    result = run(runner, "upscale-depth", name, "-o", tmp_path / "out")
    assert result.exit_code == 1
    assert error_lines(result) == [f"bdx: error: {tmp_path}/caf\\xe9.png: file is empty"]


def test_exif_a_float_output_cannot_carry_is_reported(runner, tmp_path):
    """EXIF reached TIFF and PNG outputs but was dropped from EXR and Radiance ones without a word."""
    exif = b"II*\x00\x08\x00\x00\x00\x01\x00\x0f\x01\x02\x00\x04\x00\x00\x00bdx\x00\x00\x00\x00\x00"  # Make = "bdx"
    source = tmp_path / "exif.png"
    write_image(source, Image(np.full((16, 24, 3), 90, np.uint8), exif=exif))
    assert read_image(source).exif is not None
    for suffix in ("exr", "hdr"):
        result = run(runner, "ldr2hdr", "--method", "classical", source, "-o", tmp_path / f"h.{suffix}")
        assert result.exit_code == 0 and error_lines(result) == [f"bdx: warning: {source}: the input's EXIF metadata is not carried into .{suffix}"]
    assert error_lines(run(runner, "upscale-depth", "--method", "midpoint", source, "-o", tmp_path / "u.tiff")) == []


def test_an_alpha_channel_an_output_cannot_hold_is_reported(runner, tmp_path):
    """ldr2hdr to .hdr (Radiance holds no alpha) and merge-brackets dropped alpha without a word."""
    rng = np.random.default_rng(1)
    alpha = np.full((16, 24), 200, np.uint8)
    source = tmp_path / "rgba.png"
    write_image(source, Image(rng.integers(0, 256, (16, 24, 3), dtype=np.uint8), alpha=alpha))
    result = run(runner, "ldr2hdr", "--method", "classical", source, "-o", tmp_path / "h.hdr")
    assert result.exit_code == 0 and error_lines(result) == [
        f"bdx: warning: {source}: the .hdr format holds no alpha channel: it was dropped (write .exr to keep it)"
    ]
    assert error_lines(run(runner, "ldr2hdr", "--method", "classical", source, "-o", tmp_path / "h.exr")) == []
    dark = tmp_path / "dark.png"
    write_image(dark, Image(rng.integers(0, 128, (16, 24, 3), dtype=np.uint8), alpha=alpha))
    merged = run(runner, "merge-brackets", dark, source, "-o", tmp_path / "m.exr", "--times", "1,2")
    assert merged.exit_code == 0 and error_lines(merged) == ["bdx: warning: the frames' alpha channels are not merged (the output has none)"]


@pytest.mark.parametrize("command", [["quantize", "--bits", "4"], ["upscale-depth", "--method", "midpoint"]])
def test_a_rerun_of_a_glob_skips_its_own_earlier_outputs(runner, make_png, tmp_path, command):
    """A second run of a glob with outputs beside the inputs read the first run's outputs as new inputs (writing
    a_16bit_16bit.tiff) and turned --skip-existing into errors ("another input of this run")."""
    make_png("g/a.png", np.tile(np.arange(64, dtype=np.uint8)[None, :, None], (8, 1, 3)))
    make_png("g/b.png", np.full((8, 8, 3), 34, np.uint8))
    pattern = str(tmp_path / "g" / "*")
    assert run(runner, *command, pattern).exit_code == 0
    first = sorted(p.name for p in (tmp_path / "g").iterdir())
    again = run(runner, *command, pattern, "--skip-existing", "--json")
    assert again.exit_code == 0, again.stderr
    records = [json.loads(line) for line in again.stdout.splitlines()]
    assert [r["status"] for r in records] == ["skipped"] * 4
    earlier = sorted(set(first) - {"a.png", "b.png"})
    assert sorted(Path(r["input"]).name for r in records if "warning" in r) == earlier  # said, not silently dropped
    assert error_lines(again) == [
        f"bdx: warning: {tmp_path / 'g' / earlier[0]} and 1 more: the output this run plans for another input: "
        "left out (name the file to process it)"
    ]
    assert sorted(p.name for p in (tmp_path / "g").iterdir()) == first
    named = run(runner, *command, *sorted(str(p) for p in (tmp_path / "g").iterdir()), "--skip-existing", "--json")
    statuses = {Path(r["input"]).name: r["status"] for r in map(json.loads, named.stdout.splitlines())}
    assert len(statuses) == 4 and statuses["a.png"] == statuses["b.png"] == "skipped"  # named one by one: all inputs


def test_an_interrupt_while_the_cli_loads_is_one_line_and_status_130(monkeypatch, capsys):
    """Ctrl-C in the first fraction of a second (while torch and typer load) printed a Python traceback."""
    import builtins

    from bdx.console import main

    real_import = builtins.__import__

    def interrupted_import(name, *args, **kwargs):
        if name == "bdx.cli":
            raise KeyboardInterrupt
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", interrupted_import)
    with pytest.raises(SystemExit) as stopped:
        main()
    assert stopped.value.code == 130 and capsys.readouterr().err == "bdx: interrupted\n"


def test_an_output_folder_that_takes_no_files_is_found_before_the_work(runner, make_png, tmp_path, monkeypatch):
    """A read-only output folder was found only when writing, after each image had been processed."""
    import bdx.depth

    source = make_png("a.png", np.full((8, 8, 3), 34, np.uint8))
    (tmp_path / "locked").mkdir()
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda path, mode, **kw: Path(path) != tmp_path / "locked" and real_access(path, mode, **kw))
    monkeypatch.setattr(bdx.depth, "upscale_depth", lambda *a, **k: pytest.fail("processed before the folder was checked"))
    result = run(runner, "upscale-depth", source, "-o", tmp_path / "locked", "--method", "midpoint", "--json")
    assert result.exit_code == 1 and error_lines(result) == [f"bdx: error: {source}: cannot write to {tmp_path / 'locked'}: permission denied"]
    real_statvfs = os.statvfs

    class ReadOnly:
        def __init__(self, path):
            self.f_flag = real_statvfs(path).f_flag | os.ST_RDONLY

    monkeypatch.setattr(os, "statvfs", ReadOnly)  # a read-only mount says so, not "permission denied"
    result = run(runner, "upscale-depth", source, "-o", tmp_path / "locked", "--method", "midpoint", "--json")
    assert result.exit_code == 1 and error_lines(result) == [f"bdx: error: {source}: cannot write to {tmp_path / 'locked'}: read-only file system"]


def _profile_named(text: str) -> bytes:
    """An ICC profile holding only a 'desc' tag with ``text``."""
    import struct

    body = b"desc" + bytes(4) + struct.pack(">I", len(text) + 1) + text.encode() + b"\0"
    table = struct.pack(">I4sII", 1, b"desc", 144, len(body))
    header = bytearray(128)
    header[36:40] = b"acsp"
    profile = bytes(header) + table + body
    return struct.pack(">I", len(profile)) + profile[4:]


def test_a_colour_profile_a_float_output_cannot_carry_is_named(runner, make_png, tmp_path):
    """An Adobe RGB photo written to EXR lost its profile without a word (EXR is read as sRGB primaries)."""
    pixels = np.tile(np.arange(64, dtype=np.uint8)[None, :, None], (8, 1, 3))
    wide = make_png("wide.png", pixels, icc_profile=_profile_named("Adobe RGB (1998)"))
    plain = make_png("plain.png", pixels, icc_profile=_profile_named("sRGB IEC61966-2.1"))
    for command in (["upscale-depth", "--method", "midpoint"], ["ldr2hdr", "--method", "classical", "--dequantize", "none"]):
        warned = json.loads(run(runner, *command, wide, "-o", tmp_path / f"{command[0]}.exr", "--json").stdout)
        assert warned["warning"] == "the input's colour profile (Adobe RGB (1998)) is not carried into .exr: its colours are written as sRGB primaries"
        quiet = json.loads(run(runner, *command, plain, "-o", tmp_path / f"{command[0]}_plain.exr", "--json").stdout)
        assert "warning" not in quiet
    dark = make_png("wide_dark.png", pixels // 2, icc_profile=_profile_named("Adobe RGB (1998)"))
    merging = run(runner, "merge-brackets", dark, wide, "-o", tmp_path / "m.exr", "--times", "1,2", "--json")
    merged = json.loads(merging.stdout)
    assert merged["warning"] == warned["warning"]
    assert error_lines(merging) == [f"bdx: warning: {warned['warning']}"]  # on stderr too, as every command does
    kept = json.loads(run(runner, "upscale-depth", wide, "-o", tmp_path / "wide.tiff", "--method", "midpoint", "--json").stdout)
    assert "warning" not in kept and read_image(tmp_path / "wide.tiff").icc_profile == read_image(wide).icc_profile


@pytest.mark.parametrize("command,suffix", [("upscale-depth", "tiff"), ("enhance-lowlight", "tiff"), ("ldr2hdr", "exr")])
def test_tile_bounds_are_one_message_the_next_run_accepts(runner, make_png, tmp_path, command, suffix):
    """--tile 0 said "between 16 and 1.04858e+06", and --tile 16 then said "at least 64"."""
    source = make_png("x.png", np.full((8, 8, 3), 40, np.uint8))
    for tile in ("0", "16", "2000000"):
        result = run(runner, command, source, "-o", tmp_path / f"out.{suffix}", "--tile", tile)
        assert result.exit_code == 2 and error_lines(result) == [f"bdx: error: --tile must be between 64 and 1048576 pixels, not {tile}"]


@pytest.mark.parametrize("task", ["depth", "lowlight", "hdr"])
def test_training_refuses_to_overwrite_its_own_init_weights(runner, tmp_path, task):
    """-o naming the --init file with --overwrite replaced the weights the run started from, status 0."""
    import shutil

    from bdx.assets import default_weights

    mine = tmp_path / "mine.safetensors"
    shutil.copy(default_weights(task), mine)
    before = mine.read_bytes()
    result = runner.invoke(app, ["train", task, "--data", str(tmp_path), "--init", str(mine), "-o", str(mine),
                                 "--overwrite", "--steps", "1"])
    assert result.exit_code == 1
    assert "is the --init weights file; refusing to overwrite" in result.output
    assert mine.read_bytes() == before


def test_training_refuses_a_link_to_nothing_at_its_output_without_overwrite(runner, tmp_path):
    """The weights' existence check followed links, so a dangling one at -o would be replaced after the run."""
    link = tmp_path / "w.safetensors"
    link.symlink_to(tmp_path / "nowhere.safetensors")
    result = runner.invoke(app, ["train", "depth", "--data", str(tmp_path), "-o", str(link), "--steps", "1"])
    assert result.exit_code == 1 and error_lines(result) == [f"bdx: error: {link} exists (use --overwrite to replace it)"]
    assert link.is_symlink()


def test_eval_refuses_an_empty_path_instead_of_searching_the_current_folder(runner, tmp_path, monkeypatch):
    """An empty --pred (an unset shell variable) was read as "." and every image under the working folder scored."""
    monkeypatch.chdir(tmp_path)
    photo = tmp_path / "a.png"
    write_image(photo, Image((gradient16() >> 8).astype(np.uint8)), bits=8)
    for flag, command in (("--pred", ["eval", "lowlight", "--pred", ""]), ("--pred", ["eval", "depth", "--pred", "", "--ref", str(photo)]),
                          ("--ref", ["eval", "depth", "--pred", str(photo), "--ref", ""]),
                          ("--input", ["eval", "depth", "--pred", str(photo), "--ref", str(photo), "--input", " "]),
                          ("--ref", ["eval", "hdr", "--pred", str(photo), "--ref", " "])):
        result = run(runner, *command, "--json")
        assert result.exit_code == 2, result.stderr
        assert error_lines(result) == [f"bdx: error: {flag} is empty (an unset shell variable?)"]
        assert result.stdout == ""


def test_eval_lowlight_without_references_scores_files_that_share_a_name(runner, tmp_path):
    """Nothing is paired without --ref, yet a.png beside a.tif was refused as a pair that could not be told apart."""
    folder = tmp_path / "bright"
    folder.mkdir()
    pixels = (gradient16() >> 8).astype(np.uint8)
    write_image(folder / "a.png", Image(pixels), bits=8)
    write_image(folder / "a.tif", Image(pixels[::-1].copy()), bits=8)
    result = run(runner, "eval", "lowlight", "--pred", folder, "--json")
    assert result.exit_code == 0, result.stderr
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert sorted(Path(r["pred"]).name for r in records[:-1]) == ["a.png", "a.tif"] and records[-1]["summary"]["bright"]
    paired = run(runner, "eval", "lowlight", "--pred", folder, "--ref", folder)  # with references, the names must pair
    assert paired.exit_code == 2 and "have the same name; cannot pair them" in paired.stderr


def test_eval_hdr_refuses_a_reference_without_light_and_keeps_its_summary_when_the_sheet_fails(runner, tmp_path, monkeypatch):
    """An all-zero reference scored PSNR-mu 0.0 with exit 0; a sheet that could not be written lost the summary."""
    from bdx.errors import BdxError

    for name in ("pred", "ref", "dark"):
        (tmp_path / name).mkdir()
    light = np.exp(np.random.default_rng(0).normal(0, 1, (16, 24, 3))).astype(np.float32)
    write_image(tmp_path / "pred" / "a.exr", Image(light, linear=True), exr_half=False)
    write_image(tmp_path / "ref" / "a.exr", Image(light * 1.1, linear=True), exr_half=False)
    write_image(tmp_path / "dark" / "a.exr", Image(np.zeros_like(light), linear=True), exr_half=False)
    dark = run(runner, "eval", "hdr", "--pred", tmp_path / "pred", "--ref", tmp_path / "dark", "--json")
    assert dark.exit_code == 1 and "the reference holds no light" in error_lines(dark)[0] and len(error_lines(dark)) == 1

    def full_disk(path, *args, **kwargs):
        raise BdxError(f"cannot write {path}: No space left on device")

    monkeypatch.setattr("bdx.io.write_image", full_disk)
    failed = run(runner, "eval", "hdr", "--pred", tmp_path / "pred", "--ref", tmp_path / "ref", "--sheet", tmp_path / "s.png", "--json")
    assert failed.exit_code == 1 and error_lines(failed) == [f"bdx: error: cannot write {tmp_path / 's.png'}: No space left on device"]
    assert json.loads(failed.stdout.splitlines()[-1])["summary"]["pred"]["psnr_mu"] > 0


def test_an_output_name_too_long_for_the_file_system_is_one_error_record(runner, make_png, tmp_path):
    """-o with a 300-character name failed while planning, with no --json record for the input."""
    source = make_png("a.png", np.full((8, 8, 3), 40, np.uint8))
    target = tmp_path / ("x" * 300 + ".png")
    result = run(runner, "quantize", "--bits", "4", source, "-o", target, "--json")
    record = json.loads(result.stdout.splitlines()[0])
    assert result.exit_code == 1 and record["status"] == "error" and record["error"] == f"cannot write {target}: File name too long"
    assert error_lines(result) == [f"bdx: error: {source}: cannot write {target}: File name too long"]


def test_eval_hdr_refuses_an_empty_sheet_path_before_scoring(runner, tmp_path):
    """--sheet '' was read as the current folder and refused as "not ."."""
    for name in ("pred", "ref"):
        (tmp_path / name).mkdir()
        write_image(tmp_path / name / "a.exr", Image(np.ones((8, 8, 3), np.float32), linear=True), exr_half=False)
    result = run(runner, "eval", "hdr", "--pred", tmp_path / "pred", "--ref", tmp_path / "ref", "--sheet", "")
    assert result.exit_code == 2 and error_lines(result) == ["bdx: error: --sheet is empty (an unset shell variable?)"]


@pytest.mark.parametrize("task", ["depth", "hdr", "lowlight"])
def test_train_refuses_an_empty_data_path_instead_of_searching_the_working_folder(runner, tmp_path, task, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "junk.png").write_bytes(b"not an image")  # what searching "." would have reported
    result = run(runner, "train", task, "--data", "", "-o", tmp_path / "w.safetensors", "--steps", "1", "-q")
    assert result.exit_code == 2
    assert error_lines(result) == ["bdx: error: --data is empty (an unset shell variable?)"]
    assert not (tmp_path / "w.safetensors").exists()


def test_peak_nits_on_a_black_result_is_reported(runner, tmp_path):
    """An all-black image with --peak-nits kept scale 1 (nothing to place) without a word."""
    for name, level, warned in (("black.png", 0, True), ("grey.png", 120, False)):
        write_image(tmp_path / name, Image(np.full((16, 24, 3), level, np.uint8)))
        result = run(runner, "ldr2hdr", "--method", "classical", tmp_path / name, "-o", tmp_path / f"{name}.exr", "--peak-nits", "1000",
                     "--json")
        assert result.exit_code == 0
        assert ("there is no peak for --peak-nits to place" in json.loads(result.stdout).get("warning", "")) == warned
