"""The lease-file writer: round trips (hypothesis) and real dhcpd accepting its output."""

from __future__ import annotations

import gzip
import io
import shutil
import subprocess
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bench.generate import write_conf
from bench.generate import write_leases as generate_journal
from dhcpfoctl.leases import read_leases, write_leases
from dhcpfoctl.model import (
    NEVER,
    BindingState,
    FailoverPeerRecord,
    FailoverState,
    HardwareType,
    HostRecord,
    Lease,
    LeaseDB,
    LeaseExtras,
    LeaseFlag,
    LeaseTable,
    OnBlock,
    OtherRecord,
    int_to_address,
)
from tests.leases_helpers import GOLDEN, REAL

DHCPD = shutil.which("dhcpd") or "/usr/sbin/dhcpd"
#: Last second before dhcpd's 32-bit horizon (years from 2038 read as never).
_LAST_TIME = 2145916799

times = st.one_of(st.none(), st.integers(1, _LAST_TIME), st.just(NEVER))
states = st.one_of(
    st.none(),
    st.sampled_from(
        [s for s in BindingState if s not in (BindingState.RESERVED, BindingState.BOOTP)]
    ),
)
names = st.from_regex(r"[a-z][a-z0-9-]{0,12}", fullmatch=True)
text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=20)
variables = st.dictionaries(
    names, st.one_of(st.binary(max_size=12), st.integers(0, 2**31), st.booleans()), max_size=3
).map(lambda d: tuple(d.items()))
options = st.dictionaries(
    st.sampled_from(["agent.circuit-id", "agent.remote-id", "agent.agent-id"]),
    st.binary(max_size=10),
    max_size=2,
).map(lambda d: tuple(d.items()))
on_blocks = st.lists(
    st.builds(
        OnBlock,
        st.sampled_from(["expiry", "release", "expiry or release", "commit"]),
        st.sampled_from(['\n    set z = "1";\n  ', ' log (info, "x{}"); ', ""]),
    ),
    max_size=2,
).map(tuple)
extras = st.builds(
    LeaseExtras,
    uid=st.one_of(st.none(), st.binary(min_size=1, max_size=20)),
    client_hostname=st.one_of(st.none(), text),
    billing=st.sampled_from([None, 'class "gold"', 'subclass "vendor" "x-1"']),
    variables=variables,
    options=options,
    on_blocks=on_blocks,
    other=st.sampled_from([(), ('class "c1"',)]),
)


@st.composite
def leases(draw: st.DrawFn, address: int) -> Lease:
    state = draw(states)
    flags = LeaseFlag(draw(st.integers(0, 3)))
    if state is None and draw(st.booleans()):
        flags |= LeaseFlag.ABANDONED  # the legacy statement stands for the binding state
    hardware = draw(
        st.one_of(
            st.none(),
            st.tuples(st.sampled_from(list(HardwareType)), st.binary(min_size=1, max_size=16)),
        )
    )
    starts, ends = draw(times), draw(times)
    if starts is not None and ends is not None and ends < starts:
        # dhcpd writes no lease that ends before it starts (the reader warns of one).
        starts, ends = ends, starts
    return Lease(
        address=int_to_address(address),
        starts=starts,
        ends=ends,
        tstp=draw(times),
        tsfp=draw(times),
        atsfp=draw(times),
        cltt=draw(times),
        binding_state=state,
        next_binding_state=draw(states),
        rewind_binding_state=draw(states),
        flags=flags,
        hardware_type=hardware[0] if hardware else None,
        hardware_address=hardware[1] if hardware else None,
        extras=draw(extras),
    )


@st.composite
def databases(draw: st.DrawFn) -> LeaseDB:
    addresses = draw(st.sets(st.integers(0x0A000000, 0x0A0003FF), max_size=12))
    db = LeaseDB(leases=LeaseTable.from_leases(draw(leases(a)) for a in addresses))
    for name in draw(st.sets(names, max_size=2)):
        db.failover[name] = FailoverPeerRecord(
            name,
            draw(st.sampled_from(list(FailoverState))),
            draw(st.one_of(st.none(), st.integers(1, _LAST_TIME))),
            draw(st.sampled_from(list(FailoverState))),
            draw(st.one_of(st.none(), st.integers(1, _LAST_TIME))),
            draw(st.one_of(st.none(), st.integers(0, 86400))),
        )
    for name in draw(st.sets(names, max_size=2)):
        deleted = draw(st.booleans())
        body = (
            " dynamic; deleted; " if deleted else "\n  dynamic;\n  hardware ethernet 0:1:2:3:4:5;\n"
        )
        db.hosts[name] = HostRecord(name, deleted, body)
    if draw(st.booleans()):
        db.others[("group", '"g1"')] = OtherRecord("group", '"g1"', " dynamic; ")
    db.server_duid = draw(st.one_of(st.none(), st.binary(min_size=1, max_size=14)))
    db.byte_order = draw(st.sampled_from([None, "little-endian", "big-endian"]))
    return db


