"""What every bdx command shares: inputs, output names, sharding, progress, errors, exit codes.

Exit status: 0 when every input succeeded (or was skipped), 1 when some failed
(the rest are still processed), 2 for bad usage.
"""

from __future__ import annotations

import glob
import json
import math
import os
import sys
import time
import traceback
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator, Sequence, TypeVar, cast

from bdx.console import stdout_is_closed
from bdx.errors import LARGEST_TILE, BdxError, Interrupted, SettingError, UsageError, problem_of

if TYPE_CHECKING:
    from bdx.depth import DepthMismatch

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
STDIO = "-"
MIN_TILE = 64

Choice = TypeVar("Choice", bound=str)
T = TypeVar("T")


@dataclass(frozen=True)
class Source:
    """One input image: its path (None for stdin), its name relative to the argument that found it."""

    path: Path | None
    relative: Path
    root: Path | None = None  # the directory argument it was found under
    searched: Path | None = None  # the folder a directory or glob argument searched (root, or a glob's fixed part)

    @property
    def display(self) -> str:
        return "<stdin>" if self.path is None else str(self.path)


@dataclass
class Inputs:
    """Expanded inputs plus the arguments that matched nothing."""

    sources: list[Source] = field(default_factory=list)
    problems: list[tuple[str, str]] = field(default_factory=list)


def image_extensions() -> frozenset[str]:
    from bdx.io import IMAGE_EXTENSIONS

    return IMAGE_EXTENSIONS


def expand_inputs(arguments: list[str], extensions: frozenset[str] | None = None) -> Inputs:
    """Files, directories (recursive), globs and ``-`` (stdin), in a stable sorted order; a directory or a glob gives
    its files with one of ``extensions`` (default: the image extensions). A file found twice (named twice, or by a
    glob and a folder) is kept once, where it was first found."""
    found = Inputs()
    extensions = extensions or image_extensions()
    if arguments.count(STDIO) > 1:  # the second read would find standard input empty
        raise UsageError("- (standard input) is given more than once; it holds one image")
    for argument in arguments:
        _expand_one(argument, extensions, found)
    seen: set[Path] = set()
    unique = []
    for source in found.sources:
        if source.path is not None:
            key = source.path.resolve()
            if key in seen:
                continue
            seen.add(key)
        unique.append(source)
    found.sources = unique
    return found


def _expand_one(argument: str, extensions: frozenset[str], found: Inputs) -> None:
    """Add what one input argument names to ``found``."""
    if argument == STDIO:
        found.sources.append(Source(None, Path("stdin")))
        return
    if not argument.strip():  # Path("") is the current directory: never expand it
        found.problems.append((repr(argument), "empty input path (an unset shell variable?)"))
        return
    path = Path(argument)
    if path.is_dir():
        files, unreadable = _images_under(path, extensions)
        found.problems.extend((str(folder), f"cannot read folder: {reason}") for folder, reason in unreadable)
        if not files and not unreadable:
            found.problems.append((argument, "directory holds no images"))
        found.sources.extend(Source(p, p.relative_to(path), root=path, searched=path) for p in files)
    elif path.exists():
        found.sources.append(Source(path, Path(path.name)))
    elif glob.has_magic(argument):
        base = _glob_base(argument)
        matches = sorted(Path(m) for m in glob.glob(argument, recursive=True) if Path(m).is_file())
        images = [m for m in matches if m.suffix.lower() in extensions]
        if not matches:
            found.problems.append((argument, "no files match"))
        elif not images:
            found.problems.append((argument, f"matches {len(matches)} file(s), none of them an image"))
        found.sources.extend(Source(m, _relative_or_name(m, base), searched=base) for m in images)
    else:
        found.problems.append((argument, "no such file"))


def _images_under(folder: Path, extensions: frozenset[str]) -> tuple[list[Path], list[tuple[Path, str]]]:
    """The image files under ``folder`` (recursive, sorted; hidden files and folders left out, folder links not
    followed) and the folders that could not be read, with the reason (a run must not skip them unsaid)."""
    files: list[Path] = []
    unreadable: list[tuple[Path, str]] = []

    def failed(error: OSError) -> None:
        unreadable.append((Path(error.filename or folder), error.strerror or str(error)))

    for parent, folders, names in os.walk(folder, onerror=failed):
        folders[:] = [name for name in folders if not name.startswith(".")]
        for name in names:
            candidate = Path(parent) / name
            if not name.startswith(".") and candidate.suffix.lower() in extensions and candidate.is_file():
                files.append(candidate)
    return sorted(files), sorted(unreadable)


