"""dhcpd.conf reader: the declarations balance, status and OMAPI need, checked as dhcpd does.

Scopes are read recursively (``shared-network``, ``subnet``, ``pool``, ``group``, ``host``);
``include`` splices another file into the current scope. Statements the reader does not
model (options, ``class`` blocks, ``if`` blocks, …) are skipped by balanced braces, so a
config that dhcpd accepts is never rejected for using a feature we do not need.

Errors dhcpd would report (and then refuse to start) raise :class:`InputFileError` with
``FILE:LINE:COLUMN``: see docs/config-failover.md for the rules and messages.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import itertools
import os
from dataclasses import dataclass, replace
from typing import Final

from dhcpfoctl.conf.lexer import Kind, Token, tokenize
from dhcpfoctl.conf.model import (
    PEER_DEFAULTS,
    ZERO_MEANS_DEFAULT,
    AddressRange,
    Config,
    FailoverPeerConfig,
    HostConfig,
    Parameters,
    Pool,
    Setting,
    SubnetConfig,
)
from dhcpfoctl.errors import InputFileError
from dhcpfoctl.files import open_regular
from dhcpfoctl.keys import ALGORITHMS, OmapiKey, Secret, canonical_algorithm, usable_key
from dhcpfoctl.model import Role, address_to_int, int_to_address
from dhcpfoctl.quoting import parse_decimal

_MAX_INCLUDE_DEPTH: Final = 16
#: dhcpd reads the numbers of a peer declaration as 32-bit unsigned integers.
_MAX_NUMBER: Final = 2**32 - 1
#: Blocks within blocks (real configs nest a handful); the reader recurses per level, so a
#: pathological file must end in a clear error rather than Python's RecursionError.
_MAX_NESTING: Final = 100

#: ``failover peer { … }`` statements taking one number: statement words → field name.
_PEER_NUMBERS: Final[dict[tuple[str, ...], str]] = {
    ("port",): "port",
    ("peer", "port"): "peer_port",
    ("max-response-delay",): "max_response_delay",
    ("max-unacked-updates",): "max_unacked_updates",
    ("mclt",): "mclt",
    ("split",): "split",
    ("load", "balance", "max", "seconds"): "load_balance_max_seconds",
    ("max-lease-misbalance",): "max_lease_misbalance",
    ("max-lease-ownership",): "max_lease_ownership",
    ("min-balance",): "min_balance",
    ("max-balance",): "max_balance",
    ("auto-partner-down",): "auto_partner_down",
    # Accepted by dhcpd but overridden by what the partner sends in CONNECT/CONNECTACK.
    ("peer", "max-response-delay"): "",
    ("peer", "max-unacked-updates"): "",
}


#: Parameter statements taking one number, and those taking one IPv4 address.
_NUMBER_PARAMETERS: Final = frozenset(
    {"default-lease-time", "max-lease-time", "min-lease-time", "local-port"}
)
_ADDRESS_PARAMETERS: Final = frozenset({"local-address", "server-identifier"})
#: ``option NAME …;`` the lab server sends: name → (one address, address list, text).
_OPTIONS: Final[dict[str, str]] = {
    "subnet-mask": "address",
    "routers": "addresses",
    "domain-name-servers": "addresses",
    "domain-name": "text",
}


@dataclass(slots=True)
class _Scope:
    kind: str  # root, shared-network, subnet, pool, group, host
    shared_network: str | None = None
    #: Peer set by ``failover peer NAME;`` in the enclosing shared-network (inherited by pools).
    inherited_peer: str | None = None
    subnet: ipaddress.IPv4Network | None = None
    pool: Pool | None = None
    #: Where this scope's parameter statements go (chained to the enclosing scopes).
    params: Parameters | None = None


class _Stream:
    """Cursor over one file's tokens."""

    def __init__(self, tokens: list[Token]) -> None:
        self._tokens = tokens
        self._pos = 0

    def peek(self, ahead: int = 0) -> Token:
        return self._tokens[min(self._pos + ahead, len(self._tokens) - 1)]

    def next(self) -> Token:
        token = self.peek()
        if token.kind is not Kind.EOF:
            self._pos += 1
        return token

    def expect_semi(self) -> None:
        token = self.next()
        if not token.is_punct(";"):
            raise InputFileError(token.where, f"expecting ';', found {token.describe()}")

    def expect_open(self) -> None:
        token = self.next()
        if not token.is_punct("{"):
            raise InputFileError(token.where, f"expecting '{{', found {token.describe()}")

    def name(self, what: str) -> Token:
        """A name written as a quoted string or a bare identifier."""
        token = self.next()
        if token.kind not in (Kind.WORD, Kind.STRING):
            raise InputFileError(token.where, f"expecting {what}, found {token.describe()}")
        return token

    def number(self) -> int:
        token = self.next()
        value = parse_decimal(token.text, _MAX_NUMBER) if token.kind is Kind.WORD else None
        if value is None:
            raise InputFileError(
                token.where, f"expecting a number up to {_MAX_NUMBER}, found {token.describe()}"
            )
        return value

    def address(self) -> tuple[int, Token]:
        token = self.next()
        try:
            return address_to_int(token.text), token
        except ValueError:
            raise InputFileError(
                token.where, f"expecting an IPv4 address, found {token.describe()}"
            ) from None

    def skip_statement(self) -> None:
        """Skip to the end of the current statement: a ``;`` or a balanced ``{ … }`` block.

        ``if``/``elsif``/``else`` chains are skipped whole.
        """
        start = self.peek()
        while True:
            token = self.next()
            if token.kind is Kind.EOF:
                raise InputFileError(start.where, "statement not terminated before end of file")
            if token.is_punct(";"):
                return
            if token.is_punct("{"):
                self._skip_block(token)
                if self.peek().is_word("elsif", "else"):
                    continue
                if self.peek().is_punct(";"):
                    self.next()
                return
            if token.is_punct("}"):
                raise InputFileError(token.where, "unexpected '}'")

    def _skip_block(self, opening: Token) -> None:
        depth = 1
        while depth:
            token = self.next()
            if token.kind is Kind.EOF:
                raise InputFileError(opening.where, "'{' is never closed")
            if token.is_punct("{"):
                depth += 1
            elif token.is_punct("}"):
                depth -= 1


