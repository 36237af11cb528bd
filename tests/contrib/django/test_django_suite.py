"""Django's own session tests, run on coatcheck's engine.

``tests/sessions_tests/`` comes from the sdist of the *installed* Django, downloaded at test
time into the cache (:mod:`tests.support.fetched`); none of Django's code is kept in this
project. A subprocess pytest (``suite/django_suite_plugin.py`` configures Django) runs
``suite/cases.py``: Django's ``SessionTestsMixin`` subclassed for
``coatcheck.contrib.django.SessionStore`` (on ``SimpleTestCase``), and Django's
``SessionMiddlewareTests`` with ``SESSION_ENGINE`` pointed at coatcheck. Every test of those two
classes must pass, except :data:`EXCLUDED`; the plugin lists the classes' tests as the installed
Django has them, so a test Django adds is run (and checked) too. Under ``CI=true`` a failed
download fails the test.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
import uuid
import xml.etree.ElementTree as ET
from pathlib import Path

import django
import pytest

from tests.support.fetched import sdist
from tests.support.servers import require_server

HERE = Path(__file__).resolve().parent
SUITE = HERE / "suite"
REPO = HERE.parents[2]
PACKAGE = "tests/sessions_tests"

#: Django tests left out, and why. Both are SessionMiddlewareTests that reach past the engine
#: under test into Django's database engine: test_middleware.py runs what they check on
#: coatcheck's engine (test_update_error_raises_session_interrupted,
#: test_emptied_session_is_saved_and_keeps_its_cookie).
EXCLUDED = {
    "CoatcheckMiddlewareTests::test_session_update_error_redirect": (
        "its view replaces request.session by Django's own DatabaseSession "
        "(django.contrib.sessions.backends.db), which needs Django's django_session table"
    ),
    "CoatcheckMiddlewareTests::test_empty_session_saved": (
        "reads the saved session back through Django's database model "
        "(Session.objects.get), which coatcheck's engine does not write"
    ),
}
#: The Django class each of ours runs the tests of.
CLASSES = {
    "CoatcheckSessionTests": "SessionTestsMixin",
    "CoatcheckMiddlewareTests": "SessionMiddlewareTests",
}


def _django_tests() -> Path:
    """The fetched ``tests`` folder of the installed Django, holding ``sessions_tests``."""
    version = django.__version__
    archive = sdist("django", version)
    root = archive.parent / "unpacked"
    tests = root / "tests"
    if (tests / "sessions_tests" / "tests.py").is_file():
        return tests
    prefix = archive.name.removesuffix(".tar.gz") + "/"
    with tarfile.open(archive) as tar:
        members = [m for m in tar.getmembers() if m.name.startswith(prefix + PACKAGE + "/")]
        assert members, f"{PACKAGE} is missing from {archive.name}"
        for member in members:
            member.name = member.name.removeprefix(prefix)
        if hasattr(tarfile, "data_filter"):  # Python 3.10.12 and later
            tar.extractall(root, members=members, filter="data")
        else:  # the sdist pip just fetched from PyPI for the installed version
            tar.extractall(root, members=members)  # noqa: S202
    return tests


def _store(kind: str, tmp_path: Path) -> str:
    if kind == "sqlite":
        return f"sqlite:///{tmp_path / 'sessions.db'}"
    if kind == "memory":
        return "memory://"
    if kind == "postgresql":
        host, port = require_server("postgresql")
        table = f"coatcheck_django_{uuid.uuid4().hex[:12]}"
        return f"postgresql://postgres@{host}:{port}/test?table={table}"
    host, port = require_server("redis")
    return f"redis://{host}:{port}/0?prefix=coatcheck-django-{uuid.uuid4().hex}:"


def _drop_table(url: str) -> None:
    import psycopg
    from psycopg import sql

    conninfo, _, table = url.partition("?table=")
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier(table)))


def _outcomes(report: Path) -> dict[str, str]:
    found: dict[str, str] = {}
    # The report is the one our own subprocess pytest just wrote, not untrusted input.
    for case in ET.parse(report).getroot().iter("testcase"):  # noqa: S314
        kinds = {child.tag for child in case}
        outcome = next((k for k in ("failure", "error", "skipped") if k in kinds), "passed")
        cls = case.get("classname", "").rpartition(".")[2]
        found[f"{cls}::{case.get('name', '')}"] = outcome
    return found


@pytest.mark.parametrize(
    "kind",
    [
        "sqlite",
        "memory",
        pytest.param("redis", marks=pytest.mark.server("redis")),
        # Django runs each async test in an event loop of its own, in a thread of its own
        # (asgiref's async_to_sync): the case tests/stores/postgresql/test_pools.py keeps.
        pytest.param("postgresql", marks=pytest.mark.server("postgresql")),
    ],
)
def test_djangos_own_session_tests_pass(kind: str, tmp_path: Path) -> None:
    tests = _django_tests()
    report = tmp_path / "django.xml"
    expected_file = tmp_path / "expected.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    env["PYTHONPATH"] = os.pathsep.join([str(SUITE), str(tests), str(REPO / "src"), str(REPO)])
    env["COATCHECK_DJANGO_STORE"] = _store(kind, tmp_path)
    env["COATCHECK_DJANGO_EXPECTED"] = str(expected_file)
    env.pop("DJANGO_SETTINGS_MODULE", None)
    command = [sys.executable, "-m", "pytest", "-p", "django_suite_plugin", "-p", "no:asyncio"]
    # No configuration of ours (an empty ini file) and no conftest.py above suite/: the run
    # is Django's tests, the plugin and cases.py, nothing else.
    command += ["-p", "no:cacheprovider", "-c", os.devnull, "--rootdir", str(SUITE)]
    command += ["--confcutdir", str(SUITE), "-q", f"--junitxml={report}"]
    command += ["-W", "error"]  # as this project's own tests run (filterwarnings = error)
    command += [f"--deselect=cases.py::{name}" for name in EXCLUDED]
    command.append("cases.py")
    try:
        result = subprocess.run(
            command, cwd=SUITE, env=env, capture_output=True, text=True, timeout=600, check=False
        )
    finally:
        if kind == "postgresql":
            _drop_table(env["COATCHECK_DJANGO_STORE"])
    output = result.stdout[-6000:] + result.stderr[-2000:]
    assert report.is_file() and expected_file.is_file(), output
    outcomes = _outcomes(report)
    expected = json.loads(expected_file.read_text())
    wanted = {
        f"{ours}::{name}"
        for ours, theirs in CLASSES.items()
        for name in expected[theirs]
        if f"{ours}::{name}" not in EXCLUDED
    }
    assert wanted, "Django's classes have no tests?"
    failed = {name: outcome for name, outcome in outcomes.items() if outcome != "passed"}
    assert not failed, output
    assert set(outcomes) == wanted, output
    # Each exclusion is still a test of Django's (a renamed one must leave the list).
    for name in EXCLUDED:
        ours, _, test = name.partition("::")
        assert test in expected[CLASSES[ours]], f"{name} is no longer in Django's suite"
