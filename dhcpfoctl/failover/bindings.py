"""Lease rules of dhcpd 4.4 failover: what a BNDUPD says, and what a receiver accepts.

Pure functions over the one lease model (:class:`dhcpfoctl.model.Lease`); the connection
(:mod:`dhcpfoctl.failover.connection`) applies them. Sources, all in dhcpd 4.4.3:
``server/failover.c`` (``dhcp_failover_send_bind_update``,
``dhcp_failover_process_bind_update``, ``failover_lease_is_better``,
``normal_binding_state_transition_check``, ``conflict_binding_state_transition_check``,
``lease_mine_to_reallocate``) and ``server/dhcp.c`` (``ack_lease``: the MCLT cap); see
docs/failover-protocol.md §7 and §8.6.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Final

from dhcpfoctl.failover.wire import IpFlag, Message, OptionCode, OptionValue, RejectReason
from dhcpfoctl.model import (
    NEVER,
    BindingState,
    FailoverState,
    HardwareType,
    Lease,
    LeaseExtras,
    LeaseFlag,
    Role,
)

B = BindingState

__all__ = [
    "Refusal",
    "apply_update",
    "granted_lease_time",
    "is_better_than_incoming",
    "may_allocate",
    "never_used",
    "own_free_state",
    "update_options",
]

U32_MAX: Final = 0xFFFF_FFFF
#: dhcpd's allowance for clock skew plus a fudge factor when a peer expires a lease.
EXPIRY_FUDGE: Final = 65
#: States a received update applies as FREE (the receiver needs no acknowledgement).
_RETURNS_TO_FREE: Final = frozenset({B.EXPIRED, B.RELEASED, B.RESET})
_NEEDS_CHADDR: Final = frozenset({B.ACTIVE, B.EXPIRED, B.RELEASED})
_KEEPS_UID_WITHOUT_OPTION: Final = frozenset({B.FREE, B.BACKUP, B.RESET})


def own_free_state(role: Role) -> BindingState:
    """The free state a server may allocate from without asking: FREE or BACKUP."""
    return B.FREE if role is Role.PRIMARY else B.BACKUP


def never_used(address: str) -> Lease:
    """The lease dhcpd creates for an address of a range that has no lease record."""
    return Lease(address=address, binding_state=B.FREE)


def _u32(value: int | None) -> int:
    """A lease time on the wire: absent is 0, ``never`` (and beyond 2106) saturates."""
    if value is None:
        return 0
    return U32_MAX if value == NEVER else max(0, min(value, U32_MAX))


def _state(lease: Lease) -> BindingState:
    state = lease.binding_state or B.FREE
    return B.ACTIVE if state in (B.RESERVED, B.BOOTP) else state


def update_options(lease: Lease, role: Role) -> dict[OptionCode, OptionValue]:
    """The option values of a BNDUPD for ``lease`` as ``role`` sends it (§7.1)."""
    state = _state(lease)
    if lease.reserved and state is own_free_state(role):
        # dhcp_failover_send_bind_update: a reserved lease in the sender's own free state
        # is announced in the partner's free state (flagged RESERVED).
        state = own_free_state(role.other)
    chaddr = None
    if lease.hardware_address is not None:
        chaddr = bytes([int(lease.hardware_type or HardwareType.ETHERNET)])
        chaddr += lease.hardware_address
    ip_flags = int(lease.flags & (LeaseFlag.RESERVED | LeaseFlag.BOOTP))
    return {
        OptionCode.ASSIGNED_IP_ADDRESS: lease.address,
        OptionCode.BINDING_STATUS: int(state),
        OptionCode.CLIENT_IDENTIFIER: lease.uid,
        OptionCode.CLIENT_HARDWARE_ADDRESS: chaddr,
        OptionCode.LEASE_EXPIRATION_TIME: _u32(lease.ends),
        OptionCode.POTENTIAL_EXPIRATION_TIME: _u32(lease.tstp),
        OptionCode.START_TIME_OF_STATE: _u32(lease.starts),
        OptionCode.CLIENT_LAST_TRANSACTION_TIME: _u32(lease.cltt) or None,
        OptionCode.IP_FLAGS: ip_flags or None,
    }


@dataclass(frozen=True, slots=True)
class Refusal:
    """A BNDUPD the receiver refuses: the BNDACK's reject-reason and message."""

    reason: RejectReason
    message: str