class _Reader:
    def __init__(self, path: str) -> None:
        self.config = Config(path=path)
        self._depth = 0
        self._nesting = 0
        self._peer_referenced: set[str] = set()
        self._omapi_key_token: Token | None = None
        #: Real paths of the files being read, outermost first: an include of one is a loop.
        self._open_files: list[str] = []

    # -- files ---------------------------------------------------------------------------

    def read_file(self, path: str, scope: _Scope, where: str | None) -> None:
        # The main file's name is already the location; an include is reported where it is.
        location, prefix = (path, "") if where is None else (where, f"{path}: ")
        try:
            with open_regular(path) as raw:
                data = raw.read()
        except InputFileError as exc:
            raise InputFileError(location, f"{prefix}{exc.message}") from None
        except OSError as exc:
            read = "cannot read" if where is None else f"cannot read {path}"
            raise InputFileError(location, f"{read}: {exc.strerror}") from None
        real = os.path.realpath(path)
        if real in self._open_files:
            raise InputFileError(location, f"include loop: {path} includes itself")
        self.config.files.append(path)
        stream = _Stream(tokenize(data.decode("utf-8", errors="surrogateescape"), path))
        self._open_files.append(real)
        try:
            self._body(stream, scope, closing=None)
        finally:
            self._open_files.pop()

    def _include(self, stream: _Stream, scope: _Scope, keyword: Token) -> None:
        token = stream.next()
        if token.kind is not Kind.STRING:
            raise InputFileError(token.where, "expecting a quoted file name after include")
        stream.expect_semi()
        target = token.text
        if "\0" in target:
            # No file name holds a NUL (the OS refuses it with a ValueError, not an OSError).
            raise InputFileError(token.where, "include file name contains a NUL character")
        # dhcpd opens relative names from its working directory; an operator running us
        # elsewhere means the including file's directory, so that is tried second.
        if not os.path.isabs(target) and not os.path.exists(target):
            beside = os.path.join(os.path.dirname(keyword.file), target)
            if os.path.exists(beside):
                target = beside
        if self._depth >= _MAX_INCLUDE_DEPTH:
            raise InputFileError(keyword.where, "includes nested too deeply (include loop?)")
        self._depth += 1
        try:
            self.read_file(target, scope, token.where)
        finally:
            self._depth -= 1

    # -- scopes --------------------------------------------------------------------------

    def _body(self, stream: _Stream, scope: _Scope, closing: Token | None) -> None:
        """Statements up to the ``}`` matching ``closing`` (or end of file at top level)."""
        if self._nesting >= _MAX_NESTING:
            where = closing.where if closing is not None else stream.peek().where
            raise InputFileError(where, f"blocks nested more than {_MAX_NESTING} deep")
        self._nesting += 1
        try:
            self._statements(stream, scope, closing)
        finally:
            self._nesting -= 1

    def _statements(self, stream: _Stream, scope: _Scope, closing: Token | None) -> None:
        while True:
            token = stream.peek()
            if token.kind is Kind.EOF:
                if closing is not None:
                    raise InputFileError(closing.where, "'{' is never closed")
                return
            if token.is_punct("}"):
                if closing is None:
                    raise InputFileError(token.where, "unexpected '}'")
                stream.next()
                return
            self._statement(stream, scope)

    def _statement(self, stream: _Stream, scope: _Scope) -> None:
        token = stream.peek()
        word = token.text.lower() if token.kind is Kind.WORD else ""
        if token.is_punct(";"):
            stream.next()  # an empty statement, which dhcpd tolerates
        elif word == "include":
            stream.next()
            self._include(stream, scope, token)
        elif word == "shared-network":
            self._shared_network(stream, scope)
        elif word == "subnet":
            self._subnet(stream, scope)
        elif word == "pool":
            self._pool(stream, scope)
        elif word == "range":
            self._range(stream, scope)
        elif word == "group":
            stream.next()
            stream.expect_open()
            group = Parameters(parent=scope.params)
            self._body(stream, replace(scope, kind="group", params=group), token)
        elif word == "host":
            self._host(stream, scope)
        elif word == "failover" and stream.peek(1).is_word("peer"):
            self._failover(stream, scope)
        elif word == "no" and stream.peek(1).is_word("failover"):
            self._no_failover(stream, scope)
        elif word == "key":
            self._key(stream)
        elif word == "omapi-port":
            stream.next()
            self.config.omapi_port = stream.number()
            stream.expect_semi()
        elif word == "omapi-key":
            stream.next()
            self._omapi_key_token = stream.name("a key name")
            self.config.omapi_key = self._omapi_key_token.text
            stream.expect_semi()
        elif word in ("allow", "deny", "ignore") and scope.pool is not None:
            self._permit(stream, scope.pool)
        elif self._parameter(stream, scope):
            if scope.pool is not None:
                scope.pool.has_statements = True
        else:
            if scope.pool is not None:
                scope.pool.has_statements = True
            stream.skip_statement()

    def _shared_network(self, stream: _Stream, scope: _Scope) -> None:
        keyword = stream.next()
        if scope.kind not in ("root", "group"):
            raise InputFileError(keyword.where, f"shared-network not allowed in {scope.kind}")
        name = stream.name("a shared-network name")
        stream.expect_open()
        inner = _Scope(
            "shared-network",
            shared_network=name.text,
            params=Parameters(parent=scope.params),
        )
        self._body(stream, inner, keyword)

    def _subnet(self, stream: _Stream, scope: _Scope) -> None:
        keyword = stream.next()
        if scope.kind not in ("root", "group", "shared-network"):
            raise InputFileError(keyword.where, f"subnet not allowed in {scope.kind}")
        number, first = stream.address()
        mask_word = stream.next()
        if not mask_word.is_word("netmask"):
            raise InputFileError(mask_word.where, "expecting netmask")
        mask, mask_token = stream.address()
        try:
            network = ipaddress.IPv4Network(f"{int_to_address(number)}/{int_to_address(mask)}")
        except ValueError:
            raise InputFileError(
                mask_token.where,
                f"subnet {first.text} netmask {mask_token.text}: bad subnet number/mask",
            ) from None
        stream.expect_open()
        # dhcpd names the implicit shared network of a lone subnet after the subnet.
        shared = scope.shared_network or str(network)
        peer = scope.inherited_peer if scope.shared_network else None
        params = Parameters(parent=scope.params)
        self.config.subnets.append(
            SubnetConfig(network, shared, f"{keyword.file}:{keyword.line}", params)
        )
        inner = _Scope(
            "subnet", shared_network=shared, inherited_peer=peer, subnet=network, params=params
        )
        self._body(stream, inner, keyword)

    def _pool(self, stream: _Stream, scope: _Scope) -> None:
        keyword = stream.next()
        if scope.kind not in ("shared-network", "subnet") or scope.shared_network is None:
            raise InputFileError(
                keyword.where, "pool declarations belong in a subnet or shared-network"
            )
        stream.expect_open()
        pool = Pool(
            failover_peer=scope.inherited_peer,
            shared_network=scope.shared_network,
            subnet=scope.subnet,
            ranges=[],
            source=f"{keyword.file}:{keyword.line}",
            parameters=Parameters(parent=scope.params),
        )
        self._body(stream, replace(scope, kind="pool", pool=pool, params=pool.parameters), keyword)
        if not pool.ranges:
            self.config.warnings.append(f"{pool.source}: pool has no range")
            return
        for rng in pool.ranges:
            self._check_bootp(rng, pool.failover_peer)
        self._add_pool(pool)

    def _add_pool(self, pool: Pool) -> None:
        """Append ``pool``, or merge its ranges into an earlier pool as dhcpd does.

        dhcpd merges a ``pool { }`` into an earlier one of the same shared network with the
        same peer and permits when neither has statements of its own; never into the
        implicit pool of bare ranges.
        """
        if not pool.has_statements:
            for other in self.config.pools:
                if (
                    other.shared_network == pool.shared_network
                    and not other.implicit
                    and other.failover_peer == pool.failover_peer
                    and not other.has_statements
                    and sorted(other.permits) == sorted(pool.permits)
                ):
                    other.ranges.extend(pool.ranges)
                    return
        self.config.pools.append(pool)

    def _add_bare_range(self, rng: AddressRange, scope: _Scope) -> None:
        """Place a range written outside any ``pool { }`` as dhcpd 4.4.3 does.

        Observed through OMAPI (each pool's lease-count): bare ranges of one kind (plain or
        dynamic-bootp) share one implicit pool per shared network; but when that pool is not
        the shared network's first, a later bare range lands in the pool declared just
        before it, which may even have a failover peer. We follow dhcpd and warn.
        """
        assert scope.shared_network is not None  # a subnet scope always has one
        share = [p for p in self.config.pools if p.shared_network == scope.shared_network]
        for index, pool in enumerate(share):
            if pool.implicit and pool.ranges[0].dynamic_bootp == rng.dynamic_bootp:
                target = share[index - 1] if index else pool
                if target is not pool:
                    self.config.warnings.append(
                        f"{rng.source}: dhcpd puts range {rng} into the pool declared at"
                        f" {target.source} (failover peer {target.failover_peer or 'none'}),"
                        f" not with the bare range at {pool.source}; write it in a pool {{ }}"
                    )
                self._check_bootp(rng, target.failover_peer)
                target.ranges.append(rng)
                return
        self._check_bootp(rng, scope.inherited_peer)
        self.config.pools.append(
            Pool(
                failover_peer=scope.inherited_peer,
                shared_network=scope.shared_network,
                subnet=scope.subnet,
                ranges=[rng],
                source=rng.source,
                implicit=True,
                parameters=Parameters(parent=scope.params),
            )
        )

    def _permit(self, stream: _Stream, pool: Pool) -> None:
        words: list[str] = []
        while not stream.peek().is_punct(";"):
            token = stream.next()
            if token.kind is Kind.EOF or token.is_punct("{") or token.is_punct("}"):
                raise InputFileError(token.where, "expecting ';'")
            words.append(token.text.lower())
        stream.next()
        pool.permits = (*pool.permits, " ".join(words))

    def _range(self, stream: _Stream, scope: _Scope) -> None:
        keyword = stream.next()
        if scope.kind not in ("subnet", "pool", "shared-network"):
            raise InputFileError(keyword.where, f"range not allowed in {scope.kind}")
        dynamic = False
        if stream.peek().is_word("dynamic-bootp"):
            stream.next()
            dynamic = True
        low, low_token = stream.address()
        high = low
        high_token = low_token
        if not stream.peek().is_punct(";"):
            high, high_token = stream.address()
        stream.expect_semi()
        if low > high:  # dhcpd swaps reversed bounds (mdb.c new_address_range)
            low, high = high, low
            low_token, high_token = high_token, low_token
        subnet = self._subnet_for(low, scope, low_token)
        for value, token in ((low, low_token), (high, high_token)):
            if ipaddress.IPv4Address(value) not in subnet:
                raise InputFileError(
                    token.where,
                    f"bad range, address {token.text} not in subnet {subnet.network_address}"
                    f" netmask {subnet.netmask}",
                )
        rng = AddressRange(low, high, dynamic, f"{keyword.file}:{keyword.line}", subnet)
        if scope.pool is not None:
            scope.pool.ranges.append(rng)
            return
        self._add_bare_range(rng, scope)

    def _subnet_for(self, address: int, scope: _Scope, token: Token) -> ipaddress.IPv4Network:
        if scope.subnet is not None:
            return scope.subnet
        ip = ipaddress.IPv4Address(address)
        for subnet in self.config.subnets:
            if subnet.shared_network == scope.shared_network and ip in subnet.network:
                return subnet.network
        raise InputFileError(token.where, f"address range not on network {scope.shared_network}")

    @staticmethod
    def _check_bootp(rng: AddressRange, peer: str | None) -> None:
        if rng.dynamic_bootp and peer is not None:
            raise InputFileError(
                rng.source,
                "dynamic-bootp flag is not permitted for address range declarations where"
                " there is a failover peer in scope",
            )

    def _host(self, stream: _Stream, scope: _Scope) -> None:
        keyword = stream.next()
        name = stream.next()
        if name.kind is not Kind.WORD:  # dhcpd refuses a quoted host name
            raise InputFileError(name.where, "expecting a name for host declaration.")
        stream.expect_open()
        hardware: str | None = None
        addresses: list[str] = []
        while not stream.peek().is_punct("}"):
            token = stream.peek()
            if token.kind is Kind.EOF:
                raise InputFileError(keyword.where, "'{' is never closed")
            if token.is_word("hardware"):
                stream.next()
                stream.next()  # hardware type (ethernet, token-ring, …)
                hardware = stream.next().text.lower()
                stream.expect_semi()
            elif token.is_word("fixed-address"):
                stream.next()
                addresses.append(stream.next().text)
                while stream.peek().is_punct(","):
                    stream.next()
                    addresses.append(stream.next().text)
                stream.expect_semi()
            else:
                # A host's own parameters apply to its client only: not modelled.
                host_scope = replace(scope, kind="host", pool=None, params=Parameters())
                self._statement(stream, host_scope)
        stream.next()
        self.config.hosts.append(
            HostConfig(name.text, hardware, tuple(addresses), f"{keyword.file}:{keyword.line}")
        )

    # -- parameters ----------------------------------------------------------------------

    def _parameter(self, stream: _Stream, scope: _Scope) -> bool:
        """Read a parameter statement the lab server uses; False if it is not one."""
        token = stream.peek()
        word = token.text.lower() if token.kind is Kind.WORD else ""
        if word == "not" and stream.peek(1).is_word("authoritative"):
            stream.next()
            word, value = "authoritative", False
        elif word == "option" and stream.peek(1).text.lower() in _OPTIONS:
            stream.next()
            word = stream.peek().text.lower()
            value = None
        elif word not in _NUMBER_PARAMETERS | _ADDRESS_PARAMETERS | {"authoritative"}:
            return False
        stream.next()
        name = word
        if word == "authoritative":
            value = token.is_word("authoritative")
        elif word in _NUMBER_PARAMETERS:
            value = stream.number()
        elif word in _ADDRESS_PARAMETERS:
            single = self._addresses([stream.next()])
            value = single[0] if single else None
        else:
            name = f"option {word}"
            value = self._option_value(stream, _OPTIONS[word])
        stream.expect_semi()
        if value is not None and scope.params is not None:
            scope.params.settings[name] = Setting(value, f"{token.file}:{token.line}")
        return True

    def _option_value(self, stream: _Stream, kind: str) -> str | tuple[str, ...] | None:
        if kind == "text":
            token = stream.next()
            if token.kind not in (Kind.STRING, Kind.WORD):  # dhcpd takes a bare word too
                raise InputFileError(token.where, f"expecting a string, found {token.describe()}")
            return token.text
        if kind == "address":
            single = self._addresses([stream.next()])
            return single[0] if single else None
        words = [stream.next()]
        while stream.peek().is_punct(","):
            stream.next()
            words.append(stream.next())
        return self._addresses(words)

    def _addresses(self, words: list[Token]) -> tuple[str, ...] | None:
        """IPv4 addresses as written; None (and a warning) if one is a host name."""
        addresses = []
        for token in words:
            if token.kind is not Kind.WORD:
                raise InputFileError(token.where, f"expecting an address, found {token.describe()}")
            try:
                addresses.append(int_to_address(address_to_int(token.text)))
            except ValueError:
                # dhcpd resolves a host name here at run time; the lab does not.
                self.config.warnings.append(
                    f"{token.file}:{token.line}: {token.describe()} is not an IPv4 address;"
                    " the lab server leaves this statement out"
                )
                return None
        return tuple(addresses)

    # -- failover ------------------------------------------------------------------------

    def _failover(self, stream: _Stream, scope: _Scope) -> None:
        keyword = stream.next()
        stream.next()  # "peer"
        if scope.kind == "pool":
            name = stream.next()
            if name.kind is not Kind.STRING:
                raise InputFileError(name.where, "expecting string.")
            stream.expect_semi()
            self._reference_peer(name)
            assert scope.pool is not None
            scope.pool.failover_peer = name.text
            self._peer_referenced.add(name.text)
            return
        name = stream.name("a failover peer name")
        if stream.peek().is_punct(";"):
            stream.next()
            if scope.kind != "shared-network":
                raise InputFileError(
                    keyword.where, "failover peer reference not in shared-network declaration"
                )
            self._reference_peer(name)
            # Pools declared after this point in the shared network inherit the peer.
            scope.inherited_peer = name.text
            return
        if scope.kind not in ("root", "shared-network"):
            raise InputFileError(
                keyword.where,
                "failover peers may only be defined in shared-network declarations and the"
                " outer scope.",
            )
        if stream.peek().is_word("state"):
            raise InputFileError(
                stream.peek().where, "failover peer state records belong in the lease file"
            )
        self._peer_declaration(stream, keyword, name, scope)

    def _reference_peer(self, name: Token) -> None:
        if name.text not in self.config.failover_peers:
            # dhcpd resolves the name while parsing, so the peer must be declared earlier.
            raise InputFileError(name.where, f"failover peer {name.text}: not found")

    def _no_failover(self, stream: _Stream, scope: _Scope) -> None:
        keyword = stream.next()
        second = stream.next()
        third = stream.next()
        if not (second.is_word("failover") and third.is_word("peer")) or scope.pool is None:
            raise InputFileError(keyword.where, "expecting a parameter or declaration")
        # dhcpd 4.4 takes "no failover peer" without a semicolon; a ";" after it is an error.
        if stream.peek().is_punct(";"):
            raise InputFileError(stream.peek().where, "expecting a parameter or declaration")
        scope.pool.failover_peer = None

    def _peer_declaration(
        self, stream: _Stream, keyword: Token, name: Token, scope: _Scope
    ) -> None:
        if name.text in self.config.failover_peers:
            raise InputFileError(name.where, "redeclaration of failover peer")
        stream.expect_open()
        values: dict[str, object] = {}
        given: set[str] = set()
        while not stream.peek().is_punct("}"):
            token = stream.peek()
            if token.kind is Kind.EOF:
                raise InputFileError(keyword.where, "'{' is never closed")
            field_name, value = self._peer_statement(stream)
            if field_name == "role":
                if value is Role.SECONDARY and ("hba" in given or "split" in given):
                    raise InputFileError(
                        token.where, "secondary may not define load balance settings."
                    )
            elif field_name in ("split", "hba"):
                if values.get("role") is Role.SECONDARY:
                    raise InputFileError(
                        token.where, "secondary may not define load balance settings."
                    )
                other = "hba" if field_name == "split" else "split"
                if other in given:
                    # dhcpd accepts both and the later statement replaces the bucket map.
                    self.config.warnings.append(
                        f"{token.file}:{token.line}: failover peer {name.text}: both split and"
                        f" hba given; dhcpd uses the later one ({token.text.lower()})"
                    )
                    values.pop(other)
                    given.discard(other)
            if field_name:
                values[field_name] = value
                given.add(field_name)
        closing = stream.next()
        if stream.peek().is_punct(";"):
            stream.next()
        if "peer_address" not in given:
            raise InputFileError(closing.where, "peer address may not be omitted")
        role = Role(values.get("role", Role.PRIMARY))
        if role is Role.PRIMARY:
            if not values.get("mclt"):  # dhcpd refuses "mclt 0;" with the same message
                raise InputFileError(closing.where, "primary failover server must have mclt.")
            if "split" not in given and "hba" not in given:
                raise InputFileError(
                    closing.where, "primary failover server must have hba or split."
                )
        for parameter in ZERO_MEANS_DEFAULT:
            if values.get(parameter) == 0:
                values[parameter] = PEER_DEFAULTS[parameter]
        source = f"{keyword.file}:{keyword.line}"
        peer = FailoverPeerConfig(
            name=name.text,
            role=role,
            address=values.pop("address", None),  # type: ignore[arg-type]
            peer_address=values.pop("peer_address", None),  # type: ignore[arg-type]
            given=frozenset(given),
            source=source,
            shared_network=scope.shared_network,
            **{k: v for k, v in values.items() if k != "role"},  # type: ignore[arg-type]
        )
        if peer.load_balance_max_seconds == 0:
            setting = "is 0" if "load_balance_max_seconds" in given else "is not set (default 0)"
            self.config.warnings.append(
                f"{source}: failover peer {peer.name}: load balance max seconds {setting}, which"
                " disables load balancing (both servers answer every client); use 3 to 5"
            )
        self.config.failover_peers[peer.name] = peer

    def _peer_statement(self, stream: _Stream) -> tuple[str, object]:
        """One statement of a peer declaration → (field name or "" to ignore, value)."""
        first = stream.next()
        word = first.text.lower() if first.kind is Kind.WORD else ""
        if word in tuple(Role):
            stream.expect_semi()
            return "role", Role(word)
        if word == "address" or (word == "peer" and stream.peek().is_word("address")):
            if word == "peer":
                stream.next()
            host = stream.next()
            if host.kind is not Kind.WORD:
                raise InputFileError(host.where, f"expecting an address, found {host.describe()}")
            stream.expect_semi()
            return ("peer_address" if word == "peer" else "address"), host.text
        if word == "hba":
            return "hba", self._hba(stream, first)
        for key, field_name in _PEER_NUMBERS.items():
            if key[0] != word:
                continue
            if all(stream.peek(i).is_word(part) for i, part in enumerate(key[1:])):
                for _ in key[1:]:
                    stream.next()
                value = stream.number()
                stream.expect_semi()
                if field_name == "split" and value > 256:
                    raise InputFileError(first.where, "split must be between 0 and 256, inclusive")
                return field_name, value
        raise InputFileError(first.where, "invalid statement in peer declaration")

    @staticmethod
    def _hba(stream: _Stream, keyword: Token) -> bytes:
        token = stream.next()
        parts = token.text.split(":") if token.kind is Kind.WORD else []
        stream.expect_semi()
        try:
            data = bytes(int(part, 16) for part in parts)
        except ValueError:
            raise InputFileError(token.where, "expecting colon-separated hex bytes") from None
        if len(data) < 32:
            raise InputFileError(token.where, "too few numbers.")
        if len(data) > 32:
            raise InputFileError(token.where, "too many numbers.")
        return data

    # -- keys ----------------------------------------------------------------------------

    def _key(self, stream: _Stream) -> None:
        # A key stanza holds a secret, and a mistyped one holds it anywhere (as the name,
        # the algorithm, a stray string): no message here quotes a token of the stanza.
        keyword = stream.next()
        name = self._key_token(stream, "a key name")
        self._key_punct(stream, "{")
        algorithm: str | None = None
        secret: bytes | None = None
        secret_token = keyword
        while not stream.peek().is_punct("}"):
            token = stream.next()
            if token.is_word("algorithm"):
                algorithm = canonical_algorithm(self._key_token(stream, "an algorithm").text)
                self._key_punct(stream, ";")
            elif token.is_word("secret"):
                secret_token = token
                secret = self._base64(stream)
            elif token.kind is Kind.EOF:
                raise InputFileError(keyword.where, "'{' is never closed")
            else:
                raise InputFileError(
                    token.where, f"unexpected {token.kind.name.lower()} in key ({_NOT_SHOWN})"
                )
        stream.next()
        if stream.peek().is_punct(";"):
            stream.next()
        where = f"{keyword.file}:{keyword.line}"
        if algorithm is None:
            raise InputFileError(keyword.where, "key: no algorithm")
        if secret is None:
            raise InputFileError(keyword.where, "key: no secret")
        if algorithm not in ALGORITHMS:
            self.config.warnings.append(
                f"{where}: key: unknown algorithm ({_NOT_SHOWN}); dhcpd cannot use it"
            )
        if not secret:
            raise InputFileError(secret_token.where, "key: empty secret")
        self.config.keys[name.text] = OmapiKey(name.text, algorithm, Secret(secret))

    @staticmethod
    def _key_token(stream: _Stream, what: str) -> Token:
        """:meth:`_Stream.name` inside a key stanza: the error does not quote the token."""
        token = stream.next()
        if token.kind not in (Kind.WORD, Kind.STRING):
            raise InputFileError(token.where, f"expecting {what} in key ({_NOT_SHOWN})")
        return token

    @staticmethod
    def _key_punct(stream: _Stream, punct: str) -> None:
        token = stream.next()
        if not token.is_punct(punct):
            raise InputFileError(token.where, f"expecting '{punct}' in key ({_NOT_SHOWN})")

    @staticmethod
    def _base64(stream: _Stream) -> bytes:
        """The secret: one quoted string, or bare base64 words up to ``;``."""
        start = stream.peek()
        pieces: list[str] = []
        while not stream.peek().is_punct(";"):
            token = stream.next()
            if token.kind is Kind.EOF or token.is_punct("}"):
                raise InputFileError(start.where, "secret is not terminated by ';'")
            pieces.append(token.text)
        stream.next()
        try:
            return base64.b64decode("".join(pieces), validate=True)
        except (binascii.Error, ValueError):
            # Never quote the text: it is key material.
            raise InputFileError(start.where, "secret is not valid base64") from None

    # -- whole-config checks -------------------------------------------------------------

    def finish(self) -> Config:
        config = self.config
        for name, peer in config.failover_peers.items():
            if name not in self._peer_referenced:
                raise InputFileError(
                    peer.source,
                    f"Failover peer, {name}, has no referring pools. You must refer to each"
                    " peer in at least one pool declaration.",
                )
        self._check_overlaps()
        if config.omapi_key is not None and config.omapi_key not in config.keys:
            assert self._omapi_key_token is not None
            raise InputFileError(
                self._omapi_key_token.where, f"OMAPI key {config.omapi_key}: not found"
            )
        return config

    def _check_overlaps(self) -> None:
        ranges = sorted(
            (r for pool in self.config.pools for r in pool.ranges), key=lambda r: r.first
        )
        for before, after in itertools.pairwise(ranges):
            if after.first <= before.last:
                raise InputFileError(
                    after.source,
                    f"lease {int_to_address(after.first)} is declared twice! (range {after}"
                    f" overlaps range {before} at {before.source})",
                )


#: What a key stanza's messages say instead of quoting a token.
_NOT_SHOWN = "what is there is not shown: it may be the secret"


def read_config(path: str | os.PathLike[str]) -> Config:
    """Read ``path`` (and its includes). Raises :class:`InputFileError` on what dhcpd rejects."""
    reader = _Reader(os.fspath(path))
    reader.read_file(os.fspath(path), _Scope("root", params=reader.config.parameters), None)
    return reader.finish()


def load_key_file(path: str, name: str | None = None) -> OmapiKey:
    """The key stanza in ``path`` (dhcpd.conf syntax); ``name`` picks one of several."""
    keys = read_config(path).keys
    if name is not None:
        # Key names are not listed: a stanza with its secret in the name position has one.
        if name not in keys:
            raise InputFileError(path, f"no key of that name ({len(keys)} keys here)")
        return usable_key(keys[name], path)
    if len(keys) != 1:
        found = f"{len(keys)} keys" if keys else "no key stanza"
        raise InputFileError(path, f"expected one `key NAME {{ … }}` stanza, found {found}")
    return usable_key(next(iter(keys.values())), path)
