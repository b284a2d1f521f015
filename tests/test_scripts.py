"""The benchmark and tool scripts the docs cite compile (they are run by hand, so nothing else would notice)."""

from __future__ import annotations

import py_compile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPTS = sorted(p for folder in ("benchmarks", "tools") for p in (ROOT / folder).glob("*.py"))


@pytest.mark.skipif(not SCRIPTS, reason="no benchmarks/ or tools/ beside the tests (an installed package)")
@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_script_compiles(script, tmp_path):
    """tools/self_check_study.py, cited by docs/methods.md, was a SyntaxError (a name used before its global)."""
    py_compile.compile(str(script), cfile=str(tmp_path / "x.pyc"), doraise=True)
