"""``flask coatcheck ...`` and ``quart coatcheck ...``: the ``coatcheck`` command, on the app's
store.

Each command runs the plain :mod:`coatcheck.cli` command of the same name with ``--store`` set
to the app's store URL, so the output, the one-line failures and the exit statuses are that
command's own.
"""

from __future__ import annotations

from collections.abc import Callable

import click

from .. import cli

__all__ = ["command_group"]


def command_group(store_url: Callable[[], object]) -> click.Group:
    """The ``coatcheck`` click group for one app; ``store_url()`` gives its store setting."""

    def run(*argv: str) -> None:
        url = store_url()
        if not isinstance(url, str):
            raise click.UsageError(
                "SESSION_COATCHECK_STORE is a store object, not a URL; run "
                "'coatcheck --store URL ...' with the store's URL instead"
            )
        code = cli.main([*argv, "--store", url])
        if code:
            raise click.exceptions.Exit(code)

    group = click.Group("coatcheck", help="Manage the app's coatcheck session store.")

    @group.command("init")
    def init() -> None:
        """Create the store's tables (idempotent)."""
        run("init")

    @group.command("cleanup")
    def cleanup() -> None:
        """Delete expired sessions and print how many."""
        run("cleanup")

    @group.command("stats")
    @click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
    def stats(as_json: bool) -> None:
        """Count live and expired sessions and their payload bytes."""
        run("stats", *(("--json",) if as_json else ()))

    return group
