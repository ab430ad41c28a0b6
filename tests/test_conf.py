"""dhcpd.conf reader: golden files, FILE:LINE:COLUMN errors, includes, peer defaults, dhcpd -t."""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import subprocess
from dataclasses import fields
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dhcpfoctl.conf import PEER_DEFAULTS, Config, FailoverPeerConfig, read_config
from dhcpfoctl.conf.lexer import Kind, tokenize
from dhcpfoctl.errors import InputFileError

GOLDEN = Path(__file__).parent / "golden" / "conf"
INVALID = sorted((GOLDEN / "invalid").glob("*.conf"))
#: Legal configs the reader warns about, first line ``# warn: message``.
WARNING = sorted((GOLDEN / "warning").glob("*.conf"))
VALID = [GOLDEN / "full.conf", GOLDEN / "keyonly.conf"]
REAL = Path(__file__).parent / "data" / "real-dhcpd-4.4.3"
UPDATE = os.environ.get("UPDATE_GOLDEN") == "1"
#: First line of every invalid config: ``# expect: LINE:COLUMN message``.
_EXPECT = re.compile(r"# expect: (\d+):(\d+) (.*)")


def config_as_json(config: Config) -> dict[str, Any]:
    """A stable, secret-free view of everything the reader extracted."""
    peers = {}
    for name, peer in config.failover_peers.items():
        view = {f.name: getattr(peer, f.name) for f in fields(FailoverPeerConfig)}
        view["given"] = sorted(peer.given)
        view["hba"] = peer.hba.hex(":") if peer.hba else None
        view["primary_buckets"] = (b := peer.primary_buckets()) and b.hex()
        peers[name] = view
    return {
        "failover_peers": peers,
        "pools": [
            {
                "failover_peer": pool.failover_peer,
                "shared_network": pool.shared_network,
                "subnet": str(pool.subnet) if pool.subnet else None,
                "ranges": [[str(r), r.size, r.dynamic_bootp, r.source] for r in pool.ranges],
                "source": pool.source,
                "implicit": pool.implicit,
                "permits": list(pool.permits),
            }
            for pool in config.pools
        ],
        "subnets": [[str(s.network), s.shared_network, s.source] for s in config.subnets],
        "hosts": [[h.name, h.hardware, list(h.fixed_addresses), h.source] for h in config.hosts],
        "omapi_port": config.omapi_port,
        "omapi_key": config.omapi_key,
        "keys": {k.name: [k.algorithm, len(k.secret.reveal())] for k in config.keys.values()},
        "warnings": config.warnings,
        "files": config.files,
    }


