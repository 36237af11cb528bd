"""The ``coatcheck`` command against a real SQLite file: every subcommand, output and exit code."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from coatcheck import SessionManager
from coatcheck._cli_support import safe_url
from coatcheck._sansio.ids import storage_key
from coatcheck.cli import main
from coatcheck.stores import Load, Record, SQLiteStore
from coatcheck.testing import FrozenClock

SECRET = "cli-test-secret-0123456789abcdef"


@pytest.fixture
def url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'sessions.db'}"


@pytest.fixture
def store(url: str) -> Iterator[SQLiteStore]:
    assert main(["init", "--store", url]) == 0
    store = SQLiteStore.from_url(url)
    yield store
    store.close()


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def make_session(
    store: SQLiteStore, clock: FrozenClock, data: dict[str, object], **settings: object
) -> str:
    """Store a session holding ``data`` at the clock's time; returns the ticket (cookie value)."""
    manager = SessionManager(store, clock=clock, idle_timeout=1800, **settings)
    session = manager.open(None, remote_addr="203.0.113.9")
    session.update(data)
    outcome = manager.save(session)
    assert outcome.ticket is not None
    return outcome.ticket


def payload_size(store: SQLiteStore, ticket: str) -> int:
    record = store.load(Load(storage_key(ticket.partition(".")[0]), time.time()))
    assert isinstance(record, Record)
    return len(record.payload)


# -- init / drop ---------------------------------------------------------------------------


def test_init_is_idempotent_and_makes_a_usable_store(
    capsys: pytest.CaptureFixture[str], url: str
) -> None:
    assert run(capsys, "init", "--store", url)[0] == 0
    code, out, _ = run(capsys, "init", "--store", url)
    assert code == 0
    assert "tables ready" in out
    code, out, _ = run(capsys, "stats", "--store", url, "--json")
    assert code == 0
    assert json.loads(out)["sessions"] == 0


def test_drop_removes_tables_and_is_idempotent(
    capsys: pytest.CaptureFixture[str], url: str, store: SQLiteStore
) -> None:
    make_session(store, FrozenClock(), {"a": 1})
    code, out, _ = run(capsys, "drop", "--store", url, "--yes")
    assert (code, "tables dropped" in out) == (0, True)
    assert run(capsys, "drop", "--store", url, "--yes")[0] == 0
    # Recreated tables are empty: the drop really removed the session.
    assert run(capsys, "init", "--store", url)[0] == 0
    code, out, _ = run(capsys, "stats", "--store", url, "--json")
    assert json.loads(out)["sessions"] == 0


def test_drop_without_yes_refuses_when_it_cannot_ask(
    capsys: pytest.CaptureFixture[str], url: str, store: SQLiteStore
) -> None:
    make_session(store, FrozenClock(), {"a": 1})
    code, out, err = run(capsys, "drop", "--store", url)  # pytest's stdin is not a terminal
    assert code == 2
    assert err.startswith("coatcheck: error: ") and "--yes" in err
    assert err.count("\n") == 1
    code, out, _ = run(capsys, "stats", "--store", url, "--json")
    assert json.loads(out)["sessions"] == 1


def test_store_without_tables_has_nothing_to_do(capsys: pytest.CaptureFixture[str]) -> None:
    for argv in (["init"], ["drop", "--yes"]):
        code, out, _ = run(capsys, *argv, "--store", "memory://")
        assert code == 0
        assert "nothing to do" in out


# -- stats -----------------------------------------------------------------------------------


def test_stats_counts_live_and_expired_sessions_and_bytes(
    capsys: pytest.CaptureFixture[str], url: str, store: SQLiteStore
) -> None:
    now = FrozenClock()
    past = FrozenClock(now.now - 7200)  # idle timeout is 30 minutes: these are long expired
    tickets = [make_session(store, now, {"n": i, "s": "x" * i}) for i in range(3)]
    tickets += [make_session(store, past, {"old": True}) for _ in range(2)]
    total = sum(payload_size(store, t) for t in tickets)

    code, out, _ = run(capsys, "stats", "--store", url, "--json")
    assert code == 0
    assert json.loads(out) == {
        "store": store.name,
        "sessions": 3,
        "expired": 2,
        "payload_bytes": total,
    }

    code, out, _ = run(capsys, "stats", "--store", url)
    assert code == 0
    lines = dict(line.split(":", 1) for line in out.splitlines())
    assert lines["sessions"].strip() == "3"
    assert lines["expired"].strip() == "2"
    assert lines["payload bytes"].strip() == str(total)


