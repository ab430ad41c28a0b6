"""The protocol cores are sans-IO: no socket, clock, thread or sleep outside their glue.

Failover: everything but the driver. Lab: the DHCP codec, the client machine, the lease
engine and the OMAPI objects (the server, relay, population and cluster are the glue).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import dhcpfoctl.failover
import dhcpfoctl.lab
import dhcpfoctl.watch

FAILOVER = Path(dhcpfoctl.failover.__file__).parent
LAB = Path(dhcpfoctl.lab.__file__).parent
WATCH = Path(dhcpfoctl.watch.__file__).parent
CORE_MODULES = [
    *(FAILOVER / f"{name}.py" for name in ("wire", "states", "bindings", "connection")),
    *(LAB / f"{name}.py" for name in ("dhcp", "client", "engine", "objects")),
    *(WATCH / f"{name}.py" for name in ("model", "policy")),
]
IO_MODULES = {"socket", "select", "selectors", "threading", "asyncio", "time", "datetime"}


@pytest.mark.parametrize("path", CORE_MODULES, ids=lambda p: f"{p.parent.name}.{p.stem}")
def test_core_module_does_no_io(path: Path) -> None:
    module = path.stem
    tree = ast.parse(path.read_text())
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
