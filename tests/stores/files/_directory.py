"""The session directory seen from outside the store: modes, contents, temp files, and a way to
make it read-only (for root too)."""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

import pytest

__all__ = ["IS_ROOT", "make_read_only", "make_writable", "mode", "snapshot", "temp_files"]


IS_ROOT = os.geteuid() == 0


def snapshot(root: Path) -> dict[str, tuple[int, int, bytes | str]]:
    """Every path under ``root`` with its mode, mtime and content (or link target)."""
    result: dict[str, tuple[int, int, bytes | str]] = {}
    for path in sorted(root.rglob("*")):
        st = path.lstat()
        if path.is_symlink():
            content: bytes | str = os.readlink(path)
        elif path.is_file():
            content = path.read_bytes()
        else:
            content = ""
        result[str(path.relative_to(root))] = (st.st_mode, st.st_mtime_ns, content)
    return result


def mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


def temp_files(directory: str) -> list[str]:
    return [n for n in os.listdir(directory) if n.endswith(".tmp")]


def make_read_only(directory: Path) -> None:
    if IS_ROOT:
        # Root ignores permission bits; the immutable attribute binds it too.
        done = subprocess.run(["chattr", "+i", str(directory)], capture_output=True)
        if done.returncode != 0:
            pytest.skip(f"cannot make a directory read-only as root: {done.stderr!r}")
    else:
        directory.chmod(0o500)


def make_writable(directory: Path) -> None:
    if IS_ROOT:
        subprocess.run(["chattr", "-i", str(directory)], check=True)
    else:
        directory.chmod(0o700)
