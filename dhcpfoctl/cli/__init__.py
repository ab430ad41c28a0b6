"""Command-line interface: one module per command group, composed in :mod:`.main`.

Command modules are option wiring and rendering only: they get plain results from the
library (``leases``, ``conf``, ``balance``, and ``checks`` for gathering and judging) and
render them; rendering never does I/O of its own beyond writing to the console it is given.
They import no other command module, only the shared ``options`` and ``output``.
"""