def _glob_base(pattern: str) -> Path:
    parts = []
    for part in Path(pattern).parts:
        if glob.has_magic(part):
            break
        parts.append(part)
    return Path(*parts) if parts else Path(".")


def _relative_or_name(path: Path, base: Path) -> Path:
    try:
        return path.relative_to(base)
    except ValueError:
        return Path(path.name)


def check_choice(flag: str, value: str, choices: tuple[Choice, ...]) -> Choice:
    """``value`` as one of ``choices`` (typed as they are: a tuple of a ``Literal``'s values gives that ``Literal``),
    or a usage error."""
    if value not in choices:
        raise UsageError(f"{flag} must be one of {', '.join(choices)}, not {value!r}")
    return cast(Choice, value)


def check_range(flag: str, value: float, low: float, high: float, *, above_low: bool = False) -> None:
    """A usage error naming ``flag`` unless ``value`` is a finite number from ``low`` (or above it, with
    ``above_low``) to ``high`` (:func:`bdx.errors.check_number`, for options that are no library setting)."""
    from bdx.errors import SettingError, check_number

    try:
        check_number(flag.removeprefix("--").replace("-", "_"), value, low, high, above_low=above_low)
    except SettingError as exc:
        raise UsageError(exc.render(as_option)) from None


def parse_in_bits(text: str) -> int | None:
    """``--in-bits``: None for ``auto``, else a depth from 1 to 15."""
    from bdx.quantization import check_depth

    if text == "auto":
        return None
    try:
        value = int(text)
    except ValueError:
        raise UsageError(f"--in-bits must be auto or a number, not {text!r}") from None
    check_depth("in_bits", value)
    return value


def output_format(fmt: str | None, output: str | None, choices: tuple[str, ...]) -> str:
    """The ``--format`` to write: as given, else from the output's extension, else the first of ``choices``."""
    from bdx.io import format_from_path
    from bdx.io.write import FORMAT_EXTENSIONS

    if fmt is not None and not fmt.strip():  # --format= (an unset shell variable?) is not "no --format"
        raise UsageError(f"--format is empty; give one of {', '.join(choices)}")
    implied = format_from_path(output) if output and output != "-" else None
    if fmt and implied and fmt != implied:
        raise UsageError(f"--format {fmt} contradicts the output's extension ({output})")
    if fmt is None and implied is not None and implied not in choices:  # never a PNG's bytes in a file named .tiff
        raise UsageError(f"-o {output} names a file of format {implied}; this command writes {', '.join(choices)}")
    if output and implied is None and _names_a_file(output):  # -o x.webp: a file of a format bdx does not write
        written = ", ".join(FORMAT_EXTENSIONS[choice] for choice in choices)
        raise UsageError(f"-o {output}: this command does not write {Path(output).suffix} files (it writes {written})")
    chosen = fmt or implied or choices[0]
    check_choice("--format", chosen, choices)
    return chosen


def shard_from_environment() -> str | None:
    """``I/N`` from a SLURM job array (``--array=MIN-MAX[:STEP]``: I = (ID - MIN) / STEP) or a torchrun launch, if
    either is present."""
    env = os.environ
    if "SLURM_ARRAY_TASK_ID" in env and "SLURM_ARRAY_TASK_COUNT" in env:
        try:
            first, task = int(env.get("SLURM_ARRAY_TASK_MIN", "0")), int(env["SLURM_ARRAY_TASK_ID"])
            step = int(env.get("SLURM_ARRAY_TASK_STEP", "1"))
        except ValueError:
            raise UsageError(
                "SLURM_ARRAY_TASK_ID, SLURM_ARRAY_TASK_MIN and SLURM_ARRAY_TASK_STEP must be whole numbers to shard by them"
            ) from None
        return f"{(task - first) // max(step, 1)}/{env['SLURM_ARRAY_TASK_COUNT']}"
    if "RANK" in env and "WORLD_SIZE" in env:
        return f"{env['RANK']}/{env['WORLD_SIZE']}"
    return None


def apply_shard(sources: list[T], shard: str | None) -> list[T]:
    """Every N-th source starting at I for ``shard`` = ``I/N`` (None: the environment's, else all)."""
    flag = "--shard"
    if not shard:
        shard, flag = shard_from_environment(), "the environment's shard (SLURM_ARRAY_TASK_* or RANK/WORLD_SIZE)"
    if not shard:
        return sources
    try:
        index, count = (int(x) for x in shard.split("/"))
    except ValueError:
        raise UsageError(f"{flag} must look like I/N, not {shard!r}") from None
    if count < 1 or not 0 <= index < count:
        raise UsageError(f"{flag} {shard}: need 0 <= I < N")
    mine = sources[index::count]
    if sources and not mine:
        print(f"bdx: shard {shard} holds none of the {len(sources)} input(s); nothing to do", file=sys.stderr)
    return mine


