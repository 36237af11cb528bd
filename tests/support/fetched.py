"""What tests fetch at test time (other projects' test files, an old server release): one
cache for all of it, and one way to get a project's source distribution.

Other projects' code is never part of this repository; their test suites come from the sdist of
the installed version, downloaded once into the cache (``$COATCHECK_TEST_CACHE``, else
``$XDG_CACHE_HOME/coatcheck-tests``, else ``~/.cache/coatcheck-tests``).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from .servers import unavailable

__all__ = ["cache_dir", "sdist"]


def cache_dir() -> Path:
    """The folder fetched things are kept in between runs."""
    explicit = os.environ.get("COATCHECK_TEST_CACHE")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "coatcheck-tests"


def sdist(project: str, version: str) -> Path:
    """The ``.tar.gz`` sdist of ``project`` at ``version``, downloaded from the package index
    into the cache unless it is there already; fails under ``CI=true`` when it cannot be."""
    folder = cache_dir() / f"{project}-{version}"
    archive = folder / f"{project}-{version}.tar.gz"
    if archive.is_file():
        return archive
    folder.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:"]
    command += ["--dest", str(folder), "--quiet", f"{project}=={version}"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300, check=False)
    if result.returncode != 0 or not archive.is_file():
        unavailable(
            f"cannot download the {project} {version} sdist: {result.stderr.strip()[-500:]}",
            "CI=true: the download must work",
        )
    return archive
