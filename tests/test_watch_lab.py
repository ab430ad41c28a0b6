"""``dhcpfoctl watch`` on a lab pair: a true death is taken over in time, a partition is not
(the stuck-link alert fires instead), and a watcher restarted mid-incident acts once.
The trials themselves are ``tests/watch_trials.py``; ``bench/bench_watch.py`` runs many."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from dhcpfoctl.lab.cluster import Lab
from tests.test_lab_cluster import free_base_port
from tests.watch_trials import T, lab_pair, run_trial


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Lab, Path]]:
    workdir = tmp_path_factory.mktemp("watch-lab")
    with lab_pair(workdir / "lab", free_base_port()) as pair:
        yield pair, workdir


def test_a_killed_server_is_taken_over_within_t_plus_10_s(lab: tuple[Lab, Path]) -> None:
    trial = run_trial(lab[0], "death", 0, lab[1])
    assert trial.acted == 1, trial
    assert trial.time_to_act is not None and trial.time_to_act <= T + 10, trial
    assert not trial.notes, trial


def test_a_cut_link_raises_the_stuck_link_alert_and_no_partner_down(lab: tuple[Lab, Path]) -> None:
    trial = run_trial(lab[0], "partition", 0, lab[1])
    assert trial.acted == 0 and trial.stuck_alert, trial


def test_a_watcher_killed_and_restarted_mid_incident_acts_once(lab: tuple[Lab, Path]) -> None:
    trial = run_trial(lab[0], "restart", 0, lab[1])
    assert trial.acted == 1 and not trial.notes, trial
