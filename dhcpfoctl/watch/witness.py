"""Witnesses: watchers on other vantage points share what they see of a partner, through etcd.

A watcher that finds its partner silent cannot tell a dead partner from a cut link; watchers
elsewhere can. Each publishes its latest observation of each (relationship, partner) under
an etcd lease with a TTL, so the view of a watcher that died expires with it; before acting,
a watcher asks for the :meth:`WitnessBoard.verdict` of the others, and then claims the
action with a create-if-absent transaction, so that only one watcher acts per incident.
etcd does the consensus; nothing here is home-made consensus.

The transport is etcd v3's JSON gateway (gRPC-gateway: POST JSON, keys and values base64)
over ``http.client``, so no client library is needed. etcd 3.4 (Debian 12's etcd-server)
serves it under both ``/v3/`` and ``/v3beta/``, 3.5 and later only ``/v3/``, 3.3 only
``/v3beta/``: ``/v3/`` is tried first and ``/v3beta/`` on a 404, once per endpoint.

Everything read from etcd is untrusted: another watcher's value may be garbage (a bug, an
older version, someone else's key). A value that does not validate counts as no observation
and is named in :attr:`WitnessVerdict.rejected`. Any failure to talk to etcd is a
:class:`~dhcpfoctl.errors.RemoteError` naming the endpoint; for :meth:`WitnessBoard.verdict`
it is the verdict "not reachable", which never allows an action (safety first).

Layout under ``prefix`` (each name component percent-encoded, so a ``/`` in a name cannot
move a key elsewhere)::

    PREFIX/observations/RELATIONSHIP/PARTNER/WATCHER   one watcher's latest view (leased)
    PREFIX/claims/RELATIONSHIP/ACTION_ID              who acts on an incident (leased)
"""

from __future__ import annotations

import base64
import http.client
import json
import math
import time
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any
from urllib.parse import quote, unquote, urlsplit

from dhcpfoctl.errors import LocalError, RemoteError

#: Gateway paths in the order tried (see the module docstring).
GATEWAY_PREFIXES = ("/v3/", "/v3beta/")
#: Schema version of an observation value; a value of another version is rejected.
OBSERVATION_VERSION = 1
#: At most this many observations are read for one (relationship, partner); more is a doubt.
RANGE_LIMIT = 1000
#: A gateway answer larger than this is refused (a range of RANGE_LIMIT small values is far less).
MAX_RESPONSE_BYTES = 4 << 20

_OBSERVATION_FIELDS = {
    "version",
    "watcher",
    "relationship",
    "partner",
    "partner_alive",
    "last_seen_alive",
    "observed_at",
}


@dataclass(frozen=True)
class WitnessObservation:
    """What one watcher saw of a partner: alive, dead (True/False) or unknown (None)."""

    watcher: str
    relationship: str
    partner: str
    partner_alive: bool | None
    #: The last time (epoch seconds) this watcher saw the partner alive, if ever.
    last_seen_alive: float | None
    observed_at: float


@dataclass(frozen=True)
class WitnessVerdict:
    """The other watchers' view of one partner, counted for a decision."""

    #: Watchers whose current observation says dead and who saw no sign of life in the window.
    agree_dead: int
    #: Watchers that saw the partner alive within the window: each one vetoes.
    saw_alive: list[str]
    #: Watchers with a current observation (dead, alive or unknown).
    reporting: int
    quorum: int
    #: etcd answered; when False nothing else here means anything and no action is allowed.
    reachable: bool
    #: One line per value from etcd that was not a valid observation (counted as none).
    rejected: list[str] = field(default_factory=list)
    #: Why etcd was not reachable (the RemoteError's message).
    error: str | None = None

    @property
    def dead(self) -> bool:
        """The witnesses allow partner-down: a quorum agrees it is dead and none saw it alive."""
        return self.reachable and self.agree_dead >= self.quorum and not self.saw_alive

    @property
    def summary(self) -> str:
        """One line for the log: the count and what it means."""
        if not self.reachable:
            return f"witnesses not reachable ({self.error}): no action"
        counted = (
            f"{self.agree_dead} of {self.reporting} reporting witnesses say dead "
            f"(quorum {self.quorum})"
        )
        if self.saw_alive:
            outcome = "vetoed: seen alive by " + ", ".join(self.saw_alive)
        elif self.dead:
            outcome = "dead"
        else:
            outcome = "no quorum"
        rejected = f"; {len(self.rejected)} invalid values ignored" if self.rejected else ""
        return f"{counted}: {outcome}{rejected}"


