"""Entry point for ``python -m dhcpfoctl`` and the ``dhcpfoctl`` console script."""

from __future__ import annotations

import atexit
import gc


def main() -> None:
    # At exit the interpreter's last collections walk every object still alive (~15 ms
    # after a 10k-address balance, ~10 ms after --version), only to free memory the
    # process is giving back: frozen, they are skipped (refcounting still frees them).
    atexit.register(gc.freeze)
    from dhcpfoctl.cli.main import app

    try:
        app()
    except Exception as exc:
        from dhcpfoctl.cli.output import exit_after_crash

        exit_after_crash(exc)


if __name__ == "__main__":
    main()
