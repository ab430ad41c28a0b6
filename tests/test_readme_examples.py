"""The README's examples, checked so that it cannot drift from the program.

Every fenced block of README.md that runs ``dhcpfoctl`` carries a marker comment on the
line(s) before it:

* ``<!-- example -->``: a console block; each ``$ `` line is run with bash (the venv's
  ``dhcpfoctl`` first on PATH, 80 columns, ``TZ=UTC``, no colour, no profile) from the
  checkout, and what it prints is compared with the lines that follow it. Runs of spaces
  compare equal, blank lines are ignored, and ``...`` stands for any text (what depends on
  today's date).
* ``<!-- example: not run, REASON -->``: a block for a real server, a crontab, a monitor's
  configuration. It is not run (the reason is in the test's id, so ``pytest -v`` shows what
  was not run and why), but every ``dhcpfoctl`` command line in it is parsed as the program
  parses its command line: commands, options, choices and value types must all be valid.

A block that runs ``dhcpfoctl`` without a marker fails: skipping is always explicit.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import typer.main

from dhcpfoctl.cli.main import app

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
MARKER = re.compile(r"^\s*<!--\s*example(?::\s*(?P<not_run>not run)?,?\s*(?P<why>.*?))?\s*-->\s*$")
FENCE = re.compile(r"^(\s*)```(\w*)\s*$")
#: Words that may come before the program on a command line: cron's five fields and
#: user, environment assignments, a Nagios command_line.
PREFIX = re.compile(r"^(?:[\d*/,-]+|\w+=.*|root|sudo|exec|command_line)$")
SUBSTITUTION = re.compile(r"\$\(([^()]*)\)")
SHELL_OPERATORS = {"&&", "||", ";", "|", "&", "(", ")", ">", ">>", "<"}


@dataclass(frozen=True)
class Block:
    line: int  # 1-based line of the opening fence
    language: str
    text: str
    run: bool
    reason: str  # why it is not run ("" for a run block)
    marked: bool

    @property
    def id(self) -> str:
        if self.run:
            return f"L{self.line}-run"
        words = re.sub(r"[^a-z0-9]+", "-", self.reason.lower()).strip("-")[:40]
        return f"L{self.line}-not-run-{words}" if self.marked else f"L{self.line}-unmarked"


def readme_blocks() -> list[Block]:
    lines = README.read_text(encoding="utf-8").split("\n")
    blocks: list[Block] = []
    i = 0
    while i < len(lines):
        fence = FENCE.match(lines[i])
        if not fence:
            i += 1
            continue
        indent, language = fence.groups()
        end = i + 1
        while end < len(lines) and lines[end].strip() != "```":
            end += 1
        body = "\n".join(line[len(indent) :] for line in lines[i + 1 : end])
        markers = []
        j = i - 1
        while j >= 0 and lines[j].strip().startswith("<!--"):
            if m := MARKER.match(lines[j]):
                markers.append(m)
            j -= 1
        run = bool(markers) and not markers[0].group("not_run")
        reason = markers[0].group("why") if markers else ""
        blocks.append(Block(i + 1, language, body, run, reason, bool(markers)))
        i = end + 1
    return blocks


def invocations(block: Block) -> list[list[str]]:
    """The argument lists of every ``dhcpfoctl`` command line in ``block``."""
    text = block.text.replace("\\\n", " ")
    lines = text.split("\n")
    if block.language == "console":
        lines = [line[2:] for line in lines if line.startswith("$ ")]
    found: list[list[str]] = []
    for line in lines:
        if "dhcpfoctl" not in line:
            continue
        pending = [line]
        while pending:
            current = pending.pop()
            pending += SUBSTITUTION.findall(current)  # "$(dhcpfoctl lab env)"
            current = SUBSTITUTION.sub("X", current)
            lexer = shlex.shlex(current, posix=True, punctuation_chars=True)
            lexer.whitespace_split = True
            lexer.commenters = "#"
            try:
                tokens = list(lexer)
            except ValueError as exc:
                message = f"README.md:{block.line}: cannot split {current!r}: {exc}"
                raise AssertionError(message) from None
            segment: list[str] = []
            for token in [*tokens, ";"]:
                if token in SHELL_OPERATORS:
                    if args := _program_args(segment):
                        found.append(args)
                    segment = []
                else:
                    segment.append(token)
    return found


def _program_args(segment: list[str]) -> list[str] | None:
    for index, token in enumerate(segment):
        if token.rsplit("/", 1)[-1] == "dhcpfoctl":
            return segment[index + 1 :]
        if not PREFIX.match(token):
            return None
    return None


def parse_command_line(args: list[str]) -> None:
    """Parse ``args`` as ``dhcpfoctl`` would, down to the sub-command; invoke nothing."""
    root = typer.main.get_command(app)

    def descend(command: Any, name: str, argv: list[str], parent: Any) -> None:
        ctx = command.make_context(name, list(argv), parent=parent)
        if not hasattr(command, "resolve_command"):
            return
        rest = [*getattr(ctx, "_protected_args", []), *ctx.args]
        if rest:
            sub_name, sub, sub_argv = command.resolve_command(ctx, rest)
            descend(sub, sub_name, sub_argv, ctx)

    try:
        descend(root, "dhcpfoctl", args, None)
    except Exception as exc:
        if type(exc).__name__ == "Exit" and getattr(exc, "exit_code", 1) == 0:
            return  # --help, --version
        message = exc.format_message() if hasattr(exc, "format_message") else repr(exc)
        raise AssertionError(f"dhcpfoctl {shlex.join(args)}: {message}") from None


BLOCKS = readme_blocks()
WITH_COMMANDS = [block for block in BLOCKS if invocations(block)]


@pytest.mark.parametrize("block", WITH_COMMANDS, ids=[b.id for b in WITH_COMMANDS])
def test_command_lines_parse(block: Block) -> None:
    assert block.marked, (
        f"README.md:{block.line}: a block running dhcpfoctl needs a marker on the line"
        " before it: <!-- example --> (run and compared) or <!-- example: not run, WHY -->"
    )
    assert block.run or block.reason, f"README.md:{block.line}: say why it is not run"
    for args in invocations(block):
        parse_command_line(args)


RUN_BLOCKS = [block for block in BLOCKS if block.run]


def _program_dir() -> Path:
    """The directory of the installed ``dhcpfoctl`` beside this interpreter (the venv)."""
    directory = Path(sys.executable).parent
    if shutil.which("dhcpfoctl", path=str(directory)) is None:
        message = f"no dhcpfoctl beside {sys.executable}: pip install -e . into this venv"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return directory


def _normal(text: str) -> list[str]:
    return [" ".join(line.split()) for line in text.split("\n") if line.strip()]


def _matches(expected: str, actual: str) -> bool:
    pattern = ".*".join(re.escape(part) for part in expected.split("..."))
    return re.fullmatch(pattern, actual) is not None


def console_steps(block: Block) -> list[tuple[str, str]]:
    steps: list[tuple[str, str]] = []
    for line in block.text.split("\n"):
        if line.startswith("$ "):
            steps.append((line[2:], ""))
        elif steps:
            command, output = steps[-1]
            steps[-1] = (command, output + line + "\n")
    return steps


@pytest.mark.parametrize("block", RUN_BLOCKS, ids=[b.id for b in RUN_BLOCKS])
def test_example_output(block: Block) -> None:
    assert block.language == "console", f"README.md:{block.line}: run blocks are console blocks"
    steps = console_steps(block)
    assert steps, f"README.md:{block.line}: no `$ ` command in a run block"
    env = {
        "PATH": f"{_program_dir()}{os.pathsep}{os.environ.get('PATH', '/usr/bin:/bin')}",
        "HOME": os.environ.get("HOME", "/tmp"),
        "COLUMNS": "80",
        "TZ": "UTC",
        "NO_COLOR": "1",
        "LANG": "C.UTF-8",
        "DHCPFOCTL_CONFIG": str(ROOT / "no-such-profile.toml"),
    }
    for command, expected in steps:
        result = subprocess.run(
            ["bash", "-c", command], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
        )
        want, got = _normal(expected), _normal(result.stdout)
        mismatch = len(want) != len(got) or not all(map(_matches, want, got))
        assert not mismatch, (
            f"README.md:{block.line}: `{command}` printed (stderr: {result.stderr!r}):\n"
            + result.stdout
        )


def test_every_block_kind_is_present() -> None:
    """The conventions above are in use: run blocks and not-run blocks both exist."""
    assert len(RUN_BLOCKS) >= 4
    assert any(block.marked and not block.run for block in WITH_COMMANDS)


def test_links_stay_inside_the_repository() -> None:
    text = README.read_text(encoding="utf-8")
    anchors = {
        re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
        for heading in re.findall(r"^#+ (.*)$", text, re.M)
    }
    for target in re.findall(r"\]\(([^)]+)\)", text):
        if target.startswith("#"):
            assert target[1:] in anchors, f"README link to a missing section: {target}"
        else:
            assert not re.match(r"\w+://", target) and not target.startswith("/"), target
            assert (ROOT / target).exists(), f"README link to a missing file: {target}"


def test_man_page_examples_parse() -> None:
    """The man page's EXAMPLES (tools/gen_docs.py) are valid command lines too."""
    sys.path.insert(0, str(ROOT / "tools"))
    import gen_docs

    for _, command in gen_docs.EXAMPLES:
        parse_command_line(shlex.split(command))
    assert [status for status, _ in gen_docs.readme_exit_statuses()][:2] == ["0", "1"]


