"""Fixtures for the integration tests on a real dhcpd 4.4 failover pair (see realpair.py).

* ``require_real_dhcpd``: skips when the machine cannot run a pair (not root, no dhcpd, …),
  but fails instead when ``CI=true``, so that CI never passes by skipping.
* ``real_pair``: ONE pair for the whole session (primary OMAPI without a key, secondary
  keyed with ``LAB_KEY``), because reaching normal/normal costs seconds.
* ``lab_pair``: the same pair served by two dhcpfoctl lab servers (``PairConfig(lab="both")``).
* ``normal_pair``: ``real_pair``, then ``lab_pair`` (each test runs on both), guaranteed
  normal/normal (link healed, both servers up) before the test and brought back there after
  it, so tests may cut, kill and force states.
* ``make_pair``: ``make_pair(PairConfig(...))`` starts a pair of one's own (e.g. a small pool
  with a fast balance timer); it is torn down at the end of the test.
* ``run_cli``: ``run_cli("status", "--json")`` runs the real ``dhcpfoctl`` command in a
  subprocess (end to end) with ``DHCPFOCTL_CONFIG`` pointing at a profile of ``normal_pair``
  (default profile ``lab``); ``run_cli(..., profile=False)`` runs it without any profile.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest

from dhcpfoctl.model import FailoverState

from .realpair import LAB_KEY, ROLES, PairConfig, RealPair, RunCli, missing_prerequisites

#: Worst case back to normal: heal (~5 s) or a restart within MCLT (recover-wait), doubled.
RESTORE_TIMEOUT = 60.0


@pytest.fixture(scope="session")
def require_real_dhcpd() -> None:
    missing = missing_prerequisites()
    if missing:
        message = "a real dhcpd failover pair needs: " + ", ".join(missing)
        if os.environ.get("CI") == "true":
            pytest.fail(message, pytrace=False)
        pytest.skip(message)


@pytest.fixture(scope="session")
def real_pair(
    require_real_dhcpd: None, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RealPair]:
    config = PairConfig(secondary_key=LAB_KEY)
    with RealPair(config, workdir=tmp_path_factory.mktemp("real-pair")) as pair:
        yield pair


def restore_normal(pair: RealPair) -> None:
    """Undo cuts, start stopped servers and wait for normal/normal."""
    pair.heal_all()
    for role in ROLES:
        if not pair.is_running(role):
            pair.start(role)
    pair.wait_states(
        primary=FailoverState.NORMAL, secondary=FailoverState.NORMAL, timeout=RESTORE_TIMEOUT
    )


@pytest.fixture(scope="session")
def lab_pair(
    require_real_dhcpd: None, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RealPair]:
    """``real_pair``'s twin served by two dhcpfoctl lab servers (same confs and keys)."""
    config = PairConfig(secondary_key=LAB_KEY, lab="both")
    with RealPair(config, workdir=tmp_path_factory.mktemp("lab-pair")) as pair:
        yield pair


@pytest.fixture(params=["dhcpd", "lab"])
def normal_pair(request: pytest.FixtureRequest) -> Iterator[RealPair]:
    """Every scenario on a normal pair runs twice: on real dhcpd and on the lab servers,
    which must behave the same for every command."""
    pair: RealPair = request.getfixturevalue(
        "real_pair" if request.param == "dhcpd" else "lab_pair"
    )
    restore_normal(pair)
    yield pair
    restore_normal(pair)


@pytest.fixture
def make_pair(
    require_real_dhcpd: None, tmp_path: Path
) -> Iterator[Callable[[PairConfig], RealPair]]:
    with ExitStack() as stack:
        made: list[RealPair] = []

        def make(config: PairConfig) -> RealPair:
            pair = RealPair(config, workdir=tmp_path / f"pair{len(made)}")
            made.append(stack.enter_context(pair))
            return pair

        yield make


@pytest.fixture
def run_cli(normal_pair: RealPair, tmp_path_factory: pytest.TempPathFactory) -> RunCli:
    directory = tmp_path_factory.mktemp("dhcpfoctl-config")
    profile = normal_pair.write_profile(directory / "config.toml", name="lab")
    return RunCli(profile, directory / "absent.toml")
