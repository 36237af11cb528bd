"""Per-route concurrency modes for Starlette and FastAPI: the :func:`session_mode` mark, and the
``mode_for`` hook that finds the route a request will reach.

The session is opened before the application runs, so the mode of a route must be known from
the request's method and path alone. The middleware looks for the router below it (following
each middleware's ``app``) on its first request; when some endpoint carries a mark, it matches
every request against the routes as the router will (``route.matches``, first full match wins,
mounts followed), and the mark of the endpoint found is the request's mode. An application
without marks pays nothing.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from starlette.routing import BaseRoute, Match, Mount

from .._sansio.headers import ModeFor, RequestMode, request_mode

__all__ = ["MARK", "find_routes", "route_mode_for", "session_mode"]

F = TypeVar("F", bound=Callable[..., Any])

#: The endpoint attribute that holds a route's mode.
MARK = "__coatcheck_session_mode__"

# How far down the middleware chain the router is looked for; a real stack is a handful deep.
_MAX_DEPTH = 32
# Paths seen recently and the mode each one got: matching is pure Python, and a few paths take
# most of the traffic. Bounded, since paths are chosen by clients.
_CACHE_SIZE = 1024


def session_mode(mode: RequestMode) -> Callable[[F], F]:
    """Mark an endpoint with the concurrency mode its requests run in.

    ``mode`` is ``"lock"``, ``"merge"``, ``"none"`` or ``"read-only"`` (no lock, nothing saved
    or touched; writing to the session raises). The endpoint is returned unchanged, so the mark
    goes on either side of ``@app.get(...)``::

        @app.post("/checkout")
        @session_mode("lock")
        async def checkout(session: SessionDep) -> dict[str, str]: ...

    The middleware's own ``mode_for``, when given, is asked first; the mark counts when it
    answers None.
    """
    request_mode(mode)  # an unknown mode fails here, at import, rather than on a request

    def mark(endpoint: F) -> F:
        setattr(endpoint, MARK, mode)
        return endpoint

    return mark


def find_routes(app: Any) -> Sequence[BaseRoute] | None:
    """The routes of the first router found below the middleware, or None."""
    for _ in range(_MAX_DEPTH):
        routes = getattr(app, "routes", None)
        if isinstance(routes, list):
            return routes
        app = getattr(app, "app", None)
        if app is None:
            return None
    return None


def _children(route: BaseRoute) -> Sequence[BaseRoute]:
    if isinstance(route, Mount):
        return route.routes
    # FastAPI (0.16x) includes a router as one route holding the included one.
    included = getattr(route, "original_router", None)
    routes = getattr(included, "routes", None)
    return routes if isinstance(routes, list) else []


def _marked(routes: Sequence[BaseRoute]) -> bool:
    for route in routes:
        if getattr(getattr(route, "endpoint", None), MARK, None) is not None:
            return True
        if _marked(_children(route)):
            return True
    return False


def _match(routes: Sequence[BaseRoute], scope: dict[str, Any]) -> RequestMode | None:
    for route in routes:
        match, child = route.matches(scope)
        if match is not Match.FULL:
            # A PARTIAL match (wrong method) is answered 405 by the router: no mode to choose.
            continue
        return _mode_of(route, {**scope, **child})
    return None


def _mode_of(route: BaseRoute, scope: dict[str, Any]) -> RequestMode | None:
    """The mark on the endpoint that ``route``, a full match for ``scope``, leads to."""
    for _ in range(_MAX_DEPTH):
        if isinstance(route, Mount):
            return _match(route.routes, scope)
        endpoint = getattr(route, "endpoint", None)
        if endpoint is not None:
            mode: RequestMode | None = getattr(endpoint, MARK, None)
            return mode
        # FastAPI's included router picks its route with _match (no public way to ask); a
        # FastAPI that changes it leaves marks inside included routers unread, which
        # tests/contrib/fastapi shows.
        select = getattr(route, "_match", None)
        if select is None:
            return None
        match, child, inner, _ = select(scope)
        if match is not Match.FULL or inner is None:
            return None
        route, scope = inner, {**scope, **child}
    return None


def route_mode_for(routes: Sequence[BaseRoute], first: ModeFor | None) -> ModeFor | None:
    """A ``mode_for`` that asks ``first`` and then the route marks; ``first`` itself when no
    route is marked."""
    if not _marked(routes):
        return first

    @functools.lru_cache(maxsize=_CACHE_SIZE)
    def marked(method: str, path: str) -> RequestMode | None:
        scope = {"type": "http", "method": method, "path": path, "root_path": "", "headers": []}
        return _match(routes, scope)

    if first is None:
        return marked

    def mode_for(method: str, path: str) -> RequestMode | None:
        chosen = first(method, path)
        return marked(method, path) if chosen is None else chosen

    return mode_for
