"""``dhcpfoctl compare``: the findings on constructed and real pairs, the command, its state."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import pytest
from compare_pairs import DATA, HEADER, SCENARIOS, T0, L, write
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from dhcpfoctl.checks.compare import KINDS, CompareReport, Journal, compare_journals, compare_pair
from dhcpfoctl.cli.main import app
from dhcpfoctl.conf import read_config
from dhcpfoctl.errors import CheckResult
from dhcpfoctl.leases import read_leases
from dhcpfoctl.leases.reader import read_lease_history, read_lease_history_incremental
from dhcpfoctl.model import BindingState, HardwareType, Lease, LeaseExtras, Role, int_to_address

REAL = Path(__file__).parent / "data" / "real-dhcpd-4.4.3"
CONF = DATA / "primary.conf"
CONF2 = DATA / "secondary.conf"
REGENERATE = os.environ.get("DHCPFOCTL_REGENERATE_GOLDEN") == "1"
#: The constructed scenario's expected findings: (kind, severity, address), the golden
#: report holding the rest.
EXPECTED = {
    "duplicate": [
        ("split-brain", "critical", None),
        ("duplicate", "critical", "10.99.0.120"),
    ],
    "unhealed": [("unhealed", "critical", "10.99.0.121"), ("unhealed", "warning", "10.99.0.122")],
    "lost": [("lost", "critical", "10.99.0.125")],
    "ownership": [("ownership", "warning", "10.99.0.130")],
    "disagreement-in-flight": [
        ("disagreement", "warning", "10.99.0.140"),
        ("in-flight", "ok", "10.99.0.141"),
    ],
    "split-brain": [("split-brain", "critical", None), ("in-flight", "ok", "10.99.0.150")],
    "past-split-brain": [("split-brain", "warning", None)],
    "possible-split-brain": [("split-brain", "warning", None)],
}


def run(*args: str, env: dict[str, str] | None = None) -> Any:
    return CliRunner().invoke(app, ["compare", *args], env=env)


def compare_cli_json(folder: Path, *extra: str) -> dict[str, Any]:
    result = run(
        str(folder / "primary.leases"),
        str(folder / "secondary.leases"),
        "--primary-config",
        str(CONF),
        "--secondary-config",
        str(CONF2),
        "--as-of",
        f"@{T0}",
        "--no-state",
        "--json",
        *extra,
    )
    document = json.loads(result.stdout)
    assert result.exit_code == document["exit_status"]
    return document


# --- constructed pairs: one per finding ------------------------------------------------


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_constructed_files_are_what_the_generator_writes(name: str, tmp_path: Path) -> None:
    written = write(name, tmp_path)
    for role in ("primary", "secondary"):
        kept = (DATA / name / f"{role}.leases").read_text()
        assert (written / f"{role}.leases").read_text() == kept


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_constructed_pair_report(name: str) -> None:
    document = compare_cli_json(DATA / name)
    found = [(f["kind"], f["severity"], f["address"]) for f in document["findings"]]
    assert found == EXPECTED[name]
    golden = DATA / name / "expected.json"
    document.pop("files")
    if REGENERATE:
        golden.write_text(json.dumps(document, indent=2, sort_keys=True) + "\n")
    assert document == json.loads(golden.read_text()), "run with DHCPFOCTL_REGENERATE_GOLDEN=1"


def test_duplicate_names_both_clients_times_and_who_to_kick() -> None:
    (split, duplicate) = compare_cli_json(DATA / "duplicate")["findings"]
    assert split["since"] == "2026-11-28T07:35:10Z"  # the secondary's partner-down: both
    assert [c["hostname"] for c in duplicate["clients"]] == ["bravo", "alpha"]
    assert duplicate["since"] == "2026-11-28T07:39:00Z"
    assert duplicate["action"].startswith('kick 02:99:00:0b:00:02 "bravo"')
    records = {r["server"]: r for r in duplicate["records"]}
    assert records["primary"]["client"]["hardware"] == "02:99:00:0a:00:01"
    assert records["secondary"]["client"]["hardware"] == "02:99:00:0b:00:02"


def test_unhealed_names_the_holder_on_record_and_the_loser() -> None:
    current, ended = compare_cli_json(DATA / "unhealed")["findings"]
    assert "now on record for 02:99:00:0b:00:02" in current["message"]
    assert current["action"].startswith('kick 02:99:00:0a:00:01 "alpha" now')
    assert current["until"] == "2026-11-28T07:41:40Z"  # alpha's lease end
    assert ended["action"].startswith("nothing to kick")


def test_summary_per_pool_and_relationship() -> None:
    document = compare_cli_json(DATA / "unhealed")
    (pool,) = document["pools"]
    assert pool["name"] == "10.99.0.0/24 10.99.0.100-10.99.0.250"
    assert pool["relationship"] == "lab"
    assert (pool["addresses"], pool["agreeing"], pool["findings"]["unhealed"]) == (2, 0, 2)
    (relationship,) = document["relationships"]
    assert relationship["name"] == "lab"
    assert relationship["findings"]["unhealed"] == 2
    assert document["pair_states"][0]["secondary"]["my_state"] == "normal"


def test_without_configs_every_address_is_one_pool_with_a_note() -> None:
    folder = DATA / "lost"
    result = run(
        str(folder / "primary.leases"), str(folder / "secondary.leases"),
        "--as-of", f"@{T0}", "--no-state", "--json",
    )  # fmt: skip
    document = json.loads(result.stdout)
    assert [pool["name"] for pool in document["pools"]] == ["all addresses"]
    assert document["pools"][0]["relationship"] == "lab"
    assert any("no dhcpd.conf given" in note for note in document["notes"])
    # MCLT still known: the secondary's state record carries it.
    assert not any("MCLT" in note for note in document["notes"])


# --- real dhcpd 4.4.3 files -------------------------------------------------------------


def real_report(folder: Path, as_of: int) -> CompareReport:
    histories = [read_lease_history(folder / f"{role}.leases") for role in ("primary", "secondary")]
    return compare_pair(
        histories[0][0],
        histories[1][0],
        as_of=as_of,
        config=read_config(folder / "primary.conf"),
        secondary_config=read_config(folder / "secondary.conf"),
        history=(histories[0][1], histories[1][1]),
    )


def test_real_pair_after_cuts_partner_downs_and_recoveries_agrees() -> None:
    # The captured run: normal, cut and heal, partner-down while cut off (resolved through
    # potential-conflict), a kill and partner-down with recovery and recover-wait.
    as_of = max(lease.cltt or 0 for lease in read_leases(REAL / "secondary.leases").leases)
    report = real_report(REAL, as_of + 5)
    assert [f.kind for f in report.findings if f.kind != "in-flight"] == []
    assert report.worst is CheckResult.OK
    (pool,) = report.pools
    assert pool.addresses == pool.agreeing == 151


@pytest.mark.parametrize("scenario", ["normal", "cut-heal", "partner-down-recover"])
def test_real_scenario_pairs_have_no_finding_but_in_flight(scenario: str) -> None:
    folder = DATA / f"real-{scenario}"
    if not folder.exists():
        pytest.fail(f"{folder} missing: tests/integration/test_compare_real.py writes it")
    as_of = int((folder / "as_of").read_text())
    report = real_report(folder, as_of)
    for finding in report.findings:
        assert finding.kind == "in-flight", finding.message
        assert finding.severity is CheckResult.OK


# --- properties ---------------------------------------------------------------------------

MACS = [bytes([2, 0x99, 0, 0, 0, n]) for n in range(1, 4)]
STATES = [BindingState.ACTIVE, BindingState.EXPIRED, BindingState.RELEASED, BindingState.ABANDONED]


@st.composite
def journals(draw: st.DrawFn) -> list[Lease]:
    """One server's lease records in file order: per address a sequence of leases that do
    not overlap (one dhcpd never grants an address twice at once), times around T0."""
    records: list[tuple[int, Lease]] = []
    for address in draw(st.sets(st.integers(0, 5), min_size=1, max_size=4)):
        moment = T0 - draw(st.integers(0, 4000))
        for _ in range(draw(st.integers(1, 3))):
            length = draw(st.integers(1, 900))
            tstp = draw(st.one_of(st.none(), st.integers(-50, 1000)))
            acked = draw(st.booleans())
            lease = Lease(
                int_to_address(0x0A630064 + address),
                starts=moment,
                ends=moment + length,
                tstp=None if tstp is None else moment + tstp,
                atsfp=None if tstp is None or not acked else moment + tstp,
                cltt=moment if draw(st.booleans()) else None,
                binding_state=draw(st.sampled_from(STATES)),
                hardware_type=HardwareType.ETHERNET,
                hardware_address=draw(st.sampled_from(MACS)),
                extras=LeaseExtras(client_hostname=draw(st.sampled_from([None, "h\x1b[31m"]))),
            )
            records.append((moment, lease))
            moment += length + draw(st.integers(0, 300))
    return [lease for _, lease in sorted(records, key=lambda item: item[0])]


def fold(role: Role, records: list[Lease]) -> Journal:
    journal = Journal(role)
    journal.fold(records, ())
    return journal


@settings(max_examples=60, deadline=None)
@given(journals())
def test_lease_records_compared_with_themselves_find_nothing(records: list[Lease]) -> None:
    report = compare_journals(fold(Role.PRIMARY, records), fold(Role.SECONDARY, records), as_of=T0)
    assert report.findings == []
    assert report.worst is CheckResult.OK


def _shape(report: CompareReport, swapped: bool) -> list[tuple[Any, ...]]:
    shapes = []
    for finding in report.findings:
        records = [r.to_json() for r in finding.records]
        for record in records:
            if swapped:
                record["server"] = {"primary": "secondary", "secondary": "primary"}[
                    record["server"]
                ]
        records.sort(key=lambda r: r["server"])
        shapes.append(
            (finding.kind, finding.severity, finding.address, finding.since, json.dumps(records))
        )
    return sorted(shapes, key=repr)


@settings(max_examples=60, deadline=None)
@given(journals(), journals())
def test_swapping_the_files_swaps_the_roles(first: list[Lease], second: list[Lease]) -> None:
    straight = compare_journals(fold(Role.PRIMARY, first), fold(Role.SECONDARY, second), as_of=T0)
    swapped = compare_journals(fold(Role.PRIMARY, second), fold(Role.SECONDARY, first), as_of=T0)
    assert _shape(straight, False) == _shape(swapped, True)


@settings(max_examples=30, deadline=None)
@given(journals())
def test_a_journal_survives_its_json(records: list[Lease]) -> None:
    journal = fold(Role.SECONDARY, records)
    again = Journal.from_json(json.loads(json.dumps(journal.to_json())))
    assert again.tenures == journal.tenures
    assert {
        a: (x.binding_state, x.hardware_address, x.starts) for a, x in again.current.items()
    } == {a: (x.binding_state, x.hardware_address, x.starts) for a, x in journal.current.items()}


def test_every_kind_is_produced_by_some_scenario() -> None:
    produced = {kind for expected in EXPECTED.values() for kind, _, _ in expected}
    assert produced | {"skipped"} == set(KINDS)


# --- the command ------------------------------------------------------------------------


def copy_pair(tmp_path: Path, name: str) -> tuple[Path, Path]:
    primary, secondary = tmp_path / "p.leases", tmp_path / "s.leases"
    shutil.copy(DATA / name / "primary.leases", primary)
    shutil.copy(DATA / name / "secondary.leases", secondary)
    return primary, secondary


@pytest.mark.parametrize(
    ("name", "status"),
    [("ownership", 1), ("lost", 2), ("past-split-brain", 1), ("disagreement-in-flight", 1)],
)
def test_exit_status_is_the_worst_finding(name: str, status: int) -> None:
    folder = DATA / name
    result = run(str(folder / "primary.leases"), str(folder / "secondary.leases"),
                 "--as-of", f"@{T0}", "--no-state", "-q")  # fmt: skip
    assert result.exit_code == status
    assert "do: " in result.stdout


def test_ok_pair_human_nagios_and_quiet() -> None:
    args = [str(REAL / "primary.leases"), str(REAL / "secondary.leases"), "--no-state"]
    human = run(*args, "--as-of", "@1795851680")
    assert human.exit_code == 0
    assert "151 addresses on record, 151 agree" in human.stdout
    assert "primary   normal since" in human.stdout
    nagios = run(*args, "--as-of", "@1795851680", "--format", "nagios")
    assert nagios.exit_code == 0
    assert nagios.stdout.startswith("DHCPFOCTL OK - both files agree on 151 addresses | ")
    assert "'duplicate'=0;;;0" in nagios.stdout
    quiet = run(*args, "--as-of", "@1795851680", "--quiet")
    assert (quiet.exit_code, quiet.stdout) == (0, "")


def test_nagios_line_leads_with_the_worst_finding() -> None:
    folder = DATA / "duplicate"
    result = run(str(folder / "primary.leases"), str(folder / "secondary.leases"),
                 "--as-of", f"@{T0}", "--no-state", "--format", "nagios")  # fmt: skip
    assert result.exit_code == 2
    assert result.stdout.startswith("DHCPFOCTL CRITICAL - failover peer lab: split brain")
    assert "(+1 more)" in result.stdout
    assert "'duplicate'=1;;;0" in result.stdout


def test_hostile_hostname_is_escaped(tmp_path: Path) -> None:
    primary, secondary = copy_pair(tmp_path, "duplicate")
    text = secondary.read_text().replace('"bravo"', '"evil\\033[2J\\nCRITICAL: forged"')
    secondary.write_text(text)
    result = run(str(primary), str(secondary), "--as-of", f"@{T0}", "--no-state")
    assert "\x1b" not in result.stdout
    assert not any(line.startswith("CRITICAL: forged") for line in result.stdout.splitlines())


def test_corrupt_record_strict_is_one_line_with_file_and_line(tmp_path: Path) -> None:
    primary, secondary = copy_pair(tmp_path, "lost")
    with primary.open("a") as out:
        out.write("lease 10.99.0.200 {\n  starts 6 2026/02/31 00:00:00;\n}\n")
    result = run(str(primary), str(secondary), "--as-of", f"@{T0}", "--no-state", "--strict")
    assert result.exit_code == 3
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"dhcpfoctl: error: {primary}:")
    assert "Traceback" not in result.output
    # Without --strict the record is skipped and reported as a warning finding.
    lenient = run(str(primary), str(secondary), "--as-of", f"@{T0}", "--no-state", "--json")
    kinds = [f["kind"] for f in json.loads(lenient.stdout)["findings"]]
    assert "skipped" in kinds


@pytest.mark.parametrize("bad", ["missing", "garbage", "directory"])
def test_unreadable_input_exits_unknown(bad: str, tmp_path: Path) -> None:
    primary, _secondary = copy_pair(tmp_path, "lost")
    target = {
        "missing": tmp_path / "nope.leases",
        "garbage": tmp_path / "g",
        "directory": tmp_path,
    }[bad]
    if bad == "garbage":
        target.write_text("this is not { a lease file ;\n" * 3)
    before = primary.read_bytes()
    result = run(str(primary), str(target), "--no-state", "--format", "nagios")
    assert result.exit_code == 3
    assert result.stdout.startswith("DHCPFOCTL UNKNOWN - ")
    assert len(result.stderr.strip().splitlines()) == 1
    assert primary.read_bytes() == before


def test_usage_error_is_unknown() -> None:
    assert run("only-one.leases").exit_code == 3


# --- state between runs -----------------------------------------------------------------


def reading(result: Any) -> dict[str, Any]:
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    return json.loads(result.stdout)["reading"]


def test_second_run_reads_only_what_was_appended(tmp_path: Path) -> None:
    primary, secondary = copy_pair(tmp_path, "unhealed")
    env = {"XDG_STATE_HOME": str(tmp_path / "state")}
    args = [str(primary), str(secondary), "--as-of", f"@{T0}", "--json"]
    first = run(*args, env=env)
    assert reading(first)["primary"] == {"from_start": True, "records": 4}
    again = run(*args, env=env)
    assert reading(again)["primary"] == {"from_start": False, "records": 0}
    assert json.loads(again.stdout)["findings"] == json.loads(first.stdout)["findings"]
    # dhcpd appends: the secondary now also gives .123 to alpha, .121's loser.
    with secondary.open("a") as out:
        out.write(L("10.99.0.123", "active", -10, 110, "02:99:00:0a:00:01", tstp=200).text())
    third = run(*args, env=env)
    assert reading(third)["secondary"] == {"from_start": False, "records": 1}
    kinds = [(f["kind"], f["address"]) for f in json.loads(third.stdout)["findings"]]
    assert ("in-flight", "10.99.0.123") in kinds or ("lost", "10.99.0.123") in kinds


def test_rewritten_file_is_read_again_and_keeps_the_history(tmp_path: Path) -> None:
    primary, secondary = copy_pair(tmp_path, "unhealed")
    env = {"XDG_STATE_HOME": str(tmp_path / "state")}
    args = [str(primary), str(secondary), "--as-of", f"@{T0}", "--json"]
    first = json.loads(run(*args, env=env).stdout)
    # dhcpd's rewrite: a new file with only the last record per address.
    rewritten = tmp_path / "rewrite"
    db_text = HEADER + "".join(text for text in _last_records(primary.read_text()))
    rewritten.write_text(db_text)
    os.replace(rewritten, primary)
    result = run(*args, env=env)
    assert reading(result)["primary"]["from_start"] is True
    after = json.loads(result.stdout)
    assert [f["kind"] for f in after["findings"]] == [f["kind"] for f in first["findings"]]
    # Without the state, the rewritten file alone no longer shows alpha on .121.
    fresh = json.loads(run(*args, "--no-state").stdout)
    assert "10.99.0.121" not in [f["address"] for f in fresh["findings"] if f["kind"] == "unhealed"]


def _last_records(text: str) -> list[str]:
    blocks: dict[str, str] = {}
    others = []
    for block in text.split("}\n"):
        body = block.strip("\n")
        if body.startswith("lease "):
            blocks[body.split()[1]] = body + "\n}\n"
        elif "failover peer" in body:
            others = [body.strip() + "\n}\n"]
    return others + list(blocks.values())


def test_a_corrupt_state_is_ignored(tmp_path: Path) -> None:
    primary, secondary = copy_pair(tmp_path, "lost")
    env = {"XDG_STATE_HOME": str(tmp_path / "state")}
    args = [str(primary), str(secondary), "--as-of", f"@{T0}", "--json"]
    run(*args, env=env)
    (saved,) = (tmp_path / "state" / "dhcpfoctl").glob("compare-*.json")
    document = json.loads(saved.read_text())
    document["primary"]["journal"]["current"] = [["not an address"]]
    saved.write_text(json.dumps(document))
    result = run(*args, env=env)
    assert result.exit_code == 2
    assert reading(result)["primary"]["from_start"] is True


def test_incremental_reader_resumes_and_restarts(tmp_path: Path) -> None:
    path = tmp_path / "x.leases"
    shutil.copy(DATA / "unhealed" / "primary.leases", path)
    first = read_lease_history_incremental(path, None)
    assert first.from_start and len(first.leases) == 4 and len(first.failover) == 1
    with path.open("a") as out:
        out.write(L("10.99.0.124", "free", -5, tstp=-5).text())
    second = read_lease_history_incremental(path, first.resume)
    assert not second.from_start
    assert [lease.address for lease in second.leases] == ["10.99.0.124"]
    path.write_text(HEADER)  # shrank: read from the start
    third = read_lease_history_incremental(path, second.resume)
    assert third.from_start and third.leases == []


def test_a_release_ends_the_hold_so_the_next_client_is_no_duplicate() -> None:
    a, b = "02:99:00:0a:00:01", "02:99:00:0b:00:02"
    primary = [
        L("10.99.0.170", "active", -600, 600, a, tstp=700).lease(),
        L("10.99.0.170", "released", -600, -300, a, tstp=-300).lease(),
        L("10.99.0.170", "active", -200, 400, b, tstp=500).lease(),
    ]
    # The partner applies the release as free (docs/failover-protocol.md §7.2).
    secondary = [
        L("10.99.0.170", "active", -600, 600, a, own=False, tstp=700).lease(),
        L("10.99.0.170", "free", -300, -300, a, tstp=-300).lease(),
        L("10.99.0.170", "active", -200, 400, b, own=False, tstp=500).lease(),
    ]
    report = compare_journals(
        fold(Role.PRIMARY, primary), fold(Role.SECONDARY, secondary), as_of=T0
    )
    assert report.findings == []


def test_bad_time_is_unknown_with_one_line() -> None:
    folder = DATA / "lost"
    result = run(str(folder / "primary.leases"), str(folder / "secondary.leases"),
                 "--as-of", "yesterday-ish", "--no-state")  # fmt: skip
    assert result.exit_code == 3
    (line,) = result.stderr.strip().splitlines()
    assert "invalid time" in line


def test_a_duplicate_is_forgotten_a_day_after_it_ended() -> None:
    folder = DATA / "unhealed"
    for as_of, expected in ((T0 + 86300, ["unhealed", "unhealed"]), (T0 + 90000, [])):
        result = run(str(folder / "primary.leases"), str(folder / "secondary.leases"),
                     "--as-of", f"@{as_of}", "--no-state", "--json")  # fmt: skip
        assert [f["kind"] for f in json.loads(result.stdout)["findings"]] == expected
