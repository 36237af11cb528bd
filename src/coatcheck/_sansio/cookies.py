"""The session cookie: its settings, the ``Set-Cookie`` headers, and reading a ``Cookie`` header.

Pure functions over strings; middleware turns them into protocol headers. Every rule that a
browser would enforce silently (cookie prefixes, SameSite=None needing Secure, ...) is checked
when the :class:`CookieConfig` is built, so a bad setting fails at start-up, not in production.
"""

from __future__ import annotations

import logging
import re
import time
from dataclasses import dataclass, field
from typing import Any, Literal

from ..errors import ConfigurationError

__all__ = [
    "MAX_COOKIE_AGE",
    "CookieConfig",
    "cookie_values",
    "delete_cookie_header",
    "set_cookie_header",
]

logger = logging.getLogger("coatcheck")

MAX_COOKIE_AGE = 400 * 24 * 3600
"""Browsers cap a cookie's lifetime at 400 days (RFC 6265bis), so ``max_age`` may not exceed it."""

_MAX_HEADER_BYTES = 4096  # the size every browser must keep (RFC 6265 section 6.1, ASVS 5 3.3.5)
_MAX_ATTRIBUTE_BYTES = 1024  # RFC 6265bis: longer Path/Domain values are ignored

# RFC 6265 cookie-name = token (RFC 9110 tchar): visible ASCII except separators.
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
# RFC 6265 cookie-octet: visible ASCII except DQUOTE, comma, semicolon and backslash.
_COOKIE_OCTETS = re.compile(r"[\x21\x23-\x2b\x2d-\x3a\x3c-\x5b\x5d-\x7e]+")
# A Path value: visible ASCII except ";" (RFC 6265 av-octet, narrowed to printable ASCII).
_PATH = re.compile(r"/[\x20-\x3a\x3c-\x7e]*")
# A Domain value: a host name or IPv4 address, optionally with the legacy leading dot.
_DOMAIN = re.compile(
    r"\.?[A-Za-z0-9_](?:[A-Za-z0-9_-]*[A-Za-z0-9_])?(?:\.[A-Za-z0-9_](?:[A-Za-z0-9_-]*[A-Za-z0-9_])?)*"
)
_HEADER_TEXT = re.compile(r"[\x20-\x7e]+")

_SAMESITE = {"lax": "Lax", "strict": "Strict", "none": "None"}
_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_EPOCH = "Thu, 01 Jan 1970 00:00:00 GMT"


@dataclass(frozen=True, slots=True)
class CookieConfig:
    """How the session cookie is named and which attributes it carries.

    The defaults are the safe ones: ``Secure``, ``HttpOnly``, ``SameSite=Lax``, no ``Domain``,
    ``Path=/`` and no ``Max-Age`` (a browser-session cookie). Invalid or contradictory settings
    raise :class:`~coatcheck.errors.ConfigurationError`.

    :param name: an RFC 6265 token; ``__Host-`` names need ``Secure``, ``Path=/`` and no
        ``Domain``; ``__Secure-`` names need ``Secure``. The name is matched case-sensitively.
    :param max_age: seconds the browser keeps the cookie, independent of the session's own
        expiry (which the server enforces regardless); ``None`` for a browser-session cookie.
    :param cache_control: the ``Cache-Control`` value for responses that set the cookie, so no
        shared cache stores a response carrying someone's session; ``"private"`` is the
        documented alternative to the default ``"no-store"``.
    """

    name: str = "session"
    path: str = "/"
    domain: str | None = None
    secure: bool = True
    httponly: bool = True
    samesite: Literal["lax", "strict", "none"] | None = "lax"
    partitioned: bool = False
    max_age: int | None = None
    cache_control: str = "no-store"
    # Precomputed header text, so building a header per response is one string concatenation.
    _attributes: str = field(init=False, repr=False, compare=False, default="")
    _delete: str = field(init=False, repr=False, compare=False, default="")

    def __post_init__(self) -> None:
        self._check()
        attributes = ""
        if self.domain is not None:
            attributes += f"; Domain={self.domain}"
        attributes += f"; Path={self.path}"
        if self.secure:
            attributes += "; Secure"
        if self.httponly:
            attributes += "; HttpOnly"
        if self.samesite is not None:
            attributes += f"; SameSite={_SAMESITE[self.samesite]}"
        if self.partitioned:
            attributes += "; Partitioned"
        object.__setattr__(self, "_attributes", attributes)
        object.__setattr__(
            self, "_delete", f"{self.name}=; Expires={_EPOCH}; Max-Age=0{attributes}"
        )

    def _check(self) -> None:
        name = self.name
        if not isinstance(name, str) or not _TOKEN.fullmatch(name):
            raise ConfigurationError(
                f"cookie name {name!r} is not an RFC 6265 token "
                '(no spaces, controls or ()<>@,;:\\"/[]?={})'
            )
        for flag in ("secure", "httponly", "partitioned"):
            if not isinstance(getattr(self, flag), bool):
                raise ConfigurationError(f"cookie {flag} must be True or False")
        if not isinstance(self.path, str) or not _PATH.fullmatch(self.path):
            raise ConfigurationError(
                "cookie path must start with '/' and hold only printable ASCII without ';'"
            )
        if len(self.path) > _MAX_ATTRIBUTE_BYTES:
            raise ConfigurationError(f"cookie path is over {_MAX_ATTRIBUTE_BYTES} bytes")
        if self.domain is not None and (
            not isinstance(self.domain, str)
            or len(self.domain) > _MAX_ATTRIBUTE_BYTES
            or not _DOMAIN.fullmatch(self.domain)
        ):
            raise ConfigurationError(
                f"cookie domain {self.domain!r} is not a host name (use punycode for IDNs)"
            )
        if self.samesite not in (None, *_SAMESITE):
            raise ConfigurationError(
                f"cookie samesite must be 'lax', 'strict', 'none' or None, not {self.samesite!r}"
            )
        if self.max_age is not None and (
            type(self.max_age) is not int or not 0 <= self.max_age <= MAX_COOKIE_AGE
        ):
            raise ConfigurationError(
                f"cookie max_age must be None or an int from 0 to {MAX_COOKIE_AGE} (400 days, "
                f"the most browsers keep), not {self.max_age!r}"
            )
        if not isinstance(self.cache_control, str) or not _HEADER_TEXT.fullmatch(
            self.cache_control
        ):
            raise ConfigurationError("cache_control must be a non-empty printable ASCII string")
        # Browsers match the prefixes case-insensitively (httpwg/http-extensions#2236), so
        # "__host-sid" gets the __Host- rules in the browser and must get them here too.
        lowered = name.lower()
        if lowered.startswith("__host-"):
            if self.domain is not None or self.path != "/" or not self.secure:
                raise ConfigurationError(
                    f"cookie {name!r}: a __Host- cookie needs secure=True, path='/' and no domain"
                )
        elif lowered.startswith("__secure-") and not self.secure:
            raise ConfigurationError(f"cookie {name!r}: a __Secure- cookie needs secure=True")
        if self.samesite == "none" and not self.secure:
            raise ConfigurationError(
                "SameSite=None cookies need secure=True (browsers reject them)"
            )
        if self.partitioned and not self.secure:
            raise ConfigurationError("Partitioned cookies need secure=True (browsers reject them)")


