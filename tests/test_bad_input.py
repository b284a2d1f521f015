"""Bad and odd input, run as a user runs bdx (a separate process, so native libraries' own output is seen too):
one stderr line naming the file or flag, a non-zero exit, valid JSON on stdout, nothing left on disk."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from bdx.io import Image, encode_image, write_image

from conftest import gradient16, write_raw_exr

REPO = Path(__file__).resolve().parents[1]


def bdx(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "bdx", *map(str, args)], capture_output=True, text=True, cwd=REPO,
                          timeout=300)


def assert_one_error(done: subprocess.CompletedProcess, status: int, *names: str) -> None:
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert done.returncode == status, done.stderr
    assert len(lines) == 1 and lines[0].startswith("bdx: error: "), lines
    assert "Traceback" not in done.stderr and ".bdx-tmp" not in lines[0]
    for name in names:
        assert name in lines[0], (name, lines[0])


def _not_json(constant: str):
    raise ValueError(f"{constant} is not JSON")


def json_lines(done: subprocess.CompletedProcess) -> list[dict]:
    """Every stdout line as strict JSON (Python's parser would accept NaN and Infinity)."""
    return [json.loads(line, parse_constant=_not_json) for line in done.stdout.splitlines() if line.strip()]


def _photo(tmp_path: Path, name: str = "photo.png") -> Path:
    path = tmp_path / name
    write_image(path, Image((gradient16() >> 8).astype(np.uint8)), bits=8)
    return path


def test_a_jpeg_cut_short_but_ending_with_its_end_marker_is_refused(tmp_path):
    jpeg = encode_image(Image((np.random.default_rng(0).random((96, 128, 3)) * 255).astype(np.uint8)), "jpeg")
    cut = tmp_path / "cut.jpg"
    cut.write_bytes(jpeg[: len(jpeg) // 2] + b"\xff\xd9")
    done = bdx("upscale-depth", cut, "-o", tmp_path / "out", "--json")
    assert_one_error(done, 1, "cut.jpg", "JPEG")
    assert [r["status"] for r in json_lines(done)] == ["error"]
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_a_file_named_raw_that_is_not_raw_data_is_not_called_a_disk_error(tmp_path):
    """LibRaw reports data that runs out as an 'Input/output error': bdx read the bytes already, the disk is fine."""
    (tmp_path / "junk.dng").write_bytes(b"junkjunkjunk\n")
    done = bdx("info", tmp_path / "junk.dng")
    assert_one_error(done, 1, "junk.dng", "cannot decode camera RAW (not a camera RAW file, or cut short)")
    assert "Input/output" not in done.stderr


def test_a_truncated_exr_keeps_stdout_json_and_names_the_users_file(tmp_path):
    whole = tmp_path / "whole.exr"
    write_image(whole, Image(np.random.default_rng(1).random((64, 64, 3)).astype(np.float32)), exr_half=False)
    data = whole.read_bytes()
    cut = tmp_path / "cut.exr"
    cut.write_bytes(data[: len(data) // 2])
    done = bdx("info", cut, "--json")
    assert_one_error(done, 1, "cut.exr")
    assert "tmp" not in done.stderr.replace(str(tmp_path), "")  # no temporary path in the message
    assert [r["status"] for r in json_lines(done)] == ["error"]


@pytest.mark.parametrize("value", ["1000", "nan", "-inf"])
def test_ldr2hdr_refuses_an_exposure_beyond_float_range(tmp_path, value):
    done = bdx("ldr2hdr", _photo(tmp_path), "-o", tmp_path / "out.exr", "--dequantize", "midpoint", f"--exposure={value}")
    assert_one_error(done, 2, "--exposure")
    assert not (tmp_path / "out.exr").exists()


def test_ldr2hdr_never_writes_non_finite_values_and_checks_peak_nits(tmp_path):
    done = bdx("ldr2hdr", _photo(tmp_path), "-o", tmp_path / "out.exr", "--dequantize", "midpoint", "--exposure", "60",
               "--json")
    records = json_lines(done)  # either an error record or a finite peak: never NaN
    assert done.returncode in (0, 1) and records and all(r.get("peak") is None or np.isfinite(r["peak"]) for r in records)
    nits = bdx("ldr2hdr", _photo(tmp_path), "-o", tmp_path / "n.exr", "--peak-nits", "nan")
    assert_one_error(nits, 2, "--peak-nits")


def test_eval_of_identical_images_is_valid_json_and_a_readable_table(tmp_path):
    photo = _photo(tmp_path)
    done = bdx("eval", "depth", "--pred", photo, "--ref", photo, "--json")
    assert done.returncode == 0, done.stderr
    records = json_lines(done)
    assert records and records[-1]["summary"]
    table = bdx("eval", "depth", "--pred", photo, "--ref", photo)
    assert table.returncode == 0 and "Traceback" not in table.stderr
    (tmp_path / "pred").mkdir()
    (tmp_path / "ref").mkdir()
    _photo(tmp_path / "pred", "a.png"), _photo(tmp_path / "ref", "a.png"), _photo(tmp_path / "ref", "b.png")
    write_image(tmp_path / "pred" / "b.png", Image(((gradient16() >> 8) ^ 1).astype(np.uint8)), bits=8)
    table = bdx("eval", "depth", "--pred", tmp_path / "pred", "--ref", tmp_path / "ref")  # showed b's PSNR alone, n=2
    assert table.returncode == 0 and "(+1 ∞)" in table.stdout


@pytest.mark.parametrize("tile", ["0", "-5", "1"])
def test_tile_sizes_below_the_minimum_are_refused_at_once(tmp_path, tile):
    done = bdx("upscale-depth", _photo(tmp_path), "-o", tmp_path / "out.tiff", f"--tile={tile}")
    assert_one_error(done, 2, "--tile")
    assert not (tmp_path / "out.tiff").exists()


def test_an_output_extension_bdx_does_not_write_is_refused_not_made_a_folder(tmp_path):
    done = bdx("upscale-depth", _photo(tmp_path), "-o", tmp_path / "x.webp")
    assert_one_error(done, 2, "x.webp", ".tiff")
    assert not (tmp_path / "x.webp").exists()
    hdr = bdx("ldr2hdr", _photo(tmp_path), "-o", tmp_path / "x.webp")  # the list is the command's own formats
    assert_one_error(hdr, 2, "x.webp", "(it writes .exr, .hdr)")
    two = bdx("upscale-depth", _photo(tmp_path, "a.png"), _photo(tmp_path, "b.png"), "-o", tmp_path / "one.tiff")
    assert_one_error(two, 2, "one.tiff", "2 inputs")
    assert not (tmp_path / "one.tiff").exists()


def test_merge_brackets_errors_name_the_frame(tmp_path):
    good = _photo(tmp_path)
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    done = bdx("merge-brackets", good, empty, "-o", tmp_path / "m.exr")
    assert_one_error(done, 1, "empty.png", "empty")
    assert not (tmp_path / "m.exr").exists()
    as_json = bdx("merge-brackets", good, empty, "-o", tmp_path / "m.exr", "--json")  # --json was not offered
    assert_one_error(as_json, 1, "empty.png")
    (record,) = json_lines(as_json)
    assert record["status"] == "error" and "empty.png" in record["error"] and record["output"] == str(tmp_path / "m.exr")


def test_merge_brackets_of_frames_too_small_for_a_response_is_one_line(tmp_path):
    """OpenCV's response fit needs a grid of sample points: 1x1 frames were an internal error."""
    frames = []
    for name, value in (("dark.png", 40), ("bright.png", 200)):
        frames.append(tmp_path / name)
        cv2.imwrite(str(frames[-1]), np.full((1, 1, 3), value, np.uint8))
    done = bdx("merge-brackets", *frames, "-o", tmp_path / "m.exr")
    assert_one_error(done, 1, "too small")
    assert not (tmp_path / "m.exr").exists()


def _references(tmp_path: Path, names: list[str]) -> Path:
    folder = tmp_path / "refs"
    folder.mkdir(exist_ok=True)
    for name in names:
        write_image(folder / name, Image(gradient16(64, 80)), bits=16)
    return folder


@pytest.mark.parametrize("name", ["ref0.png", "ref1.png"])  # one hashes to the training side, one to validation
def test_train_depth_with_one_usable_file_trains_whatever_its_name(tmp_path, name):
    from bdx.training.depth import DepthTrainConfig, train_depth

    data = _references(tmp_path, [name])
    state = train_depth([data], tmp_path / "d.safetensors", DepthTrainConfig(steps=1, batch_size=2, crop=32))
    assert state.step == 1 and (tmp_path / "d.safetensors").is_file()


@pytest.mark.parametrize("task,name,side", [("depth", "tiny.png", 7), ("hdr", "tiny.exr", 3)])
def test_train_names_a_reference_too_small_to_crop(tmp_path, task, name, side):
    """A reference below the network's grid crashed the sampler (an internal error at the first batch, or at the first
    validation after steps whose checkpoint was never written)."""
    data = tmp_path / "data"
    data.mkdir()
    pixels = np.random.default_rng(0).random((side, side, 3)).astype(np.float32)
    write_image(data / name, Image(pixels, linear=True) if name.endswith(".exr") else Image((pixels * 65535).astype(np.uint16)), bits=16)
    done = bdx("train", task, "--data", data, "--steps", "1", "--batch-size", "1", "--device", "cpu", "-o", tmp_path / "w.safetensors")
    assert_one_error(done, 1, f"{data / name}: {side}x{side} pixels; a training reference needs at least 32 a side")


@pytest.mark.parametrize("task,good,bad", [("lowlight", "a.png", "bad.png"), ("hdr", "a.exr", "bad.exr")])
def test_train_names_an_unreadable_training_file(tmp_path, task, good, bad):
    data = tmp_path / "data"
    data.mkdir()
    pixels = np.random.default_rng(0).random((64, 64, 3)).astype(np.float32)
    write_image(data / good, Image(pixels, linear=True) if good.endswith(".exr") else Image((pixels * 255).astype(np.uint8)))
    (data / bad).write_bytes(b"")
    done = bdx("train", task, "--data", data, "--steps", "1", "--batch-size", "1", "--device", "cpu", "-o", tmp_path / "w.safetensors")
    assert_one_error(done, 1, str(data / bad))
    assert not (tmp_path / "w.safetensors").exists()


def test_train_checks_its_output_before_training(tmp_path):
    data = _references(tmp_path, ["ref0.png"])
    existing = tmp_path / "w.safetensors"
    existing.write_bytes(b"keep")
    done = bdx("train", "depth", "--data", data, "-o", existing, "--steps", "1", "--batch-size", "2", "--crop", "32")
    assert_one_error(done, 1, "w.safetensors", "--overwrite")
    assert existing.read_bytes() == b"keep"
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        done = bdx("train", "depth", "--data", data, "-o", locked / "w.safetensors", "--steps", "1", "--crop", "32")
        if done.returncode != 0 or not (locked / "w.safetensors").exists():  # root may write anyway
            assert_one_error(done, 1, "locked")
            assert not list(locked.iterdir())
    finally:
        locked.chmod(0o700)
    fresh = tmp_path / "fresh.safetensors"
    done = bdx("train", "depth", "--data", data, "-o", fresh, "--steps", "1", "--batch-size", "2", "--crop", "32",
               "--quiet")
    assert done.returncode == 0, done.stderr
    assert fresh.stat().st_mode & 0o044  # the usual mode (readable by others under a usual umask), not 0600
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".bdx-tmp")]


def test_an_image_cut_short_on_stdout_is_an_error(tmp_path):
    """A reader that leaves after 10 bytes (| head -c 10), or a file-size limit, cut the image short while bdx
    reported success."""
    noise = tmp_path / "noise.png"
    write_image(noise, Image(np.random.default_rng(5).integers(0, 256, (256, 256, 3), dtype=np.uint8)), bits=8)
    command = [sys.executable, "-m", "bdx", "upscale-depth", str(noise), "-o", "-", "--method", "midpoint", "-q"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=REPO)
    assert process.stdout is not None and process.stderr is not None
    process.stdout.read(10)
    process.stdout.close()
    stderr = process.stderr.read().decode()
    status = process.wait(timeout=300)
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert status == 1 and len(lines) == 1 and "cannot write the image to stdout" in lines[0], stderr


def test_a_bad_bdx_max_pixels_is_a_usage_error(tmp_path):
    photo = _photo(tmp_path)
    done = subprocess.run([sys.executable, "-m", "bdx", "info", str(photo)], capture_output=True, text=True, cwd=REPO,
                          env={**os.environ, "BDX_MAX_PIXELS": "-1"}, timeout=300)
    assert_one_error(done, 2, "BDX_MAX_PIXELS must be a positive whole number of pixels, not '-1'")


@pytest.mark.parametrize("task", ["depth", "lowlight", "hdr"])
@pytest.mark.parametrize("option,value,message", [
    ("--steps", "-1", "--steps must be at least 1"), ("--batch-size", "0", "--batch-size must be at least 1"),
    ("--batch-size", "100000000", "--batch-size must be between 1 and 4096, not 100000000"),  # memory grew until killed
    ("--validate-every", "0", "--validate-every must be at least 1"), ("--lr", "nan", "--lr must be a positive number"),
    ("--lr", "-1", "--lr must be a positive number"), ("--seed", "-1", "--seed must be at least 0"),
    ("--workers", "-1", "--workers"), ("--minutes", "0", "--minutes must be a positive number"),
])
def test_train_settings_that_cannot_run_are_usage_errors(tmp_path, task, option, value, message):
    """Before any data is read or file written: one line, exit 2 (they were tracebacks, or 'after 0 steps')."""
    output = tmp_path / "w.safetensors"
    data = ["--pairs", tmp_path / "none.json"] if task == "lowlight" else ["--data", tmp_path]
    done = bdx("train", task, *data, "-o", output, option, value, "--device", "cpu")
    assert_one_error(done, 2, message)
    assert not output.exists()


@pytest.mark.parametrize("option,value,message", [
    ("--exposure-level", "nan", "--exposure-level must be above 0 and at most 1, not nan"),
    ("--exposure-level", "0", "--exposure-level must be above 0"), ("--smoothness-weight", "-5", "--smoothness-weight must be between 0"),
])
def test_train_lowlight_loss_settings_out_of_range_are_usage_errors(tmp_path, option, value, message):
    output = tmp_path / "w.safetensors"
    done = bdx("train", "lowlight", "--data", tmp_path, "-o", output, option, value, "--device", "cpu")
    assert_one_error(done, 2, message)
    assert not output.exists()


def test_train_writes_weights_only_to_a_safetensors_name(tmp_path):
    """A training image given as -o (even with --overwrite) is never replaced by weights."""
    data = _references(tmp_path, ["ref0.png"])
    image = data / "ref0.png"
    before = image.read_bytes()
    done = bdx("train", "depth", "--data", data, "-o", image, "--overwrite", "--steps", "1", "--crop", "32")
    assert_one_error(done, 2, "-o must name a .safetensors file")
    assert image.read_bytes() == before


def test_slurm_shard_variables_that_are_not_numbers_are_a_usage_error(tmp_path):
    source = tmp_path / "x.png"
    write_image(source, Image(np.full((8, 8, 3), 40, np.uint8)))
    env = {**os.environ, "SLURM_ARRAY_TASK_ID": "x", "SLURM_ARRAY_TASK_COUNT": "2"}
    done = subprocess.run([sys.executable, "-m", "bdx", "quantize", "-b", "4", str(source)], capture_output=True, text=True, env=env)
    assert_one_error(done, 2, "SLURM_ARRAY_TASK_ID")


def test_train_depth_crop_and_shares_out_of_range_are_usage_errors(tmp_path):
    for option, value, message in (("--crop", "100000", "--crop must be between 16 and 2048"),
                                   ("--crop", "0", "--crop must be between 16 and 2048, not 0"),
                                   ("--upscale-fraction", "-1", "--upscale-fraction must be between 0 and 1"),
                                   ("--validation-fraction", "1", "--validation-fraction must be at least 0 and below 1"),
                                   ("--eight-bit-fraction", "1.5", "--eight-bit-fraction must be between 0 and 1"),
                                   ("--truth-noise-probability", "nan", "--truth-noise-probability must be between 0 and 1"),
                                   ("--bits", "9 3", "--bits takes two depths from 1 to 15, the smaller first, not 9 3")):
        done = bdx("train", "depth", "--data", tmp_path, "-o", tmp_path / "w.safetensors", option, *value.split(), "--device", "cpu")
        assert_one_error(done, 2, message)


def test_a_weights_file_asking_for_a_huge_network_is_refused_before_allocating(tmp_path):
    from safetensors.torch import save_file

    from bdx.errors import BdxError
    from bdx.models import load_model

    import torch

    config = {"widths": [200000, 200000], "blocks": [1, 1], "channels": 3, "prior": "none"}
    path = tmp_path / "huge.safetensors"
    save_file({"stem.weight": torch.zeros(1)}, str(path),
              metadata={"architecture": "bdx-dequant-unet-v2", "config": json.dumps(config)})
    with pytest.raises(BdxError, match="huge.safetensors: weights do not match"):
        load_model(path, "depth")
    done = bdx("upscale-depth", _photo(tmp_path), "-o", tmp_path / "o.tiff", "--method", "learned", "--weights", path)
    assert_one_error(done, 1, "huge.safetensors")


@pytest.mark.parametrize("key,value,message", [
    ("gamma", 0, "config: gamma must be a positive number, not 0"),  # a ZeroDivisionError on every image
    ("width", -3, "config: width must be a whole number of at least 1, not -3"),  # a RuntimeError (negative dimension)
])
def test_a_weights_config_no_network_runs_with_is_one_line(tmp_path, key, value, message):
    from safetensors import safe_open
    from safetensors.numpy import load_file, save_file

    from bdx.assets import default_weights
    from bdx.errors import WeightsError
    from bdx.models import load_model

    shipped = default_weights("lowlight")
    with safe_open(str(shipped), "np") as handle:
        metadata = handle.metadata()
    metadata["config"] = json.dumps({**json.loads(metadata["config"]), key: value})
    path = tmp_path / "edited.safetensors"
    save_file(load_file(str(shipped)), str(path), metadata=metadata)
    with pytest.raises(WeightsError, match=f"^edited.safetensors: weights do not match the architecture \\({message}\\)$"):
        load_model(path, "lowlight")


def test_a_published_checkpoint_of_the_right_names_but_wrong_shapes_is_one_line_naming_the_tensor(tmp_path):
    import torch

    from bdx.errors import WeightsError
    from bdx.models import load_model

    keys = [f"e_conv{i}.{part}" for i in range(1, 8) for part in ("weight", "bias")]
    state = {key: torch.zeros(3) for key in keys}
    state["e_conv1.bias"] = torch.tensor(1.0)  # 0-d: detecting the architecture was an internal IndexError
    torch.save(state, tmp_path / "scalar.pth")
    with pytest.raises(WeightsError, match=r"^scalar.pth: weights do not match Zero-DCE \(IndexError"):
        load_model(tmp_path / "scalar.pth", "lowlight")
    state = {key: torch.zeros(32 if key.endswith("bias") else 1) for key in keys}
    torch.save(state, tmp_path / "shapes.pth")  # the message stopped at "Error(s) in loading state_dict for DCENet:"
    with pytest.raises(WeightsError, match=r"^shapes.pth: weights do not match .*\(size mismatch for e_conv\d\.(weight|bias)") as raised:
        load_model(tmp_path / "shapes.pth", "lowlight")
    message = str(raised.value)
    assert message.endswith(")") and message.count("(") == message.count(")")  # not cut inside torch's "torch.Size(["


@pytest.mark.parametrize("task", ["depth", "lowlight", "hdr"])
def test_weights_holding_nan_are_refused(tmp_path, task):
    """A diverged run's weights loaded without a word: enhance-lowlight wrote a black image with status 0."""
    from safetensors.numpy import load_file, save_file
    from safetensors import safe_open

    from bdx.assets import default_weights

    shipped = default_weights(task)
    with safe_open(str(shipped), "np") as handle:
        metadata = handle.metadata()
    tensors = {key: np.full_like(value, np.nan) if value.dtype.kind == "f" else value for key, value in load_file(str(shipped)).items()}
    path = tmp_path / "nan.safetensors"
    save_file(tensors, str(path), metadata=metadata)
    command = {"depth": ("upscale-depth", "--method", "learned"), "lowlight": ("enhance-lowlight",), "hdr": ("ldr2hdr",)}[task]
    out = tmp_path / ("o.exr" if task == "hdr" else "o.tiff")
    done = bdx(command[0], _photo(tmp_path), "-o", out, *command[1:], "--weights", path)
    assert_one_error(done, 1, "nan.safetensors: weights hold NaN or infinite values")
    assert not out.exists()


@pytest.mark.parametrize("signal_name,status", [("SIGTERM", 143), ("SIGINT", 130)])
def test_a_signal_during_a_batch_cleans_up_and_says_one_line(tmp_path, signal_name, status):
    import signal
    import time

    folder = tmp_path / "in"
    folder.mkdir()
    big = (np.random.default_rng(5).random((1500, 2000, 3)) * 255).astype(np.uint8)
    for index in range(16):
        write_image(folder / f"p{index:02d}.png", Image(big), bits=8)
    process = subprocess.Popen([sys.executable, "-m", "bdx", "upscale-depth", str(folder), "-o", str(tmp_path / "out"),
                                "--method", "midpoint"], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(3.0)
    assert process.poll() is None  # still working through the batch
    process.send_signal(getattr(signal, signal_name))
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == status, stderr
    assert [line for line in stderr.splitlines() if line.strip()][-1] == "bdx: interrupted"
    left = list((tmp_path / "out").rglob("*")) if (tmp_path / "out").exists() else []
    assert not [p for p in left if p.name.endswith(".bdx-tmp")]  # no temporary file left behind
    for done in left:  # and every output there is whole
        assert done.stat().st_size > 1000


def test_ctrl_c_during_training_with_workers_stops_cleanly(tmp_path):
    """Ctrl-C reaches the whole process group: a data worker that raised on it made bdx say 'internal error'."""
    import signal
    import time

    data = _references(tmp_path, ["ref0.png", "ref1.png"])
    output = tmp_path / "w.safetensors"
    process = subprocess.Popen([sys.executable, "-m", "bdx", "train", "depth", "--data", str(data), "-o", str(output), "--steps",
                                "100000", "--checkpoint-every", "1", "--batch-size", "2", "--crop", "32", "--workers", "1",
                                "--device", "cpu", "--quiet"], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               start_new_session=True)
    checkpoint = Path(str(output) + ".ckpt.pt")
    deadline = time.monotonic() + 120
    while not checkpoint.exists() and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.2)
    assert checkpoint.exists(), process.communicate(timeout=60)
    os.killpg(process.pid, signal.SIGINT)  # as a terminal's Ctrl-C: to every process of the group
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 130, stderr
    assert [line for line in stderr.splitlines() if line.strip()] == ["bdx: interrupted"]
    assert not output.exists()


def test_long_work_in_a_pipe_reports_plain_progress_unless_quiet(monkeypatch, capsys):
    from bdx.cli.common import Reporter

    clock = iter(range(0, 1000, 11))  # every call to the clock is eleven seconds later
    monkeypatch.setattr("bdx.cli.common.time.monotonic", lambda: float(next(clock)))
    reporter = Reporter(2, quiet=False, json_lines=False, label="upscale-depth")
    reporter.begin("big.png")
    for done in range(1, 5):
        reporter.tiles(done, 8)
    reporter.finished({"input": "big.png", "status": "ok"})
    lines = capsys.readouterr().err.splitlines()
    assert lines and all(line.startswith("bdx: ") for line in lines)
    assert any("big.png: tile" in line for line in lines) and any("[1/2] big.png: done" in line for line in lines)
    quiet = Reporter(1, quiet=True, json_lines=False, label="x")
    quiet.begin("big.png")
    quiet.tiles(1, 8)
    quiet.finished({"input": "big.png", "status": "ok"})
    assert capsys.readouterr().err == ""


def test_eval_depth_refuses_float_images_instead_of_scoring_them_on_different_footings(tmp_path):
    exr = tmp_path / "scene.exr"
    write_image(exr, Image((np.random.default_rng(6).random((32, 32, 3)) * 4).astype(np.float32)), exr_half=False)
    done = bdx("eval", "depth", "--pred", exr, "--ref", exr)
    assert_one_error(done, 1, "scene.exr", "float")


def _bad_folder(tmp_path: Path) -> tuple[Path, set[str]]:
    """A folder of one good photo and the bad inputs of every kind seen so far; the bad files' names."""
    folder = tmp_path / "in"
    folder.mkdir()
    _photo(folder, "good.png")
    pixels = (gradient16() >> 8).astype(np.uint8)
    png, jpeg = encode_image(Image(pixels), "png", bits=8), encode_image(Image(pixels), "jpeg")
    tiff = encode_image(Image(pixels), "tiff", bits=8)
    (folder / "cutpng.png").write_bytes(png[: len(png) // 2])
    (folder / "cuttif.tif").write_bytes(tiff[: len(tiff) // 2])
    (folder / "cutjpg.jpg").write_bytes(jpeg[: len(jpeg) // 2] + b"\xff\xd9")
    (folder / "text.png").write_text("hello")
    (folder / "zero.png").write_bytes(b"")
    nan = np.ones((4, 4, 3), np.float32)
    nan[0, 0, 0] = np.nan
    write_raw_exr(folder / "nan.exr", nan)
    exr = (folder / "nan.exr").read_bytes()
    (folder / "cutexr.exr").write_bytes(exr[: len(exr) // 2])
    return folder, {"cutpng.png", "cuttif.tif", "cutjpg.jpg", "text.png", "zero.png", "nan.exr", "cutexr.exr"}


@pytest.mark.parametrize("command", [
    ["upscale-depth", "--method", "midpoint"], ["enhance-lowlight", "--dequantize", "midpoint"],
    ["ldr2hdr", "--dequantize", "midpoint", "--method", "classical"], ["quantize", "--bits", "4"], ["info"],
])
def test_every_command_gives_each_bad_input_one_line_and_valid_json(tmp_path, command):
    folder, bad = _bad_folder(tmp_path)
    out = tmp_path / "out"
    args = [*command, folder, "--json"] + ([] if command == ["info"] else ["-o", out])
    done = bdx(*args)
    assert done.returncode == 1, done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == len(bad) and all(line.startswith("bdx: error: ") for line in lines), lines
    for name in bad:
        assert sum(name in line for line in lines) == 1, (name, lines)
    records = json_lines(done)
    assert sorted(r["status"] for r in records) == ["error"] * len(bad) + ["ok"]
    if command != ["info"]:  # only the good photo's output, whole, and no temporary file
        made = [p for p in out.rglob("*") if p.is_file()]
        assert [p.stem for p in made] == ["good"] and made[0].stat().st_size > 100


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full")
def test_a_full_output_stream_is_one_line_not_an_internal_error(tmp_path):
    source = tmp_path / "x.png"
    write_image(source, Image(np.full((8, 8, 3), 40, np.uint8)))
    for arguments in (("quantize", "-b", "4", source, "-o", "-"), ("info", "--json", source)):
        with open("/dev/full", "wb") as full:
            done = subprocess.run([sys.executable, "-m", "bdx", *map(str, arguments)], stdout=full, stderr=subprocess.PIPE, text=True)
        assert done.returncode == 1 and "No space left on device" in done.stderr and "internal error" not in done.stderr
        assert len(done.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("args,names", [
    (("nosuch",), ("No such command", "bdx -h")),
    (("upscale-depth",), ("Missing argument", "bdx upscale-depth -h")),
    (("upscale-depth", "a.png", "--tile", "abc"), ("--tile", "valid integer")),
    (("upscale-depth", "a.png", "--no-such-option"), ("No such option: --no-such-option",)),
    (("eval", "depth"), ("Missing option '--pred'", "bdx eval depth -h")),
])
def test_command_line_parse_errors_are_one_line(args, names):
    assert_one_error(bdx(*args), 2, *names)


def test_a_file_name_holding_a_newline_still_gets_one_line(tmp_path):
    """The error named the file as it is, so a name with a newline split the message over two lines."""
    (tmp_path / "bad\nname.png").write_bytes(b"")
    done = bdx("info", "--json", tmp_path / "bad\nname.png")
    assert_one_error(done, 1, "bad\\nname.png", "file is empty")
    assert [r["input"] for r in json_lines(done)] == [str(tmp_path / "bad\nname.png")]


def test_a_closed_stderr_loses_the_lines_not_the_work(tmp_path):
    """With stderr closed by the shell (2>&-) Python holds None for it: bdx quantized nothing and exited 1 (a
    progress check called None.isatty), and with -q one bad file's error line ended the whole batch."""
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "a.png").write_bytes(b"")
    write_image(folder / "b.png", Image(np.random.default_rng(6).integers(0, 256, (16, 16, 3), dtype=np.uint8)), bits=8)

    def closed_stderr(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "bdx", *args], stdout=subprocess.PIPE, text=True, cwd=REPO,
                              timeout=300, preexec_fn=lambda: os.close(2))

    single = closed_stderr("quantize", "--bits", "4", str(folder / "b.png"), "-o", str(tmp_path / "one.png"))
    assert single.returncode == 0 and (tmp_path / "one.png").is_file()
    batch = closed_stderr("quantize", "-q", "--bits", "4", str(folder), "-o", str(tmp_path / "out"), "--json")
    records = {Path(r["input"]).name: r["status"] for r in map(json.loads, batch.stdout.splitlines())}
    assert batch.returncode == 1 and records == {"a.png": "error", "b.png": "ok"}, batch.stdout
    assert (tmp_path / "out" / "b.png").is_file()


def test_a_link_to_nothing_at_the_output_is_not_replaced_without_overwrite(tmp_path):
    """The existing-output check followed links, so a dangling one was silently replaced by a file."""
    source = tmp_path / "x.png"
    write_image(source, Image(np.full((8, 8, 3), 40, np.uint8)))
    link = tmp_path / "out.png"
    link.symlink_to(tmp_path / "nowhere.png")
    assert_one_error(bdx("quantize", "-b", "4", source, "-o", link), 1, "out.png exists", "--overwrite")
    assert link.is_symlink() and not (tmp_path / "nowhere.png").exists()
    assert bdx("quantize", "-b", "4", source, "-o", link, "--overwrite").returncode == 0
    assert not link.is_symlink() and link.stat().st_size > 50


def test_a_failed_run_leaves_no_output_folder_and_a_good_one_makes_it(tmp_path):
    """Output folders were made before the input was read, so every failed run left an empty one."""
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    assert_one_error(bdx("quantize", "-b", "4", empty, "-o", f"{tmp_path / 'new' / 'deeper'}/"), 1, "empty.png")
    assert not (tmp_path / "new").exists()
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "x.png").write_text("not an image")
    assert bdx("quantize", "-b", "4", bad).returncode == 1
    assert not (tmp_path / "bad_q4").exists()
    good = tmp_path / "good.png"
    write_image(good, Image(np.full((8, 8, 3), 40, np.uint8)))
    assert bdx("quantize", "-b", "4", good, "-o", f"{tmp_path / 'new' / 'deeper'}/").returncode == 0
    assert [p.name for p in (tmp_path / "new" / "deeper").iterdir()] == ["good.png"]
    blocker = tmp_path / "file"
    blocker.write_bytes(b"")
    assert_one_error(bdx("quantize", "-b", "4", good, "-o", f"{blocker / 'sub'}/"), 1, f"{blocker} is not a folder")


def test_an_image_for_a_closed_stdout_is_refused_not_lost(tmp_path):
    """With stdout closed by the shell (>&-) bdx writes to the null device: `-o -` reported success and the image
    was gone."""
    source = tmp_path / "x.png"
    write_image(source, Image(np.full((8, 8, 3), 40, np.uint8)))
    done = subprocess.run([sys.executable, "-m", "bdx", "quantize", "-b", "4", str(source), "-o", "-"], stderr=subprocess.PIPE,
                          text=True, cwd=REPO, timeout=300, preexec_fn=lambda: os.close(1))
    assert_one_error(done, 1, "x.png: standard output is closed: the image would be lost; give -o FILE")
