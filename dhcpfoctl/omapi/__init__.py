"""OMAPI (dhcpd's management protocol): keys, a typed client on pypureomapi's codec."""
