"""aiohttp-session's own storage tests, run against coatcheck's storage.

The tests come from the sdist of the installed aiohttp-session, fetched with pip at test time
into a cache outside the repository (``tests.support.fetched``), never copied into the
project. They run in a subprocess pytest with ``aiohttp_suite_plugin`` (this directory),
which gives every app they build a :class:`~coatcheck.contrib.aiohttp.CoatcheckStorage` and
turns their direct backend pokes into reads and writes of coatcheck's records (its docstring
says how). Their conftest (Docker containers for Redis and memcached) is not loaded; the
plugin serves the fixtures it gave, on the test servers. One line is rewritten in a scratch
copy when pytest-mock is not installed: ``from pytest_mock import MockFixture``, imported by
``test_redis_storage.py`` for two tests that are deselected here anyway.

Every selected test must pass with coatcheck's storage in use; :data:`EXCLUDED` lists what is
left out of the files run, and why (``test_encrypted_cookie_storage`` needs cryptography,
in the dev extra). Files not run at all: ``test_path_domain`` and ``test_abstract_storage``
read the session data out of the cookie's value (where a cookie storage keeps it);
``test_nacl_storage`` needs PyNaCl, not installed here, for tests that are the encrypted
cookie storage's again (its fixation replay the same scenario as the three run here);
``test_session_dict``, ``test_get_session`` and
``test_session_middleware`` test aiohttp-session's own ``Session`` class and functions on
mocked requests, with no storage.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import subprocess
import sys
import tarfile
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from tests.support.fetched import sdist
from tests.support.servers import SERVERS, require_server, unavailable

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[2]

#: The storage tests run, by file.
SELECTED = {
    "tests/test_redis_storage.py": [
        "test_create_new_session",
        "test_load_existing_session",
        "test_load_bad_session",
        "test_change_session",
        "test_clear_cookie_on_session_invalidation",
        "test_create_cookie_in_handler",
        "test_set_ttl_on_session_saving",
        "test_set_ttl_manually_set",
        "test_create_new_session_if_key_doesnt_exists_in_redis",
        "test_create_storage_with_custom_key_factory",
        "test_redis_session_fixation",
        "test_redis_from_create_pool",
        "test_not_redis_provided_to_storage",
        "test_no_aioredis_installed",
        "test_old_aioredis_version",
        "test_load_session_dont_load_expired_session",
    ],
    "tests/test_memcached_storage.py": [
        "test_create_new_session",
        "test_load_existing_session",
        "test_load_bad_session",
        "test_change_session",
        "test_clear_cookie_on_session_invalidation",
        "test_create_cookie_in_handler",
        "test_create_new_session_if_key_doesnt_exists_in_memcached",
        "test_create_storage_with_custom_key_factory",
        "test_memcached_session_fixation",
        "test_load_session_dont_load_expired_session",
        "test_memcached_max_age_over_30_days",
    ],
    "tests/test_cookie_storage.py": [
        "test_create_new_session",
        "test_load_existing_session",
        "test_change_session",
        "test_clear_cookie_on_session_invalidation",
        "test_dont_save_not_requested_session",
    ],
    "tests/test_encrypted_cookie_storage.py": [
        "test_invalid_key",
        "test_str_key",
        "test_create_new_session_broken_by_format",
        "test_load_existing_session",
        "test_load_existing_session_with_fernet",
        "test_change_session",
        "test_clear_cookie_on_session_invalidation",
        "test_encrypted_cookie_session_fixation",
        "test_fernet_ttl",
    ],
    "tests/test_http_exception.py": ["test_exceptions"],
    "tests/test_response_types.py": ["test_stream_response"],
}
_BAD_VALUE = (
    "a stored record that does not decode must give a session that is not new (empty, "
    "under the same id); coatcheck is strict: the record is deleted, the request gets a "
    "fresh (new) session and a security log line (test_storage.py checks that)"
)
_KEY_FACTORY = (
    "a custom key_factory chooses the cookie value ('test-key'); coatcheck chooses ids "
    "itself (256 random bits, signed) and has no such option"
)
#: Selected tests left out, and why.
EXCLUDED = {
    "test_redis_storage.py::test_load_bad_session": _BAD_VALUE,
    "test_redis_storage.py::test_create_storage_with_custom_key_factory": _KEY_FACTORY,
    "test_redis_storage.py::test_not_redis_provided_to_storage": (
        "RedisStorage's TypeError for a client that is not redis.asyncio.Redis"
    ),
    "test_redis_storage.py::test_no_aioredis_installed": (
        "RedisStorage's own check that redis is importable (mocks its module)"
    ),
    "test_redis_storage.py::test_old_aioredis_version": (
        "RedisStorage's own check of the redis version (mocks its module)"
    ),
    "test_memcached_storage.py::test_load_bad_session": _BAD_VALUE,
    "test_memcached_storage.py::test_create_storage_with_custom_key_factory": _KEY_FACTORY,
    "test_encrypted_cookie_storage.py::test_invalid_key": (
        "EncryptedCookieStorage's check of its Fernet key's length"
    ),
    "test_encrypted_cookie_storage.py::test_str_key": "EncryptedCookieStorage takes a str key",
    "test_encrypted_cookie_storage.py::test_change_session": (
        "decrypts the session data out of the cookie value; coatcheck's cookie holds only "
        "the signed id"
    ),
    "test_encrypted_cookie_storage.py::test_clear_cookie_on_session_invalidation": (
        "expects the deleting cookie without HttpOnly (aiohttp's del_cookie drops the "
        "attributes); coatcheck's deletion repeats the cookie's attributes, as RFC 6265 "
        "matching needs for Path and Domain, HttpOnly included"
    ),
    "test_cookie_storage.py::test_change_session": (
        "decodes the session data out of the cookie value (json.loads(morsel.value)), where "
        "a cookie storage keeps it; coatcheck's cookie holds only the signed id"
    ),
    "test_cookie_storage.py::test_clear_cookie_on_session_invalidation": (
        "expects the cookie set to the JSON text '{}' with the Domain of the test server; "
        "coatcheck deletes the cookie (empty value, Max-Age=0), as the Redis and memcached "
        "tests expect"
    ),
}

#: Tests that open no session: one builds an app and sends no request, one sends a request
#: whose handler never asks for the session.
NO_SESSION = {
    "test_redis_storage.py::test_redis_from_create_pool",
    "test_cookie_storage.py::test_dont_save_not_requested_session",
}


def _sources() -> Path:
    """The unpacked sdist of the installed aiohttp-session, downloaded once into the cache."""
    version = importlib.metadata.version("aiohttp-session")
    # pip names the archive after the normalised project name, with an underscore.
    archive = sdist("aiohttp_session", version)
    unpacked = archive.parent / f"aiohttp_session-{version}"
    if not (unpacked / "tests" / "test_redis_storage.py").is_file():
        with tarfile.open(archive) as tar:
            if hasattr(tarfile, "data_filter"):  # Python 3.10.12 and later
                tar.extractall(archive.parent, filter="data")
            else:  # an sdist pip just fetched from PyPI for the installed version
                tar.extractall(archive.parent)  # noqa: S202
    return unpacked


def _scratch(sources: Path, work: Path) -> Path:
    """A copy of the test files the run needs, with the pytest-mock import rewritten when
    pytest-mock is not installed."""
    tests = work / "tests"
    tests.mkdir(parents=True)
    for name in ["__init__.py", "typedefs.py", *(Path(path).name for path in SELECTED)]:
        text = (sources / "tests" / name).read_text()
        if "from pytest_mock import MockFixture\n" in text and not importlib.util.find_spec(
            "pytest_mock"
        ):
            # Only for annotations of two tests that EXCLUDED deselects.
            text = text.replace("from pytest_mock import MockFixture\n", "MockFixture = object\n")
        (tests / name).write_text(text)
    # The run's own configuration: aiohttp-session's tests are plain async functions.
    (work / "pytest.ini").write_text(
        "[pytest]\nasyncio_mode = auto\nasyncio_default_fixture_loop_scope = function\n"
        "filterwarnings =\n    error\n"
        # aiohttp-session 2.12 keeps its session under plain str request keys, which
        # aiohttp 3.14 warns about once per key; only its own are let through.
        "    ignore::aiohttp.web_exceptions.NotAppKeyWarning:aiohttp_session\n"
    )
    return work


def _results(report: Path) -> dict[str, tuple[str, dict[str, str]]]:
    """``file::name`` -> (outcome, junit properties) from a junit XML report."""
    results: dict[str, tuple[str, dict[str, str]]] = {}
    # The report is the one our own subprocess pytest just wrote, not untrusted input.
    for case in ET.parse(report).getroot().iter("testcase"):  # noqa: S314
        outcome = "passed"
        for child in case:
            if child.tag in ("failure", "error", "skipped"):
                outcome = child.tag
                break
        properties = {p.get("name", ""): p.get("value", "") for p in case.iter("property")}
        module = case.get("classname", "").rpartition(".")[2]
        results[f"{module}.py::{case.get('name', '')}"] = (outcome, properties)
    return results


def _run(tmp_path: Path, files: list[str]) -> None:
    work = _scratch(_sources(), tmp_path / "suite")
    report = tmp_path / "report.xml"
    node_ids = [
        f"{path}::{name}"
        for path in files
        for name in SELECTED[path]
        if f"{Path(path).name}::{name}" not in EXCLUDED
    ]
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    env["PYTHONPATH"] = os.pathsep.join([str(HERE), str(REPO / "src"), env.get("PYTHONPATH", "")])
    redis_host, redis_port = SERVERS["redis"]
    memcached_host, memcached_port = SERVERS["memcached"]
    env["COATCHECK_SUITE_REDIS_URL"] = f"redis://{redis_host}:{redis_port}/0"
    env["COATCHECK_SUITE_MEMCACHED_URL"] = f"memcached://{memcached_host}:{memcached_port}"
    command = [sys.executable, "-m", "pytest", "-p", "aiohttp_suite_plugin", "--noconftest"]
    command += ["-p", "no:cacheprovider", "--junitxml", str(report), "-q", *node_ids]
    result = subprocess.run(
        command, cwd=work, env=env, capture_output=True, text=True, timeout=600, check=False
    )
    assert report.is_file(), result.stdout + result.stderr
    results = _results(report)
    outcomes = {name: outcome for name, (outcome, _) in results.items()}
    expected = {node_id.removeprefix("tests/"): "passed" for node_id in node_ids}
    assert outcomes == expected, result.stdout[-6000:]
    for name, (_, properties) in results.items():
        assert int(properties["coatcheck_storages"]) >= 1, name
        if name not in NO_SESSION:
            assert int(properties["coatcheck_sessions"]) >= 1, name


def test_cookie_http_exception_and_stream_tests_on_sqlite(tmp_path: Path) -> None:
    _run(
        tmp_path,
        [
            "tests/test_cookie_storage.py",
            "tests/test_http_exception.py",
            "tests/test_response_types.py",
        ],
    )


def test_encrypted_cookie_tests_on_sqlite(tmp_path: Path) -> None:
    if importlib.util.find_spec("cryptography") is None:
        unavailable(
            "cryptography is not installed (test_encrypted_cookie_storage.py imports Fernet)",
            "CI=true: the dev extra installs it",
        )
    _run(tmp_path, ["tests/test_encrypted_cookie_storage.py"])


@pytest.mark.server("redis")
def test_redis_storage_tests(tmp_path: Path) -> None:
    require_server("redis")
    _run(tmp_path, ["tests/test_redis_storage.py"])


@pytest.mark.server("memcached")
def test_memcached_storage_tests(tmp_path: Path) -> None:
    require_server("memcached")
    _run(tmp_path, ["tests/test_memcached_storage.py"])


def test_exclusions_still_exist() -> None:
    # A test aiohttp-session renamed or removed must leave SELECTED and EXCLUDED too.
    sources = _sources()
    for path, names in SELECTED.items():
        text = (sources / path).read_text()
        for name in names:
            assert f"def {name}(" in text, f"{path}::{name} is no longer in aiohttp-session"
    selected = {f"{Path(path).name}::{name}" for path, names in SELECTED.items() for name in names}
    assert set(EXCLUDED) <= selected
