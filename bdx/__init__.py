"""bdx: restore what 8-bit imaging throws away.

Importing :mod:`bdx` is cheap (no torch); heavy modules load on first use.
"""

__version__ = "0.1.0"

from bdx.errors import BdxError

__all__ = ["BdxError", "__version__"]
