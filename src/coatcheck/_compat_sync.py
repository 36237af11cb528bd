"""The blocking twins of :mod:`coatcheck._compat_async`, used by the generated ``_sync`` code."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import ParamSpec, TypeVar

__all__ = ["run_blocking", "sleep"]

P = ParamSpec("P")
T = TypeVar("T")


def run_blocking(fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
    """Call ``fn`` directly: sync code may block."""
    return fn(*args, **kwargs)


def sleep(seconds: float) -> None:
    """Block for ``seconds``."""
    time.sleep(seconds)
