"""The public surface: explicit, complete, and free of third-party imports."""

from __future__ import annotations

import importlib
import subprocess
import sys
from pathlib import Path

import pytest

import coatcheck
import coatcheck.stores

PUBLIC_MODULES = [
    "coatcheck",
    "coatcheck.asgi",
    "coatcheck.cli",
    "coatcheck.contrib",
    "coatcheck.contrib.aiohttp",
    "coatcheck.contrib.django",
    "coatcheck.contrib.django.apps",
    "coatcheck.contrib.django.management",
    "coatcheck.contrib.django.management.commands",
    "coatcheck.contrib.django.management.commands.coatcheck_createtables",
    "coatcheck.contrib.django.middleware",
    "coatcheck.contrib.django.models",
    "coatcheck.contrib.fastapi",
    "coatcheck.contrib.flask",
    "coatcheck.contrib.litestar",
    "coatcheck.contrib.quart",
    "coatcheck.contrib.starlette",
    "coatcheck.demo",
    "coatcheck.errors",
    "coatcheck.stores",
    "coatcheck.stores.base",
    "coatcheck.testing",
    "coatcheck.testing.contract",
    "coatcheck.wsgi",
]


def all_modules() -> list[str]:
    """Every module of the package, by walking its folders (drivers are not imported)."""
    root = Path(coatcheck.__file__).parent
    names = []
    for path in sorted(root.rglob("*.py")):
        parts = path.relative_to(root.parent).with_suffix("").parts
        names.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return names


def test_every_module_is_public_or_private_by_name() -> None:
    # A module users may import is listed above; every other one says it is private with a
    # leading underscore somewhere in its dotted name (coatcheck._sansio.core, ...).
    for name in all_modules():
        if name in PUBLIC_MODULES or name == "coatcheck.__main__":
            continue
        assert any(part.startswith("_") for part in name.split(".")), name
    assert set(PUBLIC_MODULES) <= set(all_modules())


@pytest.mark.parametrize("name", PUBLIC_MODULES)
def test_all_is_explicit_and_resolves(name: str) -> None:
    # Its order is ruff's job (RUF022); here: every exported name exists.
    module = importlib.import_module(name)
    # Packages that only hold modules export nothing: coatcheck.contrib, and the folders
    # Django's management commands must live in.
    holder = name == "coatcheck.contrib" or name in (
        "coatcheck.contrib.django.management",
        "coatcheck.contrib.django.management.commands",
        # An app's models module, empty: the sessions have no table in Django's ORM.
        "coatcheck.contrib.django.models",
    )
    assert getattr(module, "__all__", None) or holder, name
    for attr in getattr(module, "__all__", ()):
        assert hasattr(module, attr), f"{name}.{attr}"


def test_every_error_is_exported_from_the_package() -> None:
    from coatcheck import errors

    for name in errors.__all__:
        assert getattr(coatcheck, name) is getattr(errors, name)
        assert issubclass(getattr(errors, name), errors.CoatcheckError)


def test_public_objects_have_docstrings() -> None:
    for name in coatcheck.__all__:
        obj = getattr(coatcheck, name)
        if isinstance(obj, type):
            assert obj.__doc__ and obj.__doc__.strip(), name


def test_core_imports_no_third_party_package() -> None:
    # The core (and the embedded stores) must work with the standard library alone.
    code = (
        "import sys, coatcheck, coatcheck.wsgi, coatcheck.asgi, coatcheck.cli;"
        "from coatcheck.stores import MemoryStore, SQLiteStore, FileStore;"
        "third = {m.split('.')[0] for m in sys.modules} - set(sys.stdlib_module_names)"
        " - {'coatcheck', '__main__', '_distutils_hack'};"
        "print(sorted(third))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert out == "[]"


# The package's names, spelled out: adding or removing one is a decision, made here on purpose.
API = {
    "coatcheck": [
        "AsyncSessionManager",
        "CoatcheckError",
        "ConcurrencyError",
        "ConcurrencyMode",
        "ConfigurationError",
        "CookieConfig",
        "InvalidKey",
        "JSONSerializer",
        "MsgpackSerializer",
        "Namespace",
        "PayloadTooLarge",
        "PickleSerializer",
        "Reservation",
        "ReservedNamespace",
        "SaveOutcome",
        "SerializationError",
        "Serializer",
        "Session",
        "SessionConfig",
        "SessionConflict",
        "SessionDestroyed",
        "SessionError",
        "SessionInterrupted",
        "SessionLocked",
        "SessionManager",
        "StoreError",
        "StoreIncompatible",
        "StoreUnavailable",
    ],
    "coatcheck.stores": [
        "LOCKED",
        "AsyncFileStore",
        "AsyncMemcachedStore",
        "AsyncMemoryStore",
        "AsyncMySQLStore",
        "AsyncPostgreSQLStore",
        "AsyncRedisStore",
        "AsyncSQLiteStore",
        "AsyncStore",
        "ClearExpired",
        "Create",
        "Damaged",
        "Delete",
        "FileStore",
        "Load",
        "LockRequest",
        "Locked",
        "MemcachedStore",
        "MemoryStore",
        "MySQLStore",
        "PostgreSQLStore",
        "Record",
        "RedisStore",
        "SQLiteStore",
        "Slide",
        "Store",
        "StoreStats",
        "Touch",
        "Unlock",
        "Update",
        "async_store_from_url",
        "store_from_url",
    ],
    "coatcheck.testing": ["FrozenClock"],
    "coatcheck.testing.contract": ["AsyncStoreContract", "StoreContract"],
}


@pytest.mark.parametrize("name", sorted(API))
def test_the_public_names_are_these(name: str) -> None:
    assert sorted(importlib.import_module(name).__all__) == sorted(API[name])
