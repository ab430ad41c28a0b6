"""OMAPI (dhcpd's management protocol) and nothing else: the codec both ends share
(``codec``), the client session (``client_session``) and its blocking transport
(``client``), the named errors, and dhcpd's failover objects (``failover``)."""


def format_endpoint(host: str, port: int) -> str:
    """``HOST:PORT`` as messages name a server (``[V6]:PORT`` for IPv6 literals)."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
