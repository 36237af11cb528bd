"""Starlette's own session tests, run on coatcheck's middleware.

``tests/middleware/test_session.py`` (with the ``tests/conftest.py`` and ``tests/types.py`` it
needs) comes from the sdist of the *installed* Starlette, downloaded at test time with pip into
a cache outside the repository (``$COATCHECK_TEST_CACHE``, by default
``~/.cache/coatcheck-tests``); none of Starlette's code is kept in this project. Two lines are
rewritten in a scratch copy:

- the import ``from starlette.middleware.sessions import Session, SessionMiddleware`` becomes
  ``from coatcheck.contrib.starlette import ...``, the drop-in this checks;
- ``tests/types.py`` imports ``httpx2 as httpx``; when ``httpx2`` is not installed (the
  installed ``starlette.testclient`` then falls back to ``httpx`` itself), it imports ``httpx``.

The suite runs in a subprocess pytest under Starlette's own configuration (its pyproject),
writing JUnit XML; every test must pass except :data:`EXCLUDED`, which are deselected. Without
network the test skips, except under ``CI=true``, where a failed download fails it.
"""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
import tarfile
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest
import starlette
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Mount, Route

from coatcheck.contrib.starlette import SessionMiddleware
from tests.support.fetched import sdist

from ._client import TestClient

SESSION_TESTS = "tests/middleware/test_session.py"
# What the harness needs of the sdist; nothing else is extracted.
MEMBERS = (
    "pyproject.toml",
    "tests/__init__.py",
    "tests/conftest.py",
    "tests/types.py",
    "tests/middleware/__init__.py",
    SESSION_TESTS,
)
IMPORT = "from starlette.middleware.sessions import Session, SessionMiddleware"
DROP_IN = "from coatcheck.contrib.starlette import Session, SessionMiddleware"
# At the start of a line: imported unconditionally (later Starlettes import it in a try).
BLOCKBUSTER = "\nfrom blockbuster import BlockBuster, BlockBusterFunction\n"
BLOCKBUSTER_FIXTURE = "@pytest.fixture(autouse=True)\ndef blockbuster()"

#: Starlette tests deselected, and why. Each one checks the *letter case* of a cookie
#: attribute: Starlette writes ``path=``, ``domain=``, ``partitioned`` in lower case, coatcheck
#: writes ``Path=``, ``Domain=``, ``Partitioned`` as RFC 6265 spells them. Attribute names are
#: case-insensitive (RFC 6265 section 5.2), so browsers read both alike;
#: test_excluded_checks_hold_in_any_case makes the same checks without the case.
EXCLUDED = {
    "test_session_cookie_subpath[asyncio]": "looks for a lower-case '; path=' attribute",
    "test_domain_cookie[asyncio]": "looks for a lower-case 'domain=' attribute",
    "test_partitioned_session[asyncio-True]": "looks for a lower-case 'partitioned' attribute",
}


