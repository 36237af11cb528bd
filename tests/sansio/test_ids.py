"""Session ids: generation, the allow-list validator, storage keys and log fingerprints."""

from __future__ import annotations

import hashlib
import re
import secrets
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from coatcheck._sansio.ids import (
    fingerprint,
    id_length,
    is_valid_session_id,
    new_session_id,
    new_token,
    storage_key,
)
from coatcheck.errors import ConfigurationError

ALPHABET = re.compile(r"[A-Za-z0-9_-]+")


def test_default_id_has_256_bits_in_43_url_safe_characters() -> None:
    session_id = new_session_id()
    assert len(session_id) == 43 == id_length(32)
    assert ALPHABET.fullmatch(session_id)
    assert is_valid_session_id(session_id)


def test_ids_are_unique() -> None:
    assert len({new_session_id() for _ in range(2000)}) == 2000


@pytest.mark.parametrize("nbytes", range(16, 70))
def test_id_length_is_exact_and_generated_ids_validate(nbytes: int) -> None:
    for _ in range(20):
        session_id = new_session_id(nbytes)
        assert len(session_id) == id_length(nbytes) == len(secrets.token_urlsafe(nbytes))
        assert is_valid_session_id(session_id, nbytes)


@pytest.mark.parametrize("nbytes", [15, 0, -1, 16.0, True, "32", None])
def test_fewer_than_128_bits_or_a_non_int_is_a_configuration_error(nbytes: Any) -> None:
    for function in (new_session_id, id_length, new_token):
        with pytest.raises(ConfigurationError):
            function(nbytes)
    with pytest.raises(ConfigurationError):
        is_valid_session_id(new_session_id(), nbytes)


VALID = new_session_id()


@pytest.mark.parametrize(
    "value",
    [
        "",
        "AAAA",
        "A" * 10_000,
        VALID[:-1],
        VALID + "A",
        VALID[:-1] + "=",  # base64 padding
        VALID[:41] + "==",
        VALID[:-1] + "\n",
        VALID + "\n",
        "\n" + VALID[1:],
        VALID[:-2] + "\x00" + VALID[-1],
        (VALID[:20] + "\r\nSet-Cookie: x=1" + VALID)[:43],
        VALID[:-2] + "٣" + VALID[-1],  # an Arabic-Indic digit: \d would accept it
        VALID[:-2] + "\uff21" + VALID[-1],  # fullwidth A
        VALID[:-2] + "é" + VALID[-1],
        ("../../../etc/passwd" + "A" * 43)[:43],
        ("..\\..\\x" + "A" * 43)[:43],
        ("a/b" + "A" * 43)[:43],
        ("%2e%2e%2f" + "A" * 43)[:43],
        ("/" + "A" * 43)[:43],
        ("' OR '1'='1" + "A" * 43)[:43],
        ("%" + "A" * 43)[:43],
        ("*" + "A" * 43)[:43],
        ("?" + "A" * 43)[:43],
        ("[" + "A" * 43)[:43],
        ("a b" + "A" * 43)[:43],
        ("+" + "A" * 42),  # standard (not URL-safe) base64
        storage_key(VALID),  # the stored key from a database dump (Rails CVE-2019-16782)
    ],
)
def test_hostile_or_malformed_strings_are_rejected(value: str) -> None:
    assert not is_valid_session_id(value)


@pytest.mark.parametrize("value", [None, 0, 43, b"A" * 43, ["A" * 43], bytearray(b"A" * 43), 4.3])
def test_non_strings_are_rejected(value: object) -> None:
    assert not is_valid_session_id(value)


def test_only_canonical_last_characters_are_accepted() -> None:
    # 32 bytes leave 2 zero bits in the last character: only 16 of 64 characters can end an id.
    endings = {new_session_id()[-1] for _ in range(3000)}
    assert endings == set("AEIMQUYcgkosw048")
    for char in "BCDZ-_9":
        assert not is_valid_session_id(VALID[:-1] + char)
    assert is_valid_session_id(VALID[:-1] + "w")


def test_case_variants_are_different_ids() -> None:
    # Still well-formed, so the store decides (unknown id -> fresh session); never the same key.
    swapped = VALID[:-1].swapcase() + VALID[-1]
    assert storage_key(swapped) != storage_key(VALID)


@given(st.text(max_size=80) | st.binary(max_size=80) | st.integers() | st.none())
@settings(deadline=None)
def test_validator_never_raises_and_admits_only_the_alphabet(value: object) -> None:
    if is_valid_session_id(value):
        assert isinstance(value, str)
        assert len(value) == 43
        assert ALPHABET.fullmatch(value)


def test_storage_key_is_the_sha256_hex_digest() -> None:
    key = storage_key(VALID)
    assert key == hashlib.sha256(VALID.encode()).hexdigest()
    assert re.fullmatch(r"[0-9a-f]{64}", key)
    assert VALID not in key
    assert storage_key(key) != key  # a leaked key sent as a cookie maps to another record


def test_fingerprint_is_keyed_short_and_reveals_nothing() -> None:
    key_a, key_b = b"a" * 32, b"b" * 32
    fp = fingerprint(VALID, key_a)
    assert re.fullmatch(r"[0-9a-f]{16}", fp)
    assert fp == fingerprint(VALID, key_a)
    assert fp != fingerprint(VALID, key_b)
    assert fp != fingerprint(new_session_id(), key_a)
    assert fp not in storage_key(VALID)
    assert fp not in VALID


@given(st.text())
@settings(deadline=None)
def test_fingerprint_accepts_any_string(value: str) -> None:
    assert len(fingerprint(value, b"k" * 32)) == 16


def test_fingerprint_of_hostile_cookie_values() -> None:
    for value in ["\udc80", "\x00\r\nSet-Cookie: a=b", "x" * 100_000]:
        assert len(fingerprint(value, b"k" * 32)) == 16
        assert len(storage_key(value)) == 64


def test_tokens() -> None:
    token = new_token()
    assert len(token) == 22
    assert ALPHABET.fullmatch(token)
    assert len(new_token(32)) == 43
    assert len({new_token() for _ in range(1000)}) == 1000
