"""Cookie settings, Set-Cookie headers and Cookie header parsing."""

from __future__ import annotations

import dataclasses
import email.utils
import logging
import time
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from coatcheck._sansio.cookies import (
    MAX_COOKIE_AGE,
    CookieConfig,
    cookie_values,
    delete_cookie_header,
    set_cookie_header,
)
from coatcheck._sansio.ids import new_session_id
from coatcheck.errors import ConfigurationError

SID = new_session_id()


def test_defaults_are_the_safe_ones() -> None:
    config = CookieConfig()
    assert (
        set_cookie_header(config, SID) == f"session={SID}; Path=/; Secure; HttpOnly; SameSite=Lax"
    )
    assert config.max_age is None  # a browser-session cookie: no Max-Age, no Expires
    assert config.cache_control == "no-store"


def test_every_attribute_in_order() -> None:
    config = CookieConfig(
        name="__Secure-sid",
        path="/app",
        domain="example.com",
        samesite="none",
        partitioned=True,
        max_age=3600,
    )
    assert set_cookie_header(config, SID, now=1_700_000_000) == (
        f"__Secure-sid={SID}; Expires=Tue, 14 Nov 2023 23:13:20 GMT; Max-Age=3600; "
        "Domain=example.com; Path=/app; Secure; HttpOnly; SameSite=None; Partitioned"
    )


def test_optional_attributes_can_be_switched_off() -> None:
    config = CookieConfig(name="sid", secure=False, httponly=False, samesite=None)
    assert set_cookie_header(config, "v") == "sid=v; Path=/"
    assert CookieConfig(samesite="strict").samesite == "strict"
    assert set_cookie_header(CookieConfig(samesite="strict"), "v").endswith("; SameSite=Strict")


@pytest.mark.parametrize("now", [0, 951_782_400, 1_700_000_000.75, 4_102_444_799])
def test_expires_is_an_rfc_1123_date(now: float) -> None:
    header = set_cookie_header(CookieConfig(max_age=86_400), "v", now=now)
    expected = email.utils.formatdate(int(now) + 86_400, usegmt=True)
    assert f"; Expires={expected}; Max-Age=86400;" in header


def test_expires_counts_from_the_current_time_by_default() -> None:
    before = time.time()
    header = set_cookie_header(CookieConfig(max_age=600), "v")
    expires = header.split("Expires=")[1].split(";")[0]
    parsed = email.utils.parsedate_to_datetime(expires).timestamp()
    assert int(before) + 600 <= parsed <= time.time() + 600


def test_delete_header_matches_the_set_header_attributes() -> None:
    config = CookieConfig(name="sid", path="/app", domain="example.com", partitioned=True)
    assert delete_cookie_header(config) == (
        "sid=; Expires=Thu, 01 Jan 1970 00:00:00 GMT; Max-Age=0; "
        "Domain=example.com; Path=/app; Secure; HttpOnly; SameSite=Lax; Partitioned"
    )
    set_attrs = set_cookie_header(config, "v").split("; ", 1)[1]
    assert delete_cookie_header(config).endswith(set_attrs)


def test_delete_header_does_not_carry_a_lifetime_even_with_max_age() -> None:
    header = delete_cookie_header(CookieConfig(max_age=3600))
    assert "Max-Age=3600" not in header
    assert "Max-Age=0" in header


@pytest.mark.parametrize(
    "name",
    ["", "a b", "a;b", "a,b", "a=b", "a\r\nb", "a\nb", "a\x00b", "a\tb", "\x7f", 'a"b', "a\\b",
     "a/b", "(a)", "a[0]", "a{}", "a:b", "a?b", "a@b", "sé", "\uff53\uff49\uff44"],
)  # fmt: skip
def test_names_that_are_not_rfc_6265_tokens_are_refused(name: str) -> None:
    with pytest.raises(ConfigurationError, match="token"):
        CookieConfig(name=name)


