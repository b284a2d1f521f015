"""User-facing errors: one line, no traceback."""


class BdxError(Exception):
    """An error caused by the input or the environment, reported as a single line."""


class UsageError(BdxError):
    """Bad command-line usage (exit status 2)."""
