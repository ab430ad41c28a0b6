"""Command-line interface: one module per command group, composed in :mod:`.main`.

Each command module gathers data through the library (``leases``, ``conf``, ``balance``,
``omapi``) and hands plain results to a renderer; rendering never does I/O of its own
beyond writing to the console it is given.
"""
