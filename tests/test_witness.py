"""Witnesses through a real etcd (Debian's etcd-server): publish, verdict, TTL, claims, garbage.

One etcd for the module, on 127.0.0.1 with free ports and a temporary data directory, with
short raft timers so that it elects itself at once and grants 1 s leases. Without an ``etcd``
binary the tests skip, except under ``CI=true``, where they fail.
"""

from __future__ import annotations

import base64
import json
import math
import os
import shutil
import socket
import subprocess
import threading
import time
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dhcpfoctl.errors import LocalError, RemoteError
from dhcpfoctl.watch.witness import (
    WitnessBoard,
    WitnessObservation,
    WitnessVerdict,
    decode_observation,
    encode_observation,
    tally,
)

REL, PARTNER = "campus", "dhcp2"
STARTUP_TIMEOUT = 10.0


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/health", timeout=0.5) as answer:
            return json.load(answer).get("health") == "true"
    except OSError:
        return False


@pytest.fixture(scope="module")
def etcd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``HOST:PORT`` of a fresh single-member etcd, killed (by its PID) at the end."""
    binary = shutil.which("etcd")
    if binary is None:
        message = "the witness tests need etcd (Debian package etcd-server)"
        if os.environ.get("CI") == "true":
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    workdir = tmp_path_factory.mktemp("etcd")
    client, peer = _free_port(), _free_port()
    client_url, peer_url = f"http://127.0.0.1:{client}", f"http://127.0.0.1:{peer}"
    log = (workdir / "etcd.log").open("wb")
    process = subprocess.Popen(
        [
            binary,
            "--name=witness-test",
            f"--data-dir={workdir / 'data'}",
            f"--listen-client-urls={client_url}",
            f"--advertise-client-urls={client_url}",
            f"--listen-peer-urls={peer_url}",
            f"--initial-advertise-peer-urls={peer_url}",
            f"--initial-cluster=witness-test={peer_url}",
            # Fast election, and a minimum lease TTL of 1 s (3/2 election ticks).
            "--heartbeat-interval=10",
            "--election-timeout=100",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while not _healthy(client_url):
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"etcd did not become healthy; see {workdir / 'etcd.log'}")
            time.sleep(0.05)
        yield f"127.0.0.1:{client}"
    finally:
        process.kill()
        process.wait(timeout=10)
        log.close()
        shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture
def prefix(request: pytest.FixtureRequest) -> str:
    """A key prefix of the test's own, so tests sharing the etcd never see each other."""
    return f"/dhcpfoctl-test/{request.node.name}"


def board(etcd: str, prefix: str, watcher: str, ttl: int = 30) -> WitnessBoard:
    return WitnessBoard([etcd], prefix=prefix, watcher_id=watcher, ttl=ttl, timeout=2.0)


def observe(watcher: str, alive: bool | None, now: float, seen: float | None = None):
    return WitnessObservation(watcher, REL, PARTNER, alive, seen, now)


def raw_put(etcd: str, key: str, value: bytes) -> None:
    body = json.dumps(
        {"key": base64.b64encode(key.encode()).decode(), "value": base64.b64encode(value).decode()}
    ).encode()
    request = urllib.request.Request(f"http://{etcd}/v3/kv/put", data=body, method="POST")
    with urllib.request.urlopen(request, timeout=2) as answer:
        assert answer.status == 200


def test_a_quorum_of_other_watchers_saying_dead_is_dead(etcd: str, prefix: str) -> None:
    now = time.time()
    for name in ("nyc", "sfo"):
        board(etcd, prefix, name).publish(observe(name, False, now, seen=now - 300))
    me = board(etcd, prefix, "chi")
    me.publish(observe("chi", False, now))  # its own view is not a witness
    verdict = me.verdict(REL, PARTNER, now=now, window=60, quorum=2)
    assert verdict == WitnessVerdict(2, [], 2, 2, reachable=True)
    assert verdict.dead
    assert "2 of 2 reporting witnesses say dead (quorum 2): dead" in verdict.summary
    assert not me.verdict(REL, PARTNER, now=now, window=60, quorum=3).dead


