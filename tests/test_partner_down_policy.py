"""checks/partner_down.py: the pure safety policy of forced transitions."""

from __future__ import annotations