@pytest.mark.parametrize("path", VALID, ids=lambda p: p.name)
def test_golden(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(path.parent)  # sources are reported relative, as dhcpd would open them
    got = json.dumps(config_as_json(read_config(path.name)), indent=2) + "\n"
    golden = path.with_suffix(".json")
    if UPDATE:
        golden.write_text(got)
    assert got == golden.read_text()


@pytest.mark.parametrize("path", INVALID, ids=lambda p: p.stem)
def test_invalid_config_names_file_line_column(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(path.parent)
    expect = _EXPECT.match(path.read_text().splitlines()[0])
    assert expect, f"{path} lacks its '# expect: LINE:COL message' header"
    line, column, message = expect.groups()
    with pytest.raises(InputFileError) as caught:
        read_config(path.name)
    # Column 0 in the header: the finding is about a whole statement (FILE:LINE).
    expected = f"{path.name}:{line}" + (f":{column}" if column != "0" else "")
    assert caught.value.location == expected
    assert message in caught.value.message
    assert "\n" not in str(caught.value)


def test_every_peer_parameter_given() -> None:
    config = read_config(GOLDEN / "full.conf")
    west = config.failover_peers["west"]
    assert (west.role, west.address, west.port, west.peer_address, west.peer_port) == (
        "primary",
        "10.0.0.1",
        519,
        "10.0.0.2",
        520,
    )
    assert (west.max_response_delay, west.max_unacked_updates, west.mclt, west.split) == (
        60,
        10,
        3600,
        255,
    )
    assert (west.load_balance_max_seconds, west.max_lease_misbalance) == (5, 20)
    assert (west.max_lease_ownership, west.min_balance, west.max_balance) == (5, 30, 1800)
    assert west.auto_partner_down == 0 and west.is_given("auto_partner_down")
    assert all(west.is_given(name) for name in PEER_DEFAULTS)


def test_every_peer_parameter_defaulted() -> None:
    east = read_config(GOLDEN / "full.conf").failover_peers["east"]
    assert east.role == "secondary" and east.given == {"role", "address", "peer_address"}
    for name, default in PEER_DEFAULTS.items():
        assert getattr(east, name) == default, name
        assert not east.is_given(name)
    assert (east.mclt, east.split, east.hba, east.primary_buckets()) == (None, None, None, None)


def test_zero_means_default_for_balance_parameters(tmp_path: Path) -> None:
    conf = tmp_path / "z.conf"
    conf.write_text(
        'failover peer "p" { primary; peer address 10.0.0.2; mclt 60; split 128;'
        " max-lease-misbalance 0; max-lease-ownership 0; min-balance 0; max-balance 0; }\n"
        'subnet 10.0.0.0 netmask 255.255.255.0 { pool { failover peer "p"; range 10.0.0.5; } }\n'
    )
    peer = read_config(conf).failover_peers["p"]
    assert (peer.max_lease_misbalance, peer.max_lease_ownership) == (15, 10)
    assert (peer.min_balance, peer.max_balance) == (60, 3600)
    assert peer.is_given("min_balance")


@pytest.mark.parametrize("path", WARNING, ids=lambda p: p.stem)
def test_suspicious_but_legal_config_warns(path: Path) -> None:
    """Each file's first line names its one warning; dhcpd -t accepts them all (below)."""
    expected = path.read_text().splitlines()[0].removeprefix("# warn: ")
    config = read_config(path)
    (warning,) = config.warnings
    assert warning.startswith(f"{path}:") and expected in warning


def test_split_and_hba_later_wins() -> None:
    config = read_config(GOLDEN / "warning" / "split-and-hba.conf")
    peer = config.failover_peers["p"]
    assert peer.split is None and peer.hba == bytes([255] * 4 + [0] * 28)


def test_split_buckets() -> None:
    peer = FailoverPeerConfig("p", "primary", None, "10.0.0.2", mclt=60, split=12)
    assert peer.primary_buckets() == b"\xff\x0f" + bytes(30)


def test_real_pair_configs() -> None:
    primary = read_config(REAL / "primary.conf")
    secondary = read_config(REAL / "secondary.conf")
    assert primary.failover_peers["lab"].is_primary
    assert primary.failover_peers["lab"].mclt == 30
    assert not secondary.failover_peers["lab"].is_primary
    for config in (primary, secondary):
        (pool,) = config.pools
        assert (pool.failover_peer, pool.shared_network, pool.size) == ("lab", "10.99.0.0/24", 151)
    assert primary.keys == {} and secondary.omapi_key == "lab-key"
    assert secondary.keys["lab-key"].secret.reveal() == b"dhcpfoctl-labkey"
    assert "ZGhj" not in repr(secondary.keys) and "labkey" not in repr(secondary.keys)


def test_key_file_alone_and_bare_base64(tmp_path: Path) -> None:
    key_file = tmp_path / "omapi.key"
    key_file.write_text('key "k1" { algorithm hmac-md5; secret bGFi+/8=; };\n')
    assert read_config(key_file).keys["k1"].secret.reveal() == b"lab\xfb\xff"


def test_bad_secret_is_never_quoted(tmp_path: Path) -> None:
    conf = tmp_path / "k.conf"
    conf.write_text('key k { algorithm hmac-md5; secret "c2VjcmV0!!"; }\n')
    with pytest.raises(InputFileError) as caught:
        read_config(conf)
    assert "c2VjcmV0" not in str(caught.value)


def test_include_resolves_beside_including_file(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "main.conf").write_text('include "part.conf";\n')
    (tmp_path / "sub" / "part.conf").write_text("omapi-port 7911;\n")
    config = read_config(tmp_path / "sub" / "main.conf")
    assert config.omapi_port == 7911 and len(config.files) == 2


def test_missing_main_file_is_named_once(tmp_path: Path) -> None:
    with pytest.raises(InputFileError) as caught:
        read_config(tmp_path / "absent.conf")
    assert (
        str(caught.value) == f"{tmp_path / 'absent.conf'}: cannot read: No such file or directory"
    )


def test_absurd_nesting_is_an_error_not_a_recursion_crash(tmp_path: Path) -> None:
    conf = tmp_path / "deep.conf"
    conf.write_text("group {\n" * 5000 + "}\n" * 5000)
    with pytest.raises(InputFileError) as caught:
        read_config(conf)
    assert str(caught.value) == f"{conf}:100:1: blocks nested more than 100 deep"


def test_include_loop_is_an_error(tmp_path: Path) -> None:
    loop = tmp_path / "loop.conf"
    loop.write_text(f'include "{loop}";\n')
    with pytest.raises(InputFileError, match=r"include loop: .*loop\.conf includes itself"):
        read_config(loop)


def test_lexer_strings_comments_and_locations() -> None:
    tokens = tokenize('a "x\\"y\\101\\x42" # c "\n  b;', "f")
    assert [(t.kind, t.text, t.line, t.column) for t in tokens] == [
        (Kind.WORD, "a", 1, 1),
        (Kind.STRING, 'x"yAB', 1, 3),
        (Kind.WORD, "b", 2, 3),
        (Kind.PUNCT, ";", 2, 4),
        (Kind.EOF, "", 2, 5),
    ]
    with pytest.raises(InputFileError, match=r"^f:1:3: unterminated string"):
        tokenize('a "open', "f")


DHCPD = shutil.which("dhcpd") or "/usr/sbin/dhcpd"


def dhcpd_accepts(path: Path, tmp_path: Path) -> bool:
    """``dhcpd -t`` verdict on ``path`` (run from its directory so includes resolve)."""
    leases = tmp_path / "dhcpd.leases"
    leases.touch()
    result = subprocess.run(
        [DHCPD, "-4", "-t", "-cf", path.name, "-lf", str(leases), "-pf", str(tmp_path / "pid")],
        cwd=path.parent,
        capture_output=True,
        timeout=30,
        check=False,
    )
    return result.returncode == 0


@pytest.mark.integration
@pytest.mark.parametrize(
    "path", [*VALID, REAL / "primary.conf", REAL / "secondary.conf", *WARNING, *INVALID], ids=str
)
def test_dhcpd_t_agrees(path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(path.parent)
    try:
        read_config(path.name)
        ours = True
    except InputFileError:
        ours = False
    assert dhcpd_accepts(path, tmp_path) == ours


#: (pools text, pool sizes in order) as dhcpd 4.4.3 built them (OMAPI lease-count; the
#: integration test test_pools_as_dhcpd_builds_them checks these against a live dhcpd).
POOL_SHAPES = [
    (
        'pool { failover peer "p"; range 10.0.0.10 10.0.0.19; }'
        ' pool { failover peer "p"; range 10.0.0.20 10.0.0.24; }'
        ' pool { failover peer "p"; max-lease-time 300; range 10.0.0.30 10.0.0.32; }'
        ' pool { failover peer "p"; deny unknown-clients; range 10.0.0.40 10.0.0.41; }'
        ' pool { failover peer "p"; deny unknown-clients; range 10.0.0.50 10.0.0.56; }'
        " range 10.0.0.60; pool { range 10.0.0.70 10.0.0.71; } range 10.0.0.80 10.0.0.82;",
        [15, 3, 12, 1, 2],
    ),
    (
        "range 10.0.0.60; pool { range 10.0.0.70 10.0.0.71; } range 10.0.0.80 10.0.0.82;"
        ' pool { failover peer "p"; range 10.0.0.10 10.0.0.19; }',
        [4, 2, 10],
    ),
]


@pytest.mark.parametrize(("pools", "sizes"), POOL_SHAPES)
def test_pool_merging_and_bare_ranges(tmp_path: Path, pools: str, sizes: list[int]) -> None:
    conf = tmp_path / "m.conf"
    conf.write_text(
        'failover peer "p" { primary; peer address 10.0.0.2; mclt 60; split 128;'
        " load balance max seconds 3; }\n"
        f"subnet 10.0.0.0 netmask 255.255.255.0 {{ {pools} }}\n"
    )
    config = read_config(conf)
    assert [pool.size for pool in config.pools] == sizes
    odd = [w for w in config.warnings if "dhcpd puts range" in w]
    assert len(odd) == (sizes[2] == 12)


@given(secret=st.binary(min_size=1, max_size=64), quoted=st.booleans())
def test_key_secret_round_trip(secret: bytes, quoted: bool) -> None:
    encoded = base64.b64encode(secret).decode()
    value = f'"{encoded}"' if quoted else encoded
    with TemporaryDirectory() as directory:
        path = Path(directory) / "k.conf"
        path.write_text(f"key k {{ algorithm hmac-sha256; secret {value}; }}\n")
        assert read_config(path).keys["k"].secret.reveal() == secret


@given(text=st.text(st.characters(codec="latin-1", exclude_characters="\r"), max_size=40))
def test_string_escapes_round_trip(text: str) -> None:
    escaped = "".join(
        {'"': '\\"', "\\": "\\\\", "\n": "\\n", "\t": "\\t"}.get(c, c)
        if c.isprintable() or c in "\n\t"
        else f"\\{ord(c):03o}"
        for c in text
    )
    (token, eof) = tokenize(f'"{escaped}"', "s.conf")
    assert (token.kind, token.text, eof.kind) == (Kind.STRING, text, Kind.EOF)
