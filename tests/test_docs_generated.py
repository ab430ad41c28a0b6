"""The completions and the man page are generated from the CLI; fail when they are stale."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))

import gen_docs  # noqa: E402


def test_generated_files_are_current() -> None:
    stale = [
        str(path.relative_to(ROOT))
        for path, text in gen_docs.generated_files().items()
        if not path.exists() or path.read_text() != text
    ]
    assert not stale, f"stale generated files {stale}; run: python tools/gen_docs.py"


def test_every_command_is_documented_everywhere() -> None:
    _, commands = gen_docs.command_specs()
    files = {path.name: text for path, text in gen_docs.generated_files().items()}
    for command in commands:
        assert f".SS {command.name}" in files["dhcpfoctl.1"]
        assert f"        {command.name})" in files["dhcpfoctl.bash"]
        assert f"'{command.name}:" in files["_dhcpfoctl"]
        assert f"-a {command.name} " in files["dhcpfoctl.fish"]
        for option in command.options:
            for name in option.names:
                assert name in files["dhcpfoctl.bash"]


def test_bash_script_is_valid_and_completes_commands() -> None:
    bash = shutil.which("bash")
    if bash is None:
        pytest.skip("bash not installed")
    script = ROOT / "completions" / "dhcpfoctl.bash"
    probe = (
        f"source {script}; COMP_WORDS=(dhcpfoctl le); COMP_CWORD=1; _dhcpfoctl;"
        ' printf "%s\\n" "${COMPREPLY[@]}"'
    )
    result = subprocess.run([bash, "-c", probe], capture_output=True, text=True, check=True)
    assert "leases" in result.stdout.split()


def test_man_page_renders_without_warnings() -> None:
    groff = shutil.which("groff")
    if groff is None:
        pytest.skip("groff not installed")
    page = ROOT / "man" / "dhcpfoctl.1"
    result = subprocess.run(
        [groff, "-man", "-Tutf8", "-ww", "-P-bcou", str(page)],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "EXIT STATUS" in result.stdout
    assert result.stderr == "", result.stderr
