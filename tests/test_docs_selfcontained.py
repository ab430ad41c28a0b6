"""The repository documents itself: no citation may point outside the clone.

Code, tests and README cite the protocol notes as ``docs/<name>.md §N``. These tests fail when
a tracked file refers to material that a person who clones the repository does not have, when
a cited ``docs/`` page does not exist, or when a cited section has no heading of that number.
"""

from __future__ import annotations

import re
import subprocess
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
#: This file, whose examples of broken citations must not count as citations.
SELF = Path(__file__).resolve().relative_to(ROOT).as_posix()
DOCS = ROOT / "docs"

# Spelled in pieces so that this file does not match its own patterns.
FORBIDDEN = ("../" + "shared" + "/", "shared" + "/" + "reference")

_SECTION = r"§\d+(?:\.\d+)*"
_SECTIONS = rf"(?P<sections>{_SECTION}(?:(?:\s*,\s*|\s+and\s+|\s+or\s+){_SECTION})*)"
#: ``docs/<name>.md`` optionally followed by sections, as in ``docs/<name>.md §4, §8``.
_DOCS_CITATION = re.compile(rf"(?<![\w/.-])docs/(?P<name>[\w.-]+\.md)(?:\s*{_SECTIONS})?")
#: Inside docs/: ``name.md §N`` or ``[name.md](name.md) §N``, or a bare ``§N`` (same page).
_LOCAL_CITATION = re.compile(rf"(?:(?<![\w/.-])(?P<name>[\w-]+\.md)\)?\s*)?{_SECTIONS}")
_HEADING = re.compile(r"^#{1,6}\s+(?P<title>.+)$", re.MULTILINE)


def _tracked_text_files() -> dict[str, str]:
    try:
        listing = subprocess.run(
            ["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("not a git checkout")
    texts = {}
    for name in listing.decode().split("\0"):
        path = ROOT / name
        if not name or not path.is_file():
            continue
        data = path.read_bytes()
        if b"\0" in data[:8192]:
            continue  # binary (pcap and the like)
        try:
            texts[name] = data.decode("utf-8")
        except UnicodeDecodeError:
            continue
    return texts


@cache
def _headings(doc: str) -> tuple[str, ...]:
    return tuple(m["title"].strip() for m in _HEADING.finditer((DOCS / doc).read_text()))


def _has_section(doc: str, number: str) -> bool:
    pattern = re.compile(re.escape(number) + r"\.?(?:\s|$)")
    return any(pattern.match(title) for title in _headings(doc))


def _check(where: str, doc: str, sections: str | None, problems: list[str]) -> None:
    if not (DOCS / doc).is_file():
        problems.append(f"{where}: cites docs/{doc}, which does not exist")
        return
    for number in re.findall(r"§(\d+(?:\.\d+)*)", sections or ""):
        if not _has_section(doc, number):
            problems.append(f"{where}: cites docs/{doc} §{number}, which has no such heading")


def _line(text: str, offset: int) -> int:
    return text.count("\n", 0, offset) + 1


def test_no_tracked_file_outside_docs_points_at_material_outside_the_clone() -> None:
    offenders = [
        f"{name}:{number}: {line.strip()}"
        for name, text in _tracked_text_files().items()
        if not name.startswith("docs/")
        for number, line in enumerate(text.splitlines(), 1)
        if any(needle in line for needle in FORBIDDEN)
    ]
    assert not offenders, "references outside the repository:\n" + "\n".join(offenders)


def test_cited_docs_and_sections_exist() -> None:
    problems: list[str] = []
    for name, text in _tracked_text_files().items():
        if name == SELF:
            continue
        for match in _DOCS_CITATION.finditer(text):
            where = f"{name}:{_line(text, match.start())}"
            _check(where, match["name"], match["sections"], problems)
    assert not problems, "\n".join(problems)


def test_cross_references_inside_docs_resolve() -> None:
    problems: list[str] = []
    for page in sorted(DOCS.glob("*.md")):
        text = page.read_text()
        for match in _LOCAL_CITATION.finditer(text):
            where = f"docs/{page.name}:{_line(text, match.start())}"
            _check(where, match["name"] or page.name, match["sections"], problems)
        for target in re.findall(r"\]\(([^)#:]+\.md)(?:#[^)]*)?\)", text):
            if not (page.parent / target).is_file():
                problems.append(f"docs/{page.name}: link to {target}, which does not exist")
    assert not problems, "\n".join(problems)


def test_checks_catch_what_they_should() -> None:
    """The patterns themselves: a wrong section is reported, a list of sections is read."""
    problems: list[str] = []
    match = _DOCS_CITATION.search("see docs/pool-balance.md §1, §3 and §99 for the maths")
    assert match is not None and match["name"] == "pool-balance.md"
    _check("example", match["name"], match["sections"], problems)
    assert problems == ["example: cites docs/pool-balance.md §99, which has no such heading"]
    problems.clear()
    _check("example", "no-such-page.md", None, problems)
    assert problems == ["example: cites docs/no-such-page.md, which does not exist"]
    assert _has_section("lease-file.md", "7.4") and not _has_section("lease-file.md", "7.40")
    assert _has_section("pool-balance.md", "5") and not _has_section("pool-balance.md", "5.9")
