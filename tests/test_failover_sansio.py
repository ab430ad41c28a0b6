"""The failover protocol core is sans-IO: no socket, clock, thread or sleep outside the driver."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import dhcpfoctl.failover

CORE = Path(dhcpfoctl.failover.__file__).parent
IO_MODULES = {"socket", "select", "selectors", "threading", "asyncio", "time", "datetime"}


@pytest.mark.parametrize("module", ["wire", "states", "bindings", "connection"])
def test_core_module_does_no_io(module: str) -> None:
    tree = ast.parse((CORE / f"{module}.py").read_text())
    imported = {
        alias.name.split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, ast.Import)
        for alias in node.names
    } | {
        (node.module or "").split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom)
    }
    assert not imported & IO_MODULES, f"{module}.py imports {imported & IO_MODULES}"
    calls = {
        ast.unparse(node.func)
        for node in ast.walk(tree)
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name | ast.Attribute)
    }
    assert not {c for c in calls if c in ("open", "print") or c.endswith(".sleep")}
