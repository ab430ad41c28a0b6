"""dhcpd.conf reader: failover peers, pools and ranges, hosts, OMAPI port and keys.

``read_config(path)`` is the one entry point; a file holding only ``key`` stanzas is valid
input too (that is how OMAPI key files are loaded).
"""

from dhcpfoctl.conf.model import (
    PEER_DEFAULTS,
    AddressRange,
    Config,
    FailoverPeerConfig,
    HostConfig,
    Pool,
    SubnetConfig,
)
from dhcpfoctl.conf.parser import load_key_file, read_config

__all__ = [
    "PEER_DEFAULTS",
    "AddressRange",
    "Config",
    "FailoverPeerConfig",
    "HostConfig",
    "Pool",
    "SubnetConfig",
    "load_key_file",
    "read_config",
]
