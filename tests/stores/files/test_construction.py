"""FileStore's construction: from a URL, and the directory checked again after close."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from coatcheck.errors import ConfigurationError
from coatcheck.stores import Create, FileStore, Load, Record, store_from_url

from .._support import HOUR, NOW, key
from ._directory import mode


def test_from_url(tmp_path: Path) -> None:
    store = store_from_url(f"file://{tmp_path}/from-url")
    assert isinstance(store, FileStore)
    assert store.name == f"file://{tmp_path}/from-url"
    assert mode(tmp_path / "from-url") == 0o700
    store.close()
    spaced = FileStore.from_url(f"file://localhost{tmp_path}/with%20space")
    assert spaced.directory == f"{tmp_path}/with space"
    spaced.close()


@pytest.mark.parametrize(
    "url", ["file://relative/dir", "file:relative", "file:///tmp/x?mode=1", "file://host/tmp/x"]
)
def test_bad_urls_are_configuration_errors(url: str) -> None:
    with pytest.raises(ConfigurationError):
        FileStore.from_url(url)


def test_close_then_use_reopens_the_checked_directory(store: FileStore, directory: Path) -> None:
    assert store.create(Create(key(1), b"x", NOW, NOW + HOUR, NOW))
    store.close()
    assert isinstance(store.load(Load(key(1), NOW)), Record)
    store.close()
    shutil.rmtree(directory)
    directory.mkdir()
    directory.chmod(0o777)
    with pytest.raises(ConfigurationError):
        store.load(Load(key(1), NOW))
