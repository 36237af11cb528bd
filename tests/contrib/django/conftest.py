"""What the Django engine tests share: Django configured once for this process, from the
example project's own settings (examples/django_project), on a database file of this run's.

Each test then picks its store with :func:`engine_on` (``override_settings`` of ``COATCHECK``,
which rebuilds the engine's managers), on the frozen clock; the stores it built are closed
after it.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import django
import pytest
from django.conf import settings
from django.test.utils import override_settings

from coatcheck.contrib.django._config import close_stores
from coatcheck.testing import FrozenClock
from tests.support.servers import require_server

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "django_project"
_DATABASE = Path(tempfile.mkdtemp(prefix="coatcheck-django-"))

if not settings.configured:
    sys.path.insert(0, str(EXAMPLE))
    import project.settings as example_settings

    values = {name: getattr(example_settings, name) for name in dir(example_settings)}
    values = {name: value for name, value in values.items() if name.isupper()}
    values["DATABASES"] = {
        "default": {"ENGINE": "django.db.backends.sqlite3", "NAME": str(_DATABASE / "db.sqlite3")}
    }
    values["COATCHECK"] = {"STORE": "memory://"}
    values["PASSWORD_HASHERS"] = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # fast
    settings.configure(**values)
    django.setup()

#: The stores every store-parametrised test runs on.
STORES = ["memory", "sqlite", pytest.param("redis", marks=pytest.mark.server("redis"))]


def store_url(kind: str, tmp_path: Path) -> str:
    """A store URL of ``kind`` that no other test uses."""
    if kind == "memory":
        return "memory://"
    if kind == "sqlite":
        return f"sqlite:///{tmp_path / f'sessions-{uuid.uuid4().hex}.db'}"
    host, port = require_server("redis")
    return f"redis://{host}:{port}/0?prefix=coatcheck-django-{uuid.uuid4().hex}:"


@pytest.fixture(scope="session", autouse=True)
def _database() -> Iterator[None]:
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    yield
    from django.db import connections

    connections.close_all()
    shutil.rmtree(_DATABASE, ignore_errors=True)


@pytest.fixture(autouse=True)
def _fresh_stores() -> Iterator[None]:
    yield
    close_stores()


@pytest.fixture(params=STORES)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A store URL: memory, SQLite, Redis."""
    return store_url(request.param, tmp_path)


class EngineOn:
    """``engine_on(url, **coatcheck_options)``: the engine on that store from now until the
    end of the test (with the test's frozen clock), its tables created."""

    def __init__(self, clock: FrozenClock) -> None:
        self.clock = clock
        self._overrides: list[override_settings] = []

    def __call__(self, url: str, **options: Any) -> None:
        from coatcheck.contrib.django.apps import create_tables

        self.close()
        coatcheck = {"STORE": url, "CLOCK": self.clock, **options}
        override = override_settings(COATCHECK=coatcheck)
        override.enable()
        self._overrides.append(override)
        create_tables()

    def close(self) -> None:
        while self._overrides:
            self._overrides.pop().disable()


@pytest.fixture
def engine_on(clock: FrozenClock) -> Iterator[EngineOn]:
    on = EngineOn(clock)
    yield on
    on.close()
