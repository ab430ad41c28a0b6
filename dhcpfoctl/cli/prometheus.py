"""The Prometheus textfile format of a balance report, for ``balance`` and ``audit``.

node-exporter's textfile collector reads it (``--format prometheus --output FILE``); every
metric is prefixed ``dhcpfoctl_`` and documented in the README's Monitoring recipes.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from dhcpfoctl.balance import BalanceReport

#: The binding states of ``balance.Counts`` a pool's leases are shown by.
BALANCE_STATES = ("free", "backup", "active", "expired", "released", "abandoned", "reset")
#: An extra sample: (name without prefix, help, labels, value); gauges only.
Sample = tuple[str, str, dict[str, str | None], float]


def _label(value: str | None) -> str:
    from dhcpfoctl.cli.output import literal

    # literal first: the format's escapes below are then the only backslashes it adds to.
    text = literal(value or "")
    return text.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def report_to_prometheus(report: BalanceReport, extra: Iterable[Sample] = ()) -> str:
    """node-exporter textfile format of ``report``, then the ``extra`` samples (``audit``'s
    result); every metric is prefixed ``dhcpfoctl_``."""
    return render_samples([*report_samples(report), *extra])


def render_samples(samples: Iterable[Sample]) -> str:
    """Samples grouped into families, each under its HELP and TYPE lines."""
    from dhcpfoctl.balance import plain_number

    families: dict[str, tuple[str, list[str]]] = {}
    for name, help_text, labels, value in samples:
        family = families.setdefault(name, (help_text, []))
        rendered = ",".join(f'{k}="{_label(v)}"' for k, v in labels.items())
        family[1].append(f"dhcpfoctl_{name}{{{rendered}}} {plain_number(value)}")
    lines = []
    for name, (help_text, rendered_samples) in families.items():
        lines += [f"# HELP dhcpfoctl_{name} {help_text}", f"# TYPE dhcpfoctl_{name} gauge"]
        lines += rendered_samples
    return "\n".join(lines) + "\n"


def report_samples(report: BalanceReport) -> list[Sample]:
    """The gauges of a balance report: per pool, per role and per relationship."""
    from dhcpfoctl.model import Role

    samples: list[Sample] = []

    def sample(
        name: str, kind: str, help_text: str, labels: dict[str, str | None], value: float
    ) -> None:
        samples.append((name, help_text, labels, value))

    for pool in report.pools:
        base = {
            "relationship": pool.pool.failover_peer,
            "shared_network": pool.pool.shared_network,
            "pool": pool.pool.label,
        }
        sample(
            "pool_addresses", "gauge", "Addresses in the pool's ranges.", base, pool.counts.total
        )
        for state in (*BALANCE_STATES, "reserved"):
            sample(
                "pool_leases",
                "gauge",
                "Leases of the pool by binding state.",
                {**base, "state": state},
                getattr(pool.counts, state),
            )
        for role in Role:
            view = pool.view(role)
            if view is None:
                continue
            labels = {**base, "role": role}
            sample(
                "pool_lts",
                "gauge",
                "dhcpd's leases-to-send (positive: gives leases away).",
                labels,
                view.lts,
            )
            sample(
                "pool_misbalance_threshold",
                "gauge",
                "dhcpd's max-misbal (T x max-lease-misbalance %).",
                labels,
                view.thresh,
            )
            sample(
                "pool_poolreq",
                "gauge",
                "1 if this role's timer run would send POOLREQ.",
                labels,
                int(view.poolreq),
            )
            sample(
                "pool_next_run_moves",
                "gauge",
                "Leases the next balance run would move (lower bound).",
                labels,
                view.next_min.moved,
            )
            sample(
                "pool_free_risk",
                "gauge",
                "1 if this role risks 'peer holds all free leases'.",
                labels,
                int(role in pool.risks),
            )
    for rel in report.relationships:
        for role, value in rel.endurance.items():
            labels = {"relationship": rel.name, "role": role}
            if value.rate_per_hour is not None:
                sample(
                    "allocation_rate_per_hour",
                    "gauge",
                    "New bindings per hour over the window.",
                    labels,
                    value.rate_per_hour,
                )
            for mode, seconds in (("normal", value.normal), ("interrupted", value.interrupted)):
                if seconds is not None:
                    sample(
                        "endurance_seconds",
                        "gauge",
                        "Seconds until the server's free leases run out at the current rate.",
                        {**labels, "mode": mode},
                        seconds,
                    )
    sample(
        "as_of_timestamp_seconds", "gauge", "Time the figures were computed for.", {}, report.as_of
    )
    return samples