# The last date formatted, by its whole second: a cookie with a max age is set on every write,
# and requests in the same second share the text.
_last_date: tuple[int, str] = (-1, "")


def _http_date(timestamp: float) -> str:
    global _last_date
    second = int(timestamp)
    cached = _last_date
    if cached[0] == second:
        return cached[1]
    t = time.gmtime(second)
    text = (
        f"{_DAYS[t.tm_wday]}, {t.tm_mday:02d} {_MONTHS[t.tm_mon - 1]} {t.tm_year:04d} "
        f"{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d} GMT"
    )
    _last_date = (second, text)  # one tuple, replaced whole: safe across threads
    return text


_CONFIGURED: Any = object()


def set_cookie_header(
    config: CookieConfig,
    value: str,
    *,
    now: float | None = None,
    max_age: int | None = _CONFIGURED,
) -> str:
    """Return the ``Set-Cookie`` header value that stores *value* under ``config.name``.

    ``Expires`` and ``Max-Age`` appear only when the max age is set: ``max_age`` when given
    (a session's own lifetime; None for a browser-session cookie), else ``config.max_age``.
    *now* (a Unix time, default the current time) is what ``Expires`` counts from. *value*
    must be non-empty RFC 6265 cookie-octets, or ``ValueError`` is raised: nothing unchecked
    reaches a header.
    A header over 4096 bytes is still returned, with a WARNING on the ``coatcheck`` logger,
    since browsers may drop it.
    """
    if not isinstance(value, str) or not _COOKIE_OCTETS.fullmatch(value):
        raise ValueError("a cookie value must be non-empty RFC 6265 cookie-octets")
    if max_age is _CONFIGURED:
        max_age = config.max_age
    if max_age is None:
        header = f"{config.name}={value}{config._attributes}"
    else:
        expires = _http_date((time.time() if now is None else now) + max_age)
        header = f"{config.name}={value}; Expires={expires}; Max-Age={max_age}{config._attributes}"
    if len(header) > _MAX_HEADER_BYTES:  # all ASCII, so characters are bytes
        logger.warning(
            "Set-Cookie header for cookie %r is %d bytes, over the %d that browsers must keep; "
            "it may be dropped",
            config.name,
            len(header),
            _MAX_HEADER_BYTES,
        )
    return header


def delete_cookie_header(config: CookieConfig) -> str:
    """Return the ``Set-Cookie`` header value that deletes the cookie.

    Same name, ``Domain``, ``Path`` and other attributes as :func:`set_cookie_header` (a browser
    only deletes the cookie they match), an empty value, ``Max-Age=0`` and an ``Expires`` in 1970.
    """
    return config._delete


def cookie_values(header: str, name: str) -> list[str]:
    """Return every non-empty value sent under exactly *name* in a ``Cookie`` header, in order.

    Names compare case-sensitively (``__host-sid`` is not ``__Host-sid``); pairs without a name
    (``=value``, Werkzeug CVE-2023-23934) or without ``=`` are ignored; one pair of surrounding
    double quotes is removed; an empty value (``sid=``) counts as no cookie. Several ``Cookie``
    headers (HTTP/2) should be joined with ``"; "`` first. Linear in the header length and never
    raises for any string; the values are still untrusted and need validating.
    """
    if not name or name not in header:
        return []
    values = []
    for pair in header.split(";"):
        if name not in pair:
            continue  # cheaper than partitioning every other cookie's pair (hot path)
        key, eq, value = pair.partition("=")
        if not eq or key.strip(" \t") != name:
            continue
        value = value.strip(" \t")
        if len(value) >= 2 and value[0] == '"' and value[-1] == '"':
            value = value[1:-1]
        if value:
            values.append(value)
    return values