def _prepare(archive: Path, work: Path) -> None:
    root = archive.name.removesuffix(".tar.gz")
    with tarfile.open(archive) as tar:
        for member in MEMBERS:
            source = tar.extractfile(f"{root}/{member}")
            assert source is not None, f"{member} is missing from {archive.name}"
            target = work / member
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(source.read())
    tests = work / SESSION_TESTS
    text = tests.read_text()
    assert text.count(IMPORT) == 1, f"{SESSION_TESTS} no longer imports {IMPORT!r}"
    tests.write_text(text.replace(IMPORT, DROP_IN))
    conftest = work / "tests" / "conftest.py"
    text = conftest.read_text()
    if BLOCKBUSTER in text and importlib.util.find_spec("blockbuster") is None:
        # Older Starlettes (1.7 and before, which Python 3.10 gets) import their dev-only
        # blockbuster unconditionally; without it the suite runs as later Starlettes do,
        # without that check.
        assert text.count(BLOCKBUSTER_FIXTURE) == 1
        text = text.replace(BLOCKBUSTER, "\n")
        # The fixture stays, no longer autouse (nothing asks for it).
        conftest.write_text(text.replace(BLOCKBUSTER_FIXTURE, "@pytest.fixture\ndef blockbuster()"))
    if importlib.util.find_spec("httpx2") is None:
        types = work / "tests" / "types.py"
        text = types.read_text()
        assert "import httpx2 as httpx\n" in text
        types.write_text(text.replace("import httpx2 as httpx\n", "import httpx\n"))


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Each Starlette session test's outcome (passed, failed, error, skipped)."""
    archive = sdist("starlette", starlette.__version__)
    work = tmp_path_factory.mktemp("starlette-suite")
    _prepare(archive, work)
    report = work / "report.xml"
    command = [sys.executable, "-m", "pytest", SESSION_TESTS, f"--junitxml={report}"]
    # pytest-asyncio is coatcheck's plugin, not Starlette's (which runs on anyio's).
    command += ["-p", "no:cacheprovider", "-p", "no:asyncio", "-q"]
    command += [f"--deselect={SESSION_TESTS}::{name}" for name in EXCLUDED]
    # Starlette's tests build an app per test and never run its lifespan, whose shutdown is
    # where the middleware closes the store it built (the default SQLite file); the pooled
    # connections are then left to the garbage collector, which Python 3.13 reports with a
    # ResourceWarning, an error under Starlette's filterwarnings. That one warning is let
    # through; tests/contrib/starlette's own tests close their stores.
    command += ["-W", "ignore:unclosed database:ResourceWarning"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    # cwd is the scratch copy: `tests` is Starlette's there, and the middleware's default
    # SQLite file lands in it.
    result = subprocess.run(
        command, cwd=work, env=env, capture_output=True, text=True, timeout=300, check=False
    )
    if not report.exists():
        pytest.fail(f"Starlette's suite did not run:\n{result.stdout}\n{result.stderr}")
    found: dict[str, str] = {}
    # The report is written by the subprocess above, not by anyone untrusted.
    for case in ET.parse(report).getroot().iter("testcase"):  # noqa: S314
        kinds = {child.tag for child in case}
        outcome = next((k for k in ("failure", "error", "skipped") if k in kinds), "passed")
        found[case.attrib["name"]] = outcome
    if not found:
        pytest.fail(f"Starlette's suite ran no test:\n{result.stdout}\n{result.stderr}")
    found["(output)"] = result.stdout[-4000:]
    return found


def test_every_starlette_session_test_passes(outcomes: dict[str, str]) -> None:
    output = outcomes["(output)"]
    outcomes = {name: outcome for name, outcome in outcomes.items() if name != "(output)"}
    failed = {name: outcome for name, outcome in outcomes.items() if outcome != "passed"}
    assert not failed, f"Starlette's session tests on coatcheck:\n{output}"
    assert not set(EXCLUDED) & set(outcomes), "an excluded test ran"
    # Every test function of the file ran (under one parameter set or more) or is EXCLUDED.
    ran = [name.split("[")[0] for name in [*outcomes, *EXCLUDED]]
    for name in re.findall(r"^def (test_\w+)\(", _suite(), re.MULTILINE):
        assert name in ran, f"Starlette's {name} did not run"


def test_exclusions_still_exist() -> None:
    # A test Starlette renamed or removed must leave EXCLUDED too, or the list hides nothing.
    suite = _suite()
    for name in EXCLUDED:
        assert f"def {name.split('[')[0]}(" in suite, f"{name} is no longer in Starlette's suite"


def _suite() -> str:
    archive = sdist("starlette", starlette.__version__)
    root = archive.name.removesuffix(".tar.gz")
    with tarfile.open(archive) as tar:
        source = tar.extractfile(f"{root}/{SESSION_TESTS}")
        assert source is not None
        return source.read().decode()


@pytest.mark.parametrize(
    ("options", "base_url", "attribute"),
    [
        ({"path": "/second_app"}, "http://testserver/second_app", "path=/second_app"),
        ({"domain": ".example.com"}, "http://www.example.com", "domain=.example.com"),
        (
            {"https_only": True, "same_site": "none", "partitioned": True},
            "https://testserver",
            "partitioned",
        ),
    ],
)
def test_excluded_checks_hold_in_any_case(
    tmp_path: Path, options: dict[str, Any], base_url: str, attribute: str
) -> None:
    """What each EXCLUDED test checks, on the set and on the deleting cookie, ignoring case."""

    async def update(request: Request) -> JSONResponse:
        request.session.update(await request.json())
        return JSONResponse({})

    def clear(request: Request) -> JSONResponse:
        request.session.clear()
        return JSONResponse({})

    inner = Starlette(
        routes=[Route("/update", update, methods=["POST"]), Route("/clear", clear)],
        middleware=[
            Middleware(SessionMiddleware, secret_key="example", store="memory://", **options)
        ],
    )
    app = Starlette(routes=[Mount(options.get("path", ""), app=inner)])
    with TestClient(app, base_url=base_url) as client:
        for response in (client.post("/update", json={"some": "data"}), client.get("/clear")):
            attributes = [a.lower() for a in response.headers["set-cookie"].split("; ")]
            assert attribute in attributes