def test_a_watcher_that_saw_the_partner_alive_vetoes(etcd: str, prefix: str) -> None:
    now = time.time()
    for name in ("a", "b", "c"):
        board(etcd, prefix, name).publish(observe(name, False, now))
    # New York reaches the partner: alive now.
    board(etcd, prefix, "nyc").publish(observe("nyc", True, now, seen=now))
    # And one that says dead but saw it alive 10 s ago, within the window.
    board(etcd, prefix, "lon").publish(observe("lon", False, now, seen=now - 10))
    verdict = board(etcd, prefix, "chi").verdict(REL, PARTNER, now=now, window=60, quorum=2)
    assert (verdict.agree_dead, verdict.saw_alive, verdict.reporting) == (3, ["lon", "nyc"], 5)
    assert not verdict.dead
    assert "vetoed: seen alive by lon, nyc" in verdict.summary


def test_observations_outside_the_window_do_not_count(etcd: str, prefix: str) -> None:
    now = time.time()
    board(etcd, prefix, "old").publish(observe("old", False, now - 120))
    board(etcd, prefix, "new").publish(observe("new", False, now))
    verdict = board(etcd, prefix, "chi").verdict(REL, PARTNER, now=now, window=60, quorum=1)
    assert (verdict.agree_dead, verdict.reporting, verdict.dead) == (1, 1, True)


def test_a_dead_watchers_view_expires_with_its_lease(etcd: str, prefix: str) -> None:
    now = time.time()
    board(etcd, prefix, "nyc", ttl=1).publish(observe("nyc", True, now, seen=now))
    me = board(etcd, prefix, "chi")
    assert me.verdict(REL, PARTNER, now=now, window=60, quorum=1).saw_alive == ["nyc"]
    deadline = time.monotonic() + 6
    while me.verdict(REL, PARTNER, now=now, window=60, quorum=1).reporting:
        assert time.monotonic() < deadline, "the 1 s observation outlived its lease"
        time.sleep(0.1)
    assert me.verdict(REL, PARTNER, now=now, window=60, quorum=1).saw_alive == []


def test_only_one_of_two_racing_watchers_claims_the_action(etcd: str, prefix: str) -> None:
    boards = [board(etcd, prefix, name) for name in ("chi", "nyc")]
    start = threading.Barrier(2)
    results: dict[str, bool] = {}

    def claim(b: WitnessBoard) -> None:
        start.wait(timeout=5)
        results[b.watcher_id] = b.claim_action(REL, "incident-1", ttl=30)

    threads = [threading.Thread(target=claim, args=(b,)) for b in boards]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    assert sorted(results.values()) == [False, True]
    winner = next(name for name, won in results.items() if won)
    loser = next(b for b in boards if b.watcher_id != winner)
    # The holder claiming again (a retry, a restart) keeps it; the other never gets it.
    assert next(b for b in boards if b.watcher_id == winner).claim_action(REL, "incident-1", 30)
    assert not loser.claim_action(REL, "incident-1", ttl=30)
    assert loser.claim_action(REL, "incident-2", ttl=30)  # another incident is another claim


def test_garbage_values_count_as_no_observation_and_are_reported(etcd: str, prefix: str) -> None:
    now = time.time()
    directory = f"{prefix}/observations/{REL}/{PARTNER}/"
    good = json.loads(encode_observation(observe("x", False, now)))
    raw_put(etcd, directory + "notjson", b"\xff{")
    raw_put(etcd, directory + "list", b"[1, 2]")
    raw_put(
        etcd,
        directory + "bool-time",
        json.dumps({**good, "watcher": "bool-time", "observed_at": True}).encode(),
    )
    raw_put(
        etcd,
        directory + "alive-1",
        json.dumps({**good, "watcher": "alive-1", "partner_alive": 1}).encode(),
    )
    # A copy of another watcher's value under a third key must not count twice.
    raw_put(etcd, directory + "copy", json.dumps({**good, "watcher": "x"}).encode())
    raw_put(etcd, directory + "deeper/key", encode_observation(observe("x", False, now)))
    raw_put(
        etcd,
        directory + "nan",
        json.dumps({**good, "watcher": "nan", "observed_at": float("nan")}).encode(),
    )
    board(etcd, prefix, "x").publish(observe("x", False, now))
    verdict = board(etcd, prefix, "chi").verdict(REL, PARTNER, now=now, window=60, quorum=1)
    assert (verdict.agree_dead, verdict.reporting, verdict.dead) == (1, 1, True)
    assert len(verdict.rejected) == 7
    assert any("'notjson': not JSON" in line for line in verdict.rejected)
    assert any("'copy': names inside differ" in line for line in verdict.rejected)
    assert "7 invalid values ignored" in verdict.summary


