"""The bdx command's memory setting (bdx.memory)."""

import subprocess
import sys

import pytest

from bdx.memory import retain_freed_memory

# a 48 MiB block (above glibc's largest automatic mmap threshold, 32 MiB) and whether malloc mapped it on its own
PROBE = """
import ctypes, sys
import numpy as np
from bdx.memory import retain_freed_memory
class Info(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in
                ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")]
libc = ctypes.CDLL("libc.so.6")
libc.mallinfo2.restype = Info
if sys.argv[1] == "retained":
    assert retain_freed_memory()
block = np.ones(48 << 20, np.uint8)
print(libc.mallinfo2().hblkhd >= 48 << 20)
"""


def _mapped_on_its_own(allocator: str) -> bool:
    done = subprocess.run([sys.executable, "-c", PROBE, allocator], capture_output=True, text=True)
    if done.returncode and "mallinfo2" in done.stderr:
        pytest.skip("not glibc 2.33 or later")
    assert done.returncode == 0, done.stderr
    return done.stdout.strip() == "True"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc")
def test_retained_freed_memory_serves_large_blocks_from_the_heap():
    assert _mapped_on_its_own("system")  # by default each large block is a mapping of its own, unmapped when freed
    assert not _mapped_on_its_own("retained")


def test_elsewhere_nothing_changes(monkeypatch):
    monkeypatch.setattr(sys, "platform", "darwin")
    assert retain_freed_memory() is False
