"""``manage.py coatcheck_createtables``: create the session store's tables (SQL stores)."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand  # type: ignore[import-untyped]

from ..._config import store_url
from ...apps import create_tables

__all__ = ["Command"]


# Django has no type information: BaseCommand is Any to mypy.
class Command(BaseCommand):  # type: ignore[misc]
    """Create the tables of ``settings.COATCHECK["STORE"]``; does nothing when they exist or
    the store has none (Redis, memcached, files, memory)."""

    help = "Create the coatcheck session store's tables (safe to run again)."

    def handle(self, *args: Any, **options: Any) -> None:
        create_tables()
        self.stdout.write(f"coatcheck: session store ready ({store_url()})")