# --- the pure part: keys, values, the count ---------------------------------------------


def _component(name: str) -> str:
    return quote(name, safe="")


def observations_dir(prefix: str, relationship: str, partner: str) -> str:
    """The key prefix under which every watcher's observation of ``partner`` lives."""
    return f"{prefix}/observations/{_component(relationship)}/{_component(partner)}/"


def claim_key(prefix: str, relationship: str, action_id: str) -> str:
    return f"{prefix}/claims/{_component(relationship)}/{_component(action_id)}"


def encode_observation(obs: WitnessObservation) -> bytes:
    return json.dumps({"version": OBSERVATION_VERSION, **asdict(obs)}).encode()


def _number(value: object) -> bool:
    """A finite JSON number (not a boolean, not beyond a float's range)."""
    if not isinstance(value, int | float) or isinstance(value, bool):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:
        return False


def decode_observation(
    value: bytes, *, watcher: str, relationship: str, partner: str
) -> WitnessObservation:
    """The observation in ``value``, stored under ``watcher``'s key; ``ValueError`` saying why not.

    Every field is checked, and the names inside must be those of the key: a value copied
    under another watcher's key must not count twice.
    """
    try:
        data = json.loads(value)
    except (UnicodeDecodeError, ValueError):
        raise ValueError("not JSON") from None
    if not isinstance(data, dict):
        raise ValueError("not a JSON object")
    if set(data) != _OBSERVATION_FIELDS:
        raise ValueError("fields are not those of an observation")
    if data["version"] != OBSERVATION_VERSION or isinstance(data["version"], bool):
        raise ValueError("unknown version")
    names = (data["watcher"], data["relationship"], data["partner"])
    if names != (watcher, relationship, partner):
        raise ValueError("names inside differ from the key")
    if data["partner_alive"] is not None and not isinstance(data["partner_alive"], bool):
        raise ValueError("partner_alive is not true, false or null")
    if not _number(data["observed_at"]):
        raise ValueError("observed_at is not a time")
    if data["last_seen_alive"] is not None and not _number(data["last_seen_alive"]):
        raise ValueError("last_seen_alive is not a time")
    return WitnessObservation(
        watcher=watcher,
        relationship=relationship,
        partner=partner,
        partner_alive=data["partner_alive"],
        last_seen_alive=None if data["last_seen_alive"] is None else float(data["last_seen_alive"]),
        observed_at=float(data["observed_at"]),
    )


def tally(
    observations: Iterable[WitnessObservation],
    *,
    me: str,
    now: float,
    window: float,
    quorum: int,
    rejected: Sequence[str] = (),
) -> WitnessVerdict:
    """Count the other watchers' current observations (pure: the decision's witness part).

    An observation is current when made within ``window`` of ``now`` (either side: clocks
    differ). A watcher vetoes when it says alive, or saw the partner alive within the window
    even if it now says dead (it may have seen the death only just before us, or be wrong).
    """
    if quorum < 1:
        raise LocalError(f"witness quorum must be at least 1, not {quorum}")
    agree_dead = reporting = 0
    saw_alive: list[str] = []
    for obs in observations:
        if obs.watcher == me or abs(now - obs.observed_at) > window:
            continue
        reporting += 1
        seen_recently = obs.last_seen_alive is not None and now - obs.last_seen_alive <= window
        if obs.partner_alive is True or seen_recently:
            saw_alive.append(obs.watcher)
        elif obs.partner_alive is False:
            agree_dead += 1
    return WitnessVerdict(
        agree_dead=agree_dead,
        saw_alive=sorted(saw_alive),
        reporting=reporting,
        quorum=quorum,
        reachable=True,
        rejected=list(rejected),
    )


# --- the I/O glue: etcd's JSON gateway ----------------------------------------------------


def _b64(text: str | bytes) -> str:
    raw = text.encode() if isinstance(text, str) else text
    return base64.b64encode(raw).decode()


def _unb64(value: object) -> bytes:
    if not isinstance(value, str):
        raise ValueError("not a base64 string")
    return base64.b64decode(value, validate=True)


def _range_end(key: str) -> str:
    """The end of the range of every key starting with ``key`` (its last byte plus one)."""
    raw = key.encode()
    return _b64(raw[:-1] + bytes([raw[-1] + 1]))