def plan_outputs(
    sources: list[Source],
    output: str | None,
    *,
    extension: str,
    file_suffix: str,
    dir_suffix: str,
) -> "OutputPlan":
    """Where each source is written.

    With ``-o`` naming a file (a known image extension) and one input file, that
    file; with ``-o`` a folder, the input's relative path under it; with ``-o -``,
    stdout. Without ``-o``: ``<stem><file_suffix><extension>`` beside a file, or a
    mirrored tree in ``<dir><dir_suffix>`` beside a directory argument. Two inputs
    that would write the same output are refused before any work starts.
    """
    from bdx.io import format_from_path

    targets: list[Path | str] = []
    check_path_option("-o", output)
    if output == STDIO:
        if len(sources) != 1:
            raise UsageError("-o - (stdout) takes exactly one input")
        return OutputPlan([STDIO], explicit_file=True)
    single_file = len(sources) == 1 and sources[0].root is None
    explicit_file = False
    for source in sources:
        if output is None:
            if source.path is None:
                targets.append(STDIO)
            elif source.root is not None:
                root = source.root.resolve()
                targets.append(root.parent / (root.name + dir_suffix) / source.relative.with_suffix(extension))
            else:
                targets.append(source.path.with_name(source.path.stem + file_suffix + extension))
        elif single_file and format_from_path(output) is not None and _names_a_file(output):
            targets.append(Path(output))
            explicit_file = True
        elif _names_a_file(output):
            raise UsageError(_file_output_problem(output, len(sources)))
        else:
            targets.append(Path(output) / source.relative.with_suffix(extension))
    seen: dict[str, Source] = {}
    for source, target in zip(sources, targets):
        if target == STDIO:
            continue
        key = str(Path(target).resolve())
        if key in seen:
            raise UsageError(f"{seen[key].display} and {source.display} would both write {target}")
        seen[key] = source
    return OutputPlan(targets, explicit_file)


# image extensions that name a file, never a folder (-o x.webp is a file bdx cannot write, not a folder)
_FILE_EXTENSIONS = frozenset({".webp", ".bmp", ".gif", ".avif", ".heic", ".heif", ".jxl", ".jp2", ".j2k", ".dng"})


def _names_a_file(output: str) -> bool:
    """Whether ``-o`` names an image file (by its extension) rather than a folder, and is not a folder."""
    from bdx.io import format_from_path

    if output.endswith(("/", os.sep)):  # "out.tiff/": a folder, whatever its name
        return False
    suffix = Path(output).suffix.lower()
    known = format_from_path(output) is not None or suffix in _FILE_EXTENSIONS or suffix in image_extensions()
    return known and not _is_folder(Path(output))


def _is_folder(path: Path) -> bool:
    """Whether ``path`` is a folder; False for a name the file system refuses (too long), left to the per-file check."""
    try:
        return path.is_dir()
    except OSError:
        return False


def _file_output_problem(output: str, count: int) -> str:
    from bdx.io.write import FORMAT_EXTENSIONS, format_from_path

    if format_from_path(output) is None:
        written = ", ".join(FORMAT_EXTENSIONS.values())
        return f"-o {output}: bdx does not write {Path(output).suffix} files (it writes {written})"
    if count == 1:  # one image found in a folder argument, whose tree -o mirrors
        return f"-o {output} names one file, but the input is a folder (give a folder)"
    return f"-o {output} names one file, but there are {count} inputs (give a folder)"


@dataclass
class OutputPlan:
    """Output paths in input order; ``explicit_file`` when ``-o`` named the one output file."""

    targets: list[Path | str]
    explicit_file: bool = False


