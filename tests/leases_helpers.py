"""Shared helpers for the lease-file tests: the golden document of a LeaseDB."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from dhcpfoctl.cli.leases import failover_to_json, lease_to_json
from dhcpfoctl.model import LeaseDB

GOLDEN = Path(__file__).parent / "golden" / "leases"
REAL = Path(__file__).parent / "data" / "real-dhcpd-4.4.3"
#: Set to 1 to rewrite the golden files from the current reader (then review the diff).
REGENERATE = os.environ.get("DHCPFOCTL_REGENERATE_GOLDEN") == "1"


def db_document(db: LeaseDB, *, name: str) -> dict[str, Any]:
    """Everything a LeaseDB holds, as stable JSON (warnings with the file's short name)."""
    return {
        "records": db.stats.records,
        "superseded": db.stats.superseded,
        "bytes": db.stats.bytes_read,
        "server_duid": db.server_duid.hex(":") if db.server_duid is not None else None,
        "byte_order": db.byte_order,
        "failover": [failover_to_json(record) for record in db.failover.values()],
        "hosts": [
            {"name": h.name, "deleted": h.deleted, "body": h.body} for h in db.hosts.values()
        ],
        "others": [
            {"kind": o.kind, "header": o.header, "body": o.body} for o in db.others.values()
        ],
        "warnings": [f"{name}:{w.line}: {w.message}" for w in db.stats.warnings],
        "leases": [lease_to_json(lease) for lease in db.leases],
    }


def check_golden(document: dict[str, Any], golden_name: str) -> None:
    path = GOLDEN / golden_name
    text = json.dumps(document, indent=2, sort_keys=True) + "\n"
    if REGENERATE:
        path.write_text(text)
    assert path.exists(), f"golden file {path} missing; run with DHCPFOCTL_REGENERATE_GOLDEN=1"
    assert json.loads(text) == json.loads(path.read_text())
