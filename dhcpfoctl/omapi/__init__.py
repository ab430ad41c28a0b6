"""OMAPI (dhcpd's management protocol) and nothing else: the codec both ends share
(``codec``), the client session (``client_session``) and its blocking transport
(``client``), the named errors, and dhcpd's failover objects (``failover``)."""

from typing import Final

#: The port omshell and dhcpfoctl use when none is given (dhcpd.conf's ``omapi-port``).
OMAPI_PORT: Final = 7911
#: Seconds allowed for each connect and each answer (``--timeout``).
OMAPI_TIMEOUT: Final = 3.0


def format_endpoint(host: str, port: int) -> str:
    """``HOST:PORT`` as messages name a server (``[V6]:PORT`` for IPv6 literals)."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