@pytest.mark.parametrize("name", ["sid", "session", "__Host-sid", "a!#$%&'*+-.^_`|~9"])
def test_tokens_are_accepted(name: str) -> None:
    assert set_cookie_header(CookieConfig(name=name), "v").startswith(f"{name}=v;")


@pytest.mark.parametrize(
    "kwargs",
    [
        {"name": "__Host-sid", "domain": "example.com"},
        {"name": "__Host-sid", "path": "/app"},
        {"name": "__Host-sid", "secure": False, "samesite": "lax"},
        {"name": "__host-sid", "domain": "example.com"},  # browsers match prefixes any case
        {"name": "__HOST-sid", "path": "/app"},
        {"name": "__Secure-sid", "secure": False},
        {"name": "__secure-sid", "secure": False},
        {"samesite": "none", "secure": False},
        {"partitioned": True, "secure": False},
        {"samesite": "Lax"},
        {"samesite": "always"},
        {"samesite": ""},
        {"path": ""},
        {"path": "app"},
        {"path": "/a;b"},
        {"path": "/a\r\nSet-Cookie: x=1"},
        {"path": "/a\x00"},
        {"path": "/a\x7f"},
        {"path": "/é"},
        {"path": "/" + "a" * 1024},
        {"domain": ""},
        {"domain": "example.com;"},
        {"domain": "example.com\r\nX: y"},
        {"domain": "exa mple.com"},
        {"domain": "example..com"},
        {"domain": "exämple.com"},
        {"domain": "a" * 1025},
        {"max_age": -1},
        {"max_age": MAX_COOKIE_AGE + 1},
        {"max_age": True},
        {"max_age": 1.5},
        {"secure": 1},
        {"httponly": None},
        {"partitioned": "yes"},
        {"cache_control": ""},
        {"cache_control": "no-store\r\nX-Evil: 1"},
        {"cache_control": "privé"},
        {"name": None},
    ],
)
def test_contradictory_or_unsafe_settings_fail_at_construction(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ConfigurationError):
        CookieConfig(**kwargs)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"name": "__Host-sid"},
        {"name": "__Secure-sid", "domain": "example.com", "path": "/app"},
        {"samesite": "none"},
        {"samesite": None},
        {"partitioned": True},
        {"domain": ".example.com"},
        {"domain": "127.0.0.1"},
        {"domain": "my_host.local"},
        {"max_age": 0},
        {"max_age": MAX_COOKIE_AGE},
        {"cache_control": "private"},
        {"path": "/a%20b/c-d_e.f~"},
        {"name": "sid", "secure": False, "samesite": "strict"},
    ],
)
def test_consistent_settings_are_accepted(kwargs: dict[str, Any]) -> None:
    CookieConfig(**kwargs)


def test_config_is_frozen_hashable_and_replace_recomputes_the_header() -> None:
    config = CookieConfig(name="sid")
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.name = "other"  # type: ignore[misc]
    assert config == CookieConfig(name="sid")
    assert hash(config) == hash(CookieConfig(name="sid"))
    moved = dataclasses.replace(config, path="/app")
    assert "; Path=/app;" in set_cookie_header(moved, "v")
    assert "; Path=/app;" in delete_cookie_header(moved)
    with pytest.raises(ConfigurationError):
        dataclasses.replace(config, name="__Host-sid", path="/app")
    assert "_attributes" not in repr(config)


@pytest.mark.parametrize(
    "value", ["", "a;b", "a b", "a,b", 'a"b', "a\\b", "a\r\nSet-Cookie: evil=1", "\x00", "é"]
)
def test_values_a_cookie_cannot_carry_are_refused(value: str) -> None:
    with pytest.raises(ValueError, match="cookie-octets"):
        set_cookie_header(CookieConfig(), value)


