"""Litestar's own session middleware tests, run on coatcheck's backend.

The tests come from a Litestar sdist on the package index, downloaded at test time into the
cache of :mod:`tests.support.fetched`; none of Litestar's code is kept in this project.
Litestar's sdists stopped shipping ``tests/`` after 2.13.0 (the installed version's has none),
and its source tarballs live on GitHub, which CI machines cannot reach (only the package
registries): so the session tests are those of the 2.13.0 sdist (:data:`SOURCE_VERSION`), run
against the installed Litestar. Under ``CI=true`` a failed download fails the test; locally it
skips.

Only ``tests/unit/test_middleware/test_session/`` is unpacked, into a scratch folder, where its
imports from ``litestar.middleware.session.server_side`` are rewritten to
``litestar_suite_plugin`` (this directory), whose ``ServerSideSessionConfig`` is coatcheck's
config on the store under test. That plugin also gives the fixtures of Litestar's
``tests/conftest.py`` that the session tests use, which is not unpacked (it imports Litestar's
whole test toolchain: time-machine, fakeredis, pytest-lazy-fixtures, docker services). The
suite runs in a subprocess pytest under Litestar's settings that matter here (asyncio auto
mode, warnings are errors, its implicit sync-to-thread warning off as its conftest sets it),
writing JUnit XML: every test of the selected files must pass, except :data:`EXCLUDED`, which
are deselected, and each test function must be found in the report.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tarfile
import uuid
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import redis

from tests.support.fetched import sdist
from tests.support.servers import require_server

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[2]
#: The newest Litestar whose sdist holds its tests (see the module's docstring).
SOURCE_VERSION = "2.13.0"
SESSION_DIR = "tests/unit/test_middleware/test_session"
#: The files run, each holding tests of server-side backends or of the middleware over them.
#: test_client_side_backend.py is not run: it tests Litestar's cookie backend only.
FILES = ("test_middleware.py", "test_server_side_backend.py", "test_integration.py")
REWRITTEN = "litestar.middleware.session.server_side"

_LITESTAR_STORE = (
    "they call ServerSideSessionBackend.get/set/delete with a Litestar Store (Litestar's "
    "storage API under its backend); coatcheck's backend keeps sessions in a coatcheck store "
    "through its manager, which tests/contract and the rules tests cover"
)
_STORE_NAME = (
    "it checks that the session lands in the Litestar Store registered under the config's "
    "store name (app.stores); coatcheck's store field is a coatcheck store, and "
    "test_litestar.py checks that the session lands in it"
)
#: Litestar tests deselected, and why.
EXCLUDED = {
    "test_server_side_backend.py::test_get_set": _LITESTAR_STORE,
    "test_server_side_backend.py::test_get_renew_on_access": _LITESTAR_STORE,
    "test_server_side_backend.py::test_get_set_multiple_returns_correct_identity": (
        _LITESTAR_STORE
    ),
    "test_server_side_backend.py::test_delete": _LITESTAR_STORE,
    "test_server_side_backend.py::test_delete_idempotence": _LITESTAR_STORE,
    "test_server_side_backend.py::test_max_age_expires": _LITESTAR_STORE,
    "test_server_side_backend.py::test_non_default_store": _STORE_NAME,
    "test_server_side_backend.py::test_set_store_name": _STORE_NAME,
}
#: Tests that build no config of their own.
CONFIGLESS = (
    "::test_session_middleware_not_installed_raises",
    "::test_options_request_with_session_auth",
)
# Litestar's test settings, the part that applies without its toolchain (its pyproject adds
# xdist's --dist and trio's warning category, neither installed here). One warning is let
# through: Litestar after 2.13 deprecates the handler signature that 2.13's own
# test_integration.py declares (``data: UserLoginPayload`` without a body marker), which is
# about that test's code, not about sessions.
PYTEST_INI = """[pytest]
asyncio_mode = auto
asyncio_default_fixture_loop_scope = function
filterwarnings =
    error
    ignore:.*Reserved kwarg 'data' declared without a body marker:DeprecationWarning
xfail_strict = true
"""


def _archive() -> Path:
    """The sdist holding Litestar's session tests, downloaded once."""
    return sdist("litestar", SOURCE_VERSION)


def _sources(archive: Path) -> dict[str, str]:
    """Each file of the session test folder (by name), as text."""
    files: dict[str, str] = {}
    with tarfile.open(archive) as tar:
        for member in tar.getmembers():
            _, _, path = member.name.partition("/")
            folder, _, name = path.rpartition("/")
            if folder == SESSION_DIR and member.isfile() and name.endswith(".py"):
                source = tar.extractfile(member)
                assert source is not None
                files[name] = source.read().decode()
    missing = set(FILES) - set(files)
    assert not missing, f"{sorted(missing)} missing from {archive.name}"
    return files


