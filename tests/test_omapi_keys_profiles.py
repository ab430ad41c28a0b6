"""OMAPI key sources and profiles: parsing, file modes, XDG lookup, target resolution."""

from __future__ import annotations

from pathlib import Path

import pytest

from dhcpfoctl.conf import load_key_file
from dhcpfoctl.errors import InputFileError, LocalError
from dhcpfoctl.keys import parse_key, readable_by_others
from dhcpfoctl.profile import (
    KeyOptions,
    config_file,
    load_profiles,
    parse_endpoint,
    resolve_targets,
)

DATA = Path(__file__).parent / "data" / "real-dhcpd-4.4.3"
SECRET_B64 = "ZGhjcGZvY3RsLWxhYmtleQ=="


@pytest.mark.parametrize(
    ("text", "algorithm"),
    [
        (f"lab-key:{SECRET_B64}", "hmac-md5"),
        (f"hmac-sha256:lab-key:{SECRET_B64}", "hmac-sha256"),
        (f"HMAC-SHA512.SIG-ALG.REG.INT.:lab-key:{SECRET_B64}", "hmac-sha512"),
        # Same spelling rule as a key stanza in dhcpd.conf (keys.canonical_algorithm).
        (f"HMAC-MD5.SIG-ALG.REG.INT:lab-key:{SECRET_B64}", "hmac-md5"),
    ],
)
def test_parse_key(text: str, algorithm: str) -> None:
    key = parse_key(text)
    assert (key.name, key.algorithm, key.secret.reveal()) == (
        "lab-key",
        algorithm,
        b"dhcpfoctl-labkey",
    )
    assert "dhcpfoctl-labkey" not in repr(key) and SECRET_B64 not in repr(key)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("justaname", r"expected \[ALGORITHM:\]NAME:SECRET"),
        ("hmac-foo:k:AAAA", "not a key algorithm dhcpd accepts"),
        ("k:not base64!", "not valid base64"),
        (":AAAA", "key name is empty"),
    ],
)
def test_parse_key_errors_never_echo_the_secret(text: str, message: str) -> None:
    with pytest.raises(LocalError, match=message) as caught:
        parse_key(text)
    assert "base64!" not in str(caught.value).replace("not valid base64", "")


def test_key_file_from_dhcpd_conf_syntax_and_mode_check(tmp_path: Path) -> None:
    path = tmp_path / "omapi.key"
    path.write_text(f'key lab-key {{\n  algorithm hmac-sha256;\n  secret "{SECRET_B64}";\n}};\n')
    path.chmod(0o600)
    key = load_key_file(str(path))
    assert (key.name, key.algorithm) == ("lab-key", "hmac-sha256")
    assert not readable_by_others(str(path))
    path.chmod(0o640)
    assert readable_by_others(str(path))


def test_key_file_choice_among_several(tmp_path: Path) -> None:
    path = tmp_path / "keys.conf"
    path.write_text(
        f'key a {{ algorithm hmac-md5; secret "{SECRET_B64}"; }}\n'
        f'key b {{ algorithm hmac-md5; secret "{SECRET_B64}"; }}\n'
    )
    with pytest.raises(InputFileError, match=r"found 2 keys$"):
        load_key_file(str(path))
    assert load_key_file(str(path), "b").name == "b"
    with pytest.raises(InputFileError, match="no key of that name"):
        load_key_file(str(path), "c")


def test_config_file_location() -> None:
    assert config_file({"DHCPFOCTL_CONFIG": "/x/y.toml"}) == Path("/x/y.toml")
    assert config_file({"XDG_CONFIG_HOME": "/xdg"}) == Path("/xdg/dhcpfoctl/config.toml")
    assert config_file({}).parts[-3:] == (".config", "dhcpfoctl", "config.toml")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("10.0.0.1", ("10.0.0.1", 7911)),
        ("10.0.0.1:7912", ("10.0.0.1", 7912)),
        ("[2001:db8::1]:7913", ("2001:db8::1", 7913)),
        ("dhcp1.example.net", ("dhcp1.example.net", 7911)),
    ],
)
def test_parse_endpoint(text: str, expected: tuple[str, int]) -> None:
    assert parse_endpoint(text, 7911, "--server") == expected


@pytest.mark.parametrize("text", ["10.0.0.1:0", "10.0.0.1:99999", ":7911", "h:x"])
def test_parse_endpoint_errors(text: str) -> None:
    with pytest.raises(LocalError, match="--server"):
        parse_endpoint(text, 7911, "--server")


