"""The Redis store's Lua scripts and the packed arguments they read, in one place.

Each script is one round trip that must be atomic: a compare-and-set on the record's version,
a lock taken with the read, an idle timeout slid inside the load. The record layout they work
on is :mod:`coatcheck.stores._packed`; the store (``_async/redis.py``) runs them with EVALSHA.
"""

from __future__ import annotations

import hashlib
import math
import struct
from typing import NamedTuple

from .._sansio.line import STALE_AFTER
from . import _packed
from .base import Slide

__all__ = [
    "DOUBLE",
    "LOAD_LOCKED",
    "LOAD_SLIDE",
    "NO_TTL",
    "RETIRE",
    "TOUCH",
    "UNLOCK",
    "UPDATE",
    "Script",
    "px",
    "slide_arg",
    "ttl_ms",
]


class Script(NamedTuple):
    """A Lua script and its SHA1, run with EVALSHA (see ``AsyncRedisStore._eval``)."""

    source: str
    sha: bytes  # hex digits, as bytes: redis-py sends bytes as they are


def script(source: str) -> Script:
    digest = hashlib.sha1(source.encode(), usedforsecurity=False).hexdigest()
    return Script(source, digest.encode())


# The scripts' shared steps are pasted in as text, not defined as Lua functions: a script
# builds its local functions anew on every run, about a third of a redis.call's cost each.


def _release(lock: str, token: str) -> str:
    """Lua: delete ``lock`` when ``token`` holds it.

    Lock values are "<expiry by the caller's clock> <token>"; only the holder's token releases.
    """
    return f"""
  local held = redis.call('GET', {lock})
  if held then
    local sep = string.find(held, ' ', 1, true)
    if sep and string.sub(held, sep + 1) == {token} then redis.call('DEL', {lock}) end
  end"""


def _slide(value: str, now: str, slide: str, px: str) -> str:
    """Lua: the contract's slide of KEYS[1], whose stored ``value`` is in hand.

    When it slides, the script returns ``{value}`` (a one-element array says "slid");
    otherwise it carries on, and the script returns the bare value (a bulk string, the
    cheaper reply on the common path).

    What TOUCH does, only to a record alive by the caller's clock (``now``, a number) and last
    accessed after alive_after and at or before stale_before. ``slide`` packs stale_before, the
    16 new time bytes and alive_after (_SLIDE_ARG), compared with the doubles stored at
    TIMES_OFFSET by the struct library of Redis's Lua. A value some other program wrote is
    left alone.
    """
    return f"""
if string.len({value}) >= {_packed.HEADER_SIZE}
    and string.sub({value}, 1, {_packed.VERSION_OFFSET}) == '{_packed.TAG.decode()}' then
  local accessed_at, expires_at = struct.unpack('>dd', {value}, {_packed.TIMES_OFFSET + 1})
  local stale_before, _, _, alive_after = struct.unpack('>dddd', {slide})
  if expires_at > {now} and accessed_at <= stale_before and accessed_at > alive_after then
    redis.call('SETRANGE', KEYS[1], {_packed.TIMES_OFFSET}, string.sub({slide}, 9, 24))
    redis.call('PEXPIRE', KEYS[1], {px})
    return {{{value}}}
  end
end"""


#: The reply of a load script for a record without a TTL: every record is written with one, so
#: a key without one was written by something else (or PERSISTed) and would never expire.
NO_TTL = "coatcheck: no-ttl"
# Checked where a load runs a script anyway (it costs a PTTL there); a plain GET, a read-only
# request's load, cannot tell, and the core's own expiry check still bounds such a record.
_NO_TTL = f"""
if redis.call('PTTL', KEYS[1]) == -1 then return redis.error_reply('{NO_TTL}') end"""


# KEYS: record. ARGV: now (packed double), slide (_SLIDE_ARG), PX.
# Returns {value} when it slid, the bare value when not, nil without a record.
LOAD_SLIDE = script(
    """
local value = redis.call('GET', KEYS[1])
if not value then return false end"""
    + _NO_TTL
    + _slide("value", "struct.unpack('>d', ARGV[1])", "ARGV[2]", "ARGV[3]")
    + """
return value
"""
)

