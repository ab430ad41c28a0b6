"""Reading and writing ISC dhcpd lease files (see README "Lease files")."""

from dhcpfoctl.leases.reader import (
    LeaseFileFollower,
    ResumeState,
    read_leases,
    read_leases_incremental,
)
from dhcpfoctl.leases.v6 import read_leases6
from dhcpfoctl.leases.writer import write_leases

__all__ = [
    "LeaseFileFollower",
    "ResumeState",
    "read_leases",
    "read_leases6",
    "read_leases_incremental",
    "write_leases",
]
