"""``dhcpfoctl lab demo`` end to end on loopback: real lab servers, the real commands.

Each story runs in a subprocess exactly as the README's first command does (no root, no
external server); its JSON says which commands ran with which exit status, and when each
milestone was reached. The stories wait by bounded polling, so only what must hold is
asserted: the order of the milestones and each command's outcome, never a duration.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from dhcpfoctl.errors import ExitStatus
from dhcpfoctl.lab.cluster import Lab
from tests.test_lab_cluster import free_base_port

#: A story takes about 20 s here; the bound only catches a hang.
STORY_TIMEOUT = 240


def _demo(tmp_path: Path, *args: str) -> dict[str, object]:
    directory = tmp_path / "demo"
    try:
        done = subprocess.run(
            [sys.executable, "-m", "dhcpfoctl", "lab", "demo", "--yes", "--json",
             "--dir", str(directory), "--base-port", str(free_base_port()), *args],
            capture_output=True, text=True, timeout=STORY_TIMEOUT, check=False,
        )  # fmt: skip
    finally:
        Lab(directory).down(timeout=5)  # a demo that failed half-way leaves nothing running
    assert done.returncode == 0, done.stderr
    assert not Lab(directory).running()
    return json.loads(done.stdout)


def _texts(result: dict[str, object]) -> list[str]:
    return [m["text"] for m in result["milestones"]]  # type: ignore[index, union-attr]


def test_outage_story_refuses_then_accepts_partner_down_and_ends_normal(tmp_path: Path) -> None:
    result = _demo(tmp_path)
    assert result["story"] == "outage"
    texts = _texts(result)
    order = [
        "both servers normal",
        "clients bound",
        "secondary hung: primary communications-interrupted",
        "partner-down refused",
        "secondary killed",
        "primary in partner-down",
        "MCLT passed",
        "secondary recovered: both normal",
    ]
    positions = [next(i for i, t in enumerate(texts) if want in t) for want in order]
    assert positions == sorted(positions)
    runs = [(c["argv"][1], c["exit"]) for c in result["commands"]]  # type: ignore[index, union-attr]
    assert ("partner-down", ExitStatus.REFUSED) in runs
    assert ("partner-down", ExitStatus.OK) in runs
    assert runs.index(("partner-down", ExitStatus.REFUSED)) < runs.index(
        ("partner-down", ExitStatus.OK)
    )
    final_status = [c for c in result["commands"] if c["argv"][1] == "status"][-1]  # type: ignore[index, union-attr]
    assert final_status["exit"] == ExitStatus.OK
    elapsed = [m["elapsed"] for m in result["milestones"]]  # type: ignore[index, union-attr]
    assert elapsed == sorted(elapsed)


def test_partition_story_refuses_partner_down_and_heals(tmp_path: Path) -> None:
    result = _demo(tmp_path, "--partition")
    texts = _texts(result)
    assert any("link silent: both communications-interrupted" in t for t in texts)
    assert texts[-1] == "link healed: both normal"
    runs = [(c["argv"][1], c["exit"]) for c in result["commands"]]  # type: ignore[index, union-attr]
    assert ("partner-down", ExitStatus.REFUSED) in runs
    assert ("partner-down", ExitStatus.OK) not in runs
