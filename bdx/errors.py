"""User-facing errors: one line, no traceback."""


class BdxError(Exception):
    """An error caused by the input or the environment, reported as a single line."""


class UsageError(BdxError):
    """Bad command-line usage (exit status 2)."""


class Interrupted(BaseException):
    """SIGINT or SIGTERM arrived: unwinds like KeyboardInterrupt (temporary files are removed on the way out),
    past the CLI framework, to exit with 128 + the signal's number."""

    def __init__(self, signal_number: int) -> None:
        super().__init__(signal_number)
        self.status = 128 + signal_number
