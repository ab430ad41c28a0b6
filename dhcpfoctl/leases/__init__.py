"""Reading and writing ISC dhcpd lease files (see README "Lease files").

The readers and the writer are imported on first use (PEP 562), so that ``--version`` can
say which lease reader is active without paying for importing it.
"""

from __future__ import annotations

import functools
import importlib
import os
from types import ModuleType
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from dhcpfoctl.leases.reader import (
        ResumeState,
        read_leases,
        read_leases_incremental,
    )
    from dhcpfoctl.leases.v6 import read_leases6
    from dhcpfoctl.leases.writer import write_leases

__all__ = [
    "ResumeState",
    "active_reader",
    "compiled_scanner",
    "read_leases",
    "read_leases6",
    "read_leases_incremental",
    "write_leases",
]

_LAZY: Final = {
    "ResumeState": "reader",
    "read_leases": "reader",
    "read_leases_incremental": "reader",
    "read_leases6": "v6",
    "write_leases": "writer",
}
#: Set to anything but "" or "0": read with the pure-Python path where the compiled scanner
#: is built too (the fallback, and the oracle of tests/test_scanner.py).
PURE_PYTHON_ENV: Final = "DHCPFOCTL_PURE_PYTHON"


def __getattr__(name: str) -> object:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


@functools.cache
def _built_scanner() -> ModuleType | None:
    try:
        return importlib.import_module(f"{__name__}._scan")
    except ImportError:  # installed without a compiler: the pure-Python reader
        return None


def compiled_scanner() -> ModuleType | None:
    """The compiled lease scanner (``_scan.c``), or None: not built, or switched off."""
    if os.environ.get(PURE_PYTHON_ENV, "") not in ("", "0"):
        return None
    return _built_scanner()


def active_reader() -> str:
    """Which path reads lease files in this process, in words (``--version`` says it)."""
    if os.environ.get(PURE_PYTHON_ENV, "") not in ("", "0"):
        return f"pure Python ({PURE_PYTHON_ENV} is set)"
    if _built_scanner() is None:
        return "pure Python (the compiled scanner is not built)"
    return "compiled scanner"
