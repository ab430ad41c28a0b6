"""The pure evaluation behind ``status``: states and times → findings and health."""

from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dhcpfoctl.checks.health import EnduranceEstimate, ServerAnswer, evaluate, track_unacked
from dhcpfoctl.errors import CheckResult as Health
from dhcpfoctl.model import FailoverState as S
from dhcpfoctl.omapi.failover import FailoverInfo

NOW = 1_795_851_400
STATES = [s for s in S.__members__.values()]


def info(
    local: S,
    partner: S,
    *,
    stos: int = NOW - 100,
    hierarchy: int = 0,
    mclt: int = 30,
    unacked: int = 0,
    partner_stos: int = NOW - 100,
) -> FailoverInfo:
    return FailoverInfo(
        name="lab",
        handle=2,
        local_state=local,
        partner_state=partner,
        local_stos=stos,
        partner_stos=partner_stos,
        hierarchy=hierarchy,
        mclt=mclt,
        max_response_delay=10,
        max_outstanding_updates=10,
        cur_unacked_updates=unacked,
        load_balance_max_secs=3,
        load_balance_hba=b"\xff" * 16 + b"\0" * 16,
        local_port=647,
        partner_port=847,
    )


def answer(label: str, failover: FailoverInfo | None, error: str | None = None) -> ServerAnswer:
    return ServerAnswer(
        label=label,
        endpoint=f"{label}:7911",
        failover={"lab": failover} if failover else {},
        error=error,
    )


def pair(primary: FailoverInfo | None, secondary: FailoverInfo | None) -> list[ServerAnswer]:
    return [
        answer("p", primary, None if primary else "p:7911: cannot connect: Connection refused"),
        answer("s", secondary, None if secondary else "s:7911: no answer within 3s"),
    ]


def codes(report_findings: tuple) -> set[str]:
    return {finding.code for finding in report_findings}


def test_both_normal_is_ok() -> None:
    report = evaluate(
        pair(info(S.NORMAL, S.NORMAL), info(S.NORMAL, S.NORMAL, hierarchy=1)), ["lab"], NOW
    )
    assert report.health == Health.OK and report.findings == ()
    assert [view.time_in_state(NOW) for view in report.views] == [100, 100]


def test_communications_interrupted_warns_with_duration() -> None:
    report = evaluate(
        pair(
            info(S.COMMUNICATIONS_INTERRUPTED, S.NORMAL, stos=NOW - 7200),
            info(S.COMMUNICATIONS_INTERRUPTED, S.NORMAL, hierarchy=1, stos=NOW - 7195),
        ),
        ["lab"],
        NOW,
    )
    assert report.health == Health.WARNING
    assert codes(report.findings) == {"communications-interrupted"}
    assert "for 2h" in report.findings[0].message
    # Both answer here: neither partner is down, so partner-down is not what to do.
    assert "restore the failover link" in report.findings[0].message
    assert "partner-down" not in report.findings[0].message
    alone = evaluate(pair(info(S.COMMUNICATIONS_INTERRUPTED, S.NORMAL), None), ["lab"], NOW)
    cut_off = next(f for f in alone.findings if f.code == "communications-interrupted")
    assert "consider `dhcpfoctl partner-down`" in cut_off.message


def test_partner_down_while_other_serves_is_split_brain_risk() -> None:
    report = evaluate(
        pair(
            info(S.PARTNER_DOWN, S.COMMUNICATIONS_INTERRUPTED),
            info(S.COMMUNICATIONS_INTERRUPTED, S.NORMAL, hierarchy=1),
        ),
        ["lab"],
        NOW,
    )
    assert report.health == Health.CRITICAL
    risk = next(f for f in report.findings if f.code == "split-brain-risk")
    assert risk.message.endswith("stop dhcpd on s or restore their failover link")