class Reporter:
    """Progress on stderr (a bar for several files or many tiles on a terminal; elsewhere, for long work, a plain
    line at most every ``PLAIN_EVERY`` seconds), one-line errors, JSON lines on stdout."""

    PLAIN_EVERY = 10.0  # seconds between plain progress lines in a pipe or a log

    def __init__(self, total: int, *, quiet: bool, json_lines: bool, label: str) -> None:
        self.quiet = quiet
        self.json_lines = json_lines
        self.failed = 0
        self.total = total
        self.done = 0
        self._current = ""
        self._last_line = time.monotonic()
        self._progress = None
        self._file_task = None
        self._tile_task: Any = None  # the progress display's task id, once it has one
        if not quiet and sys.stderr.isatty() or (not quiet and os.environ.get("BDX_PROGRESS") == "1"):
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

            self._progress = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeRemainingColumn(),
                console=Console(stderr=True),
                transient=True,
            )
            self._progress.start()
            if total > 1:
                self._file_task = self._progress.add_task(label, total=total)

    def begin(self, name: str) -> None:
        """The input now being processed."""
        self._current = name

    def _plain(self, line: str) -> None:
        """A plain progress line, when neither a bar nor --quiet and ``PLAIN_EVERY`` seconds have passed."""
        if self.quiet or self._progress is not None or time.monotonic() - self._last_line < self.PLAIN_EVERY:
            return
        self._stderr_line(line)
        self._last_line = time.monotonic()

    def tiles(self, done: int, total: int) -> None:
        """Tile progress of the current image (shown when it has several tiles)."""
        if self._progress is None and total > 1 and done < total:
            self._plain(f"bdx: {self._current}: tile {done}/{total}")
        if self._progress is None or total < 2:
            return
        if self._tile_task is None:
            self._tile_task = self._progress.add_task("tiles", total=total)
        self._progress.update(self._tile_task, completed=done, total=total)

    def finished(self, record: dict[str, Any]) -> None:
        """Report one input's outcome: its error or warning on stderr, its record as a JSON line."""
        self.done += 1
        if record.get("status") == "ok":
            self._plain(f"bdx: [{self.done}/{self.total}] {record['input']}: done")
        if record.get("status") == "error":
            self.failed += 1
            self.error(f"{record['input']}: {record['error']}")
        elif record.get("warning"):
            self._stderr_line(one_line(f"bdx: warning: {record['input']}: {record['warning']}"))
        if self.json_lines:
            sys.stdout.write(json_line(record) + "\n")
            sys.stdout.flush()
        if self._progress is not None:
            if self._tile_task is not None:
                self._progress.remove_task(self._tile_task)
                self._tile_task = None
            if self._file_task is not None:
                self._progress.advance(self._file_task)

    def error(self, message: str) -> None:
        self._stderr_line(f"bdx: error: {one_line(message)}")

    def left_out(self, names: Sequence[str], reason: str) -> None:
        """Inputs found but not processed: one warning line for all (the first named), a ``skipped`` record each."""
        more = f" and {len(names) - 1} more" if len(names) > 1 else ""
        self._stderr_line(one_line(f"bdx: warning: {names[0]}{more}: {reason}"))
        if self.json_lines:
            for name in names:
                sys.stdout.write(json_line({"input": name, "status": "skipped", "warning": reason}) + "\n")
            sys.stdout.flush()

    def _stderr_line(self, line: str) -> None:
        if self._progress is not None:
            self._progress.console.print(line, markup=False, highlight=False, soft_wrap=True)
        else:
            sys.stderr.write(line + "\n")
            sys.stderr.flush()

    def close(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None


def one_line(text: str) -> str:
    """``text`` with control characters escaped: a file name holding a newline still gives one line, and one whose
    bytes are not UTF-8 shows them as ``\\xNN``, as ``--json`` does."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in _text(text))


def json_line(record: Any) -> str:
    """``record`` as one line of strict JSON: NaN and infinities (a PSNR of identical images) become null, and a
    file name that is not UTF-8 shows its odd bytes as ``\\xNN`` (a lone surrogate is not valid JSON text)."""
    return json.dumps(_finite(record), default=_json_default, allow_nan=False)


def _text(value: str) -> str:
    try:
        value.encode("utf-8")
        return value
    except UnicodeEncodeError:  # os.fsdecode's surrogates for bytes that are not UTF-8
        return value.encode("utf-8", "surrogateescape" if _escaped_bytes_only(value) else "backslashreplace").decode(
            "utf-8", "backslashreplace"
        )


def _escaped_bytes_only(value: str) -> bool:
    return all(not 0xD800 <= ord(c) <= 0xDFFF or 0xDC80 <= ord(c) <= 0xDCFF for c in value)


def _finite(value: Any) -> Any:
    if isinstance(value, os.PathLike):
        value = os.fspath(value)
    if isinstance(value, str):
        return _text(value)
    if isinstance(value, float) or (hasattr(value, "item") and hasattr(value, "dtype") and value.dtype.kind == "f"):
        number = float(value)
        return number if math.isfinite(number) else None
    if isinstance(value, dict):
        return {_text(key) if isinstance(key, str) else key: _finite(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(item) for item in value]
    return value


def check_tile_option(tile: int | None) -> None:
    """A usage error for a ``--tile`` outside ``MIN_TILE`` (tiny tiles are all halo: hours of work) to
    :data:`bdx.errors.LARGEST_TILE` pixels; checked before the library's own, wider, bounds."""
    if tile is not None and not MIN_TILE <= tile <= LARGEST_TILE:
        raise UsageError(f"--tile must be between {MIN_TILE} and {LARGEST_TILE} pixels, not {tile}")


def check_path_option(flag: str, value: str | None) -> None:
    """A usage error for an empty path option (an unset shell variable), which would be read as the current folder."""
    if value is not None and not value.strip():
        raise UsageError(f"{flag} is empty (an unset shell variable?)")


def check_device(device: str) -> None:
    """A usage error for a ``--device`` torch cannot use, before any file is read or folder made."""
    from bdx.device import resolve_device

    resolve_device(device)


def _json_default(value: Any) -> Any:
    if hasattr(value, "item"):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


OPTION_OF_SETTING = {"exr_half=False": "--sample-type float"}  # settings whose option has another name or value


def as_option(setting: str) -> str:
    """The command-line option of a library setting (``in_bits`` -> ``--in-bits``, ``exr_half=False`` ->
    ``--sample-type float``)."""
    return OPTION_OF_SETTING.get(setting) or "--" + setting.replace("_", "-")


def describe_depth_mismatch(mismatch: DepthMismatch, *, told: bool) -> str:
    """The warning for an input whose codes need more bits than the depth read (``told``: given as --in-bits, else
    from the sBIT chunk): the convention that reads them, or that their finer detail is rounded away."""
    if mismatch.truncated_levels is not None and mismatch.content_bits <= mismatch.bits:  # the codes fit, as coarser levels
        return (
            f"its codes are {mismatch.truncated_levels}-bit levels with zero-filled low bits, which {mismatch.bits}-bit "
            "bin centres leave banded: add --convention truncate"
        )
    treated = f"treated as {mismatch.bits}-bit ({'--in-bits' if told else 'its sBIT chunk'})"
    if mismatch.truncated_levels is not None:  # the depth is right, the convention is not
        return (
            f"{treated}, its codes need {mismatch.content_bits} bits as bin centres, but they are "
            f"{mismatch.truncated_levels}-bit levels with zero-filled low bits: add --convention truncate"
        )
    return f"{treated}, but its codes need {mismatch.content_bits} bits: the finer detail was rounded away"


def environment_error(exc: BaseException) -> str | None:
    """The system's reason for an operating-system error (a full disk, a closed pipe): the environment, not a bug;
    None for any other exception."""
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror + (f" ({exc.filename})" if exc.filename else "")
    return None


def describe_exception(exc: BaseException, *, file_named: bool = False) -> str:
    """One line for an exception, settings named as options; unexpected ones are labelled as internal errors.
    ``file_named``: the line goes beside the file being processed, so an :class:`InputError` leaves out the file it
    names."""
    if isinstance(exc, SettingError):
        return exc.render(as_option)
    if isinstance(exc, BdxError):
        return problem_of(exc) if file_named else str(exc)
    if isinstance(exc, MemoryError):
        return "out of memory"
    reason = environment_error(exc)
    if reason is not None:
        return reason
    if os.environ.get("BDX_DEBUG"):
        traceback.print_exc()
    text = str(exc).splitlines()[0] if str(exc) else ""
    return f"internal error ({type(exc).__name__}: {text}); set BDX_DEBUG=1 for a traceback"


Process = Callable[[Source, Any, Reporter], dict[str, Any]]  # the target: a path, STDIO, or None (no output)


def run_batch(
    sources: list[Source],
    targets: Sequence[Path | str | None],
    process: Process,
    *,
    problems: Sequence[tuple[str, str]] = (),
    overwrite: bool = False,
    skip_existing: bool = False,
    quiet: bool = False,
    json_lines: bool = False,
    label: str = "images",
    create_folders: bool = True,
    inputs: frozenset[Path] | None = None,
    left_out: Sequence[tuple[Sequence[str], str]] = (),
) -> int:
    """Run ``process`` on every source; one failure never stops the others. No output replaces a file of
    ``inputs`` (by default the sources; a shard's batch gives every shard's inputs). A ``None`` target: the
    command writes no file for that source. ``left_out``: groups of inputs found but not processed, with the
    reason (one warning line per group, and a ``skipped`` record each)."""
    if overwrite and skip_existing:
        raise UsageError("--overwrite and --skip-existing exclude each other")
    reporter = Reporter(len(sources), quiet=quiet, json_lines=json_lines, label=label)
    if inputs is None:
        inputs = input_paths(sources)
    try:
        for name, message in problems:
            reporter.finished({"input": name, "status": "error", "error": message})
        for names, reason in left_out:
            if names:
                reporter.left_out(names, reason)
        for source, target in zip(sources, targets):
            record: dict[str, Any] = {"input": source.display}
            if target is not None:
                record["output"] = str(target)
            reporter.begin(source.display)
            try:
                if target is not None and target != STDIO and skip_existing and Path(target).is_file():
                    check_not_an_input(source, target)  # the input itself is never "already done"
                    record["status"] = "skipped"
                else:
                    if target is not None:
                        check_target(source, target, overwrite=overwrite, create_folders=create_folders, inputs=inputs)
                    record.update(process(source, target, reporter))
                    record["status"] = "ok"
            except (KeyboardInterrupt, Interrupted):
                raise
            except BaseException as exc:  # one line per failed file, then carry on
                record.update(status="error", error=describe_exception(exc, file_named=True))
            reporter.finished(record)
    finally:
        reporter.close()
    return EXIT_FAILED if reporter.failed else EXIT_OK


def check_target(
    source: Source,
    target: Path | str,
    *,
    overwrite: bool,
    create_folders: bool,
    inputs: frozenset[Path] = frozenset(),
    can_skip: bool = True,
) -> None:
    """Refuse to write over the input or any other of ``inputs`` (whatever ``--overwrite`` says), or over an existing
    file (or link) without ``--overwrite`` (or ``--skip-existing``, where the command has it: ``can_skip``), or into a
    folder that is missing (unless ``create_folders``: :func:`write_target` makes it once there is a result to
    write, so a failed run leaves no empty folder) or cannot be written."""
    if target == STDIO:
        if stdout_is_closed():
            raise BdxError("standard output is closed: the image would be lost; give -o FILE")
        return
    target = Path(target)
    try:
        check_not_an_input(source, target, inputs)
        if target.is_dir():
            raise BdxError(f"output {target} is a directory")
        if os.path.lexists(target) and not overwrite:  # a link to nothing too: writing would replace it
            raise BdxError(f"{target} exists (use --overwrite to replace it{', or --skip-existing' if can_skip else ''})")
        existing = nearest_existing_folder(target.parent)
        if not existing.is_dir():
            raise BdxError(f"{existing} is not a folder")
        if existing != target.parent and not create_folders:
            raise BdxError(f"output folder does not exist: {target.parent}")
        if not os.access(existing, os.W_OK | os.X_OK):  # found before the work, not when writing its result
            reason = "read-only file system" if _read_only_folder(existing) else "permission denied"
            raise BdxError(f"cannot write to {existing}: {reason}")
    except OSError as exc:  # a name the file system refuses (too long, bad bytes): one line for this file
        raise BdxError(f"cannot write {target}: {exc.strerror or exc}") from None


def nearest_existing_folder(folder: Path) -> Path:
    """``folder``, or its nearest ancestor that exists (which may be a file, not a folder)."""
    while not os.path.lexists(folder) and folder != folder.parent:
        folder = folder.parent
    return folder


def make_folder(folder: Path) -> None:
    """Create ``folder`` and its missing parents, or raise a :class:`BdxError` saying why not."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise BdxError(f"cannot create folder {folder}: {exc.strerror or exc}") from None


def _read_only_folder(folder: Path) -> bool:
    """Whether ``folder`` lies on a file system mounted read-only."""
    try:
        return bool(os.statvfs(folder).f_flag & os.ST_RDONLY)
    except (OSError, AttributeError):  # no statvfs (Windows)
        return False


def check_not_an_input(source: Source, target: Path | str, inputs: frozenset[Path] = frozenset()) -> None:
    """Refuse a ``target`` that is the source's own file or another of ``inputs``."""
    target = Path(target)
    if source.path is not None and target.exists() and target.resolve() == source.path.resolve():
        raise BdxError("output path is the input file; refusing to overwrite an input")
    if target.exists() and target.resolve() in inputs:
        raise BdxError(f"output {target} is another input of this run; refusing to overwrite an input")


def check_weights_target(output: Path, overwrite: bool, resume: Path | None = None, init: Path | None = None) -> None:
    """Before any training: the weights file may be written (its folder exists and takes files) and is not an
    existing file unless ``overwrite`` (or a resumed run's own); training for an hour to fail at the end is what
    this prevents. The run's checkpoint (``<output>.ckpt.pt``) is not replaced either, unless ``overwrite`` or it
    is the checkpoint the run resumes. The weights the run starts from (``init``) are never replaced."""
    import tempfile

    if output.suffix.lower() != ".safetensors":
        raise UsageError(f"-o must name a .safetensors file, not {output}")
    if output.is_dir():
        raise BdxError(f"output {output} is a directory")
    if init is not None and output.exists() and init.exists() and output.resolve() == init.resolve():
        raise BdxError(f"-o {output} is the --init weights file; refusing to overwrite the weights this run starts from")
    checkpoint = Path(str(output) + ".ckpt.pt")
    resumes_it = resume is not None and checkpoint.exists() and resume.resolve() == checkpoint.resolve()
    if os.path.lexists(output) and not (overwrite or resumes_it):  # a link to nothing too: saving would replace it
        raise BdxError(f"{output} exists (use --overwrite to replace it)")
    if checkpoint.exists() and not (overwrite or resumes_it):
        raise BdxError(f"{checkpoint} holds an earlier run (continue it with --resume {checkpoint}, or use --overwrite to start over)")
    from bdx.io.write import check_output_folder

    folder = output.parent if str(output.parent) else Path(".")
    check_output_folder(folder)
    try:
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as exc:
        raise BdxError(f"cannot write to {folder}: {exc.strerror or exc}") from None


@dataclass
class Batch:
    """The planned work of one command: sources, their outputs, inputs that matched nothing, and the files of every
    shard's inputs (none of which an output may replace)."""

    sources: list[Source]
    plan: OutputPlan
    problems: list[tuple[str, str]]
    inputs: frozenset[Path]
    left_out: tuple[tuple[tuple[str, ...], str], ...] = ()  # files a folder or glob found but not processed, and why

    def run(self, process: Process, *, label: str, overwrite: bool, skip_existing: bool, quiet: bool, json_lines: bool) -> int:
        """Process every source (see :func:`run_batch`) and return the exit status."""
        if json_lines and STDIO in self.plan.targets:
            raise UsageError(
                "--json cannot share stdout with the image written there (-o -, the default for input from stdin): give -o FILE"
            )
        if STDIO in self.plan.targets and sys.stdout.isatty():
            raise UsageError("the image would go to the terminal: redirect stdout (> out.tiff) or give -o FILE")
        return run_batch(
            self.sources,
            self.plan.targets,
            process,
            problems=self.problems,
            overwrite=overwrite,
            skip_existing=skip_existing,
            quiet=quiet,
            json_lines=json_lines,
            label=label,
            create_folders=not self.plan.explicit_file,
            inputs=self.inputs,
            left_out=self.left_out,
        )


def plan_batch(inputs: list[str], output: str | None, shard: str | None, **naming) -> Batch:
    """Expand inputs, plan output names (``naming``: see :func:`plan_outputs`), then apply the shard: outputs are
    planned over every shard's inputs, so that two inputs of different shards never write one file."""
    found = expand_inputs(inputs)
    everything, inside = _split_at_output(found.sources, output)
    if found.sources and not everything:
        raise BdxError(f"every input lies inside the output folder {output}: nothing to do")
    plan = plan_outputs(everything, output, **naming)
    earlier = _planned_outputs(everything, plan.targets)
    if earlier:  # a rerun of a glob: the first run's results beside their inputs are not new inputs
        outputs = tuple(everything[index].display for index in sorted(earlier))
        everything = [source for index, source in enumerate(everything) if index not in earlier]
        plan = plan_outputs(everything, output, **naming)
    else:
        outputs = ()
    mine = apply_shard(list(zip(everything, plan.targets)), shard)
    sources, targets = [source for source, _ in mine], [target for _, target in mine]
    left_out = (
        (tuple(source.display for source in inside), f"inside the output folder {output}: left out (name the file to process it)"),
        (outputs, "the output this run plans for another input: left out (name the file to process it)"),
    )
    return Batch(sources, OutputPlan(targets, plan.explicit_file), found.problems, input_paths(everything), left_out)


def input_paths(sources: list[Source]) -> frozenset[Path]:
    """The resolved files of ``sources`` (standard input has none)."""
    return frozenset(source.path.resolve() for source in sources if source.path is not None)


def _planned_outputs(sources: list[Source], targets: Sequence[Path | str]) -> set[int]:
    """Indices of the sources found by a folder or glob argument whose file is the planned output of another source
    (``a_16bit.tiff`` beside ``a.png`` for ``'*'``); files named one by one always stay inputs."""
    planned = {Path(t).resolve(): index for index, t in enumerate(targets) if t != STDIO}
    return {
        index
        for index, source in enumerate(sources)
        if source.searched is not None and source.path is not None and planned.get(source.path.resolve(), index) != index
    }


def _split_at_output(sources: list[Source], output: str | None) -> tuple[list[Source], list[Source]]:
    """``sources`` less the files a folder or glob argument found inside the output folder (``-o d/out`` for
    input ``d`` or ``'d/**/*.png'``), and those files: a second run must not read the first run's results as inputs."""
    if output is None or output == STDIO:
        return sources, []
    folder = Path(output).resolve()

    def inside(path: Path) -> bool:
        return path == folder or folder in path.parents

    kept: list[Source] = []
    found_inside: list[Source] = []
    for s in sources:
        found = s.searched is not None and s.path is not None and not inside(s.searched.resolve()) and inside(s.path.resolve())
        (found_inside if found else kept).append(s)
    return kept, found_inside


def container_losses(image, fmt: str) -> str | None:
    """What a float output (EXR, Radiance) cannot carry of the input ``image``, as one warning, or None: alpha in
    ``.hdr``, a colour profile other than sRGB (bdx writes the colours as sRGB primaries, which EXR assumes), and
    EXIF metadata."""
    from bdx.io.metadata import icc_description

    alpha = fmt == "hdr" and image.alpha is not None
    profile = icc_description(image.icc_profile)
    return joined_warnings(
        "the .hdr format holds no alpha channel: it was dropped (write .exr to keep it)" if alpha else None,
        f"the input's colour profile ({profile}) is not carried into .{fmt}: its colours are written as sRGB primaries"
        if fmt in ("exr", "hdr") and profile is not None and "srgb" not in profile.lower()
        else None,
        f"the input's EXIF metadata is not carried into .{fmt}" if fmt in ("exr", "hdr") and getattr(image, "exif", None) else None,
    )


def joined_warnings(*warnings: str | None) -> str | None:
    """The warnings given (None: no warning) as one record's line, or None when there is none."""
    return "; ".join(warning for warning in warnings if warning) or None


def read_source(source: Source):
    """Decode one source (a file or stdin)."""
    from bdx.io import decode_image, read_image

    if source.path is None:
        return decode_image(sys.stdin.buffer.read(), "<stdin>")
    return read_image(source.path)


def write_target(target: Path | str, image, fmt: str, **options) -> None:
    """Encode and write atomically, or to stdout for ``-``."""
    from bdx.io import atomic_write_bytes, encode_image

    data = encode_image(image, fmt, **options)
    if target == STDIO:
        write_stdout(data)
    else:
        make_folder(Path(target).parent)  # checked by check_target; made only now that there is something to write
        atomic_write_bytes(target, data)


def write_stdout(data: bytes) -> None:
    """Write every byte of ``data`` to stdout, or raise a :class:`BdxError`: a pipe whose reader left, a full disk
    or a file-size limit cut the image short while the command still reported success."""
    import io

    try:
        sys.stdout.flush()
        try:
            descriptor = sys.stdout.fileno()
        except (AttributeError, io.UnsupportedOperation):  # a stream in memory (tests, notebooks)
            sys.stdout.buffer.write(data)
            sys.stdout.buffer.flush()
            return
        view = memoryview(data)
        while view:
            written = os.write(descriptor, view)
            if written <= 0:
                raise OSError("nothing written")
            view = view[written:]
    except OSError as exc:
        raise BdxError(f"cannot write the image to stdout ({exc.strerror or exc}); {len(data)} bytes were due") from None


@contextmanager
def command_errors() -> Iterator[None]:
    """Turn errors raised outside the per-file loop into one line and an exit status."""
    import typer

    try:
        yield
    except UsageError as exc:
        sys.stderr.write(f"bdx: error: {one_line(describe_exception(exc))}\n")
        raise typer.Exit(EXIT_USAGE) from None
    except BdxError as exc:
        sys.stderr.write(f"bdx: error: {one_line(describe_exception(exc))}\n")
        raise typer.Exit(EXIT_FAILED) from None
