"""dhcpd 4.4's failover protocol (draft-ietf-dhc-failover-12 as ISC implements it).

Sans-IO pieces a dhcpfoctl peer or probe is built from; see docs/failover-protocol.md.
"""
