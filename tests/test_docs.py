"""The documentation site builds cleanly, and docs/sessions.md names only API that exists.

The build is ``mkdocs build --strict`` (every warning an error: a broken link or anchor, a page
missing from the nav), run as a subprocess the way CI and a reader run it. The API check reads
the backticked names in docs/sessions.md: every ``coatcheck.<dotted name>`` must resolve, every
``session.<attr>`` and ``manager.<attr>`` must be an attribute of a session or of both managers,
and the SessionConfig and CookieConfig tables must list exactly the dataclasses' fields.
"""

from __future__ import annotations

import dataclasses
import importlib
import re
import subprocess
import sys
import types
from pathlib import Path
from typing import Any

import pytest

import coatcheck
from coatcheck import AsyncSessionManager, CookieConfig, Session, SessionConfig, SessionManager

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
SESSIONS = DOCS / "sessions.md"

# A backticked span in the prose, or a line of a fenced code block.
_CODE = re.compile(r"`([^`\n]+)`")
_FENCE = re.compile(r"^```.*?^```", re.MULTILINE | re.DOTALL)
# `from coatcheck.wsgi import SessionMiddleware` in an example.
_IMPORT = re.compile(r"^from (coatcheck(?:\.\w+)*) import ([\w, ]+)", re.MULTILINE)
# A dotted name anywhere in a span (`await manager.save(session)` names manager.save), but
# not inside a string literal (`environ["coatcheck.session"]` is a key, not a module).
_DOTTED = re.compile(
    r"(?<![\w.\"'])(coatcheck(?:\.[A-Za-z_]\w*)+|(?:session|manager)\.[A-Za-z_]\w*)"
)


def _spans(text: str) -> list[str]:
    fenced = _FENCE.findall(text)
    return _CODE.findall(_FENCE.sub("", text)) + [
        line for block in fenced for line in block.split("\n")
    ]


def _names(text: str) -> set[str]:
    names = set()
    for span in _spans(text):
        names.update(_DOTTED.findall(span))
    for module, imported in _IMPORT.findall(text):
        names.update(f"{module}.{name.strip()}" for name in imported.split(",") if name.strip())
    return names


def _resolve(dotted: str) -> Any:
    """The object ``dotted`` names: the longest importable module prefix, then attributes."""
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            obj: Any = importlib.import_module(".".join(parts[:cut]))
        except ModuleNotFoundError as exc:
            if exc.name is not None and not ".".join(parts[:cut]).startswith(exc.name):
                raise  # the module exists but one of its own imports is missing
            continue
        for attr in parts[cut:]:
            obj = getattr(obj, attr)
        return obj
    raise AssertionError(f"{dotted}: no such module")


def _section(text: str, heading: str) -> str:
    """The text under ``heading``, up to the next heading."""
    assert f"\n{heading}\n" in text, f"docs/sessions.md has no {heading!r}"
    section = text.split(f"\n{heading}\n", 1)[1]
    return re.split(r"\n#{1,6} ", section, maxsplit=1)[0]


def _table_fields(text: str, heading: str) -> set[str]:
    """The backticked first cells of the table in the section under ``heading``."""
    return set(re.findall(r"^\| `(\w+)` \|", _section(text, heading), re.MULTILINE))


def test_site_builds_strictly(tmp_path: Path) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "mkdocs",
            "build",
            "--strict",
            "--config-file",
            str(ROOT / "mkdocs.yml"),
            "--site-dir",
            str(tmp_path / "site"),
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
        check=False,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "WARNING" not in output, output
    assert (tmp_path / "site" / "sessions" / "index.html").is_file()


def test_session_names_exist() -> None:
    names = _names(SESSIONS.read_text(encoding="utf-8"))
    assert any(name.startswith("coatcheck.") for name in names)
    session = Session()  # a detached session, with every instance attribute set
    managers = (SessionManager("memory://"), AsyncSessionManager("memory://"))
    missing = []
    for name in sorted(names):
        owner, _, attr = name.partition(".")
        if owner == "session":
            if not hasattr(session, attr):
                missing.append(name)
        elif owner == "manager":
            if not all(hasattr(manager, attr) for manager in managers):
                missing.append(name)
        else:
            try:
                _resolve(name)
            except (AttributeError, ImportError) as exc:
                missing.append(f"{name} ({exc})")
    assert not missing, f"docs/sessions.md names what does not exist: {missing}"


def test_manager_methods_exist() -> None:
    # The managers' method table: each `name(...)` in a first cell is a method of one of them
    # (`close()` of the sync one, `aclose()` of its async twin).
    section = _section(SESSIONS.read_text(encoding="utf-8"), "## The managers")
    methods = set(re.findall(r"`(\w+)\(", "".join(re.findall(r"^\| ([^|]+) \|", section, re.M))))
    assert {"open", "save", "abandon", "cleanup"} <= methods
    missing = [
        name
        for name in sorted(methods)
        if not (hasattr(SessionManager, name) or hasattr(AsyncSessionManager, name))
    ]
    assert not missing, f"docs/sessions.md documents manager methods that do not exist: {missing}"


@pytest.mark.parametrize(
    ("heading", "config"),
    [("## SessionConfig", SessionConfig), ("### CookieConfig", CookieConfig)],
)
def test_config_tables_list_every_field(heading: str, config: type) -> None:
    documented = _table_fields(SESSIONS.read_text(encoding="utf-8"), heading)
    fields = {field.name for field in dataclasses.fields(config) if field.init}
    assert documented == fields, (
        f"undocumented: {sorted(fields - documented)}; no such field: {sorted(documented - fields)}"
    )


def test_top_level_names_are_public() -> None:
    # coatcheck.X, when X is no submodule, must be one of the package's public names.
    names = _names(SESSIONS.read_text(encoding="utf-8"))
    top = {
        name.split(".")[1]
        for name in names
        if name.startswith("coatcheck.")
        and name.count(".") == 1
        and not isinstance(_resolve(name), types.ModuleType)
    }
    assert top, "docs/sessions.md names no top-level coatcheck.X"
    assert top <= set(coatcheck.__all__), sorted(top - set(coatcheck.__all__))
