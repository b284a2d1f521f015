"""User-facing errors: one line, no traceback."""

from __future__ import annotations

import math
import numbers
import re
from typing import Callable


class BdxError(Exception):
    """An error caused by the input or the environment, reported as a single line."""


class InputError(BdxError):
    """An input image that cannot be processed as asked (unreadable, of the wrong kind or size). ``file``: the
    file it names (:func:`bdx.io.read_image` gives it), ahead of the ``problem`` in the message.

    >>> str(InputError("file is empty", file="a.png")), InputError("file is empty", file="a.png").problem
    ('a.png: file is empty', 'file is empty')
    """

    def __init__(self, problem: str, *, file: str | None = None) -> None:
        super().__init__(f"{file}: {problem}" if file else problem)
        self.problem = problem
        self.file = file


def problem_of(exc: BaseException) -> str:
    """An error's message without the file an :class:`InputError` names: for callers that name it themselves."""
    return exc.problem if isinstance(exc, InputError) else str(exc)


class WeightsError(BdxError):
    """A weights file that cannot be used: missing, unreadable, of another task, or of no known architecture."""


class TrainingCheckpointError(WeightsError):
    """A bdx training checkpoint (network, optimizer state and step) given where weights are expected."""

    def __init__(self, message: str, step: int, parameters: int) -> None:
        super().__init__(message)
        self.step = step
        self.parameters = parameters


class UsageError(BdxError):
    """Bad command-line usage (exit status 2)."""


class SettingError(BdxError):
    """A setting whose value does not fit. The message names settings as ``{fields}``: the library's text shows the
    parameter names (``in_bits``), the CLI's its options (``--in-bits``, through :meth:`render`).

    >>> str(SettingError("{in_bits} 9 does not fit an 8-bit input"))
    'in_bits 9 does not fit an 8-bit input'
    >>> SettingError("{in_bits} 9 does not fit an 8-bit input").render(lambda name: "--" + name.replace("_", "-"))
    '--in-bits 9 does not fit an 8-bit input'
    """

    def __init__(self, template: str) -> None:
        self.template = template
        super().__init__(self.render(lambda name: name))

    def render(self, name: Callable[[str], str]) -> str:
        """The message with every ``{setting}`` or ``{setting=value}`` field written as ``name(field)``.

        >>> SettingError("give {exr_half=False}").render(lambda field: {"exr_half=False": "--sample-type float"}[field])
        'give --sample-type float'
        """
        return re.sub(r"\{(\w+(?:=\w+)?)\}", lambda match: name(match.group(1)), self.template)


class SettingUsageError(SettingError, UsageError):
    """A :class:`SettingError` that is bad usage in itself (an option value no input could make right)."""


def check_setting(name: str, value: object, choices: tuple) -> None:
    """A :class:`SettingUsageError` naming setting ``name`` when ``value`` is not one of ``choices``.

    >>> check_setting("method", "magic", ("learned", "contour"))
    Traceback (most recent call last):
    ...
    bdx.errors.SettingUsageError: method must be one of learned, contour, not 'magic'
    """
    if value not in choices:
        raise SettingUsageError(f"{{{name}}} must be one of {', '.join(map(str, choices))}, not {value!r}")


def check_number(name: str, value: float, low: float, high: float, *, above_low: bool = False, whole: bool = False) -> None:
    """A :class:`SettingUsageError` naming setting ``name`` unless ``value`` is a finite number from ``low`` (or above
    it, with ``above_low``) to ``high`` (and a whole number, with ``whole``).

    >>> check_number("gamma", 0.0, 0.1, 10)
    Traceback (most recent call last):
    ...
    bdx.errors.SettingUsageError: gamma must be between 0.1 and 10, not 0.0
    """
    fits = (
        isinstance(value, numbers.Integral if whole else numbers.Real)  # NumPy scalars too; 2.0 is no count of anything
        and not isinstance(value, bool)
        and math.isfinite(value)
        and (value > low if above_low else value >= low)
        and value <= high
    )
    if not fits:
        bounds = f"above {_number(low)} and at most {_number(high)}" if above_low else f"between {_number(low)} and {_number(high)}"
        kind = "a whole number " if whole else ""
        raise SettingUsageError(f"{{{name}}} must be {kind}{bounds}, not {value!r}")


def _number(value: float) -> str:
    """A bound as written: whole numbers in full (1048576, not 1.04858e+06), others as %g."""
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


SMALLEST_TILE = 16  # pixels; the CLI asks for more (tiny tiles are mostly halo)
LARGEST_TILE = 1 << 20


def check_tile(tile: object) -> None:
    """A :class:`SettingUsageError` unless ``tile`` is None (the model's own size) or a whole number of pixels."""
    if tile is not None:
        check_number("tile", tile, SMALLEST_TILE, LARGEST_TILE, whole=True)  # type: ignore[arg-type]


def plain_scalars(settings: object) -> None:
    """Replace NumPy scalars among a (frozen) dataclass's fields by the Python number or bool they hold, before its
    checks: ``np.int64(2)`` is then a whole number like 2, and ``1 << np.uint8(12)`` cannot overflow later."""
    import dataclasses

    for field in dataclasses.fields(settings):  # type: ignore[arg-type]
        value = getattr(settings, field.name)
        if type(value).__module__ == "numpy" and hasattr(value, "item") and getattr(value, "ndim", None) == 0:
            object.__setattr__(settings, field.name, value.item())


def check_flag(name: str, value: object) -> None:
    """A :class:`SettingUsageError` naming setting ``name`` unless ``value`` is True or False (a string "no" is
    truthy)."""
    if not isinstance(value, bool):
        raise SettingUsageError(f"{{{name}}} must be True or False, not {value!r}")


class Interrupted(BaseException):
    """SIGINT or SIGTERM arrived: unwinds like KeyboardInterrupt (temporary files are removed on the way out),
    past the CLI framework, to exit with 128 + the signal's number."""

    def __init__(self, signal_number: int) -> None:
        super().__init__(signal_number)
        self.status = 128 + signal_number
