"""Profiles: named failover pairs in ``config.toml``, and resolving what a command talks to.

The file is ``$DHCPFOCTL_CONFIG``, else ``$XDG_CONFIG_HOME/dhcpfoctl/config.toml``, else
``~/.config/dhcpfoctl/config.toml``::

    default = "campus"                  # profile used when no --server/--profile is given

    [profiles.campus]
    relationships = ["campus"]          # failover peer names; else read from `config`
    config = "/etc/dhcp/dhcpd.conf"     # optional: peer names, omapi key, pools

    [profiles.campus.servers.dhcp1]     # one table per server; the label is free
    host = "192.0.2.10"                 # or "192.0.2.10:7911", "[2001:db8::10]:7911"
    port = 7911                         # default 7911
    key_file = "/etc/dhcpfoctl/dhcp1.key"  # a `key NAME { … }` stanza (key_name picks one)
    failover_address = "192.0.2.10"     # where its failover port listens (liveness check)
    failover_port = 647
    config = "/etc/dhcp/dhcpd.conf"     # optional, this server's own files: readable from
    leases = "/var/lib/dhcp/dhcpd.leases"  # here, they give pools and endurance

    [profiles.campus.servers.dhcp2]
    host = "192.0.2.11"
    key = "hmac-sha256:omapi-key:c2VjcmV0"  # inline [ALGORITHM:]NAME:SECRET (keep 0600)

A server without a key is contacted unsigned: a real pair may have one keyed and one not.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from dhcpfoctl.errors import InputFileError, LocalError
from dhcpfoctl.keys import OmapiKey, parse_key, readable_by_others, usable_key
from dhcpfoctl.omapi import OMAPI_PORT, format_endpoint

CONFIG_ENV = "DHCPFOCTL_CONFIG"
#: Environment variable holding a key as ``[ALGORITHM:]NAME:SECRET``.
KEY_ENV = "DHCPFOCTL_KEY"


@dataclass(frozen=True, slots=True)
class ServerSpec:
    """One server to talk to over OMAPI, and what is known of it besides."""

    label: str
    host: str
    port: int = OMAPI_PORT
    key: OmapiKey | None = field(default=None, repr=False)
    #: Where the key came from (``--key``, a file, a profile), for messages; never the key.
    key_origin: str | None = None
    #: The key was offered to every server (command line, environment, dhcpd.conf), not
    #: configured for this one: a server that does not know it is retried unsigned.
    key_shared: bool = False
    failover_address: str | None = None
    failover_port: int | None = None
    config: str | None = None
    leases: str | None = None

    @property
    def endpoint(self) -> str:
        return format_endpoint(self.host, self.port)


@dataclass(frozen=True, slots=True)
class Profile:
    name: str
    servers: tuple[ServerSpec, ...]
    relationships: tuple[str, ...] = ()
    config: str | None = None


@dataclass(frozen=True, slots=True)
class Targets:
    """What a command should query: servers (keys attached) and relationship names."""

    servers: tuple[ServerSpec, ...]
    relationships: tuple[str, ...]
    profile: str | None = None
    #: The dhcpd.conf whose failover declarations were read, if any.
    config: Any = None
    warnings: tuple[str, ...] = ()
    #: Every server of the profile used (``servers`` may be a selection of them).
    profile_servers: tuple[ServerSpec, ...] = ()


def config_file(environ: Mapping[str, str] | None = None) -> Path:
    """The profile file path (see module doc); it need not exist."""
    env = os.environ if environ is None else environ
    if explicit := env.get(CONFIG_ENV):
        return Path(explicit)
    base = env.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "dhcpfoctl" / "config.toml"


def parse_endpoint(text: str, default_port: int, origin: str) -> tuple[str, int]:
    """``HOST``, ``HOST:PORT``, ``[V6]`` or ``[V6]:PORT``."""
    text = text.strip()
    host, port_text = text, ""
    if text.startswith("["):
        end = text.find("]")
        host, rest = text[1:end], text[end + 1 :]
        if end < 0 or (rest and not rest.startswith(":")):
            raise LocalError(f"{origin}: invalid address {text!r} (use HOST[:PORT])")
        port_text = rest[1:]
    elif text.count(":") == 1:
        host, port_text = text.split(":")
    if not host:
        raise LocalError(f"{origin}: invalid address {text!r} (use HOST[:PORT])")
    if not port_text:
        return host, default_port
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise LocalError(f"{origin}: invalid port in {text!r}")
    return host, int(port_text)


def load_profiles(path: Path) -> tuple[dict[str, Profile], str | None, list[str]]:
    """Profiles in ``path``, the default profile name, and warnings (e.g. file mode)."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}, None, []
    except OSError as exc:
        raise InputFileError(str(path), f"cannot read: {exc.strerror}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise InputFileError(str(path), f"invalid TOML: {exc}") from None
    warnings: list[str] = []
    profiles: dict[str, Profile] = {}
    tables = data.get("profiles", {})
    if not isinstance(tables, dict):
        raise InputFileError(str(path), "`profiles` must be a table of tables")
    for name, table in tables.items():
        profiles[name] = _profile(path, name, table, warnings)
    default = data.get("default")
    if default is not None and default not in profiles:
        raise InputFileError(str(path), f"default profile {default!r} is not defined")
    return profiles, default, warnings


def _profile(path: Path, name: str, table: object, warnings: list[str]) -> Profile:
    where = f"profiles.{name}"
    if not isinstance(table, dict):
        raise InputFileError(str(path), f"{where} must be a table")
    unknown = set(table) - {"relationships", "relationship", "config", "servers"}
    if unknown:
        raise InputFileError(str(path), f"{where}: unknown setting(s) {', '.join(sorted(unknown))}")
    relationships = table.get("relationships", table.get("relationship", []))
    if isinstance(relationships, str):
        relationships = [relationships]
    if not _strings(relationships):
        raise InputFileError(str(path), f"{where}.relationships must be a list of names")
    servers = table.get("servers", {})
    if not isinstance(servers, dict) or not servers:
        raise InputFileError(str(path), f"{where}: needs [{where}.servers.LABEL] tables")
    specs = tuple(
        _server(path, f"{where}.servers.{label}", label, spec, warnings)
        for label, spec in servers.items()
    )
    return Profile(
        name=name,
        servers=specs,
        relationships=tuple(relationships),
        config=_optional_str(path, where, table, "config"),
    )


_SERVER_KEYS = frozenset(
    {
        "host",
        "port",
        "key",
        "key_file",
        "key_name",
        "failover_address",
        "failover_port",
        "config",
        "leases",
    }
)


def _server(path: Path, where: str, label: str, spec: object, warnings: list[str]) -> ServerSpec:
    if not isinstance(spec, dict):
        raise InputFileError(str(path), f"{where} must be a table")
    if unknown := set(spec) - _SERVER_KEYS:
        raise InputFileError(str(path), f"{where}: unknown setting(s) {', '.join(sorted(unknown))}")
    host = spec.get("host")
    if not isinstance(host, str) or not host:
        raise InputFileError(str(path), f"{where}.host is required")
    port = _port(path, where, spec, "port", OMAPI_PORT)
    # HOST:PORT and [V6]:PORT as on the command line (a bare IPv6 address has no port).
    try:
        host, host_port = parse_endpoint(host, port or OMAPI_PORT, f"{where}.host")
    except LocalError as exc:
        raise InputFileError(str(path), str(exc)) from None
    if "port" in spec and host_port != port:
        raise InputFileError(str(path), f"{where}: the port is given twice (host and port)")
    port = host_port
    key: OmapiKey | None = None
    origin: str | None = None
    if "key" in spec and "key_file" in spec:
        raise InputFileError(str(path), f"{where}: give key or key_file, not both")
    if isinstance(inline := spec.get("key"), str):
        key, origin = parse_key(inline, f"{path}: {where}.key"), f"{path} ({where})"
        if readable_by_others(str(path)):
            warnings.append(f"{path} holds a key secret and is readable by group/others")
    elif isinstance(key_file := spec.get("key_file"), str):
        key_name = spec.get("key_name")
        key = _load_key_file(key_file, key_name if isinstance(key_name, str) else None)
        origin = key_file
        if readable_by_others(key_file):
            warnings.append(f"key file {key_file} is readable by group/others")
    elif "key" in spec or "key_file" in spec:
        raise InputFileError(str(path), f"{where}: key/key_file must be strings")
    failover_address = _optional_str(path, where, spec, "failover_address")
    return ServerSpec(
        label=label,
        host=host,
        port=port,
        key=key,
        key_origin=origin,
        failover_address=failover_address,
        failover_port=_port(path, where, spec, "failover_port", None),
        config=_optional_str(path, where, spec, "config"),
        leases=_optional_str(path, where, spec, "leases"),
    )


def _strings(value: object) -> bool:
    return isinstance(value, list) and all(isinstance(item, str) and item for item in value)


def _optional_str(path: Path, where: str, table: dict[str, Any], name: str) -> str | None:
    value = table.get(name)
    if value is not None and not isinstance(value, str):
        raise InputFileError(str(path), f"{where}.{name} must be a string")
    return value


def _port(
    path: Path, where: str, table: dict[str, Any], name: str, default: int | None
) -> int | None:
    value = table.get(name, default)
    if value is not None and (not isinstance(value, int) or not 0 < value < 65536):
        raise InputFileError(str(path), f"{where}.{name} must be a port number")
    return value


@dataclass(frozen=True, slots=True)
class KeyOptions:
    """Key sources given on the command line (each optional)."""

    #: ``[ALGORITHM:]NAME:SECRET`` as typed: holds the secret, so kept out of repr.
    key: str | None = field(default=None, repr=False)
    key_file: str | None = None
    key_name: str | None = None


def shared_key(options: KeyOptions, environ: Mapping[str, str]) -> tuple[OmapiKey, str] | None:
    """The key offered to servers that have none of their own, and its origin."""
    if options.key and options.key_file:
        raise LocalError("give --key or --key-file, not both")
    if options.key:
        return parse_key(options.key, "--key"), "--key"
    if options.key_file:
        return _load_key_file(options.key_file, options.key_name), options.key_file
    if env_key := environ.get(KEY_ENV):
        return parse_key(env_key, f"${KEY_ENV}"), f"${KEY_ENV}"
    return None


def resolve_targets(
    *,
    servers: Sequence[str],
    profile_name: str | None,
    peers: Sequence[str],
    config_path: str | None,
    keys: KeyOptions,
    environ: Mapping[str, str] | None = None,
) -> Targets:
    """Combine ``--server``/``--profile``/``--peer``/``--config``/key options.

    ``--server`` alone works without any profile; with ``--profile`` too, it selects the
    profile's servers with that address (or adds ones the profile does not list).
    """
    env = os.environ if environ is None else environ
    warnings: list[str] = []
    profile: Profile | None = None
    path = config_file(env)
    if profile_name is None and servers:
        # --server alone needs no profile, but may name a server of the default profile
        # (by label or address), which then brings its key and relationships along.
        profiles, default, warnings_read = load_profiles(path)
        if default is not None and any(_find(text, profiles[default].servers) for text in servers):
            profile = profiles[default]
            warnings += warnings_read
    elif profile_name is not None or not servers:
        profiles, default, warnings_read = load_profiles(path)
        warnings += warnings_read
        wanted = profile_name or default
        if wanted is None:
            raise LocalError(
                "no server given: use --server HOST[:PORT] (twice for a pair), --profile NAME, "
                f"or set `default` in {path}"
            )
        if wanted not in profiles:
            known = ", ".join(sorted(profiles)) or "none"
            raise LocalError(f"no profile {wanted!r} in {path} (profiles: {known})")
        profile = profiles[wanted]

    chosen = _choose_servers(servers, profile)
    config_file_path = (
        config_path
        or (profile.config if profile else None)
        or next((spec.config for spec in chosen if spec.config), None)
    )
    config = _read_config(config_file_path) if config_file_path else None

    offered = shared_key(keys, env)
    if offered is None and config is not None and config.omapi_key:
        # The dhcpd.conf then serves as our key file, and is judged like one.
        origin = f"{config_file_path} (omapi-key)"
        offered = usable_key(config.keys[config.omapi_key], origin), origin
        if readable_by_others(str(config_file_path)):
            warnings.append(
                f"{config_file_path} holds the OMAPI key and is readable by group/others"
            )
    if keys.key_file and readable_by_others(keys.key_file):
        warnings.append(f"key file {keys.key_file} is readable by group/others")
    if offered is not None:
        key, origin = offered
        chosen = tuple(
            spec if spec.key else replace(spec, key=key, key_origin=origin, key_shared=True)
            for spec in chosen
        )

    relationships = tuple(peers) or (profile.relationships if profile else ())
    if not relationships and config is not None:
        relationships = tuple(config.failover_peers)
    if not relationships:
        hint = f" ({config_file_path} declares no failover peer)" if config_file_path else ""
        raise LocalError(
            "which failover relationship? give --peer NAME (the name in `failover peer "
            f'"NAME"`), --config /etc/dhcp/dhcpd.conf, or a profile with relationships{hint}'
        )
    # An explicitly given --config is checked now, for a clearer message than the
    # servers' NOTFOUND; a profile's per-server config is only a source of names.
    if config_path and config is not None and peers:
        for name in peers:
            if config.failover_peers and name not in config.failover_peers:
                known = ", ".join(sorted(config.failover_peers))
                raise LocalError(
                    f"{config_file_path} declares no failover peer {name!r} (it declares: {known})"
                )
    return Targets(
        servers=chosen,
        relationships=relationships,
        profile=profile.name if profile else None,
        config=config,
        warnings=tuple(warnings),
        profile_servers=profile.servers if profile else (),
    )


def _choose_servers(servers: Sequence[str], profile: Profile | None) -> tuple[ServerSpec, ...]:
    if not servers:
        assert profile is not None
        return profile.servers
    chosen: list[ServerSpec] = []
    for text in servers:
        known = _find(text, profile.servers) if profile else None
        if known is None:
            host, port = parse_endpoint(text, OMAPI_PORT, "--server")
            known = ServerSpec(label=format_endpoint(host, port), host=host, port=port)
        chosen.append(known)
    return tuple(chosen)


def _find(text: str, servers: Sequence[ServerSpec]) -> ServerSpec | None:
    """The server ``text`` names: a profile label, ``HOST:PORT``, or ``HOST`` (port 7911)."""
    for spec in servers:
        if text in (spec.label, spec.endpoint) or (spec.port == OMAPI_PORT and text == spec.host):
            return spec
    return None


def _read_config(path: str) -> Any:
    from dhcpfoctl.conf import read_config  # heavy: only when a config is given

    return read_config(path)


def _load_key_file(path: str, name: str | None) -> OmapiKey:
    from dhcpfoctl.conf import load_key_file  # the config reader: heavy, and keys are rare

    return load_key_file(path, name)
