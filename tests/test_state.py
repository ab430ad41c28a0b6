"""dhcpfoctl.state: the remembered document is trusted only when it can be, and saving it is
atomic and safe against a concurrent run."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from dhcpfoctl.state import MAX_BYTES, StateStore, state_dir

NOW = 1_800_000_000.0


def test_state_dir_follows_xdg_and_falls_back_to_home() -> None:
    assert state_dir({"XDG_STATE_HOME": "/srv/st", "HOME": "/h"}) == Path("/srv/st/dhcpfoctl")
    assert state_dir({"HOME": "/h"}) == Path("/h/.local/state/dhcpfoctl")
    # A relative XDG value is invalid (XDG base directory spec) and ignored.
    assert state_dir({"XDG_STATE_HOME": "rel", "HOME": "/h"}) == Path("/h/.local/state/dhcpfoctl")


def test_round_trip_carries_saved_at_and_version(tmp_path: Path) -> None:
    store = StateStore("audit", "/var/lib/dhcp/dhcpd.leases", directory=tmp_path / "d")
    assert store.load(NOW, 3600) is None
    assert not (tmp_path / "d").exists(), "a load must not create the directory"
    store.save({"rates": [1, 2, 3]}, NOW)
    assert store.save_error is None
    doc = store.load(NOW + 10, 3600)
    assert doc is not None
    assert doc["rates"] == [1, 2, 3]
    assert doc["saved_at"] == NOW
    assert doc["version"] == 1
    assert stat.S_IMODE((tmp_path / "d").stat().st_mode) == 0o700
    # Only the document and its lock: no temporary file left behind.
    assert sorted(p.suffix for p in (tmp_path / "d").iterdir()) == [".json", ".lock"]


def test_keys_and_names_do_not_share_documents(tmp_path: Path) -> None:
    a = StateStore("audit", "/a.leases", directory=tmp_path)
    b = StateStore("audit", "/b.leases", directory=tmp_path)
    s = StateStore("status", "/a.leases", directory=tmp_path)
    a.save({"who": "a"}, NOW)
    assert b.load(NOW, 60) is None
    assert s.load(NOW, 60) is None
    b.save({"who": "b"}, NOW)
    assert a.load(NOW, 60)["who"] == "a"  # type: ignore[index]


@pytest.mark.parametrize(
    ("age", "trusted"),
    [(0, True), (3600, True), (3600.5, False), (-60, True), (-61, False)],
)
def test_stale_and_future_documents_are_not_trusted(
    tmp_path: Path, age: float, trusted: bool
) -> None:
    store = StateStore("audit", "k", directory=tmp_path)
    store.save({"x": 1}, NOW - age)
    assert (store.load(NOW, 3600) is not None) is trusted


@pytest.mark.parametrize(
    "content",
    [
        b"",
        b"{not json",
        b"[1, 2]",
        b'{"saved_at": 1800000000, "version": 2, "key": "k"}',
        b'{"saved_at": 1800000000, "version": 1, "key": "other"}',
        b'{"saved_at": "1800000000", "version": 1, "key": "k"}',
        b'{"saved_at": true, "version": 1, "key": "k"}',
        b'{"saved_at": NaN, "version": 1, "key": "k"}',
        b'{"saved_at": 1800000000, "version": 1, "key": "k", "x": Infinity}',
        b"\xff\xfe garbage",
        b"[" * 100_000,
    ],
)
def test_corrupt_or_foreign_content_is_none_never_an_exception(
    tmp_path: Path, content: bytes
) -> None:
    store = StateStore("audit", "k", directory=tmp_path)
    store.path.write_bytes(content)
    assert store.load(NOW, 3600) is None


def test_oversized_document_is_not_read(tmp_path: Path) -> None:
    store = StateStore("audit", "k", directory=tmp_path)
    store.save({"pad": "x" * (MAX_BYTES + 10)}, NOW)
    assert store.load(NOW, 3600) is None


def test_other_schema_version_starts_over(tmp_path: Path) -> None:
    StateStore("audit", "k", directory=tmp_path, version=1).save({"x": 1}, NOW)
    assert StateStore("audit", "k", directory=tmp_path, version=2).load(NOW, 60) is None


def test_unreadable_path_is_none(tmp_path: Path) -> None:
    store = StateStore("audit", "k", directory=tmp_path)
    store.path.mkdir()  # a directory where the document should be
    assert store.load(NOW, 3600) is None


def test_a_failed_save_is_reported_not_raised(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    store = StateStore("audit", "k", directory=blocker / "state")
    store.save({"x": 1}, NOW)
    assert store.save_error is not None
    assert str(blocker) in store.save_error
    # The next good save clears it.
    store.directory = tmp_path / "ok"
    store.path = store.directory / store.path.name
    store.lock_path = store.directory / store.lock_path.name
    store.save({"x": 1}, NOW)
    assert store.save_error is None


def test_non_finite_numbers_are_refused_at_save(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        StateStore("audit", "k", directory=tmp_path).save({"x": float("nan")}, NOW)


def test_bad_name_is_a_programming_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        StateStore("../etc", "k", directory=tmp_path)


_WRITER = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from dhcpfoctl.state import StateStore
    store = StateStore("audit", "shared", directory=Path(sys.argv[1]))
    tag = sys.argv[2]
    # Big enough that one write takes many syscalls: a torn file would show.
    body = [tag] * 40000
    for i in range(int(sys.argv[3])):
        store.save({"tag": tag, "i": i, "body": body}, 1800000000.0)
        assert store.save_error is None, store.save_error
    """
)


def test_two_processes_saving_concurrently_leave_one_of_the_two(tmp_path: Path) -> None:
    rounds = 25
    procs = [
        subprocess.Popen([sys.executable, "-c", _WRITER, str(tmp_path), tag, str(rounds)])
        for tag in ("A", "B")
    ]
    store = StateStore("audit", "shared", directory=tmp_path)
    try:
        # Read while both write (bounded: the writers finish in a few seconds).
        while any(p.poll() is None for p in procs):
            doc = store.load(NOW, 3600)
            if doc is not None:
                assert doc["body"] == [doc["tag"]] * 40000
    finally:
        for p in procs:
            p.wait(timeout=60)
    assert [p.returncode for p in procs] == [0, 0]
    final = json.loads(store.path.read_bytes())
    assert final["tag"] in ("A", "B")
    assert final["body"] == [final["tag"]] * 40000
    assert final["i"] == rounds - 1
    assert store.load(NOW, 3600) is not None
    leftovers = [p.name for p in tmp_path.iterdir() if p.name.startswith(".")]
    assert leftovers == []
    assert os.path.exists(store.lock_path)
