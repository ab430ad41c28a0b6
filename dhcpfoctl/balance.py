"""Per-pool lease counts, dhcpd's own pool-balance arithmetic, and endurance estimates.

Pure computation over the config model and the lease model; no I/O and no clock (``as_of``
is an argument). The arithmetic follows docs/pool-balance.md (dhcpd 4.4.3 server/failover.c):

* F / B: ``free`` / ``backup`` leases without ``reserved``; addresses of a range that have
  no lease record are never-used ``free`` leases, as dhcpd creates them at start-up.
* ``lts`` = (F - B)/2 on the primary, (B - F)/2 on the secondary, truncated toward zero;
  ``thresh`` = (T·misbal + 50)/100, ``hold`` = (T·own + 50)/100, ``panic`` = -2·thresh (or
  -1) with T = F + B.
* A balance run walks this server's own queue (oldest ``ends`` first, never-used first):
  pass 1 gives leases whose last client hashes to the peer while ``lts > -hold``; pass 2
  gives never-used leases while ``lts > 0`` and used ones while ``lts > hold``.

The pass-1 hash (RFC 3074) needs each lease's client identity and the primary's bucket
map, which the secondary's config does not have; the next run's moves are therefore given
as a range: ``min`` if no lease of the queue hashes to the peer (pass 2 alone), ``max`` if
every used lease does. They are equal whenever the queue holds no used lease.

Endurance (how long a server's own free leases last) comes from the rate of *new bindings*
(:mod:`dhcpfoctl.leases.transitions`: an address becoming active, or active for another
client; never ``starts``, which a renewal moves too), counted per pool and per server in a
:class:`RateHistory` that the checks keep between runs. Without enough history there is no
estimate, and the reason says how much is missing. *Returns* are free-state leases (free,
backup, expired, released) whose ``ends`` falls in the window.

:func:`report_to_json` gives a report as the plain data ``balance --json`` and
``audit --json`` print (shape in ``cli/balance.py``).
"""

from __future__ import annotations

from array import array
from bisect import bisect_right
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Final, TypeVar

from dhcpfoctl.conf import Config, FailoverPeerConfig, Pool
from dhcpfoctl.leases import compiled_scanner
from dhcpfoctl.model import BindingState, FailoverState, LeaseDB, LeaseFlag, LeaseTable, Role
from dhcpfoctl.times import format_duration, iso_utc

if TYPE_CHECKING:
    from dhcpfoctl.leases.transitions import JournalBindings, NewBinding

#: Default endurance window; the least history and the fewest new bindings an estimate needs.
DEFAULT_WINDOW: Final = 24 * 3600
MIN_BINDINGS: Final = 10
MIN_SPAN: Final = 600
#: Rate history: bucket width and how much of it is kept (bounded state size).
BUCKET: Final = 300
HISTORY_KEEP: Final = 7 * 24 * 3600
#: A history taken from the lease file itself, as the output says it.
FROM_JOURNAL: Final = "the lease file's journal since dhcpd's last rewrite"

#: Counter slots per range, besides the per-state counts in slots 0..15 (wire values).
_STATES: Final = 16
_RESERVED, _BOOTP, _ACTIVE_ENDED = _STATES, _STATES + 1, _STATES + 2
_F_NEW, _F_USED, _B_NEW, _B_USED = _STATES + 3, _STATES + 4, _STATES + 5, _STATES + 6
_F_OLDEST, _B_OLDEST = _STATES + 7, _STATES + 8  # smallest ``ends`` among F / B leases
_RETURNS = _STATES + 9
_SLOTS: Final = _STATES + 10
_NO_ENDS: Final = 1 << 62  # "no lease in this queue" for the oldest-ends slots
#: What the compiled tally's int64 arithmetic holds (``as_of`` and the window's start).
_INT64: Final = range(-(1 << 63), 1 << 63)

