"""dhcpd.conf parameters the lab server reads: lease times, options, addresses, scoped."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_conf import dhcpd_accepts

from dhcpfoctl.conf import read_config
from dhcpfoctl.conf.model import (
    DEFAULT_DEFAULT_LEASE_TIME,
    DEFAULT_MAX_LEASE_TIME,
    Parameters,
    Setting,
)
from dhcpfoctl.errors import InputFileError

CONF = Path(__file__).parent / "data" / "conf" / "lab-parameters.conf"


def test_scopes_innermost_wins() -> None:
    config = read_config(CONF)
    assert config.local_port == 6767 and config.local_address == "127.0.0.1"
    assert config.server_identifier == "10.99.0.1"
    pool, plain, grouped = config.pools
    # pool default 300, subnet max 3600, shared-network min 60
    assert pool.parameters.lease_times() == (300, 3600, 60)
    assert pool.parameters.lookup("default-lease-time").source == f"{CONF}:27"  # type: ignore[union-attr]
    assert pool.parameters.value("option routers") == ("10.99.0.1",)
    assert pool.parameters.value("option domain-name-servers") == ("10.99.0.53", "10.99.0.54")
    assert pool.parameters.value("server-identifier") == "10.99.0.1"
    assert pool.parameters.value("authoritative") is True
    # the later global default-lease-time replaces the earlier one, as dhcpd evaluates it
    assert plain.parameters.lease_times() == (1200, 7200, 60)
    assert plain.parameters.value("authoritative") is False
    # a host name where an address goes: warned, the option left to the outer scope
    assert plain.parameters.value("option domain-name-servers") == ("10.99.0.53", "10.99.0.54")
    assert any("ns1.lab.example" in warning for warning in config.warnings)
    assert grouped.parameters.lease_times() == (900, 7200, 0)
    subnets = {str(s.network): s for s in config.subnets}
    assert subnets["10.99.0.0/24"].parameters.value("option subnet-mask") == "255.255.255.0"


def test_pool_parameters_keep_pools_apart(tmp_path: Path) -> None:
    """A pool with statements of its own is not merged with another (dhcpd's rule)."""
    path = tmp_path / "dhcpd.conf"
    path.write_text(
        "subnet 10.0.0.0 netmask 255.255.255.0 {\n"
        "  pool { range 10.0.0.10 10.0.0.12; }\n"
        "  pool { max-lease-time 300; range 10.0.0.20 10.0.0.22; }\n"
        "}\n"
    )
    config = read_config(path)
    assert [pool.size for pool in config.pools] == [3, 3]
    assert config.pools[1].parameters.lease_times() == (DEFAULT_DEFAULT_LEASE_TIME, 300, 0)


def test_defaults() -> None:
    assert Parameters().lease_times() == (DEFAULT_DEFAULT_LEASE_TIME, DEFAULT_MAX_LEASE_TIME, 0)
    assert (DEFAULT_DEFAULT_LEASE_TIME, DEFAULT_MAX_LEASE_TIME) == (43200, 86400)


def test_min_lease_time_never_above_max() -> None:
    params = Parameters()
    params.settings["max-lease-time"] = Setting(100, "test:1")
    params.settings["min-lease-time"] = Setting(500, "test:2")
    assert params.lease_times()[1:] == (100, 100)


@pytest.mark.parametrize(
    ("statement", "where", "message"),
    [
        ("default-lease-time soon;", "2:20", "expecting a number"),
        ("local-port x;", "2:12", "expecting a number"),
        ("local-address ;", "2:15", "expecting an address"),
        ('option routers "10.0.0.1";', "2:16", "expecting an address"),
        ("max-lease-time 60", "3:1", "expecting ';'"),
    ],
)
def test_malformed_parameters_name_file_line(
    tmp_path: Path, statement: str, where: str, message: str
) -> None:
    """Statements dhcpd -t refuses too (test_dhcpd_agrees_on_statements checks it)."""
    path = tmp_path / "dhcpd.conf"
    path.write_text(f"\n{statement}\n")
    with pytest.raises(InputFileError) as caught:
        read_config(path)
    assert str(caught.value).startswith(f"{path}:{where}: {message}")


#: Legal for dhcpd, which resolves host names at run time; the lab warns and leaves them out.
HOST_NAMES = (
    "local-address localhost;\n"
    "server-identifier lab.example;\n"
    "option subnet-mask gw.example;\n"
    "option routers 10.0.0.1, gw.example;\n"
    "option domain-name lab;\n"
)


def test_host_names_are_left_out_with_a_warning(tmp_path: Path) -> None:
    path = tmp_path / "dhcpd.conf"
    path.write_text(HOST_NAMES)
    config = read_config(path)
    assert config.local_address is None
    assert config.parameters.value("server-identifier") is None
    assert config.parameters.value("option routers") is None
    assert config.parameters.value("option domain-name") == "lab"
    assert len(config.warnings) == 4


@pytest.mark.integration
def test_dhcpd_accepts_the_parameters_config(tmp_path: Path) -> None:
    assert dhcpd_accepts(CONF, tmp_path)


@pytest.mark.integration
@pytest.mark.parametrize(
    ("text", "accepted"),
    [
        (HOST_NAMES, True),
        ("default-lease-time soon;", False),
        ("local-port x;", False),
        ("local-address ;", False),
        ('option routers "10.0.0.1";', False),
        ("max-lease-time 60", False),
    ],
)
def test_dhcpd_agrees_on_statements(tmp_path: Path, text: str, accepted: bool) -> None:
    path = tmp_path / "dhcpd.conf"
    path.write_text(f"\n{text}\n")
    assert dhcpd_accepts(path, tmp_path) is accepted