def test_partner_down_with_partner_unreachable_gives_countdown() -> None:
    primary = info(S.PARTNER_DOWN, S.COMMUNICATIONS_INTERRUPTED, stos=NOW - 10, mclt=3600)
    report = evaluate(pair(primary, None), ["lab"], NOW)
    # The peer is unreachable (UNKNOWN) and partner-down is only a warning: UNKNOWN wins.
    assert report.health == Health.UNKNOWN
    assert codes(report.findings) == {"unreachable", "partner-down"}
    view = report.views[0]
    assert view.mclt_ends == NOW - 10 + 3600
    assert "in 59m" in next(f for f in report.findings if f.code == "partner-down").message


def test_recover_wait_reports_its_end() -> None:
    report = evaluate(
        pair(
            info(S.PARTNER_DOWN, S.RECOVER_WAIT),
            info(S.RECOVER_WAIT, S.PARTNER_DOWN, hierarchy=1, stos=NOW - 5, mclt=60),
        ),
        ["lab"],
        NOW,
    )
    assert report.health == Health.WARNING
    wait = next(f for f in report.findings if f.code == "recover-wait")
    assert "in 55s" in wait.message
    assert report.views[1].mclt_ends == NOW + 55
    # dhcpd keeps the previous local-stos on entering recover-wait: no "time in state".
    assert report.views[1].time_in_state(NOW) is None


def test_startup_shows_no_time_in_state() -> None:
    report = evaluate([answer("p", info(S.STARTUP, S.NORMAL, stos=NOW - 86400))], ["lab"], NOW)
    assert report.views[0].time_in_state(NOW) is None
    transition = next(f for f in report.findings if f.code == "transition")
    assert transition.message.startswith("p: startup: not serving DHCP")


def test_disagreement_is_reported_unless_recent() -> None:
    old = evaluate(
        pair(
            info(S.NORMAL, S.NORMAL),
            info(S.COMMUNICATIONS_INTERRUPTED, S.NORMAL, hierarchy=1, stos=NOW - 60),
        ),
        ["lab"],
        NOW,
    )
    assert "disagreement" in codes(old.findings)
    fresh = evaluate(
        pair(
            info(S.NORMAL, S.NORMAL),
            info(S.COMMUNICATIONS_INTERRUPTED, S.NORMAL, hierarchy=1, stos=NOW - 3),
        ),
        ["lab"],
        NOW,
    )
    assert "disagreement" not in codes(fresh.findings)


def test_same_role_twice_is_critical() -> None:
    report = evaluate(pair(info(S.NORMAL, S.NORMAL), info(S.NORMAL, S.NORMAL)), ["lab"], NOW)
    assert report.health == Health.CRITICAL and "same-role" in codes(report.findings)


def test_unknown_relationship_is_unknown_not_unreachable() -> None:
    answers = [
        ServerAnswer(
            label="p",
            endpoint="p:7911",
            relationship_errors={"nope": "p:7911: no failover relationship named 'nope'"},
        )
    ]
    report = evaluate(answers, ["nope"], NOW)
    assert report.health == Health.UNKNOWN
    assert codes(report.findings) == {"relationship-error"}


FULL = pair(info(S.NORMAL, S.NORMAL, unacked=10), info(S.NORMAL, S.NORMAL, hierarchy=1))
EMPTY = pair(info(S.NORMAL, S.NORMAL, unacked=9), info(S.NORMAL, S.NORMAL, hierarchy=1))


def test_one_full_update_window_is_only_a_note() -> None:
    # A bulk update fills the window for a moment on a healthy pair (issue 10).
    for since in (None, {}, {"p lab": NOW}):
        report = evaluate(FULL, ["lab"], NOW, unacked_since=since)
        assert report.health == Health.OK
        (finding,) = report.findings
        assert (finding.code, finding.health) == ("unacked-updates", Health.OK)
        assert "a warning if it stays full for" in finding.message