_FREE, _ACTIVE, _EXPIRED, _RELEASED, _ABANDONED, _RESET, _BACKUP = (
    int(BindingState.FREE),
    int(BindingState.ACTIVE),
    int(BindingState.EXPIRED),
    int(BindingState.RELEASED),
    int(BindingState.ABANDONED),
    int(BindingState.RESET),
    int(BindingState.BACKUP),
)
_LEGACY_BOUND: Final = frozenset({int(BindingState.RESERVED), int(BindingState.BOOTP)})
_RETURNING: Final = frozenset({_FREE, _BACKUP, _EXPIRED, _RELEASED})


@dataclass(slots=True)
class Counts:
    """Lease counts of a set of addresses, by the state recorded in the lease file."""

    total: int = 0
    #: ``free`` (primary-owned) incl. addresses with no record, without ``reserved``: F.
    free: int = 0
    #: ``backup`` (secondary-owned) without ``reserved``: B.
    backup: int = 0
    active: int = 0
    expired: int = 0
    released: int = 0
    abandoned: int = 0
    reset: int = 0
    #: Leases flagged ``reserved`` or ``bootp`` (any state; not in F or B).
    reserved: int = 0
    #: Addresses of the ranges with no lease record (already counted in ``free``).
    unrecorded: int = 0
    #: ``active`` leases whose ``ends`` is at or before ``as_of`` (dhcpd will expire them).
    active_ended: int = 0
    #: F and B split into never-used (``ends`` absent) and used leases.
    free_never_used: int = 0
    backup_never_used: int = 0
    #: Smallest ``ends`` of the F / B leases (0: a never-used one); ``None``: none at all.
    oldest_free_ends: int | None = None
    oldest_backup_ends: int | None = None
    #: Free-state returns (``ends`` within the window), for the endurance in normal.
    returns: int = 0

    def add(self, other: Counts) -> None:
        for name in _SUMMED:
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.oldest_free_ends = _min_opt(self.oldest_free_ends, other.oldest_free_ends)
        self.oldest_backup_ends = _min_opt(self.oldest_backup_ends, other.oldest_backup_ends)

    @property
    def free_state(self) -> int:
        """T = F + B, the leases the balance arithmetic shares out."""
        return self.free + self.backup

    def own_free(self, role: Role) -> int:
        return self.free if role == Role.PRIMARY else self.backup

    def peer_free(self, role: Role) -> int:
        return self.backup if role == Role.PRIMARY else self.free


_SUMMED: Final = tuple(
    name
    for name in Counts.__dataclass_fields__
    if name not in ("oldest_free_ends", "oldest_backup_ends")
)


def _min_opt(a: int | None, b: int | None) -> int | None:
    if a is None:
        return b
    if b is None:
        return a
    return min(a, b)


