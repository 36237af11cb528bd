"""The purpose-bound, key-rotating HMAC signer."""

from __future__ import annotations

import base64
import hmac
import re
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from coatcheck._sansio.ids import new_session_id
from coatcheck._sansio.signing import Signer
from coatcheck.errors import ConfigurationError

OLD = "old-secret-0123456789abcdef"
NEW = b"new-secret-0123456789abcdef"
VALUE = new_session_id()


@pytest.fixture
def signer() -> Signer:
    return Signer([NEW, OLD], purpose="cookie:sid")


def test_sign_appends_an_unpadded_base64url_sha256_mac(signer: Signer) -> None:
    signed = signer.sign(VALUE)
    value, mac = signed.rsplit(".", 1)
    assert value == VALUE
    assert re.fullmatch(r"[A-Za-z0-9_-]{43}", mac)
    assert len(base64.urlsafe_b64decode(mac + "=")) == 32


def test_round_trip_by_the_newest_key(signer: Signer) -> None:
    assert signer.verify(signer.sign(VALUE)) == (VALUE, True)


@pytest.mark.parametrize("value", ["", "a.b.c", "é ü \x00 ;=", "\udc80", "x" * 5000])
def test_any_string_round_trips(signer: Signer, value: str) -> None:
    assert signer.verify(signer.sign(value)) == (value, True)


def test_older_key_verifies_and_says_so_so_the_caller_can_reissue() -> None:
    old_signed = Signer([OLD], purpose="cookie:sid").sign(VALUE)
    rotated = Signer([NEW, OLD], purpose="cookie:sid")
    assert rotated.verify(old_signed) == (VALUE, False)
    assert rotated.verify(rotated.sign(VALUE)) == (VALUE, True)


def test_removed_key_no_longer_verifies() -> None:
    old_signed = Signer([OLD], purpose="cookie:sid").sign(VALUE)
    assert Signer([NEW], purpose="cookie:sid").verify(old_signed) is None


def test_str_and_bytes_secrets_are_the_same_key() -> None:
    as_str = Signer(["s3cret-s3cret-s3cret"], purpose="p")
    as_bytes = Signer([b"s3cret-s3cret-s3cret"], purpose="p")
    assert as_bytes.verify(as_str.sign(VALUE)) == (VALUE, True)


def test_a_mac_for_one_purpose_never_verifies_for_another() -> None:
    signed = Signer([NEW], purpose="cookie:sid").sign(VALUE)
    for purpose in ("cookie:other", "cookie:sid ", "cookie:SID", "serializer:pickle"):
        assert Signer([NEW], purpose=purpose).verify(signed) is None


def test_every_single_character_change_is_rejected(signer: Signer) -> None:
    signed = signer.sign(VALUE)
    for index, char in enumerate(signed):
        for replacement in {"A", "B", "-", "_", "."} - {char}:
            tampered = signed[:index] + replacement + signed[index + 1 :]
            assert signer.verify(tampered) is None, (index, replacement)


