"""The packages are found, not listed: every ``bdx`` package, plus the top-level ``weights/`` folder installed as
``bdx.weights`` (``package-dir`` in ``pyproject.toml``). Everything else lives in ``pyproject.toml``."""

from setuptools import find_packages, setup

setup(packages=find_packages(include=["bdx", "bdx.*"]) + ["bdx.weights"])
