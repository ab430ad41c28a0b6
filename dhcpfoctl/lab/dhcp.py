"""DHCPv4 messages (RFC 2131/2132) as the lab's server and clients exchange them: sans-IO.

A :class:`Packet` is the BOOTP header plus its options in arrival order; ``decode`` and
``encode`` are the only conversions between it and bytes. Option values stay raw bytes:
the accessors below interpret the few options the lab server and clients act on.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

from dhcpfoctl.errors import RemoteError
from dhcpfoctl.model import WireEnum

__all__ = [
    "BOOTREPLY",
    "BOOTREQUEST",
    "BROADCAST_FLAG",
    "DhcpDecodeError",
    "MessageType",
    "Option",
    "Packet",
]

BOOTREQUEST: Final = 1
BOOTREPLY: Final = 2
#: The ``flags`` bit a client sets to ask for a broadcast reply.
BROADCAST_FLAG: Final = 0x8000


class MessageType(WireEnum):
    """Option 53 values."""

    DISCOVER = 1
    OFFER = 2
    REQUEST = 3
    DECLINE = 4
    ACK = 5
    NAK = 6
    RELEASE = 7
    INFORM = 8


class Option(WireEnum):
    """The option codes the lab reads or writes (RFC 2132)."""

    PAD = 0
    SUBNET_MASK = 1
    ROUTERS = 3
    DOMAIN_NAME_SERVERS = 6
    HOST_NAME = 12
    DOMAIN_NAME = 15
    BROADCAST_ADDRESS = 28
    REQUESTED_ADDRESS = 50
    LEASE_TIME = 51
    OVERLOAD = 52
    MESSAGE_TYPE = 53
    SERVER_IDENTIFIER = 54
    PARAMETER_REQUEST_LIST = 55
    MESSAGE = 56
    MAX_MESSAGE_SIZE = 57
    RENEWAL_TIME = 58
    REBINDING_TIME = 59
    VENDOR_CLASS = 60
    CLIENT_IDENTIFIER = 61
    RELAY_AGENT_INFORMATION = 82
    END = 255


class DhcpDecodeError(RemoteError):
    """Bytes that are not a DHCP message; ``reason`` is a stable keyword for counting."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"not a DHCP message: {detail}")
        self.reason = reason


@dataclass(slots=True)
class Packet:
    """One DHCP message. Addresses are dotted quads; ``chaddr`` holds ``hlen`` bytes."""

    op: int
    xid: int
    chaddr: bytes
    htype: int = 1
    hops: int = 0
    secs: int = 0
    flags: int = 0
    ciaddr: str = "0.0.0.0"
    yiaddr: str = "0.0.0.0"
    siaddr: str = "0.0.0.0"
    giaddr: str = "0.0.0.0"
    sname: bytes = b""
    file: bytes = b""
    #: Options other than PAD/END, in order; a code appears once (RFC 3396 parts joined).
    options: dict[int, bytes] = field(default_factory=dict)