def test_every_flipped_bit_of_the_mac_is_rejected(signer: Signer) -> None:
    value, mac = signer.sign(VALUE).rsplit(".", 1)
    raw = base64.urlsafe_b64decode(mac + "=")
    for bit in range(len(raw) * 8):
        flipped = bytearray(raw)
        flipped[bit // 8] ^= 1 << (bit % 8)
        forged = base64.urlsafe_b64encode(bytes(flipped)).decode().rstrip("=")
        assert signer.verify(f"{value}.{forged}") is None


@pytest.mark.parametrize(
    "signed",
    [
        "",
        ".",
        VALUE,  # an unsigned id while signing is on: no fallback
        VALUE + ".",
        "." + "A" * 43,
        VALUE + "." + "A" * 43,
        VALUE + "." + "A" * 42 + "=",
        VALUE + "." + "A" * 44,
        VALUE + "." + "é" * 43,
        VALUE + "." + "\x00" * 43,
    ],
)
def test_malformed_or_unsigned_values_are_rejected(signer: Signer, signed: str) -> None:
    assert signer.verify(signed) is None


def test_non_canonical_base64_of_the_right_mac_is_rejected(signer: Signer) -> None:
    value, mac = signer.sign(VALUE).rsplit(".", 1)
    # The last character holds 2 padding bits; setting one decodes to the same bytes.
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    twin = mac[:-1] + alphabet[alphabet.index(mac[-1]) ^ 1]
    assert base64.urlsafe_b64decode(twin + "=") == base64.urlsafe_b64decode(mac + "=")
    assert signer.verify(f"{value}.{twin}") is None


@given(st.text())
@settings(deadline=None)
def test_verify_never_raises(signed: str) -> None:
    result = Signer([NEW], purpose="p").verify(signed)
    assert result is None or result == (signed.rpartition(".")[0], True)


def test_macs_are_compared_in_constant_time(
    signer: Signer, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[tuple[Any, Any]] = []
    real = hmac.compare_digest

    def spy(a: Any, b: Any) -> bool:
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", spy)
    signed = signer.sign(VALUE)
    assert signer.verify(signed) == (VALUE, True)
    assert len(calls) == 1
    assert signer.verify(signed[:-1] + ("A" if signed[-1] != "A" else "B")) is None
    assert len(calls) == 3  # tried against both keys, each through compare_digest
    blob = signer.sign_bytes(b"data")
    assert signer.verify_bytes(blob) == b"data"
    assert len(calls) == 4


def test_bytes_round_trip_and_rotation() -> None:
    old = Signer([OLD], purpose="blob")
    new = Signer([NEW, OLD], purpose="blob")
    blob = new.sign_bytes(b"\x00payload\xff")
    assert len(blob) == 32 + 9
    assert new.verify_bytes(blob) == b"\x00payload\xff"
    assert new.verify_bytes(old.sign_bytes(b"x")) == b"x"
    assert old.verify_bytes(new.sign_bytes(b"x")) is None
    assert new.verify_bytes(new.sign_bytes(b"")) == b""


def test_every_flipped_bit_of_a_signed_blob_is_rejected() -> None:
    signer = Signer([NEW], purpose="blob")
    blob = signer.sign_bytes(b"some payload")
    for bit in range(len(blob) * 8):
        flipped = bytearray(blob)
        flipped[bit // 8] ^= 1 << (bit % 8)
        assert signer.verify_bytes(bytes(flipped)) is None


@given(st.binary(max_size=100))
@settings(deadline=None)
def test_verify_bytes_never_raises(blob: bytes) -> None:
    assert Signer([NEW], purpose="blob").verify_bytes(blob) is None


def test_text_and_byte_macs_cannot_be_swapped() -> None:
    signer = Signer([NEW], purpose="p")
    value, mac = signer.sign("payload").rsplit(".", 1)
    as_blob = base64.urlsafe_b64decode(mac + "=") + value.encode()
    assert signer.verify_bytes(as_blob) is None
    blob = signer.sign_bytes(b"payload")
    as_text = "payload." + base64.urlsafe_b64encode(blob[:32]).decode().rstrip("=")
    assert signer.verify(as_text) is None


@pytest.mark.parametrize(
    ("keys", "purpose"),
    [
        ([], "p"),
        (["short"], "p"),
        ([NEW, "0123456789abcde"], "p"),  # 15 bytes
        ("a single secret string, not a list", "p"),
        (b"a single secret bytes, not a list", "p"),
        ([12345678901234567890], "p"),
        ([NEW], ""),
        ([NEW], None),
    ],
)
def test_bad_keys_or_purpose_are_configuration_errors(keys: Any, purpose: Any) -> None:
    with pytest.raises(ConfigurationError):
        Signer(keys, purpose=purpose)


def test_repr_shows_no_secret(signer: Signer) -> None:
    text = repr(signer)
    assert "secret" not in text
    assert "cookie:sid" in text
    assert signer.purpose == "cookie:sid"
