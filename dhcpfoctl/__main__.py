"""Entry point for ``python -m dhcpfoctl`` and the ``dhcpfoctl`` console script."""

from __future__ import annotations


def main() -> None:
    from dhcpfoctl.cli.main import app

    try:
        app()
    except Exception as exc:
        from dhcpfoctl.cli.output import exit_after_crash

        exit_after_crash(exc)


if __name__ == "__main__":
    main()
