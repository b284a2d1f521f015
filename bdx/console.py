"""The ``bdx`` console script: the CLI, with Ctrl-C during its start-up reported as one line."""

from __future__ import annotations

import os
import sys

CLOSED_STREAMS: set[str] = set()  # the standard streams the shell closed, now the null device


def open_closed_streams() -> None:
    """Give a standard stream the shell closed (``2>&-``; Python then holds None for it) the null device: what bdx
    would say there is lost, the work is not, and no file bdx opens takes the stream's descriptor. The stream's
    name goes into :data:`CLOSED_STREAMS`, so an image asked for on a closed stdout is refused, not lost."""
    for name in ("stdin", "stdout", "stderr"):
        if getattr(sys, name) is None:
            setattr(sys, name, open(os.devnull, "r" if name == "stdin" else "w", encoding="utf-8"))
            CLOSED_STREAMS.add(name)


def stdout_is_closed() -> bool:
    """Whether the shell closed stdout (``>&-``): bdx's stdout is then the null device."""
    return "stdout" in CLOSED_STREAMS


def main() -> None:
    """Run :func:`bdx.cli.main`; an interrupt while the CLI's modules load (torch, typer) exits 130 without a
    traceback, as one later does."""
    open_closed_streams()
    from bdx.memory import retain_freed_memory

    retain_freed_memory()
    try:
        from bdx.cli import main as run_cli
    except KeyboardInterrupt:
        sys.stderr.write("bdx: interrupted\n")
        raise SystemExit(130) from None
    run_cli()
