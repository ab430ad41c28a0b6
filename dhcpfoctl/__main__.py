"""Entry point for ``python -m dhcpfoctl`` and the ``dhcpfoctl`` console script."""

from __future__ import annotations


def main() -> None:
    from dhcpfoctl.cli.main import app

    app()


if __name__ == "__main__":
    main()