def is_better_than_incoming(
    ours: BindingState, our_cltt: int | None, update: Message, role: Role
) -> bool:
    """Dueling updates: does our unacknowledged update beat the partner's? (§7.2)."""
    theirs = BindingState(int(update.get(OptionCode.BINDING_STATUS, 0) or 0))
    their_cltt = int(update.get(OptionCode.CLIENT_LAST_TRANSACTION_TIME, 0) or 0)
    if ours is B.ACTIVE:
        if theirs is B.ACTIVE:
            if their_cltt != (our_cltt or 0):
                return their_cltt < (our_cltt or 0)
            return role is Role.PRIMARY
        if theirs is B.EXPIRED:
            return False
    if theirs is B.ACTIVE:
        return False
    return role is Role.PRIMARY


def _transition_allowed(
    current: Lease,
    requested: BindingState,
    potential_expiry: int,
    role: Role,
    own_state: FailoverState,
    now: int,
) -> bool:
    """normal_/conflict_binding_state_transition_check for the receiver ``role``."""
    have = _state(current)
    if requested is have:
        return True
    active_expiry_ok = requested is not B.EXPIRED or (current.ends or 0) - EXPIRY_FUDGE <= now
    if own_state is not FailoverState.NORMAL:
        if have is not B.ACTIVE:
            return True
        return requested not in (B.FREE, B.BACKUP) and active_expiry_ok
    if have in (B.FREE, B.ABANDONED, B.RELEASED):
        return True
    if have is B.ACTIVE:
        if role is Role.PRIMARY:  # the secondary may only release or abandon it
            return requested in (B.RELEASED, B.ABANDONED)
        if requested in (B.FREE, B.BACKUP):
            return potential_expiry <= now
        return active_expiry_ok
    if have in (B.EXPIRED, B.RESET):
        return requested not in (B.FREE, B.BACKUP) or potential_expiry <= now
    return True  # BACKUP: either side may move it (the code falls through to accept)


