"""The Django app: ``"coatcheck.contrib.django"`` in ``INSTALLED_APPS`` gives the
``coatcheck_createtables`` command and creates the store's tables on ``migrate``."""

from __future__ import annotations

from typing import Any

from django.apps import AppConfig  # type: ignore[import-untyped]
from django.db.models.signals import post_migrate  # type: ignore[import-untyped]

__all__ = ["CoatcheckConfig", "create_tables"]


def create_tables(**kwargs: Any) -> None:
    """Create the session store's tables, if it has any (SQL stores); a ``post_migrate``
    receiver, also called by ``manage.py coatcheck_createtables``."""
    from ._config import store_url, stores

    store = stores(store_url())[0]
    create = getattr(store, "create_tables", None)
    if create is not None:
        create()


# Django has no type information: AppConfig is Any to mypy.
class CoatcheckConfig(AppConfig):  # type: ignore[misc]
    """coatcheck's session engine as a Django app."""

    name = "coatcheck.contrib.django"
    label = "coatcheck"
    verbose_name = "coatcheck sessions"

    def ready(self) -> None:
        # Once per migrate run (for this app's label only), whatever the database.
        post_migrate.connect(create_tables, sender=self, dispatch_uid="coatcheck.create_tables")