def test_etcd_down_is_not_reachable_and_never_dead(etcd: str, prefix: str) -> None:
    dead = f"127.0.0.1:{_free_port()}"
    down = WitnessBoard([dead], prefix=prefix, watcher_id="chi", ttl=30, timeout=0.5)
    verdict = down.verdict(REL, PARTNER, now=time.time(), window=60, quorum=1)
    assert not verdict.reachable and not verdict.dead
    assert verdict.error is not None and verdict.error.startswith(dead)
    assert verdict.summary.startswith("witnesses not reachable")
    with pytest.raises(RemoteError, match=f"^{dead}: etcd: "):
        down.claim_action(REL, "incident", ttl=30)


def test_endpoints_are_tried_in_turn(etcd: str, prefix: str) -> None:
    dead = f"127.0.0.1:{_free_port()}"
    now = time.time()
    WitnessBoard(
        [dead, f"http://{etcd}"], prefix=prefix, watcher_id="nyc", ttl=30, timeout=0.5
    ).publish(observe("nyc", False, now))
    verdict = WitnessBoard(
        [dead, etcd], prefix=prefix, watcher_id="chi", ttl=30, timeout=0.5
    ).verdict(REL, PARTNER, now=now, window=60, quorum=1)
    assert verdict.dead


def test_a_name_with_a_slash_stays_in_its_own_key(etcd: str, prefix: str) -> None:
    now = time.time()
    sneaky = WitnessObservation("a/b", REL, "dhcp2/x", False, None, now)
    board(etcd, prefix, "a/b").publish(sneaky)
    me = board(etcd, prefix, "chi")
    assert me.verdict(REL, "dhcp2/x", now=now, window=60, quorum=1).dead
    assert me.verdict(REL, PARTNER, now=now, window=60, quorum=1).reporting == 0


class OldGateway(BaseHTTPRequestHandler):
    """An etcd 3.3-like gateway: only /v3beta/; its range answer is ``self.server.body``."""

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["Content-Length"]))
        if self.server.body == b"drip":  # type: ignore[attr-defined]
            # A member that answers one byte at a time (bounded: 2 s at most).
            self.send_response(200)
            self.send_header("Content-Length", "1000")
            self.end_headers()
            for _ in range(20):
                try:
                    self.wfile.write(b" ")
                    self.wfile.flush()
                except OSError:
                    return  # the client gave up, as it should
                time.sleep(0.1)
            return
        status, body = (
            (404, b"404 page not found")
            if self.path.startswith("/v3/")
            else (200, self.server.body)
        )  # type: ignore[attr-defined]
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def old_gateway() -> Iterator[ThreadingHTTPServer]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), OldGateway)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        thread.join(timeout=5)
        server.server_close()


def test_v3beta_is_used_where_v3_is_not_served_and_garbage_answers_are_doubts(
    old_gateway: ThreadingHTTPServer,
) -> None:
    now = time.time()
    value = encode_observation(observe("nyc", False, now))
    key = "/p/observations/campus/dhcp2/nyc"
    kv = {"key": base64.b64encode(key.encode()).decode(), "value": base64.b64encode(value).decode()}
    old_gateway.body = json.dumps({"kvs": [kv]}).encode()  # type: ignore[attr-defined]
    address = f"127.0.0.1:{old_gateway.server_address[1]}"
    me = WitnessBoard([address], prefix="/p", watcher_id="chi", ttl=30, timeout=0.3)
    assert me.verdict(REL, PARTNER, now=now, window=60, quorum=1).dead
    started = time.monotonic()
    for garbage in (
        b"drip",
        b"<html>",
        b"[]",
        json.dumps({"kvs": 3}).encode(),
        json.dumps({"kvs": [], "more": True}).encode(),
    ):
        old_gateway.body = garbage  # type: ignore[attr-defined]
        verdict = me.verdict(REL, PARTNER, now=now, window=60, quorum=1)
        assert not verdict.reachable and not verdict.dead
        assert verdict.error is not None and verdict.error.startswith(address)
    assert time.monotonic() - started < 1.5  # the drip cost one timeout, not 1000 bytes' worth


