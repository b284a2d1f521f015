"""Pack what a GPU run of ``tools/device_job.sh`` needs into ``.device/`` (in .gitignore, carried by the
device tool): the dequantizer's training data and the wheels the device's Python lacks.

The device machine reaches no network and takes at most 64 MiB with the working tree, so the pack holds the
scene-linear panoramas and the 8-bit photos as they are and as many training-side SICE merges as fit, rewritten
as half-float EXR (about 1 MB each); held-out files (the depth suite's and the low-light benchmark's) are left out.

    python tools/sice_merges.py --sice ../shared/data/sice --out /tmp/sice_merged      # training-side merges
    python tools/device_pack.py                                                         # -> .device/ (about 55 MiB)
    # then, with a GPU lent: run(command="bash tools/device_job.sh", carry=[".device"], timeout_s=600)
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from pathlib import Path

from bdx.io import read_image, write_image
from bdx.training.data import is_validation
from bdx.training.hdr import known_truth_path

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
HELDOUT_FRACTION = 0.3  # the split of every shipped depth-* weights file (benchmarks/depth_suite.py)
BUDGET_MIB = 64  # what the device tool carries, working tree included


def tree_mib() -> float:
    """Size of the tracked files (what travels besides the pack)."""
    files = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout.split(b"\0")
    return sum((ROOT / f.decode()).stat().st_size for f in files if f and (ROOT / f.decode()).is_file()) / 2**20


def folder_mib(folder: Path) -> float:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) / 2**20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--merges", type=Path, default=Path("/tmp/sice_merged"), help="tools/sice_merges.py output")
    parser.add_argument("--out", type=Path, default=ROOT / ".device")
    parser.add_argument("--margin-mib", type=float, default=4.0, help="room left under the device's limit")
    args = parser.parse_args()
    if args.out.exists():
        shutil.rmtree(args.out)
    data = args.out / "data"
    for name in ("hdr", "photos"):  # whole folders: the training split is drawn by name on the device as here
        shutil.copytree(SHARED / name, data / name)
    wheels = args.out / "wheels"
    wheels.mkdir(parents=True)
    version = subprocess.run([sys.executable, "-m", "pip", "show", "openexr"], capture_output=True, text=True).stdout
    version = next(line.split()[1] for line in version.splitlines() if line.startswith("Version"))
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--python-version", "3.12",
         "--implementation", "cp", "--platform", "manylinux_2_28_x86_64", "--platform", "manylinux_2_17_x86_64",
         "-d", str(wheels), f"openexr=={version}", "-q"],
        check=True,
    )
    merges = data / "sice_merges"
    merges.mkdir()
    room = BUDGET_MIB - args.margin_mib - tree_mib() - folder_mib(args.out)
    candidates = sorted(p for p in args.merges.glob("sice_*.exr") if not is_validation(p.name, HELDOUT_FRACTION))
    written = 0
    for path in candidates[:: max(1, len(candidates) // 40)]:  # spread over the stacks, at most about 40
        target = merges / path.name
        write_image(target, read_image(path), "exr", exr_half=True)
        known = known_truth_path(path)  # the merge's lower-bound pixels, left out of training
        if known.is_file():
            shutil.copyfile(known, known_truth_path(target))
        if folder_mib(merges) > room:
            target.unlink()
            known_truth_path(target).unlink(missing_ok=True)
            break
        written += 1
    print(f"{args.out}: {folder_mib(args.out):.1f} MiB ({written} SICE merges), working tree {tree_mib():.1f} MiB")


if __name__ == "__main__":
    main()
