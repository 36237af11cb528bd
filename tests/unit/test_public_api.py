"""The public surface: explicit, complete, and free of third-party imports."""

from __future__ import annotations

import importlib
import subprocess
import sys

import pytest

import coatcheck
import coatcheck.stores

PUBLIC_MODULES = [
    "coatcheck",
    "coatcheck.asgi",
    "coatcheck.errors",
    "coatcheck.stores",
    "coatcheck.stores.base",
    "coatcheck.testing",
    "coatcheck.wsgi",
]


@pytest.mark.parametrize("name", PUBLIC_MODULES)
def test_all_is_explicit_and_resolves(name: str) -> None:
    # Its order is ruff's job (RUF022); here: every exported name exists.
    module = importlib.import_module(name)
    assert module.__all__, name
    for attr in module.__all__:
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
