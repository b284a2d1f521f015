"""The ``bdx`` console script: the CLI, with Ctrl-C during its start-up reported as one line."""

from __future__ import annotations

import sys


def main() -> None:
    """Run :func:`bdx.cli.main`; an interrupt while the CLI's modules load (torch, typer) exits 130 without a
    traceback, as one later does."""
    try:
        from bdx.cli import main as run_cli
    except KeyboardInterrupt:
        sys.stderr.write("bdx: interrupted\n")
        raise SystemExit(130) from None
    run_cli()
