"""The lab: an embedded failover pair that behaves like dhcpd 4.4 on loopback.

Pure parts (no sockets, no clock): :mod:`~dhcpfoctl.lab.dhcp` (DHCP messages),
:mod:`~dhcpfoctl.lab.engine` (the DHCP server's lease engine), :mod:`~dhcpfoctl.lab.objects`
(the OMAPI objects dhcpd exposes) and :mod:`~dhcpfoctl.lab.client` (a DHCP client's state
machine). I/O glue: :mod:`~dhcpfoctl.lab.journal` (dhcpd.leases), :mod:`~dhcpfoctl.lab.server`
(one server process), :mod:`~dhcpfoctl.lab.relay` (the failover link the lab can cut),
:mod:`~dhcpfoctl.lab.population` (DHCP clients), :mod:`~dhcpfoctl.lab.cluster` (the pair's
processes and files).
"""
