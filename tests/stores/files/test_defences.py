"""FileStore's defences: permissions, hostile keys, planted links, FIFOs and foreign files."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from coatcheck.errors import ConfigurationError, StoreError
from coatcheck.stores import (
    Create,
    Delete,
    FileStore,
    Load,
    LockRequest,
    Record,
    Touch,
    Unlock,
    Update,
)

from .._support import HOUR, NOW, key
from ._directory import IS_ROOT, mode, snapshot

# -- permissions ---------------------------------------------------------------------------


def test_directory_is_0700_and_every_file_0600(store: FileStore, directory: Path) -> None:
    assert mode(directory) == 0o700
    assert store.create(Create(key(1), b"x", NOW, NOW + HOUR, NOW))
    assert isinstance(store.load(Load(key(1), NOW, LockRequest("a", 30))), Record)
    names = sorted(p.name for p in directory.iterdir())
    assert names == sorted([key(1), key(1) + ".lock", ".guard-" + key(1)[:2]])
    assert {p.name: mode(p) for p in directory.iterdir()} == {n: 0o600 for n in names}


@pytest.mark.parametrize("bits", [0o777, 0o770, 0o702, 0o720])
def test_group_or_world_writable_directory_is_refused(directory: Path, bits: int) -> None:
    directory.mkdir()
    directory.chmod(bits)
    with pytest.raises(ConfigurationError, match="writable by its group or by everyone"):
        FileStore(directory)


@pytest.mark.skipif(not IS_ROOT, reason="needs root to give the directory to another user")
def test_directory_owned_by_another_user_is_refused(directory: Path) -> None:
    directory.mkdir(mode=0o700)
    os.chown(directory, 65534, 65534)
    with pytest.raises(ConfigurationError, match="belongs to uid 65534"):
        FileStore(directory)


def test_a_readable_existing_directory_is_accepted(directory: Path) -> None:
    # Only write access matters: names are SHA-256 digests and the files are 0600.
    directory.mkdir()
    directory.chmod(0o755)
    FileStore(directory).close()


# -- hostile keys and files ----------------------------------------------------------------

HOSTILE_KEYS = [
    "../outside",
    "../../../../etc/passwd",
    "/etc/passwd",
    "a/b",
    "..",
    ".",
    "",
    "..\\..\\x",
    "%2e%2e%2fx",
    "../" + "a" * 61,
    "a" * 63 + "/",
    "A" * 64,
    "a" * 64 + "\n",
    "a" * 64 + ".lock",
    "a" * 65,
    "\x00" + "a" * 63,
]


def test_traversal_keys_never_touch_the_file_system(tmp_path: Path, directory: Path) -> None:
    store = FileStore(directory)
    assert store.create(Create(key(1), b"victim", NOW, NOW + HOUR, NOW))
    (tmp_path / "outside").write_bytes(b"outside")
    before = snapshot(tmp_path)
    for bad in HOSTILE_KEYS:
        calls = [
            lambda k=bad: store.load(Load(k, NOW)),
            lambda k=bad: store.load(Load(k, NOW, LockRequest("t", 30))),
            lambda k=bad: store.create(Create(k, b"evil", NOW, NOW + HOUR, NOW)),
            lambda k=bad: store.update(Update(k, b"evil", NOW, NOW + HOUR, NOW, None)),
            lambda k=bad: store.touch(Touch(k, NOW, NOW + HOUR, NOW)),
            lambda k=bad: store.unlock(Unlock(k, "t")),
            lambda k=bad: store.delete(Delete(k)),
        ]
        for call in calls:
            with pytest.raises(ValueError, match="64 lowercase hexadecimal"):
                call()
    assert snapshot(tmp_path) == before
    store.close()


def test_a_planted_symlink_is_never_followed(tmp_path: Path, store: FileStore) -> None:
    target = tmp_path / "target"
    target.write_bytes(b"precious")
    link = store.directory + "/" + key(1)
    os.symlink(target, link)
    for call in [
        lambda: store.load(Load(key(1), NOW)),
        lambda: store.load(Load(key(1), NOW, LockRequest("t", 30))),
        lambda: store.update(Update(key(1), b"evil", NOW, NOW + HOUR, NOW, None)),
        lambda: store.touch(Touch(key(1), NOW, NOW + HOUR, NOW)),
    ]:
        with pytest.raises(StoreError, match="symbolic link"):
            call()
    assert store.create(Create(key(1), b"evil", NOW, NOW + HOUR, NOW)) is False  # the name is taken
    assert target.read_bytes() == b"precious"
    store.delete(Delete(key(1)))  # removes the link itself, never what it points to
    assert not os.path.lexists(link)
    assert target.read_bytes() == b"precious"
    # A link planted where the lock file or a guard file goes is refused the same way.
    assert store.create(Create(key(1), b"ok", NOW, NOW + HOUR, NOW))
    os.symlink(target, link + ".lock")
    with pytest.raises(StoreError, match="symbolic link"):
        store.load(Load(key(1), NOW, LockRequest("t", 30)))
    os.unlink(link + ".lock")
    os.symlink(target, store.directory + "/.guard-" + key(2)[:2])
    with pytest.raises(StoreError, match="symbolic link"):
        store.delete(Delete(key(2)))
    assert target.read_bytes() == b"precious"


def test_a_planted_fifo_does_not_hang_a_load(store: FileStore) -> None:
    os.mkfifo(store.directory + "/" + key(1), 0o600)
    with pytest.raises(StoreError, match="not a regular file"):
        store.load(Load(key(1), NOW))


@pytest.mark.skipif(not IS_ROOT, reason="needs root to give a file to another user")
def test_a_record_owned_by_another_user_is_refused(store: FileStore) -> None:
    assert store.create(Create(key(1), b"x", NOW, NOW + HOUR, NOW))
    os.chown(store.directory + "/" + key(1), 65534, 65534)
    with pytest.raises(StoreError, match="belongs to uid 65534"):
        store.load(Load(key(1), NOW))
    with pytest.raises(StoreError, match="belongs to uid 65534"):
        store.update(Update(key(1), b"y", NOW, NOW + HOUR, NOW, None))