def test_bad_settings_are_one_line_errors() -> None:
    with pytest.raises(LocalError, match="expected http://HOST:PORT"):
        WitnessBoard(["https://etcd:2379"], prefix="/p", watcher_id="w", ttl=5, timeout=1)
    with pytest.raises(LocalError, match="at least one etcd endpoint"):
        WitnessBoard([], prefix="/p", watcher_id="w", ttl=5, timeout=1)
    with pytest.raises(LocalError, match="quorum must be at least 1"):
        tally([], me="w", now=0, window=60, quorum=0)


observations = st.builds(
    WitnessObservation,
    watcher=st.text(min_size=1, max_size=8),
    relationship=st.just(REL),
    partner=st.just(PARTNER),
    partner_alive=st.sampled_from([True, False, None]),
    last_seen_alive=st.none() | st.floats(0, 2000),
    observed_at=st.floats(0, 2000),
)


@settings(max_examples=60, deadline=None)
@given(st.lists(observations, max_size=8), st.integers(1, 4))
def test_tally_never_calls_dead_with_a_veto_or_without_quorum(obs, quorum) -> None:
    # Round trip through the wire form first: what is counted is what was published.
    wire = [
        decode_observation(
            encode_observation(o), watcher=o.watcher, relationship=REL, partner=PARTNER
        )
        for o in obs
    ]
    assert wire == [
        WitnessObservation(
            o.watcher, REL, PARTNER, o.partner_alive, o.last_seen_alive, o.observed_at
        )
        for o in obs
    ]
    verdict = tally(wire, me="me", now=1000.0, window=100.0, quorum=quorum)
    current = [o for o in obs if o.watcher != "me" and abs(1000.0 - o.observed_at) <= 100.0]
    alive = [
        o
        for o in current
        if o.partner_alive
        or (o.last_seen_alive is not None and 1000.0 - o.last_seen_alive <= 100.0)
    ]
    assert verdict.reporting == len(current)
    assert verdict.dead == (not alive and sum(o.partner_alive is False for o in current) >= quorum)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=10,
)
VALID = json.loads(encode_observation(WitnessObservation("w", REL, PARTNER, False, 5.0, 10.0)))


@settings(max_examples=150, deadline=None)
@given(
    st.dictionaries(st.sampled_from(sorted(VALID)), json_values, max_size=3),
    st.sets(st.sampled_from(sorted(VALID)), max_size=1),
    st.binary(max_size=3),
)
def test_a_value_is_an_observation_or_a_value_error(
    changed: dict, dropped: set, tail: bytes
) -> None:
    # A valid value with some fields changed or dropped, or trailing bytes: never a crash.
    data = {k: v for k, v in {**VALID, **changed}.items() if k not in dropped}
    raw = json.dumps(data).encode() + tail
    try:
        obs = decode_observation(raw, watcher="w", relationship=REL, partner=PARTNER)
    except ValueError:
        return
    assert (obs.watcher, obs.relationship, obs.partner) == ("w", REL, PARTNER)
    assert obs.partner_alive is None or type(obs.partner_alive) is bool
    assert math.isfinite(obs.observed_at)
    assert obs.last_seen_alive is None or math.isfinite(obs.last_seen_alive)


def test_the_unchanged_value_decodes() -> None:
    raw = json.dumps(VALID).encode()
    obs = decode_observation(raw, watcher="w", relationship=REL, partner=PARTNER)
    assert obs == WitnessObservation("w", REL, PARTNER, False, 5.0, 10.0)
