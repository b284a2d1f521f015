"""The ``bdx`` command line: one Typer app over the core library.

Command modules import heavy dependencies (torch, OpenCV) inside their
functions, so ``bdx --help`` and ``bdx --version`` answer without loading torch.
"""

from __future__ import annotations

import sys
from typing import Any

import typer

from bdx import __version__


def _help_option_without_a_value() -> None:
    """Typer shows ``<bool>`` after ``--help``, as if it took a value (bdx's own flags set a blank metavar for the
    same reason); the help option typer makes gets a blank one too. Typer versions without the hook are left as
    they are."""
    try:
        from typer._click.core import Command
    except ImportError:
        return
    make = Command.get_help_option

    def get_help_option(self, ctx):
        option = make(self, ctx)
        if option is not None and getattr(option, "metavar", " ") is None:
            option.metavar = " "
        return option

    Command.get_help_option = get_help_option  # type: ignore[method-assign]


_help_option_without_a_value()

app = typer.Typer(
    name="bdx",
    help="Restore what 8-bit imaging throws away: dequantize to 16 bits, brighten dark photos, reconstruct HDR, train, evaluate.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
    epilog="Exit status: 0 done, 1 some inputs failed (the rest were processed), 2 bad usage, 130 interrupted, 143 terminated.",
)
eval_app = typer.Typer(help="Evaluate results against references (JSON plus a readable table).", no_args_is_help=True)
app.add_typer(eval_app, name="eval")


def _version(value: bool) -> None:
    if value:
        typer.echo(f"bdx {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version and exit.", metavar=" "),
) -> None:
    """bdx: bit-depth expansion, low-light and HDR restoration."""
    import os

    if os.environ.get("BDX_MAX_PIXELS", "").strip():  # a bad value is the command line's fault: say so once, status 2
        from bdx.errors import UsageError
        from bdx.io.read import max_pixels

        try:
            max_pixels()
        except UsageError as exc:
            sys.stderr.write(f"bdx: error: {exc}\n")
            raise typer.Exit(2) from None


from bdx.cli import evaluate, hdr, info, lowlight, merge, quantize, train, upscale  # noqa: E402,F401  (registers commands)


def main() -> None:
    """Console entry point."""
    import logging
    import os
    import signal
    import warnings

    from bdx.errors import Interrupted

    def interrupted(signal_number: int, _frame) -> None:
        raise Interrupted(signal_number)

    for number in (signal.SIGINT, signal.SIGTERM):
        signal.signal(number, interrupted)
    # bdx says what matters itself (bdx: warning: / bdx: error:); torch's and numpy's warnings, and libraries'
    # log records (tifffile logs odd tags), would add lines
    warnings.simplefilter("ignore")
    logging.getLogger().addHandler(logging.NullHandler())
    try:
        status = app(prog_name="bdx", standalone_mode=False)
    except _USAGE_ERROR as exc:  # the command line itself: one line and status 2, as for bdx's own usage errors
        usage: Any = exc
        if type(exc).__name__ == "NoArgsIsHelpError":
            sys.exit(usage.exit_code)  # the help was shown
        where = usage.ctx.command_path if usage.ctx is not None else "bdx"
        sys.stderr.write(f"bdx: error: {usage.format_message().rstrip('.')} (see {where} -h)\n")
        sys.exit(usage.exit_code)
    except typer.Abort:
        sys.stderr.write("bdx: interrupted\n")
        sys.exit(130)
    except (KeyboardInterrupt, Interrupted) as exc:
        sys.stderr.write("\nbdx: interrupted\n" if sys.stderr.isatty() else "bdx: interrupted\n")
        sys.exit(getattr(exc, "status", 130))
    except Exception as exc:  # a bug, not bad input: one line unless BDX_DEBUG asks for the traceback
        if os.environ.get("BDX_DEBUG"):
            raise
        from bdx.cli.common import environment_error, one_line

        reason = environment_error(exc)
        if reason is not None:
            sys.stderr.write(one_line(f"bdx: error: {reason}") + "\n")
            sys.exit(1)
        message = str(exc).splitlines()[0][:200] if str(exc) else ""
        sys.stderr.write(f"bdx: internal error: {type(exc).__name__}: {message} (BDX_DEBUG=1 shows the traceback)\n")
        sys.exit(1)
    sys.exit(status if isinstance(status, int) else 0)


# Typer's command-line parsing errors (its vendored click's UsageError, the base of typer.BadParameter)
_USAGE_ERROR: type[Exception] = next(kind for kind in typer.BadParameter.__mro__ if kind.__name__ == "UsageError")