def _prepare(work: Path) -> None:
    target = work / SESSION_DIR
    target.mkdir(parents=True)
    for name, text in _sources(_archive()).items():
        if name in FILES:
            assert REWRITTEN in text, f"{name} no longer imports from {REWRITTEN}"
        if name in FILES or name == "conftest.py":
            (target / name).write_text(text.replace(REWRITTEN, "litestar_suite_plugin"))
    (work / "pytest.ini").write_text(PYTEST_INI)


def _run(work: Path, store_url: str) -> tuple[dict[str, tuple[str, dict[str, str]]], str]:
    """Run the suite on ``store_url``: ``file::test[params]`` -> (outcome, properties)."""
    report = work / "report.xml"
    command = [sys.executable, "-m", "pytest", "-p", "litestar_suite_plugin"]
    # coatcheck's own pytest plugins and settings stay out; --import-mode=importlib since
    # Litestar's test folders carry no __init__.py here.
    command += ["-p", "no:cacheprovider", "--import-mode=importlib", "-c", "pytest.ini", "-q"]
    command += [f"--junitxml={report}", "--rootdir", str(work)]
    command += [f"{SESSION_DIR}/{name}" for name in FILES]
    command += [f"--deselect={SESSION_DIR}/{name}" for name in EXCLUDED]
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    env["PYTHONPATH"] = os.pathsep.join([str(HERE), str(REPO / "src")])
    env["COATCHECK_LITESTAR_STORE"] = store_url
    # As Litestar's conftest does: its tests' sync handlers would warn (an error here).
    env["LITESTAR_WARN_IMPLICIT_SYNC_TO_THREAD"] = "0"
    result = subprocess.run(
        command, cwd=work, env=env, capture_output=True, text=True, timeout=600, check=False
    )
    output = result.stdout[-6000:] + result.stderr[-2000:]
    if not report.exists():
        pytest.fail(f"Litestar's suite did not run:\n{output}")
    results: dict[str, tuple[str, dict[str, str]]] = {}
    # The report is the one our own subprocess pytest just wrote, not untrusted input.
    for case in ET.parse(report).getroot().iter("testcase"):  # noqa: S314
        kinds = {child.tag for child in case}
        outcome = next((k for k in ("failure", "error", "skipped") if k in kinds), "passed")
        module = case.attrib.get("classname", "").rpartition(".")[2]
        properties = {p.get("name", ""): p.get("value", "") for p in case.iter("property")}
        results[f"{module}.py::{case.attrib['name']}"] = (outcome, properties)
    return results, output


def _check(work: Path, store_url: str) -> None:
    results, output = _run(work, store_url)
    assert results, f"Litestar's suite ran no test:\n{output}"
    failed = {name: outcome for name, (outcome, _) in results.items() if outcome != "passed"}
    assert not failed, f"Litestar's session tests on coatcheck ({failed}):\n{output}"
    ran = {name.split("[")[0] for name in results}
    assert not ran & set(EXCLUDED), "an excluded test ran"
    for name in FILES:
        text = (work / SESSION_DIR / name).read_text()
        for function in re.findall(r"^(?:async )?def (test_\w+)\(", text, re.MULTILINE):
            node = f"{name}::{function}"
            assert node in ran or node in EXCLUDED, f"Litestar's {node} did not run"
    for name, (_, properties) in results.items():
        # Every test but these builds a config, and each one is coatcheck's: the first takes
        # no session middleware, the second uses the one test_integration.py made at import.
        if not name.endswith(CONFIGLESS):
            assert int(properties["coatcheck_configs"]) >= 1, name


def test_litestar_session_tests_pass_on_sqlite(tmp_path: Path) -> None:
    work = tmp_path / "litestar-suite"
    _prepare(work)
    _check(work, "sqlite:///" + str(tmp_path / "sessions.db"))


@pytest.mark.server("redis")
def test_litestar_session_tests_pass_on_redis(tmp_path: Path) -> None:
    host, port = require_server("redis")
    work = tmp_path / "litestar-suite"
    _prepare(work)
    prefix = f"coatcheck-litestar-{uuid.uuid4().hex}:"
    try:
        _check(work, f"redis://{host}:{port}/0?prefix={prefix}")
    finally:
        client = redis.Redis(host=host, port=port, db=0)
        try:
            keys = list(client.scan_iter(match=f"{prefix}*"))
            if keys:
                client.delete(*keys)
        finally:
            client.close()


def test_exclusions_still_exist(tmp_path: Path) -> None:
    # A test Litestar renamed or removed must leave EXCLUDED too, or the list hides nothing.
    sources = _sources(_archive())
    for node in EXCLUDED:
        name, _, function = node.partition("::")
        assert re.search(rf"^(?:async )?def {function}\(", sources[name], re.MULTILINE), node
