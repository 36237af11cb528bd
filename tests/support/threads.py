"""Real threads released together, for the tests that race requests or store operations."""

from __future__ import annotations

import threading
from typing import Any

__all__ = ["run_threads"]


def run_threads(target: Any, args_list: list[tuple[Any, ...]]) -> list[Any]:
    """Run ``target(*args)`` for each args in a thread of its own, all released together.

    Returns the results in order; the first exception any thread raised is re-raised.
    """
    start = threading.Barrier(len(args_list))
    results: list[Any] = [None] * len(args_list)
    errors: list[BaseException] = []

    def body(index: int, args: tuple[Any, ...]) -> None:
        try:
            start.wait(timeout=60)
            results[index] = target(*args)
        except BaseException as exc:
            errors.append(exc)

    threads = [
        threading.Thread(target=body, args=(i, a), daemon=True) for i, a in enumerate(args_list)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    if any(thread.is_alive() for thread in threads):
        raise AssertionError("a worker thread hung")
    if errors:
        raise errors[0]
    return results