@pytest.mark.parametrize(
    ("age", "health"), [(29, Health.OK), (30, Health.WARNING), (3600, Health.WARNING)]
)
def test_a_window_that_stays_full_warns(age: int, health: Health) -> None:
    since = track_unacked(FULL, {"p lab": NOW - age}, NOW)
    assert since == {"p lab": NOW - age}
    report = evaluate(FULL, ["lab"], NOW, unacked_since=since)
    assert report.health == health
    if health == Health.WARNING:
        assert "has stayed so for" in report.findings[0].message


def test_the_memory_of_a_full_window_resets_when_it_empties() -> None:
    first = track_unacked(FULL, {}, NOW - 100)
    assert first == {"p lab": NOW - 100}
    assert track_unacked(EMPTY, first, NOW - 50) == {}
    assert track_unacked(FULL, {}, NOW) == {"p lab": NOW}
    # A server that did not answer tells nothing: forgotten, not kept as full.
    unreachable = pair(None, info(S.NORMAL, S.NORMAL, hierarchy=1))
    assert track_unacked(unreachable, first, NOW) == {}
    assert evaluate(EMPTY, ["lab"], NOW, unacked_since=first).findings == ()


@pytest.mark.parametrize(
    ("local", "health"),
    [
        (S.STARTUP, Health.WARNING),
        (S.RECOVER, Health.WARNING),
        (S.RECOVER_DONE, Health.WARNING),
        (S.POTENTIAL_CONFLICT, Health.WARNING),
        (S.CONFLICT_DONE, Health.WARNING),
        (S.PAUSED, Health.WARNING),
        (S.SHUTDOWN, Health.WARNING),
        (S.RESOLUTION_INTERRUPTED, Health.CRITICAL),
        (S.UNKNOWN_STATE, Health.CRITICAL),
        (S(12), Health.CRITICAL),
    ],
)
def test_single_server_states(local: S, health: Health) -> None:
    report = evaluate([answer("p", info(local, S.NORMAL))], ["lab"], NOW)
    assert report.health == health


def test_nobody_serving_is_critical() -> None:
    report = evaluate(
        pair(info(S.RECOVER, S.RECOVER), info(S.RECOVER, S.RECOVER, hierarchy=1)), ["lab"], NOW
    )
    assert report.health == Health.CRITICAL and "no-service" in codes(report.findings)


@given(
    local_a=st.sampled_from(STATES),
    local_b=st.sampled_from(STATES),
    seen_a=st.sampled_from(STATES),
    seen_b=st.sampled_from(STATES),
    age_a=st.integers(0, 10**7),
    age_b=st.integers(0, 10**7),
    reachable=st.sampled_from(["both", "a", "b", "none"]),
)
def test_health_is_the_worst_finding_and_consistent(
    local_a: S, local_b: S, seen_a: S, seen_b: S, age_a: int, age_b: int, reachable: str
) -> None:
    a = info(local_a, seen_a, stos=NOW - age_a) if reachable in ("both", "a") else None
    b = info(local_b, seen_b, stos=NOW - age_b, hierarchy=1) if reachable in ("both", "b") else None
    report = evaluate(pair(a, b), ["lab"], NOW)
    assert report == evaluate(pair(a, b), ["lab"], NOW)  # pure
    worst = max((f.health for f in report.findings), key=lambda h: h.rank, default=Health.OK)
    assert report.health == worst
    # Only both-normal, agreeing, reachable pairs are OK.
    if report.health == Health.OK:
        assert reachable == "both" and local_a == local_b == S.NORMAL
    if reachable != "both":
        assert report.health in (Health.UNKNOWN, Health.CRITICAL)
    # A server in partner-down while the other is reachable and serving is always critical.
    serving = {S.NORMAL, S.COMMUNICATIONS_INTERRUPTED, S.PARTNER_DOWN}
    if reachable == "both" and local_a == S.PARTNER_DOWN and local_b in serving:
        assert report.health == Health.CRITICAL
    for view in report.views:
        if view.info is not None and view.info.local_state not in (S.STARTUP, S.RECOVER_WAIT):
            assert view.time_in_state(NOW) == max(0, NOW - view.info.local_stos)