def _observation_from_kv(
    kv: object, directory: str, relationship: str, partner: str
) -> WitnessObservation:
    """The observation in one key-value of a range answer; ``ValueError`` naming what is wrong."""
    if not isinstance(kv, dict):
        raise ValueError("a range entry that is not a key-value object")
    key = _unb64(kv.get("key")).decode()
    name = key.removeprefix(directory)
    if not key.startswith(directory) or not name or "/" in name:
        raise ValueError(f"key {key!r} is not an observation key")
    watcher = unquote(name)
    try:
        return decode_observation(
            _unb64(kv.get("value", "")), watcher=watcher, relationship=relationship, partner=partner
        )
    except ValueError as exc:
        raise ValueError(f"watcher {watcher!r}: {exc}") from None


class _Endpoint:
    """One etcd member's gateway: POST a JSON body, get the JSON answer or a RemoteError."""

    def __init__(self, text: str) -> None:
        url = urlsplit(text if "://" in text else f"http://{text}")
        if url.scheme != "http" or not url.hostname or url.path not in ("", "/"):
            raise LocalError(f"etcd endpoint {text!r}: expected http://HOST:PORT or HOST:PORT")
        try:
            port = url.port or 2379
        except ValueError:
            raise LocalError(f"etcd endpoint {text!r}: bad port") from None
        self.host = url.hostname
        self.port = port
        self.name = f"{url.hostname}:{port}"
        self._prefix: str | None = None

    def call(self, method: str, body: dict[str, Any], timeout: float) -> dict[str, Any]:
        prefixes = (self._prefix,) if self._prefix else GATEWAY_PREFIXES
        for prefix in prefixes:
            status, data = self._post(prefix + method, json.dumps(body).encode(), timeout)
            if status == 404 and self._prefix is None:
                continue  # this etcd does not serve that gateway version: try the next one
            self._prefix = prefix
            try:
                answer = json.loads(data)
            except (UnicodeDecodeError, ValueError):
                raise RemoteError(self.name, f"etcd {method}: HTTP {status}, not JSON") from None
            if not isinstance(answer, dict):
                raise RemoteError(self.name, f"etcd {method}: HTTP {status}, not a JSON object")
            if status != 200:
                message = answer.get("message") or answer.get("error")
                raise RemoteError(self.name, f"etcd {method}: HTTP {status}: {message!s:.200}")
            return answer
        raise RemoteError(self.name, "no etcd v3 JSON gateway (/v3/, /v3beta/) here")

    def _post(self, path: str, body: bytes, timeout: float) -> tuple[int, bytes]:
        # Every socket operation has the timeout, and the whole answer the deadline, so a
        # member that answers one byte at a time cannot hold the watcher.
        deadline = time.monotonic() + timeout
        connection = http.client.HTTPConnection(self.host, self.port, timeout=timeout)
        try:
            connection.request("POST", path, body, {"Content-Type": "application/json"})
            response = connection.getresponse()
            chunks: list[bytes] = []
            size = 0
            while chunk := response.read1(65536):  # what arrived, not a full 64 KiB
                size += len(chunk)
                if size > MAX_RESPONSE_BYTES:
                    raise RemoteError(self.name, f"etcd answer over {MAX_RESPONSE_BYTES} bytes")
                if time.monotonic() > deadline:
                    raise RemoteError(self.name, f"etcd answer not complete in {timeout:g} s")
                chunks.append(chunk)
            return response.status, b"".join(chunks)
        except (OSError, http.client.HTTPException) as exc:
            reason = (
                "timed out" if isinstance(exc, TimeoutError) else str(exc) or type(exc).__name__
            )
            raise RemoteError(self.name, f"etcd: {reason}") from None
        finally:
            connection.close()


