"""Query the servers of a pair over OMAPI (in parallel) into :class:`ServerAnswer` values.

The only I/O step of ``status``; :func:`dhcpfoctl.omapi.health.evaluate` judges the result.
"""

from __future__ import annotations

import socket
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

from dhcpfoctl.errors import DhcpfoctlError
from dhcpfoctl.omapi.client import OmapiClient
from dhcpfoctl.omapi.errors import NotFoundError, OmapiError
from dhcpfoctl.omapi.failover import FailoverInfo, PoolCounts, read_failover, read_pool_counts
from dhcpfoctl.omapi.health import ServerAnswer
from dhcpfoctl.profile import ServerSpec


def connect(spec: ServerSpec, timeout: float) -> tuple[OmapiClient, tuple[str, ...]]:
    """An open client for ``spec`` and notes on how it authenticated.

    A key offered to every server (``key_shared``) that this server does not know is
    dropped and the server retried unsigned: a pair may have one keyed, one unkeyed server.
    A key configured for this very server is never dropped.
    """
    client = OmapiClient(spec.host, spec.port, spec.key, timeout=timeout)
    try:
        client.connect()
    except NotFoundError:
        if spec.key is None or not spec.key_shared:
            raise
        client = OmapiClient(spec.host, spec.port, None, timeout=timeout)
        client.connect()
        return client, (f"does not know key {spec.key.name!r}; queried unsigned",)
    return client, ()


def query_server(
    spec: ServerSpec,
    relationships: Sequence[str],
    pool_addresses: dict[str, Sequence[str]],
    timeout: float,
) -> ServerAnswer:
    """Everything ``status`` reads from one server; failures become ``error`` lines."""
    answer = ServerAnswer(
        label=spec.label, endpoint=spec.endpoint, failover_address=spec.failover_address
    )
    try:
        client, notes = connect(spec, timeout)
    except DhcpfoctlError as exc:
        return replace(answer, error=str(exc))
    failover: dict[str, FailoverInfo] = {}
    pools: dict[str, tuple[PoolCounts, ...]] = {}
    errors: dict[str, str] = {}
    with client:
        try:
            for name in relationships:
                try:
                    failover[name] = read_failover(client, name)
                except NotFoundError as exc:
                    errors[name] = str(exc)
                    continue
                counts = []
                for address in pool_addresses.get(name, ()):
                    try:
                        counts.append(read_pool_counts(client, address))
                    except NotFoundError:
                        continue  # address not in this server's pools: counts unavailable
                pools[name] = tuple(counts)
        except OmapiError as exc:
            return replace(answer, error=str(exc), notes=notes)
        signed = client.signed
    return replace(
        answer,
        failover=failover,
        pools=pools,
        relationship_errors=errors,
        signed=signed,
        notes=notes,
    )


def query_all(
    specs: Sequence[ServerSpec],
    relationships: Sequence[str],
    pool_addresses: dict[str, Sequence[str]],
    timeout: float,
) -> list[ServerAnswer]:
    """:func:`query_server` for every server at once, so one dead server costs one timeout."""
    if len(specs) == 1:
        return [query_server(specs[0], relationships, pool_addresses, timeout)]
    with ThreadPoolExecutor(max_workers=len(specs)) as pool:
        futures = [
            pool.submit(query_server, spec, relationships, pool_addresses, timeout)
            for spec in specs
        ]
        return [future.result() for future in futures]


def tcp_port_open(host: str, port: int, timeout: float) -> bool | None:
    """True when ``host:port`` accepts a TCP connection, False when refused, None when no
    answer arrived in time (filtered or unreachable: nothing can be concluded)."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except ConnectionRefusedError:
        return False
    except OSError:
        return None