def test_store_defaults_to_the_environment(
    capsys: pytest.CaptureFixture[str],
    url: str,
    store: SQLiteStore,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    make_session(store, FrozenClock(), {"a": 1})
    monkeypatch.setenv("COATCHECK_STORE", url)
    code, out, _ = run(capsys, "stats", "--json")
    assert code == 0
    assert json.loads(out)["sessions"] == 1


# -- cleanup ---------------------------------------------------------------------------------


def test_cleanup_removes_only_expired_sessions_and_prints_the_count(
    capsys: pytest.CaptureFixture[str], url: str, store: SQLiteStore
) -> None:
    now = FrozenClock()
    past = FrozenClock(now.now - 7200)
    live = [make_session(store, now, {"keep": i}) for i in range(3)]
    for i in range(4):
        make_session(store, past, {"gone": i})

    code, out, err = run(capsys, "cleanup", "--store", url)
    assert (code, out) == (0, "4\n")
    # No progress bar: the store reports one total at the end, so a bar could not move.
    assert err == ""
    code, out, _ = run(capsys, "stats", "--store", url, "--json")
    assert json.loads(out)["sessions"] == 3 and json.loads(out)["expired"] == 0
    for ticket in live:
        assert run(capsys, "show", "--store", url, "--", ticket)[0] == 0

    code, out, _ = run(capsys, "cleanup", "--store", url)
    assert (code, out) == (0, "0\n")


# -- show ------------------------------------------------------------------------------------


def test_show_redacts_values_unless_revealed(
    capsys: pytest.CaptureFixture[str], url: str, store: SQLiteStore
) -> None:
    clock = FrozenClock()
    manager = SessionManager(store, clock=clock, idle_timeout=1800)
    session = manager.open(None, remote_addr="203.0.113.9")
    session["card"] = "4111-1111-1111-1111"
    session["cart"] = [1, 2, 3]
    session.namespace("shop")["coupon"] = "SAVE10"
    session.user = "alice"
    ticket = manager.save(session).ticket
    assert ticket is not None

    code, out, _ = run(capsys, "show", "--store", url, "--", ticket)
    assert code == 0
    fields = {k.strip(): v.strip() for k, v in (line.split(":", 1) for line in out.splitlines())}
    assert fields["user"] == "'alice'"
    assert fields["remote addr"] == "203.0.113.9"
    assert fields["version"] == "1"
    assert fields["keys"] == "3"
    assert fields["card"] == "<redacted: str, 21 bytes>"  # JSON: the string plus two quotes
    assert fields["cart"].startswith("<redacted: list, ")
    assert fields["shop/coupon"].startswith("<redacted: str, ")
    assert "4111" not in out and "SAVE10" not in out

    code, out, _ = run(capsys, "show", "--store", url, "--reveal", "--", ticket)
    assert code == 0
    assert "card: '4111-1111-1111-1111'" in out
    assert "cart: [1, 2, 3]" in out
    assert "shop/coupon: 'SAVE10'" in out


def test_show_accepts_a_signed_cookie_value(
    capsys: pytest.CaptureFixture[str], url: str, store: SQLiteStore
) -> None:
    ticket = make_session(store, FrozenClock(), {"a": 1}, secret_keys=[SECRET], sign_cookie=True)
    session_id, dot, _ = ticket.partition(".")
    assert dot
    for value in (ticket, session_id):
        code, out, _ = run(capsys, "show", "--store", url, "--", value)
        assert code == 0
        assert "a: <redacted: int, 1 bytes>" in out


def test_show_unknown_id_exits_1(
    capsys: pytest.CaptureFixture[str], url: str, store: SQLiteStore
) -> None:
    make_session(store, FrozenClock(), {"a": 1})
    code, out, err = run(capsys, "show", "--store", url, "--", "A" * 43)
    assert code == 1
    assert out == ""
    assert err == "coatcheck: no session with that id\n"


def test_show_marks_an_expired_session(
    capsys: pytest.CaptureFixture[str], url: str, store: SQLiteStore
) -> None:
    ticket = make_session(store, FrozenClock(time.time() - 7200), {"a": 1})
    code, out, _ = run(capsys, "show", "--store", url, "--", ticket)
    assert code == 0
    expires = next(line for line in out.splitlines() if line.startswith("expires:"))
    assert expires.endswith("ago) [EXPIRED]")


def test_show_does_not_take_the_storage_key(
    capsys: pytest.CaptureFixture[str], url: str, store: SQLiteStore
) -> None:
    ticket = make_session(store, FrozenClock(), {"a": 1})
    assert run(capsys, "show", "--store", url, "--", storage_key(ticket))[0] == 1


def test_show_escapes_control_characters(
    capsys: pytest.CaptureFixture[str], url: str, store: SQLiteStore
) -> None:
    ticket = make_session(store, FrozenClock(), {"\x1b[2Jevil": "x"})
    code, out, _ = run(capsys, "show", "--store", url, "--", ticket)
    assert code == 0
    assert "\x1b" not in out
    assert "\\x1b[2Jevil" in out


# -- errors ----------------------------------------------------------------------------------


def test_configuration_error_is_one_line_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "stats", "--store", "nosuch://x")
    assert (code, out) == (2, "")
    assert err.startswith("coatcheck: error: unknown store URL scheme 'nosuch'")
    assert err.count("\n") == 1 and "Traceback" not in err