class WitnessBoard:
    """This watcher's seat at the etcd board shared by every watcher of the same pairs.

    ``endpoints`` are etcd members (``HOST:PORT`` or ``http://HOST:PORT``), tried in turn
    from the last one that answered, each within ``timeout`` seconds; ``ttl`` (seconds) is
    the life of a published observation: publish more often than that.
    """

    def __init__(
        self,
        endpoints: Sequence[str],
        *,
        prefix: str,
        watcher_id: str,
        ttl: int,
        timeout: float,
    ) -> None:
        if not endpoints:
            raise LocalError("witnesses need at least one etcd endpoint")
        if not watcher_id:
            raise LocalError("a witness needs a non-empty watcher id")
        if ttl < 1:
            raise LocalError(f"witness TTL must be at least 1 s, not {ttl}")
        self._endpoints = [_Endpoint(text) for text in endpoints]
        self._prefix = prefix.rstrip("/")
        self.watcher_id = watcher_id
        self._ttl = ttl
        self._timeout = timeout
        self._first = 0

    def _call(self, method: str, body: dict[str, Any]) -> dict[str, Any]:
        errors: list[RemoteError] = []
        count = len(self._endpoints)
        for step in range(count):
            index = (self._first + step) % count
            try:
                answer = self._endpoints[index].call(method, body, self._timeout)
            except RemoteError as exc:
                errors.append(exc)
                continue
            self._first = index
            return answer
        if count == 1:
            raise errors[0]
        names = ", ".join(endpoint.name for endpoint in self._endpoints)
        raise RemoteError(names, "; ".join(str(exc) for exc in errors))

    def _grant(self, ttl: int) -> str:
        answer = self._call("lease/grant", {"TTL": ttl})
        lease = answer.get("ID")
        if not isinstance(lease, str) or not lease.isdigit():
            raise RemoteError(self._endpoints[self._first].name, "etcd lease/grant: no lease ID")
        return lease

    def publish(self, obs: WitnessObservation) -> None:
        """Put this watcher's observation under a new lease of ``ttl`` seconds.

        Each put takes a fresh lease, so the value lives ``ttl`` from now; the lease it
        replaces then holds no key and expires on its own.
        """
        if obs.watcher != self.watcher_id:
            raise ValueError(
                f"observation of watcher {obs.watcher!r} published by {self.watcher_id!r}"
            )
        key = observations_dir(self._prefix, obs.relationship, obs.partner) + _component(
            obs.watcher
        )
        lease = self._grant(self._ttl)
        self._call(
            "kv/put", {"key": _b64(key), "value": _b64(encode_observation(obs)), "lease": lease}
        )

    def verdict(
        self, relationship: str, partner: str, now: float, window: float, quorum: int
    ) -> WitnessVerdict:
        """The other watchers' live observations of ``partner``; "not reachable" on any error."""
        directory = observations_dir(self._prefix, relationship, partner)
        body = {"key": _b64(directory), "range_end": _range_end(directory), "limit": RANGE_LIMIT}
        try:
            answer = self._call("kv/range", body)
            kvs = answer.get("kvs", [])
            if not isinstance(kvs, list):
                raise RemoteError(self._endpoints[self._first].name, "etcd kv/range: no key list")
            if answer.get("more"):
                # Unseen observations may hold a veto: not knowing them is a doubt.
                raise RemoteError(
                    self._endpoints[self._first].name,
                    f"more than {RANGE_LIMIT} observations of {partner!r}",
                )
        except RemoteError as exc:
            return WitnessVerdict(0, [], 0, quorum, reachable=False, error=str(exc))
        observations: list[WitnessObservation] = []
        rejected: list[str] = []
        for kv in kvs:
            try:
                observations.append(_observation_from_kv(kv, directory, relationship, partner))
            except ValueError as exc:
                rejected.append(str(exc))
        return tally(
            observations,
            me=self.watcher_id,
            now=now,
            window=window,
            quorum=quorum,
            rejected=rejected,
        )

    def claim_action(self, relationship: str, action_id: str, ttl: int) -> bool:
        """True when this watcher may act on ``action_id``: it created the claim, or holds it.

        A transaction creates the claim only if the key has never been created (create
        revision 0), so of watchers racing, exactly one wins. The same watcher claiming again
        (a retry after a timeout that did commit, a restart) gets True again: its own journal,
        not the board, keeps it from acting twice. The claim lives ``ttl`` seconds.
        """
        key = claim_key(self._prefix, relationship, action_id)
        value = json.dumps({"watcher": self.watcher_id, "action": action_id}).encode()
        lease = self._grant(ttl)
        answer = self._call(
            "kv/txn",
            {
                "compare": [
                    {
                        "key": _b64(key),
                        "target": "CREATE",
                        "result": "EQUAL",
                        "create_revision": "0",
                    }
                ],
                "success": [
                    {"request_put": {"key": _b64(key), "value": _b64(value), "lease": lease}}
                ],
                "failure": [{"request_range": {"key": _b64(key)}}],
            },
        )
        if answer.get("succeeded") is True:
            return True
        try:
            kvs = answer["responses"][0]["response_range"].get("kvs", [])
            holder = json.loads(_unb64(kvs[0]["value"])).get("watcher") if kvs else None
        except (KeyError, IndexError, TypeError, AttributeError, ValueError):
            holder = None  # an unreadable claim is someone else's: not ours to act on
        return holder == self.watcher_id