def apply_update(
    current: Lease,
    update: Message,
    *,
    role: Role,
    own_state: FailoverState,
    now: int,
    in_pool: bool,
) -> Lease | Refusal:
    """The lease after accepting the partner's BNDUPD ``update``, or why it is refused.

    ``current`` is the receiver's lease of the address (the never-used lease when it has
    no record); ``in_pool``: the address is in a pool of this relationship.
    """
    address = update.get(OptionCode.ASSIGNED_IP_ADDRESS)
    status = update.get(OptionCode.BINDING_STATUS)
    if address is None or status is None:
        return Refusal(RejectReason.MISSING_BINDINFO, "binding update lacks required options")
    if not in_pool:
        return Refusal(RejectReason.ILLEGAL_IP_ADDR, "unknown IP address")
    requested = BindingState(int(status))
    chaddr = update.get(OptionCode.CLIENT_HARDWARE_ADDRESS)
    uid = update.get(OptionCode.CLIENT_IDENTIFIER)
    hardware_type, hardware_address = current.hardware_type, current.hardware_address
    if isinstance(chaddr, bytes):
        if requested is B.ABANDONED:
            return Refusal(RejectReason.MISC, "BNDUPD to ABANDONED with a CHADDR")
        if len(chaddr) > 17:  # dhcpd's hardware buffer: type byte + 16
            return Refusal(RejectReason.MISC, "chaddr too long")
        hardware_type = HardwareType(chaddr[0]) if chaddr else None
        hardware_address = chaddr[1:] if chaddr else None
    elif requested in _NEEDS_CHADDR:
        return Refusal(RejectReason.MISSING_BINDINFO, "BNDUPD without CHADDR")
    elif requested is B.ABANDONED:
        hardware_type = hardware_address = None
    new_uid = current.uid
    if isinstance(uid, bytes):
        if requested is B.ABANDONED:
            return Refusal(RejectReason.MISC, "BNDUPD to ABANDONED with client-id")
        new_uid = uid
    elif requested not in _KEEPS_UID_WITHOUT_OPTION:
        new_uid = None  # no option means the client sent none: forget the old one
    flags = current.flags & ~(LeaseFlag.RESERVED | LeaseFlag.BOOTP)
    ip_flags = IpFlag(int(update.get(OptionCode.IP_FLAGS, 0) or 0))
    holds_free = _state(current) is own_free_state(role)
    if ip_flags & IpFlag.RESERVED:
        if holds_free and not current.reserved:
            return Refusal(RejectReason.IP_NOT_RESERVED, "Address is not reserved.")
        flags |= LeaseFlag.RESERVED
    if ip_flags & IpFlag.BOOTP:
        if holds_free and not current.bootp:
            return Refusal(RejectReason.MISC, "Address is not allocated to BOOTP.")
        flags |= LeaseFlag.BOOTP
    potential_expiry = update.get(OptionCode.POTENTIAL_EXPIRATION_TIME)
    if not _transition_allowed(
        current, requested, int(potential_expiry or 0), role, own_state, now
    ):
        return Refusal(
            RejectReason.FATAL_CONFLICT,
            f"{current.address}: invalid state transition: "
            f"{_state(current).keyword} to {requested.keyword}",
        )
    applied = B.FREE if requested in _RETURNS_TO_FREE else requested
    starts = update.get(OptionCode.START_TIME_OF_STATE)
    ends = update.get(OptionCode.LEASE_EXPIRATION_TIME)
    extras = current.extras
    if new_uid != extras.uid:
        extras = dataclasses.replace(extras, uid=new_uid)
    if requested is B.ACTIVE and (
        new_uid != current.uid or hardware_address != current.hardware_address
    ):
        # Another client: the old client's variables do not belong to the new one.
        extras = LeaseExtras(uid=new_uid)
    tsfp = current.tsfp if potential_expiry is None else int(potential_expiry)
    return dataclasses.replace(
        current,
        binding_state=applied,
        next_binding_state=None,
        rewind_binding_state=applied,
        starts=current.starts if starts is None else int(starts),
        ends=current.ends if ends is None else int(ends),
        tsfp=tsfp,
        atsfp=current.atsfp if potential_expiry is None else int(potential_expiry),
        # dhcpd keeps its own cltt: dhcp_failover_process_bind_update reads the CLTT
        # option only to judge dueling updates (seen on 4.4.3: no cltt line is written).
        flags=flags,
        hardware_type=hardware_type,
        hardware_address=hardware_address,
        extras=extras,
    )


def may_allocate(
    lease: Lease,
    *,
    role: Role,
    own_state: FailoverState,
    partner_down_since: float,
    mclt: int,
    now: float,
) -> bool:
    """lease_mine_to_reallocate: may this server give ``lease`` to a new client? (§8.6)."""
    state = _state(lease)
    tsfp = lease.tsfp or 0
    partner_down = own_state is FailoverState.PARTNER_DOWN
    mclt_passed = partner_down and max(partner_down_since, tsfp) + mclt < now
    if state is B.ACTIVE:
        return False
    if state in (B.FREE, B.ABANDONED):
        return role is Role.PRIMARY or mclt_passed
    if state is B.BACKUP:
        return role is Role.SECONDARY or mclt_passed
    if state in (B.EXPIRED, B.RELEASED) and lease.rewind_binding_state is own_free_state(role):
        return True
    return partner_down and tsfp < now


def granted_lease_time(desired: int, *, tsfp: int | None, mclt: int, now: int) -> int:
    """ack_lease's cap: never more than MCLT past what the partner has acknowledged."""
    if desired <= mclt:
        return desired
    if tsfp is None or tsfp <= now:
        return mclt
    return min(desired, tsfp + mclt - now)  # tsfp > now: more than MCLT is allowed
