"""The header rules both middlewares share (coatcheck._sansio.headers), checked on their own."""

from __future__ import annotations

import pytest

from coatcheck import CookieConfig, SaveOutcome
from coatcheck._sansio.headers import (
    check_id_header,
    interrupted_outcome,
    merge_headers,
    response_headers,
)
from coatcheck.errors import ConfigurationError

SET = ("Set-Cookie", "sid=abc; Path=/; Secure; HttpOnly; SameSite=Lax")
SESSION = [SET, ("Cache-Control", "no-store"), ("Vary", "Cookie")]


def test_nothing_to_add_returns_an_equal_copy() -> None:
    app = [("Content-Type", "text/plain")]
    merged = merge_headers(app, [])
    assert merged == app
    assert merged is not app


def test_inputs_are_not_modified() -> None:
    app = [("Vary", "Accept"), ("Cache-Control", "public")]
    before = list(app)
    merge_headers(app, SESSION)
    assert app == before


@pytest.mark.parametrize(
    ("app", "expected"),
    [
        ([], [("Vary", "Cookie")]),
        ([("Vary", "Accept")], [("Vary", "Accept, Cookie")]),
        (
            [("vary", "Accept"), ("Vary", "Origin")],
            [("vary", "Accept, Cookie"), ("Vary", "Origin")],
        ),
        ([("Vary", "Accept"), ("Vary", "cookie")], [("Vary", "Accept"), ("Vary", "cookie")]),
        ([("Vary", " ")], [("Vary", "Cookie")]),
        ([("Vary", "*")], [("Vary", "*")]),
    ],
)
def test_vary_gets_cookie_exactly_once(
    app: list[tuple[str, str]], expected: list[tuple[str, str]]
) -> None:
    assert merge_headers(app, [("Vary", "Cookie")]) == expected


def test_vary_with_an_id_header_name() -> None:
    assert merge_headers([("Vary", "Cookie")], [("Vary", "X-Session-Id")]) == [
        ("Vary", "Cookie, X-Session-Id")
    ]


@pytest.mark.parametrize(
    ("app", "expected"),
    [
        ([], [("Cache-Control", "no-store")]),
        ([("Cache-Control", "public, max-age=60")], [("Cache-Control", "no-store")]),
        (
            [("cache-control", "max-age=60"), ("Cache-Control", "public")],
            [("Cache-Control", "no-store")],
        ),
        ([("Cache-Control", "PRIVATE")], [("Cache-Control", "PRIVATE")]),
        ([("Cache-Control", "max-age=0,no-store")], [("Cache-Control", "max-age=0,no-store")]),
        ([("Cache-Control", 'private="Set-Cookie"')], [("Cache-Control", "no-store")]),
    ],
)
def test_cache_control(app: list[tuple[str, str]], expected: list[tuple[str, str]]) -> None:
    assert merge_headers(app, [("Cache-Control", "no-store")]) == expected


def test_set_cookie_is_appended_next_to_the_apps_own() -> None:
    app = [("Set-Cookie", "theme=dark")]
    assert merge_headers(app, [SET]) == [("Set-Cookie", "theme=dark"), SET]


@pytest.mark.parametrize("bad", ["a\r\nSet-Cookie: x=1", "a\nb", "a\rb", "a\0b"])
def test_control_characters_never_reach_a_header(bad: str) -> None:
    with pytest.raises(ValueError, match="control character"):
        merge_headers([], [("X-Session-Id", bad)])


def test_cookie_mode_passes_the_outcome_through() -> None:
    outcome = SaveOutcome(list(SESSION), "abc")
    assert response_headers(outcome, None) == SESSION


def test_header_mode_carries_the_ticket_instead_of_a_cookie() -> None:
    outcome = SaveOutcome(list(SESSION), "abc")
    assert response_headers(outcome, "X-Session-Id") == [
        ("X-Session-Id", "abc"),
        ("Cache-Control", "no-store"),
        ("Vary", "X-Session-Id"),
    ]


def test_header_mode_clears_with_an_empty_value() -> None:
    outcome = interrupted_outcome(CookieConfig(name="sid"))
    assert outcome.cleared
    assert response_headers(outcome, "X-Session-Id")[0] == ("X-Session-Id", "")
    assert outcome.headers[0][1].startswith("sid=;")


def test_header_mode_read_only_request_only_varies() -> None:
    assert response_headers(SaveOutcome([("Vary", "Cookie")]), "X-Sid") == [("Vary", "X-Sid")]


@pytest.mark.parametrize("name", ["Cookie", "SET-COOKIE", "Vary", "a b", "x:y", "", "é"])
def test_id_header_names_that_cannot_work(name: str) -> None:
    with pytest.raises(ConfigurationError):
        check_id_header(name)


def test_id_header_name_accepted() -> None:
    assert check_id_header("X-Session-Id") == "X-Session-Id"
    assert check_id_header(None) is None
