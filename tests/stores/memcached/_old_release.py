"""A memcached release older than the store's minimum, for the test of the version check.

memcached 1.6.9 is Debian 11's (bullseye) package. It is fetched with apt, from a private
sources list and private state folders (nothing about the machine's own apt changes), and
unpacked, not installed, into a cache folder, so later runs start it at once. The test starts
it on a free port of its own (:class:`tests.stores._own_server.OwnServer`).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from ...support.fetched import cache_dir
from ...support.servers import unavailable

__all__ = ["OLD_VERSION", "old_memcached"]

OLD_VERSION = "1.6.9"
_PACKAGE = "memcached=1.6.9+dfsg-1"
# Where bullseye is now, and where Debian moves a release it no longer serves.
_MIRRORS = ("http://deb.debian.org/debian", "http://archive.debian.org/debian")
_KEYRING = "/usr/share/keyrings/debian-archive-keyring.gpg"


def _cache() -> Path:
    return cache_dir() / f"memcached-{OLD_VERSION}"


def _fetch(target: Path) -> str | None:
    """Unpack the old release into ``target``; the reason it could not, or None."""
    for tool in ("apt-get", "dpkg-deb"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed (a Debian machine has it)"
    if not os.path.exists(_KEYRING):
        return f"no Debian archive keyring at {_KEYRING}"
    reasons = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        for sub in ("lists/partial", "cache/archives/partial"):
            (work / sub).mkdir(parents=True)
        options = [
            f"-oDir::Etc::SourceList={work / 'sources.list'}",
            "-oDir::Etc::SourceParts=/dev/null",
            f"-oDir::State::Lists={work / 'lists'}",
            f"-oDir::Cache={work / 'cache'}",
            "-oAPT::Sandbox::User=root" if os.geteuid() == 0 else "-oDebug::NoLocking=1",
            "-qq",
        ]
        for mirror in _MIRRORS:
            source = f"deb [signed-by={_KEYRING}] {mirror} bullseye main\n"
            (work / "sources.list").write_text(source)
            steps = [["apt-get", *options, "update"], ["apt-get", *options, "download", _PACKAGE]]
            failed = None
            for step in steps:
                done = subprocess.run(step, cwd=work, capture_output=True, text=True, timeout=300)
                if done.returncode != 0:
                    failed = (done.stderr or done.stdout).strip().splitlines()[-1:]
                    break
            debs = sorted(work.glob("memcached_*.deb"))
            if failed is None and debs:
                target.mkdir(parents=True)
                unpacked = subprocess.run(
                    ["dpkg-deb", "-x", str(debs[0]), str(target)], capture_output=True, text=True
                )
                return None if unpacked.returncode == 0 else f"dpkg-deb: {unpacked.stderr}"
            reasons.append(f"{mirror}: {' '.join(failed or ['no package downloaded'])}")
    return "; ".join(reasons)


def old_memcached() -> Path:
    """The path of a runnable memcached 1.6.9; skips the test (fails it under ``CI=true``)
    when it cannot be fetched or does not run here."""
    binary = _cache() / "usr" / "bin" / "memcached"
    reason = None
    if not binary.exists():
        staging = _cache().with_name(_cache().name + ".partial")
        shutil.rmtree(staging, ignore_errors=True)
        reason = _fetch(staging)
        if reason is None:
            shutil.rmtree(_cache(), ignore_errors=True)
            staging.rename(_cache())
    if reason is None:
        ran = subprocess.run([str(binary), "-V"], capture_output=True, text=True, timeout=30)
        if ran.returncode != 0 or OLD_VERSION not in ran.stdout:
            reason = f"{binary} does not run here: {(ran.stderr or ran.stdout).strip()[:200]}"
    if reason is not None:
        unavailable(
            f"memcached {OLD_VERSION} (Debian bullseye) is not available: {reason}",
            "CI=true: the old release must be fetched",
        )
    return binary
