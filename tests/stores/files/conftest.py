"""Fixtures of the FileStore tests: the session directory (not created yet) and a store on it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from coatcheck.stores import FileStore


@pytest.fixture
def directory(tmp_path: Path) -> Path:
    return tmp_path / "sessions"


@pytest.fixture
def store(directory: Path) -> Iterator[FileStore]:
    s = FileStore(directory)
    yield s
    s.close()