def write_profile(path: Path, body: str) -> Path:
    path.write_text(body)
    path.chmod(0o600)
    return path


def test_profiles_load_with_per_server_keys(tmp_path: Path) -> None:
    path = write_profile(
        tmp_path / "config.toml",
        'default = "lab"\n'
        '[profiles.lab]\nrelationship = "lab"\n'
        '[profiles.lab.servers.dhcp1]\nhost = "10.0.0.1"\nfailover_address = "10.1.0.1"\n'
        '[profiles.lab.servers.dhcp2]\nhost = "10.0.0.2"\nport = 7912\n'
        f'key = "hmac-md5:lab-key:{SECRET_B64}"\n',
    )
    profiles, default, warnings = load_profiles(path)
    assert default == "lab" and warnings == []
    one, two = profiles["lab"].servers
    assert (one.label, one.endpoint, one.key, one.failover_address) == (
        "dhcp1",
        "10.0.0.1:7911",
        None,
        "10.1.0.1",
    )
    assert two.endpoint == "10.0.0.2:7912" and two.key is not None and not two.key_shared
    path.chmod(0o644)
    assert "readable by group/others" in load_profiles(path)[2][0]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("default = 1\n[profiles.x.servers.a]\nhost = 'h'\n", "default profile 1"),
        ("[profiles.x]\nservers = {}\n", "needs \\[profiles.x.servers.LABEL\\]"),
        ("[profiles.x.servers.a]\nport = 1\n", "host is required"),
        ("[profiles.x.servers.a]\nhost = 'h'\nport = 0\n", "must be a port"),
        ("[profiles.x.servers.a]\nhost = 'h'\ncolour = 1\n", "unknown setting.*colour"),
        ("[profiles.x\n", "invalid TOML"),
    ],
)
def test_bad_profiles_name_the_file(tmp_path: Path, body: str, message: str) -> None:
    path = write_profile(tmp_path / "config.toml", body)
    with pytest.raises(InputFileError, match=message) as caught:
        load_profiles(path)
    assert str(caught.value).startswith(str(path))


def test_missing_profile_file_is_no_profiles(tmp_path: Path) -> None:
    assert load_profiles(tmp_path / "none.toml") == ({}, None, [])


def test_resolve_without_profile_reads_relationship_and_key_from_config() -> None:
    targets = resolve_targets(
        servers=["10.98.0.6"],
        profile_name=None,
        peers=[],
        config_path=str(DATA / "secondary.conf"),
        keys=KeyOptions(),
        environ={},
    )
    assert targets.relationships == ("lab",)
    (server,) = targets.servers
    assert server.key is not None and server.key.name == "lab-key" and server.key_shared


def test_resolve_rejects_a_peer_the_config_does_not_declare() -> None:
    with pytest.raises(LocalError, match="declares no failover peer 'nope'"):
        resolve_targets(
            servers=["h"],
            profile_name=None,
            peers=["nope"],
            config_path=str(DATA / "primary.conf"),
            keys=KeyOptions(),
            environ={},
        )


def test_resolve_environment_key_and_explicit_key_conflict(tmp_path: Path) -> None:
    env = {"DHCPFOCTL_KEY": f"lab-key:{SECRET_B64}"}
    targets = resolve_targets(
        servers=["h"], profile_name=None, peers=["lab"], config_path=None, keys=KeyOptions(),
        environ=env,
    )  # fmt: skip
    assert targets.servers[0].key_origin == "$DHCPFOCTL_KEY"
    with pytest.raises(LocalError, match="not both"):
        resolve_targets(
            servers=["h"], profile_name=None, peers=["lab"], config_path=None,
            keys=KeyOptions(key=f"k:{SECRET_B64}", key_file=str(tmp_path / "f")), environ={},
        )  # fmt: skip


def test_resolve_without_anything_says_what_to_give(tmp_path: Path) -> None:
    env = {"DHCPFOCTL_CONFIG": str(tmp_path / "none.toml")}
    with pytest.raises(LocalError, match="no server given: use --server"):
        resolve_targets(
            servers=[], profile_name=None, peers=[], config_path=None, keys=KeyOptions(),
            environ=env,
        )  # fmt: skip
    with pytest.raises(LocalError, match="which failover relationship\\? give --peer NAME"):
        resolve_targets(
            servers=["h"], profile_name=None, peers=[], config_path=None, keys=KeyOptions(),
            environ=env,
        )  # fmt: skip