# KEYS: record, lock, next. ARGV: token, now (packed double), lock expiry (text), lock PX,
# since (packed double), [slide, PX]. Returns the stored value ({value} when it slid), 0 when
# the lock is not this token's to take (held, or free while a longer waiter is next), nil
# without a record. The next key holds the longest waiter (coatcheck._sansio.line.decide):
# packed since and seen, then its token; its PX only clears debris, staleness is by ``seen``.
LOAD_LOCKED = script(
    """
local value = redis.call('GET', KEYS[1])
if not value then return false end"""
    + _NO_TTL
    + f"""
local now = struct.unpack('>d', ARGV[2])
local mine = ARGV[3] .. ' ' .. ARGV[1]
local holder = false
-- Usually the lock is free (the last request released it), and SET NX takes it at once.
if not redis.call('SET', KEYS[2], mine, 'PX', ARGV[4], 'NX') then
  local held = redis.call('GET', KEYS[2])
  local sep = string.find(held, ' ', 1, true)
  if sep and tonumber(string.sub(held, 1, sep - 1)) > now then
    holder = string.sub(held, sep + 1)
  end
end
if holder ~= ARGV[1] then
  local since = struct.unpack('>d', ARGV[5])
  local nxt = redis.call('GET', KEYS[3])
  if nxt and string.len(nxt) > 16 then
    local nsince, nseen = struct.unpack('>dd', nxt)
    if string.sub(nxt, 17) ~= ARGV[1] and nseen > now - {STALE_AFTER!r}
        and since >= nsince then
      if not holder then redis.call('DEL', KEYS[2]) end  -- SET NX took it: not ours to keep
      return 0
    end
  end
  if holder then
    redis.call('SET', KEYS[3], ARGV[5] .. ARGV[2] .. ARGV[1], 'PX', 60000)
    return 0
  end
  if nxt then redis.call('DEL', KEYS[3]) end
end
redis.call('SET', KEYS[2], mine, 'PX', ARGV[4])
if not ARGV[6] then return value end"""
    + _slide("value", "now", "ARGV[6]", "ARGV[7]")
    + """
return value
"""
)

# KEYS: record, [lock]. ARGV: new value, PX, expected version or '', [unlock token]. Returns the
# new version, or nil when absent or another version. With an expected version the caller has
# already written expected + 1 into the value; without one the script writes the version digits.
# The lock key is passed only with an unlock token (one key less to send on the common path).
UPDATE = script(
    f"""
local head = redis.call('GETRANGE', KEYS[1], 0, {_packed.TIMES_OFFSET - 1})
if head == '' then return false end
if string.sub(head, 1, {_packed.VERSION_OFFSET}) ~= '{_packed.TAG.decode()}' then
  return redis.error_reply('coatcheck: stored value is not a coatcheck record')
end
local version = tonumber(string.sub(head, {_packed.VERSION_OFFSET + 1}))
if ARGV[3] ~= '' and tonumber(ARGV[3]) ~= version then return false end
version = version + 1
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
if ARGV[3] == '' then
  redis.call('SETRANGE', KEYS[1], {_packed.VERSION_OFFSET},
             string.format('%0{_packed.VERSION_WIDTH}d', version))
end
if ARGV[4] then{_release("KEYS[2]", "ARGV[4]")}
end
return version
"""
)

# KEYS: record, [lock]. ARGV: packed times, PX, [unlock token]. Returns 1, or 0 without a record.
TOUCH = script(
    f"""
if redis.call('PEXPIRE', KEYS[1], ARGV[2]) == 0 then return 0 end
redis.call('SETRANGE', KEYS[1], {_packed.TIMES_OFFSET}, ARGV[1])
if ARGV[3] then{_release("KEYS[2]", "ARGV[3]")}
end
return 1
"""
)

# KEYS: record, lock, next. ARGV: expected version or ''. Deletes all three, with an expected
# version only when the record is stored at it (a rotation retiring the record it copied). Returns 1
# when the record was removed. Any version means any value, even of another type: a destroy
# must work on whatever the key holds.
RETIRE = script(
    f"""
if ARGV[1] ~= '' then
  if redis.call('TYPE', KEYS[1]).ok ~= 'string' then return 0 end
  local head = redis.call('GETRANGE', KEYS[1], 0, {_packed.TIMES_OFFSET - 1})
  if string.sub(head, 1, {_packed.VERSION_OFFSET}) ~= '{_packed.TAG.decode()}' then return 0 end
  if tonumber(string.sub(head, {_packed.VERSION_OFFSET + 1})) ~= tonumber(ARGV[1]) then
    return 0
  end
end
local removed = redis.call('DEL', KEYS[1])
redis.call('DEL', KEYS[2], KEYS[3])
return removed
"""
)

# KEYS: lock, next. ARGV: token. Releases the lock this token holds, or gives up its claim on
# the next turn.
UNLOCK = script(
    _release("KEYS[1]", "ARGV[1]")
    + """
local nxt = redis.call('GET', KEYS[2])
if nxt and string.sub(nxt, 17) == ARGV[1] then redis.call('DEL', KEYS[2]) end
return 0
"""
)


# Script arguments go as bytes, which redis-py sends untouched: its encoder tests every other
# argument several ways and repr()s numbers, a few microseconds per call (the 1.3x target).
# Times a script only compares go as packed doubles, exact and cheap to read with struct.
DOUBLE = struct.Struct(">d")
# stale_before, the new accessed_at and expires_at (the 16 bytes a touch writes), alive_after
_SLIDE_ARG = struct.Struct(">dddd")


def ttl_ms(expires_at: float, now: float) -> int:
    """``expires_at - now`` as a Redis PX, never under one second (the contract's floor)."""
    return max(1000, math.ceil((expires_at - now) * 1000))


def slide_arg(slide: Slide) -> bytes:
    """The ``slide`` argument of the load scripts (see _SLIDE_ARG)."""
    return _SLIDE_ARG.pack(
        slide.stale_before, slide.accessed_at, slide.expires_at, slide.alive_after
    )


def px(expires_at: float, now: float) -> bytes:
    """:func:`ttl_ms` as a script argument."""
    return b"%d" % ttl_ms(expires_at, now)