def test_failing_store_is_one_line_exit_3(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    # A database file inside a directory that does not exist cannot be opened.
    url = f"sqlite:///{tmp_path / 'missing' / 'sessions.db'}"
    code, out, err = run(capsys, "stats", "--store", url)
    assert (code, out) == (3, "")
    assert err.startswith("coatcheck: error: session store ")
    assert err.count("\n") == 1 and "Traceback" not in err


def test_unreachable_server_is_store_unavailable_exit_3(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with socket.socket() as probe:  # a port that was free a moment ago: nothing listens there
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    code, out, err = run(capsys, "stats", "--store", f"redis://127.0.0.1:{port}/0")
    assert (code, out) == (3, "")
    assert err.startswith(f"coatcheck: error: session store redis://127.0.0.1:{port}/0")
    assert "is unavailable" in err
    assert err.endswith("running at that address? start it, or pass another --store\n")
    assert err.count("\n") == 1


def test_missing_table_is_not_initialised_exit_5(
    capsys: pytest.CaptureFixture[str], url: str, store: SQLiteStore
) -> None:
    assert run(capsys, "drop", "--store", url, "--yes")[0] == 0
    for command in ("cleanup", "stats"):
        code, out, err = run(capsys, command, "--store", url)
        assert (code, out) == (5, "")
        assert "has no session table yet" in err
        assert err.endswith(f"create it with: coatcheck init --store '{url}'\n")
        assert err.count("\n") == 1


def test_passwords_never_reach_error_messages() -> None:
    assert safe_url("postgresql://app:hunter2@db:5432/x") == "postgresql://app:***@db:5432/x"
    assert safe_url("redis://:hunter2@cache/0") == "redis://:***@cache/0"
    assert safe_url("sqlite:///s.db") == "sqlite:///s.db"


def test_usage_error_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "frobnicate")
    assert code == 2
    assert "invalid choice" in err


def test_show_takes_an_id_that_starts_with_a_dash_after_the_double_dash(
    capsys: pytest.CaptureFixture[str], url: str, store: SQLiteStore
) -> None:
    # base64url ids start with "-" one time in 64; argparse would read one as an option.
    code, _, err = run(capsys, "show", "--store", url, "--", "-" + "A" * 42)
    assert (code, err) == (1, "coatcheck: no session with that id\n")