def test_over_4096_bytes_logs_a_warning_without_the_value(
    caplog: pytest.LogCaptureFixture,
) -> None:
    config = CookieConfig(name="sid")
    overhead = len(set_cookie_header(config, "v")) - 1
    with caplog.at_level(logging.WARNING, logger="coatcheck"):
        set_cookie_header(config, "v" * (4096 - overhead))
    assert caplog.records == []
    value = "Q" * (4097 - overhead)
    with caplog.at_level(logging.WARNING, logger="coatcheck"):
        header = set_cookie_header(config, value)
    assert len(header) == 4097
    [record] = caplog.records
    assert record.name == "coatcheck"
    assert record.levelno == logging.WARNING
    assert "4097" in record.getMessage()
    assert "sid" in record.getMessage()
    assert "QQQQ" not in record.getMessage()


# --- reading the Cookie header ------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("", []),
        ("sid=abc", ["abc"]),
        ("a=1; sid=abc; b=2", ["abc"]),
        ("a=1;sid=abc;b=2", ["abc"]),
        ("  sid = abc  ;", ["abc"]),
        ("\tsid=abc\t", ["abc"]),
        ("sid=A; sid=B", ["A", "B"]),  # both, in order: the caller applies its rule
        ("sid=B; other=x; sid=A", ["B", "A"]),
        ('sid="abc"', ["abc"]),
        ('sid=""abc""', ['"abc"']),  # one pair only
        ('sid="abc', ['"abc']),
        ('sid="', ['"']),
        ("sid=", []),  # an empty value is no cookie
        ('sid=""', []),
        ("sid", []),
        ("sid;", []),
        ("sid=a=b", ["a=b"]),
        ("=sid=forged", []),  # nameless pair (Werkzeug CVE-2023-23934)
        ("=__Host-sid=forged", []),
        ("xsid=1; sidx=2; SID=3; Sid=4", []),
        ("a=sid; sid_=1", []),
        ("sid=\x00\r\n", ["\x00\r\n"]),  # returned as sent: the id validator rejects it
    ],
)
def test_cookie_values(header: str, expected: list[str]) -> None:
    assert cookie_values(header, "sid") == expected


def test_prefixed_names_compare_case_sensitively() -> None:
    header = "__host-sid=forged; __HOST-SID=forged2"
    assert cookie_values(header, "__Host-sid") == []
    assert cookie_values(header + "; __Host-sid=real", "__Host-sid") == ["real"]
    assert cookie_values("=__Host-sid=forged", "__Host-sid") == []


def test_empty_name_matches_nothing() -> None:
    assert cookie_values("=abc; x=1", "") == []


def test_a_64_kb_header_with_500_cookies_is_parsed_quickly() -> None:
    filler = "; ".join(f"c{i}=" + "v" * 120 for i in range(500))
    header = f"{filler}; sid=wanted; {filler}"
    assert len(header) > 120_000
    start = time.perf_counter()
    for _ in range(10):
        assert cookie_values(header, "sid") == ["wanted"]
    # Linear parsing does this in a few milliseconds; anything quadratic takes seconds.
    assert time.perf_counter() - start < 1.0


@pytest.mark.parametrize(
    "header",
    ["=" * 65_536, ";" * 65_536, " " * 65_536, "sid" * 20_000, "sid=" * 16_000, '"' * 65_536,
     "sid= " + " " * 65_536 + "x", "sid=\"" + "\"" * 65_536],
)  # fmt: skip
def test_pathological_headers_stay_linear(header: str) -> None:
    start = time.perf_counter()
    cookie_values(header, "sid")
    assert time.perf_counter() - start < 0.5


@given(st.text(), st.sampled_from(["sid", "__Host-sid", "a"]))
@settings(deadline=None)
def test_parsing_never_raises_and_returns_non_empty_values(header: str, name: str) -> None:
    values = cookie_values(header, name)
    assert all(values)
    assert all(value in header for value in values)


@given(st.lists(st.from_regex(r"[A-Za-z0-9_-]{1,20}", fullmatch=True), max_size=5))
@settings(deadline=None)
def test_values_written_by_set_cookie_are_read_back(values: list[str]) -> None:
    config = CookieConfig(name="sid")
    pairs = [set_cookie_header(config, value).split(";", 1)[0] for value in values]
    assert cookie_values("; ".join(["other=1", *pairs]), "sid") == values