def test_documented_metrics_are_the_ones_written() -> None:
    """Every ``dhcpfoctl_*`` metric the README names is written for the bundled files (at a
    time with enough history), and every one written is named there (``dhcpfoctl_watch_*``
    belong to ``watch``)."""
    from typer.testing import CliRunner

    examples = ROOT / "dhcpfoctl" / "examples"
    result = CliRunner().invoke(
        app,
        ["audit", "-c", str(examples / "primary.conf"), "-l", str(examples / "primary.leases"),
         "--as-of", "2026-11-28T07:50Z", "--format", "prometheus"],
    )  # fmt: skip
    written = set(re.findall(r"^(dhcpfoctl_\w+)\{", result.stdout, re.M))
    documented = {
        name
        for name in re.findall(r"\b(dhcpfoctl_[a-z_]+[a-z])", README.read_text(encoding="utf-8"))
        if not name.startswith("dhcpfoctl_watch_")
    }
    assert written and written == documented


def test_toml_examples_load(tmp_path: Path) -> None:
    """The README's profiles and thresholds files are read as the program reads them (key
    files pointed at a real one, as they would exist on the operator's machine)."""
    from dhcpfoctl.checks.audit import resolve_thresholds
    from dhcpfoctl.profile import load_profiles

    key_file = tmp_path / "omapi.key"
    key_file.write_text(
        'key omapi-key { algorithm hmac-md5; secret "ZGhjcGZvY3RsLWxhYmtleQ=="; }\n'
    )
    key_file.chmod(0o600)
    tomls = [block for block in BLOCKS if block.language == "toml"]
    profiles = [block for block in tomls if "[profiles." in block.text]
    thresholds = [block for block in tomls if "warn_endurance" in block.text]
    assert profiles and thresholds
    for block in profiles:
        path = tmp_path / f"profile-{block.line}.toml"
        path.write_text(re.sub(r'key_file = "[^"]*"', f'key_file = "{key_file}"', block.text))
        path.chmod(0o600)
        loaded, default, _ = load_profiles(path)
        assert default in loaded, f"README.md:{block.line}"
        assert all(server.endpoint for profile in loaded.values() for server in profile.servers)
    for block in thresholds:
        path = tmp_path / f"thresholds-{block.line}.toml"
        path.write_text(block.text)
        loaded_thresholds = resolve_thresholds(str(path), {})
        assert loaded_thresholds.crit_endurance == 2 * 3600, f"README.md:{block.line}"
