"""Flask's own session tests, run against coatcheck's session interface.

The tests come from the sdist of the installed Flask version, fetched with pip at test time
into a cache outside the repository (``$XDG_CACHE_HOME/coatcheck-tests``, else
``~/.cache/coatcheck-tests``), never copied into the project. They run in a subprocess pytest
with ``flask_suite_plugin`` (this directory), which gives every Flask app coatcheck's
interface on a real SQLite file; the junit report must show each selected test passed, with
coatcheck's interface in use. Under ``CI=true`` a failed download fails this test.
"""

from __future__ import annotations

import importlib.metadata
import os
import subprocess
import sys
import tarfile
import xml.etree.ElementTree as ET
from pathlib import Path

from tests.support.fetched import sdist

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[2]

#: The session tests of Flask's test suite, by file.
SELECTED = {
    "tests/test_basic.py": [
        "test_session_accessed",
        "test_session_path",
        "test_session_using_application_root",
        "test_session_using_session_settings",
        "test_session_using_samesite_attribute",
        "test_missing_session",
        "test_session_secret_key_fallbacks",
        "test_session_expiration",
        "test_session_stored_last",
        "test_session_special_types",
        "test_session_cookie_setting",
        "test_session_vary_cookie",
        "test_session_refresh_vary",
        "test_flashes",
        "test_extended_flashing",
    ],
    "tests/test_testing.py": [
        "test_redirect_session",
        "test_session_transactions",
        "test_session_transactions_no_null_sessions",
        "test_session_transactions_keep_context",
        "test_session_transaction_needs_cookies",
    ],
    # The other tests of Flask's suite that use the session through Flask's own machinery.
    "tests/test_helpers.py": ["TestStreaming::test_stream_keeps_session"],
    "tests/test_templating.py": ["test_standard_context"],
    "tests/test_signals.py": ["test_flash_signal"],
    "tests/test_converters.py": ["test_context_available"],
}
#: Selected tests left out, with the reason (none at present).
EXCLUDED: dict[str, str] = {}
#: Tests that make an app but open no session through it (the session is never opened, or
#: only Flask's NullSession is, there being no secret key).
NO_SESSION = {
    "test_missing_session",
    "test_session_transactions_no_null_sessions",
    "test_session_transaction_needs_cookies",
}


def _flask_sources() -> Path:
    """The unpacked sdist of the installed Flask, downloaded once into the cache."""
    version = importlib.metadata.version("flask")
    archive = sdist("flask", version)
    root = archive.parent
    unpacked = root / f"flask-{version}"
    if (unpacked / "tests" / "test_basic.py").is_file():
        return unpacked
    with tarfile.open(archive) as tar:
        if hasattr(tarfile, "data_filter"):  # Python 3.10.12 and later
            tar.extractall(root, filter="data")
        else:  # an sdist pip just fetched from PyPI for the pinned version
            tar.extractall(root)  # noqa: S202
    return unpacked


def _results(report: Path) -> dict[str, tuple[str, dict[str, str]]]:
    """name -> (outcome, junit properties) from a junit XML report."""
    results: dict[str, tuple[str, dict[str, str]]] = {}
    # The report is the one our own subprocess pytest just wrote, not untrusted input.
    for case in ET.parse(report).getroot().iter("testcase"):  # noqa: S314
        outcome = "passed"
        for child in case:
            if child.tag in ("failure", "error"):
                outcome = "failed" if child.tag == "failure" else "error"
                break
            if child.tag == "skipped":
                outcome = "skipped"
        properties = {p.get("name", ""): p.get("value", "") for p in case.iter("property")}
        results[case.get("name", "")] = (outcome, properties)
    return results


def test_flasks_own_session_tests_pass(tmp_path: Path) -> None:
    sources = _flask_sources()
    report = tmp_path / "flask.xml"
    node_ids = [
        f"{path}::{name}"
        for path, names in SELECTED.items()
        for name in names
        if name not in EXCLUDED
    ]
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(HERE), str(REPO / "src"), env.get("PYTHONPATH", "")])
    env.pop("CI", None)  # nothing in Flask's tests depends on it
    # pytest-asyncio is installed here but not configured for Flask's suite (which needs none).
    command = [sys.executable, "-m", "pytest", "-p", "flask_suite_plugin", "-p", "no:asyncio"]
    command += ["-p", "no:cacheprovider"]
    command += ["--junitxml", str(report), "-q", "--basetemp", str(tmp_path / "base"), *node_ids]
    result = subprocess.run(
        command, cwd=sources, env=env, capture_output=True, text=True, timeout=600, check=False
    )
    assert report.is_file(), result.stdout + result.stderr
    results = _results(report)
    outcomes = {name: outcome for name, (outcome, _) in results.items()}
    expected = {node_id.rpartition(":")[2]: "passed" for node_id in node_ids}
    assert outcomes == expected, result.stdout[-4000:]
    for name, (_, properties) in results.items():
        assert int(properties["coatcheck_apps"]) >= 1, name
        if name not in NO_SESSION:
            assert int(properties["coatcheck_sessions"]) >= 1, name
