"""Checks of a failover pair: gathering what servers and files say, and judging it.

``gather`` is the I/O (both servers over OMAPI in parallel, lease files for endurance,
the partner's liveness); ``health``, ``audit`` and ``partner_down`` are pure judgements
whose results ``cli/`` renders.
"""