@pytest.mark.parametrize(
    ("estimate", "health", "text"),
    [
        (EnduranceEstimate(7200, 30.0, 86400, "/l"), Health.WARNING, "last about 2h at 30.0"),
        (EnduranceEstimate(0, 30.0, 86400, "/l"), Health.CRITICAL, "NO free leases"),
        (EnduranceEstimate(None, None, 60, "/l", "not enough history"), Health.WARNING, "unknown"),
    ],
)
def test_endurance_of_a_cut_off_server(
    estimate: EnduranceEstimate, health: Health, text: str
) -> None:
    cut = info(S.COMMUNICATIONS_INTERRUPTED, S.NORMAL)
    answers = [replace(answer("p", cut), endurance={"lab": estimate})]
    report = evaluate(answers, ["lab"], NOW)
    assert report.health == health and text in report.findings[0].message


# -- every field of the findings, exactly (what a monitor parses from --json) -------------


def test_findings_name_their_server_and_relationship_exactly() -> None:
    from dhcpfoctl.checks.health import Finding

    answers = [
        answer("p", info(S.NORMAL, S.NORMAL, unacked=10)),
        answer("s", None, "s:7911: no answer within 3s"),
        ServerAnswer(label="x", endpoint="x:7911", relationship_errors={"lab": "x: NOTFOUND"}),
    ]
    since = {"p lab": NOW - 40}
    report = evaluate(answers, ["lab"], NOW, unacked_since=since, unacked_for=40)
    assert report.findings == (
        Finding(Health.UNKNOWN, "unreachable", "s:7911: no answer within 3s", server="s"),
        Finding(
            Health.WARNING,
            "unacked-updates",
            "p: 10 unacked updates, the limit (max-unacked-updates 10) is reached and has"
            " stayed so for 40s (the partner is not acknowledging updates)",
            server="p",
            relationship="lab",
        ),
        Finding(Health.UNKNOWN, "relationship-error", "x: NOTFOUND", "x", "lab"),
    )
    assert [view.endpoint for view in report.views] == ["p:7911", "s:7911", "x:7911"]
    assert [view.error for view in report.views] == [
        None,
        "s:7911: no answer within 3s",
        "x: NOTFOUND",
    ]
    assert report.health == Health.UNKNOWN
    # A second relationship keeps the first one's views.
    two = evaluate(answers[:1], ["lab", "other"], NOW)
    assert [(v.relationship, v.error) for v in two.views] == [
        ("lab", None),
        ("other", "p:7911: no answer for relationship 'other'"),
    ]


def test_a_full_window_needs_two_observations_even_with_no_delay() -> None:
    # --unacked-for 0: still not on one sample (since = now).
    report = evaluate(FULL, ["lab"], NOW, unacked_since={"p lab": NOW}, unacked_for=0)
    assert report.health == Health.OK
    (note,) = report.findings
    assert note == replace(
        note,
        message="p: 10 unacked updates, the limit (max-unacked-updates 10) is reached (normal"
        " during a bulk update; a warning if it stays full for 0s)",
        server="p",
        relationship="lab",
    )
    report = evaluate(FULL, ["lab"], NOW, unacked_since={"p lab": NOW - 1}, unacked_for=0)
    assert report.health == Health.WARNING


def test_nobody_serving_names_the_relationship() -> None:
    report = evaluate(
        pair(info(S.RECOVER, S.NORMAL), info(S.RECOVER, S.NORMAL, hierarchy=1)), ["lab"], NOW
    )
    (critical,) = [f for f in report.findings if f.code == "no-service"]
    assert (critical.message, critical.relationship, critical.server) == (
        "no server of 'lab' is known to serve DHCP",
        "lab",
        None,
    )
