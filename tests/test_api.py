"""The public API: ``import bdx`` stays cheap, every exported name resolves, and the docstring examples run."""

from __future__ import annotations

import doctest
import importlib
import pkgutil
import subprocess
import sys

import pytest

import bdx


def test_import_bdx_does_not_load_torch():
    probe = "import sys, bdx; print('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout.strip() == "False"


def test_every_exported_name_resolves_to_its_module():
    for name in bdx.__all__:
        assert getattr(bdx, name) is not None
    assert set(bdx._LAZY) <= set(bdx.__all__)
    with pytest.raises(AttributeError):
        bdx.no_such_name  # noqa: B018


def test_the_three_tasks_share_one_call_shape():
    import inspect

    for function in (bdx.upscale_depth, bdx.enhance_lowlight, bdx.ldr_to_hdr):
        parameters = list(inspect.signature(function).parameters.values())
        assert [p.name for p in parameters[:3]] == ["image", "model", "settings"]
        assert parameters[1].default is None
        assert {p.name for p in parameters[3:]} == {"device", "progress"}


MODULES = sorted(info.name for info in pkgutil.walk_packages(bdx.__path__, "bdx.") if not info.name.startswith(("bdx.cli", "bdx.__main__")))


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_run(name):
    module = importlib.import_module(name)
    failed, _ = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert failed == 0