def percent_of(total: int, percent: float) -> int:
    """``percent`` % of ``total`` as dhcpd computes it: integer, rounded half up."""
    return int((total * percent + 50) // 100)


def plain_number(value: float) -> str:
    """``value`` in full, without exponent: ``:g`` would print 1048576 as 1.04858e+06."""
    if float(value).is_integer():
        return str(int(value))
    return repr(float(value))


def _trunc_half(value: int) -> int:
    """C's ``value / 2`` for ints: truncation toward zero."""
    return value // 2 if value >= 0 else -((-value) // 2)


@dataclass(frozen=True, slots=True)
class RunOutcome:
    """State of a pool after one balance run in a given pass-1 scenario."""

    moved: int
    free: int
    backup: int
    lts: int
    imbalanced: bool


@dataclass(frozen=True, slots=True)
class BalanceView:
    """dhcpd's balance arithmetic for one pool as one role (primary or secondary) sees it."""

    role: Role
    total: int  # N: every lease of the pool
    free: int  # F
    backup: int  # B
    lts: int
    thresh: int
    hold: int
    panic: int
    #: The timer run would send POOLREQ (lts < panic): this server is short.
    poolreq: bool
    #: Next run if no lease of the queue hashes to the peer / if every used one does.
    next_min: RunOutcome
    next_max: RunOutcome
    #: Seconds until dhcpd's next scheduled run, before min-balance and the random 0-4 s.
    next_run_in: int

    @property
    def exact(self) -> bool:
        return self.next_min == self.next_max

    @property
    def imbalanced(self) -> bool:
        """A run would log IMBALANCED whatever the client hashes are."""
        return self.next_min.imbalanced and self.next_max.imbalanced

    def balancing_line(self, pool_name: str, *, timer: bool = True) -> str:
        """dhcpd's ``balancing pool`` log line (without the pool pointer).

        Only the scheduled (``timer``) run requests a rebalance; the run made on entering
        normal and the one answering a POOLREQ never do.
        """
        line = (
            f"balancing pool {pool_name}  total {self.total}  free {self.free}"
            f"  backup {self.backup}  lts {self.lts}  max-own (+/-){self.hold}"
        )
        return line + ("  (requesting peer rebalance!)" if timer and self.poolreq else "")

    def balanced_line(self, pool_name: str, outcome: RunOutcome) -> str:
        word = "IMBALANCED" if outcome.imbalanced else "balanced"
        return (
            f"{word} pool {pool_name}  total {self.total}  free {outcome.free}"
            f"  backup {outcome.backup}  lts {outcome.lts}  max-misbal {self.thresh}"
        )


def balance_view(counts: Counts, peer: FailoverPeerConfig, role: Role, as_of: int) -> BalanceView:
    """The arithmetic of docs/pool-balance.md §1, §3 and §5 for ``role``."""
    f, b = counts.free, counts.backup
    t = f + b
    lts = _trunc_half(f - b) if role == Role.PRIMARY else _trunc_half(b - f)
    thresh = percent_of(t, peer.max_lease_misbalance)
    hold = percent_of(t, peer.max_lease_ownership)
    panic = -2 * thresh or -1
    own = f if role == Role.PRIMARY else b
    never_used = counts.free_never_used if role == Role.PRIMARY else counts.backup_never_used
    used = own - never_used

    def run(affinity: int) -> RunOutcome:
        # Pass 1 gives leases hashing to the peer; it stops the whole run at lts <= -hold,
        # in which case pass 2 below cannot give anything either (hold >= 0).
        moved = max(min(affinity, lts + hold), 0)
        level = lts - moved
        # Pass 2 walks the queue head first: never-used leases while lts > 0, then (only if
        # every never-used lease went) used leases while lts > hold.
        give_new = min(never_used, max(level, 0))
        level -= give_new
        give_used = 0
        if give_new == never_used:
            give_used = min(used - moved, max(level - hold, 0))
            level -= give_used
        moved += give_new + give_used
        own_after, peer_after = own - moved, (b if role == Role.PRIMARY else f) + moved
        free_after, backup_after = (
            (own_after, peer_after) if role == Role.PRIMARY else (peer_after, own_after)
        )
        return RunOutcome(moved, free_after, backup_after, level, level > thresh)

    return BalanceView(
        role=role,
        total=counts.total,
        free=f,
        backup=b,
        lts=lts,
        thresh=thresh,
        hold=hold,
        panic=panic,
        poolreq=lts < panic,
        next_min=run(0),
        next_max=run(used),
        next_run_in=_next_run_in(counts, peer, role, as_of),
    )


def _next_run_in(counts: Counts, peer: FailoverPeerConfig, role: Role, as_of: int) -> int:
    """docs/pool-balance.md §5 steps 1-4 (before the min-balance floor and the random 0-4 s)."""
    estimates = []
    for side, oldest in (
        (Role.PRIMARY, counts.oldest_free_ends),
        (Role.SECONDARY, counts.oldest_backup_ends),
    ):
        age = 0 if oldest is None else max(as_of - oldest, 0)
        estimate = percent_of(age, peer.max_lease_misbalance)
        estimates.append(estimate * 2 if side == role else estimate)
    return min(*estimates, peer.max_balance)


@dataclass(frozen=True, slots=True)
class BindingRate:
    """New bindings counted over ``span`` seconds of history, by the server that made them."""

    bindings: int
    span: int
    by_role: dict[Role, int] = field(default_factory=dict)


@dataclass
class RateHistory:
    """New bindings per pool and per server in :data:`BUCKET`-second buckets since ``since``
    (when the counting began), the last :data:`HISTORY_KEEP` seconds of it kept.

    Buckets are keyed by the time each binding began (its ``starts``), clamped into
    [``since``, now]: a partner's update that arrives late is counted when it happened.
    """

    since: int
    #: bucket start -> pool label -> [made by the primary, made by the secondary].
    buckets: dict[int, dict[str, list[int]]] = field(default_factory=dict)

    def add(self, pool: str, role: Role, at: int, now: int, count: int = 1) -> None:
        bucket = self.buckets.setdefault(self.bucket_of(at, now), {})
        bucket.setdefault(pool, [0, 0])[role == Role.SECONDARY] += count

    def bucket_of(self, at: int, now: int) -> int:
        """The start of the bucket a binding that began at ``at`` counts in."""
        moment = min(max(at, self.since), now)
        return moment - moment % BUCKET

    def prune(self, now: int) -> None:
        """Forget buckets older than :data:`HISTORY_KEEP` (the state stays small)."""
        oldest = now - HISTORY_KEEP
        for start in [b for b in self.buckets if b + BUCKET <= oldest]:
            del self.buckets[start]
        self.since = max(self.since, oldest)

    def span(self, window: int, now: int) -> int:
        """Seconds of history a rate over ``window`` at ``now`` covers."""
        return max(0, min(window, now - self.since))

    def rate(self, pools: Iterable[str], window: int, now: int) -> BindingRate:
        """New bindings in ``pools`` over the last ``window`` seconds (or the whole history,
        when shorter); a bucket counts when it overlaps that stretch."""
        span = self.span(window, now)
        start = now - span
        wanted = set(pools)
        made = [0, 0]
        for bucket_start, counts in self.buckets.items():
            if bucket_start + BUCKET <= start or bucket_start > now:
                continue
            for pool, (primary, secondary) in counts.items():
                if pool in wanted:
                    made[0] += primary
                    made[1] += secondary
        by_role = {Role.PRIMARY: made[0], Role.SECONDARY: made[1]}
        return BindingRate(made[0] + made[1], span, by_role)

    def to_json(self) -> dict[str, Any]:
        return {
            "since": self.since,
            "bucket": BUCKET,
            "buckets": [[start, counts] for start, counts in sorted(self.buckets.items())],
        }

    @classmethod
    def from_json(cls, data: object) -> RateHistory:
        """Inverse of :meth:`to_json`; ``ValueError`` on anything else (a state from elsewhere
        is never half-trusted)."""
        try:
            if not isinstance(data, dict) or data["bucket"] != BUCKET:
                raise ValueError("other bucket width")
            buckets: dict[int, dict[str, list[int]]] = {}
            for start, counts in data["buckets"]:
                buckets[_count(start)] = {
                    str(pool): [_count(primary), _count(secondary)]
                    for pool, (primary, secondary) in counts.items()
                }
            return cls(_count(data["since"]), buckets)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ValueError(f"not a rate history: {exc}") from None


def _count(value: object) -> int:
    if type(value) is not int or value < 0:
        raise ValueError(f"{value!r} is not a count")
    return value


def record_bindings(
    history: RateHistory, config: Config, bindings: Iterable[NewBinding], now: int
) -> int:
    """Add ``bindings`` (read from one server's lease file) to ``history`` by pool and by the
    server that made them; returns how many fell in a pool of ``config``."""
    ranges = sorted((r.first, r.last, pool) for pool in config.pools for r in pool.ranges)
    firsts = [first for first, _, _ in ranges]
    # Per range, worked out once (a journal holds up to millions of bindings): its last
    # address, its pool's label, and who made a binding there. The file is this server's:
    # its own bindings are its role's, the rest its partner's.
    targets: list[tuple[int, str, Role, Role]] = []
    for _, last, pool in ranges:
        peer = config.failover_peers.get(pool.failover_peer or "")
        mine = peer.role if peer is not None else Role.PRIMARY
        targets.append((last, pool.label, mine, _other(mine)))
    counted: dict[tuple[str, Role, int], int] = {}
    since = history.since
    for binding in bindings:
        address, at = binding.address, binding.at
        index = bisect_right(firsts, address) - 1
        if index < 0:
            continue
        last, label, mine, theirs = targets[index]
        if address > last:
            continue
        moment = since if at < since else now if at > now else at  # bucket_of, inlined
        key = (label, mine if binding.local else theirs, moment - moment % BUCKET)
        counted[key] = counted.get(key, 0) + 1
    for (label, maker, bucket), count in counted.items():
        history.add(label, maker, bucket, now, count)
    return sum(counted.values())


def journal_history(
    config: Config, found: JournalBindings, as_of: int, window: int = HISTORY_KEEP
) -> tuple[RateHistory, int]:
    """The rate history a journal gives at ``as_of``: its new bindings up to then, over
    the span from the journal's history start; and how many fell in a pool of ``config``.
    A history start after ``as_of`` (or none) gives an empty history of no length.

    Only the bindings a rate over ``window`` can count are kept (those of the bucket that
    straddles its start included): a large journal holds millions of older ones."""
    since = found.since if found.since is not None and found.since <= as_of else as_of
    history = RateHistory(since=since)
    oldest = as_of - window - BUCKET
    if since > oldest:  # every binding counts from ``since`` on: none is too old
        bindings = (b for b in found.bindings if b.at <= as_of)
    else:
        bindings = (b for b in found.bindings if oldest < b.at <= as_of)
    return history, record_bindings(history, config, bindings, as_of)


def _other(role: Role) -> Role:
    return Role.SECONDARY if role == Role.PRIMARY else Role.PRIMARY


@dataclass(frozen=True, slots=True)
class Endurance:
    """How long one server's own free leases last at the observed rate of new bindings.

    ``None`` durations mean "does not run out at this rate" (no drain, or too few new
    bindings to estimate one); when :attr:`enough_history` is false every estimate is
    ``None``; :attr:`reason` says why there is none.
    """

    window: int  # seconds of history used
    bindings: int
    returns: int
    #: New bindings per hour, and net drain per hour (bindings minus returns).
    rate_per_hour: float | None
    net_per_hour: float | None
    #: Seconds until the free-state leases (F + B) run out while the pair balances them.
    normal: int | None
    #: Seconds until this server's own free leases run out if it must serve every new
    #: client and nothing returns to it (communications-interrupted).
    interrupted: int | None
    enough_history: bool
    reason: str | None = None
    #: The new bindings by the server that made them.
    bindings_by_server: dict[Role, int] = field(default_factory=dict)


def endurance(
    counts: Counts, role: Role, rate: BindingRate | None, *, min_bindings: int = MIN_BINDINGS
) -> Endurance:
    """Endurance of ``role`` at the new-binding ``rate`` (``None``: no history at all)."""
    span = 0 if rate is None else rate.span
    bindings = 0 if rate is None else rate.bindings
    by_role = {} if rate is None else dict(rate.by_role)
    if span < MIN_SPAN:
        reason = (
            f"not enough history: {format_duration(span)} of {format_duration(MIN_SPAN)} needed"
        )
        return Endurance(
            span, bindings, counts.returns, None, None, None, None, False, reason, by_role
        )
    hours = span / 3600
    per_hour = bindings / hours
    net = (bindings - counts.returns) / hours
    if bindings < min_bindings:
        # A handful of new clients says nothing about a drain: no estimate, no alarm.
        reason = (
            None
            if bindings == 0
            else f"{bindings} new bindings in {format_duration(span)}: too few to estimate"
            f" (needs {min_bindings})"
        )
        return Endurance(
            span, bindings, counts.returns, per_hour, net, None, None, True, reason, by_role
        )
    normal = int(counts.free_state / net * 3600) if net > 0 else None
    interrupted = int(counts.own_free(role) / per_hour * 3600)
    return Endurance(
        span, bindings, counts.returns, per_hour, net, normal, interrupted, True, None, by_role
    )


@dataclass(slots=True)
class PoolReport:
    pool: Pool
    counts: Counts
    ranges: list[tuple[str, Counts]]
    #: Both roles' arithmetic (``None`` for a pool without failover).
    primary: BalanceView | None = None
    secondary: BalanceView | None = None
    #: "peer holds all free leases" risk, per role that is short: ``{Role.PRIMARY: msg}``.
    risks: dict[Role, str] = field(default_factory=dict)

    def view(self, role: Role) -> BalanceView | None:
        return self.primary if role == Role.PRIMARY else self.secondary


@dataclass(slots=True)
class GroupReport:
    """Sums over pools: a shared network or a failover relationship."""

    name: str
    counts: Counts
    pools: list[PoolReport]


@dataclass(slots=True)
class RelationshipReport(GroupReport):
    peer: FailoverPeerConfig | None = None
    #: This server's state from the lease file's ``failover peer … state`` record.
    my_state: FailoverState | None = None
    partner_state: FailoverState | None = None
    endurance: dict[Role, Endurance] = field(default_factory=dict)


@dataclass(slots=True)
class BalanceReport:
    as_of: int
    window: int
    #: Seconds of new-binding history the endurance estimates rest on (0: none).
    history: int
    pools: list[PoolReport]
    shared_networks: list[GroupReport]
    relationships: list[RelationshipReport]
    #: Lease records outside every range (not counted anywhere else).
    outside_ranges: int
    #: Where the new-binding history came from (the journal, or the remembered state).
    history_source: str | None = None


def compute_balance(
    config: Config,
    db: LeaseDB,
    as_of: int,
    *,
    window: int = DEFAULT_WINDOW,
    risk_free: int | None = None,
    history: RateHistory | None = None,
    history_source: str | None = None,
) -> BalanceReport:
    """Counts, balance and endurance for every pool of ``config`` over ``db`` at ``as_of``.

    ``risk_free``: a side is at risk when its own free count is at or below this while the
    other side holds free leases; default: 0 (dhcpd's "peer holds all free leases").
    ``history``: the new bindings counted so far (none: no endurance estimate);
    ``history_source``: where they were counted, as the output says it.
    """
    ranges = sorted(
        (
            (r.first, r.last, p_index)
            for p_index, pool in enumerate(config.pools)
            for r in pool.ranges
        )
    )
    firsts = [first for first, _, _ in ranges]
    span = 0 if history is None else history.span(window, as_of)
    slots, outside = _scan(db, ranges, firsts, as_of, as_of - span)
    range_counts = [
        _to_counts(acc, last - first + 1)
        for (first, last, _), acc in zip(ranges, slots, strict=True)
    ]
    by_range = {first: counts for (first, _, _), counts in zip(ranges, range_counts, strict=True)}

    pools = []
    for pool in config.pools:
        total = Counts()
        per_range = []
        for rng in pool.ranges:
            counts = by_range[rng.first]
            total.add(counts)
            per_range.append((str(rng), counts))
        report = PoolReport(pool, total, per_range)
        peer = config.failover_peers.get(pool.failover_peer or "")
        if peer is not None:
            report.primary = balance_view(total, peer, Role.PRIMARY, as_of)
            report.secondary = balance_view(total, peer, Role.SECONDARY, as_of)
            report.risks = _risks(total, risk_free or 0)
        pools.append(report)

    networks = _group(pools, lambda p: p.pool.shared_network, GroupReport)
    relationships = []
    for group in _group(pools, lambda p: p.pool.failover_peer, RelationshipReport):
        if group.name is None:
            continue
        group.peer = config.failover_peers[group.name]
        record = db.failover.get(group.name)
        if record is not None:
            group.my_state, group.partner_state = record.my_state, record.partner_state
        rate = (
            None
            if history is None
            else history.rate((p.pool.label for p in group.pools), window, as_of)
        )
        group.endurance = {role: endurance(group.counts, role, rate) for role in Role}
        relationships.append(group)
    return BalanceReport(
        as_of, window, span, pools, networks, relationships, outside, history_source
    )


def server_role(report: BalanceReport, relationship: str | None) -> Role | None:
    """This server's role in ``relationship``, from the config that was read."""
    for rel in report.relationships:
        if rel.name == relationship and rel.peer is not None:
            return rel.peer.role
    return None


def _risks(counts: Counts, threshold: int) -> dict[Role, str]:
    risks = {}
    for role in Role:
        own, peer = counts.own_free(role), counts.peer_free(role)
        if own <= threshold and peer > 0:
            if own == 0:
                risks[role] = (
                    f"{role} has no free leases of its own while its peer holds {peer}:"
                    " new clients it answers get 'peer holds all free leases'"
                )
            else:
                plural = "s" if own > 1 else ""
                risks[role] = (
                    f"{role} has only {own} free lease{plural} of its own while its peer"
                    f" holds {peer}: after {own} more new client{plural} it answers, the"
                    " next get 'peer holds all free leases'"
                )
    return risks


_G = TypeVar("_G", bound=GroupReport)


def _group(
    pools: list[PoolReport], key: Callable[[PoolReport], str | None], kind: type[_G]
) -> list[_G]:
    groups: dict[str | None, _G] = {}
    for report in pools:
        name = key(report)
        if name not in groups:
            groups[name] = kind(name, Counts(), [])
        groups[name].counts.add(report.counts)
        groups[name].pools.append(report)
    return list(groups.values())


def _scan(
    db: LeaseDB,
    ranges: list[tuple[int, int, int]],
    firsts: list[int],
    as_of: int,
    window_start: int,
) -> tuple[list[list[int]], int]:
    """One pass over the lease columns, accumulating counter slots per range.

    This is the hot loop of ``balance`` on a 1M-address file. The compiled scanner's ``tally``
    makes it when built (and ``as_of`` and the window fit its int64 columns); it hands back the
    rows without a binding state, which :func:`_count_rows` adds. Without it (or with
    ``DHCPFOCTL_PURE_PYTHON=1``) :func:`_count_rows` takes every row: the fallback and oracle.
    """
    table = db.leases
    lasts = [last for _, last, _ in ranges]
    columns = (table.addresses, table.state, table.flags, table.ends)
    module = compiled_scanner()
    if module is None or window_start not in _INT64 or as_of not in _INT64:
        slots = [[0] * _SLOTS for _ in ranges]
        for acc in slots:
            acc[_F_OLDEST] = acc[_B_OLDEST] = _NO_ENDS
        rows = zip(range(len(table)), *columns, strict=True)
        return slots, _count_rows(table, firsts, lasts, slots, rows, as_of, window_start)
    slots, outside, fallback = module.tally(
        *columns, array("q", firsts), array("q", lasts), as_of, window_start
    )
    if fallback:
        rows = [(row, *[column[row] for column in columns]) for row in fallback]
        _count_rows(table, firsts, lasts, slots, rows, as_of, window_start)
    return slots, outside


def _count_rows(
    table: LeaseTable,
    firsts: list[int],
    lasts: list[int],
    slots: list[list[int]],
    rows: Iterable[tuple[int, int, int, int, int]],
    as_of: int,
    window_start: int,
) -> int:
    """Adds ``rows`` (row, address, state, flags, ends) to the slots of their ranges; returns
    how many are outside every range. Columns are zipped so that no Lease object is built
    except for the rare record without a ``binding state``."""
    outside = 0
    reserved_flags = int(LeaseFlag.RESERVED | LeaseFlag.BOOTP)
    # Module constants bound to locals: this loop runs once per lease.
    bisect, returning = bisect_right, _RETURNING
    free, backup, active, unknown = _FREE, _BACKUP, _ACTIVE, _STATES
    for row, address, state, flags, ends in rows:
        index = bisect(firsts, address) - 1
        if index < 0 or address > lasts[index]:
            outside += 1
            continue
        acc = slots[index]
        if state == 0 or state >= unknown:
            # No ``binding state`` line (or an unknown one): dhcpd's own reading of it.
            state = int(table.lease_at(row).effective_state(as_of))
            state = state if state < unknown else active
        acc[state] += 1
        if flags & reserved_flags:
            acc[_RESERVED if flags & LeaseFlag.RESERVED else _BOOTP] += 1
        elif state == free:
            acc[_F_USED if ends else _F_NEW] += 1
            if ends < acc[_F_OLDEST]:
                acc[_F_OLDEST] = ends
        elif state == backup:
            acc[_B_USED if ends else _B_NEW] += 1
            if ends < acc[_B_OLDEST]:
                acc[_B_OLDEST] = ends
        if state == active and ends and ends <= as_of:
            acc[_ACTIVE_ENDED] += 1
        if state in returning and window_start < ends <= as_of:
            acc[_RETURNS] += 1
    return outside


def _to_counts(acc: list[int], size: int) -> Counts:
    legacy = sum(acc[state] for state in _LEGACY_BOUND)
    recorded = sum(acc[:_STATES])
    unrecorded = size - recorded
    return Counts(
        total=size,
        free=acc[_F_NEW] + acc[_F_USED] + unrecorded,
        backup=acc[_B_NEW] + acc[_B_USED],
        active=acc[_ACTIVE] + legacy,
        expired=acc[_EXPIRED],
        released=acc[_RELEASED],
        abandoned=acc[_ABANDONED],
        reset=acc[_RESET],
        reserved=acc[_RESERVED] + acc[_BOOTP],
        unrecorded=unrecorded,
        active_ended=acc[_ACTIVE_ENDED],
        free_never_used=acc[_F_NEW] + unrecorded,
        backup_never_used=acc[_B_NEW],
        oldest_free_ends=0 if unrecorded else _opt_ends(acc[_F_OLDEST]),
        oldest_backup_ends=_opt_ends(acc[_B_OLDEST]),
        returns=acc[_RETURNS],
    )


def _opt_ends(value: int) -> int | None:
    return None if value == _NO_ENDS else value


# -- JSON (the shape ``balance --json`` and ``audit --json`` print; see cli/balance.py) --


def counts_to_json(counts: Counts) -> dict[str, Any]:
    return asdict(counts)


def view_to_json(view: BalanceView, pool_name: str) -> dict[str, Any]:
    outcomes = {"min": view.next_min, "max": view.next_max}
    return {
        "role": view.role,
        "total": view.total,
        "free": view.free,
        "backup": view.backup,
        "lts": view.lts,
        "thresh": view.thresh,
        "hold": view.hold,
        "panic": view.panic,
        "poolreq": view.poolreq,
        "imbalanced": view.imbalanced,
        "exact": view.exact,
        "next_run_in": view.next_run_in,
        "next_run": {
            name: {
                "moved": o.moved,
                "free": o.free,
                "backup": o.backup,
                "lts": o.lts,
                "imbalanced": o.imbalanced,
                "log": view.balanced_line(pool_name, o),
            }
            for name, o in outcomes.items()
        },
        "log": view.balancing_line(pool_name),
    }


def endurance_to_json(value: Endurance) -> dict[str, Any]:
    return asdict(value)


def pool_to_json(pool: PoolReport, role: Role | None) -> dict[str, Any]:
    name = pool.pool.shared_network
    views = {r: view_to_json(v, name) for r in Role if (v := pool.view(r)) is not None}
    return {
        "name": pool.pool.label,
        "shared_network": name,
        "subnet": str(pool.pool.subnet) if pool.pool.subnet else None,
        "failover_peer": pool.pool.failover_peer,
        "source": pool.pool.source,
        "counts": counts_to_json(pool.counts),
        "ranges": [{"range": label, **counts_to_json(c)} for label, c in pool.ranges],
        "role": role,
        "balance": views.get(role) if role else None,
        "balance_by_role": views,
        "risks": [{"role": r, "message": m} for r, m in pool.risks.items()],
    }


def report_to_json(report: BalanceReport) -> dict[str, Any]:
    return {
        "as_of": report.as_of,
        "as_of_iso": iso_utc(report.as_of),
        "window": report.window,
        "history": report.history,
        "history_source": report.history_source,
        "outside_ranges": report.outside_ranges,
        "relationships": [
            {
                "name": rel.name,
                "role": rel.peer.role if rel.peer else None,
                "my_state": rel.my_state.keyword if rel.my_state is not None else None,
                "partner_state": (
                    rel.partner_state.keyword if rel.partner_state is not None else None
                ),
                "counts": counts_to_json(rel.counts),
                "endurance": {r: endurance_to_json(e) for r, e in rel.endurance.items()},
                "pools": [p.pool.label for p in rel.pools],
            }
            for rel in report.relationships
        ],
        "shared_networks": [
            {"name": net.name, "counts": counts_to_json(net.counts)}
            for net in report.shared_networks
        ],
        "pools": [pool_to_json(p, server_role(report, p.pool.failover_peer)) for p in report.pools],
    }
