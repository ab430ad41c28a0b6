"""``dhcpfoctl watch``: watch failover pairs, record their history, act only on evidence.

``model`` is the snapshot metrics render, ``policy`` the sans-IO decision core, ``probes``
the partner probes and the unanswered-clients evidence, ``history`` the journal,
``service`` the loop; ``witness`` (etcd) and ``metrics`` (Prometheus) plug into it.
"""
