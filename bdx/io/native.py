"""What native image libraries print: caught, so that bdx alone speaks on stdout and stderr.

libjpeg, libpng, libwebp and OpenEXR write warnings straight to the process's file
descriptors 1 and 2, past Python. :func:`captured_native_output` points both at a
temporary file around one native call and hands back what was written, so a caller can
turn a meaningful warning into bdx's own error (libjpeg's "Corrupt JPEG data" on a cut
file) and drop the rest; ``--json`` output on stdout stays valid JSON.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO

_LOCK = threading.Lock()  # the descriptors are process-wide: one capture at a time


@dataclass
class NativeOutput:
    """The text native code wrote during a :func:`captured_native_output` block (filled in on exit)."""

    text: str = ""


def _sink() -> IO[bytes]:
    """A temporary file for the captured text, or the null device where no temporary file can be made (the text is
    then lost; the work goes on)."""
    try:
        return tempfile.TemporaryFile()
    except OSError:
        return open(os.devnull, "w+b")


@contextlib.contextmanager
def captured_native_output() -> Iterator[NativeOutput]:
    """Capture file descriptors 1 and 2 for the duration of the block."""
    output = NativeOutput()
    with _LOCK, _sink() as sink:
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                stream.flush()
        saved = []
        try:
            for fd in (1, 2):
                saved.append((fd, os.dup(fd)))
                os.dup2(sink.fileno(), fd)
        except OSError:  # no such descriptor (embedded interpreters): capture nothing
            for fd, copy in saved:
                os.dup2(copy, fd)
                os.close(copy)
            yield output
            return
        try:
            yield output
        finally:
            for fd, copy in saved:
                os.dup2(copy, fd)
                os.close(copy)
            sink.seek(0)
            output.text = sink.read().decode("utf-8", "replace")