def _content(db: LeaseDB) -> tuple[object, ...]:
    return (list(db.leases), db.failover, db.hosts, db.others, db.server_duid, db.byte_order)


def _round_trip(db: LeaseDB, tmp_path: Path) -> LeaseDB:
    out = io.StringIO()
    write_leases(db, out)
    path = tmp_path / "written.leases"
    path.write_text(out.getvalue(), encoding="utf-8", errors="surrogateescape")
    again = read_leases(path)  # backwards, through the fast path where it applies
    # What the writer wrote must parse cleanly; a warning about a lease's own times (the
    # edge-case fixture holds one that ends before it starts) is about the data.
    problems = [str(w) for w in again.stats.warnings if "ends before starts" not in w.message]
    assert not problems, problems
    packed = tmp_path / "written.leases.gz"
    packed.write_bytes(gzip.compress(path.read_bytes()))
    assert _content(read_leases(packed)) == _content(again)  # forwards, as a stream
    return again


@settings(
    max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(db=databases())
def test_model_write_read_is_identity(db: LeaseDB, tmp_path: Path) -> None:
    db.failover = dict(sorted(db.failover.items()))
    db.hosts = dict(sorted(db.hosts.items()))
    assert _content(_round_trip(db, tmp_path)) == _content(db)


@pytest.mark.parametrize(
    "source", [REAL / "primary.leases", REAL / "secondary.leases", GOLDEN / "edge-cases.leases"]
)
def test_read_write_read_keeps_the_model(source: Path, tmp_path: Path) -> None:
    db = read_leases(source)
    assert _content(_round_trip(db, tmp_path)) == _content(db)


def _dhcpd_test(conf: Path, leases: Path, tmp_path: Path, family: str = "-4") -> str:
    """Run ``dhcpd -T``; returns its output after checking it read the file cleanly."""
    result = subprocess.run(
        [
            DHCPD,
            family,
            "-T",
            "-cf",
            str(conf),
            "-lf",
            str(leases),
            "-pf",
            str(tmp_path / "dhcpd.pid"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "Lease file test successful" in output, output
    # dhcpd exits 0 even after dropping records; each problem is a "FILE line N:" report.
    assert f"{leases} line" not in output, output
    assert "Corrupt lease file" not in output, output
    return output


needs_dhcpd = pytest.mark.skipif(not Path(DHCPD).exists(), reason="needs ISC dhcpd")


@needs_dhcpd
@pytest.mark.parametrize("role", ["primary", "secondary"])
def test_real_dhcpd_accepts_the_rewritten_real_files(role: str, tmp_path: Path) -> None:
    conf = tmp_path / f"{role}.conf"
    shutil.copy(REAL / f"{role}.conf", conf)
    written = tmp_path / "dhcpd.leases"
    with written.open("w") as out:
        write_leases(read_leases(REAL / f"{role}.leases"), out)
    _dhcpd_test(conf, written, tmp_path)


@needs_dhcpd
def test_real_dhcpd_accepts_a_rewritten_generated_journal(tmp_path: Path) -> None:
    conf, journal = tmp_path / "dhcpd.conf", tmp_path / "journal.leases"
    write_conf(conf, 1500)
    generate_journal(journal, 1500)
    db = read_leases(journal)
    written = tmp_path / "dhcpd.leases"
    with written.open("w") as out:
        write_leases(db, out)
    output = _dhcpd_test(conf, written, tmp_path)
    assert "Wrote" in output


@needs_dhcpd
def test_the_dhcpv6_sample_is_a_file_real_dhcpd_reads(tmp_path: Path) -> None:
    conf = tmp_path / "dhcpd6.conf"
    conf.write_text(
        "default-lease-time 600;\n"
        "subnet6 2001:db8:0:1::/64 {\n"
        "  range6 2001:db8:0:1::100 2001:db8:0:1::300;\n"
        "  range6 2001:db8:0:1::/64 temporary;\n"
        "  prefix6 2001:db8:100:: 2001:db8:1ff:: /56;\n"
        "}\n"
    )
    leases = tmp_path / "dhcpd6.leases"
    shutil.copy(GOLDEN / "dhcpd6.leases", leases)
    _dhcpd_test(conf, leases, tmp_path, family="-6")
