"""OMAPI (dhcpd's management protocol): keys, a typed client on pypureomapi's codec."""


def format_endpoint(host: str, port: int) -> str:
    """``HOST:PORT`` as messages name a server (``[V6]:PORT`` for IPv6 literals)."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
