"""The demo web app behind ``coatcheck demo``: every session feature on four small pages.

``/``        a visit counter, who is logged in, flashed messages
``/login``   a name form protected by a form token; logging in regenerates the session id
``/note``    a note kept in the session, saved through a single-use form token
``/logout``  destroys the session

Plain WSGI on the standard library's ``wsgiref`` server, behind
:class:`coatcheck.wsgi.SessionMiddleware`, on the store ``coatcheck`` itself uses by default
(``$COATCHECK_STORE``, else the embedded SQLite file ``coatcheck-sessions.db``), so ``coatcheck
stats`` shows the demo's sessions. Every value that came from a user is HTML-escaped. It is a
demo: ``wsgiref`` is not a production server.
"""

from __future__ import annotations

import os
import secrets
import socketserver
import sys
from collections.abc import Callable, Iterable
from html import escape
from typing import IO, TYPE_CHECKING, Any
from urllib.parse import parse_qs
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from ._cli_support import DEFAULT_STORE, default_store
from ._sansio.cookies import CookieConfig
from ._sansio.session import Session
from ._sync.manager import SessionManager
from .stores import store_from_url
from .stores.base import Store
from .wsgi import SessionMiddleware

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

__all__ = [
    "DEFAULT_DEMO_STORE",
    "DemoServer",
    "create_app",
    "create_manager",
    "demo_pages",
    "make_demo_server",
    "run",
    "serve",
]

DEFAULT_DEMO_STORE = DEFAULT_STORE
"""Where the demo keeps its sessions unless ``$COATCHECK_STORE`` names another store: the same
default as the ``coatcheck`` command's."""

_MAX_FORM_BYTES = 16 * 1024
_MAX_NAME = 40
_MAX_NOTE = 500

_STYLE = """
body { font: 16px/1.5 system-ui, sans-serif; max-width: 36rem; margin: 2rem auto; padding: 0 1rem;
       color: #222; }
nav a { margin-right: 1rem; }
.flash { background: #e8f4e8; border-left: 4px solid #3a3; padding: .5rem 1rem; }
.error { background: #fbeaea; border-left: 4px solid #c33; padding: .5rem 1rem; }
.muted { color: #666; font-size: .9rem; }
form { margin: 1rem 0; }
input[type=text], textarea { width: 100%; padding: .4rem; box-sizing: border-box; font: inherit; }
button { padding: .4rem 1rem; font: inherit; }
pre { background: #f4f4f4; padding: .5rem 1rem; white-space: pre-wrap; }
"""

# The pages need nothing from elsewhere, so the policy can shut everything else out.
_SECURITY_HEADERS = [
    (
        "Content-Security-Policy",
        "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'",
    ),
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "no-referrer"),
]


def create_manager(
    store_url: str | Store = DEFAULT_DEMO_STORE,
    secret: str | None = None,
    *,
    clock: Callable[[], float] | None = None,
) -> SessionManager:
    """The demo's session manager on a store URL or a store; creates its tables if it has any.

    Without ``secret`` (or ``$COATCHECK_SECRET``) a random key is made at start, so restarting
    the demo signs everyone out: their cookies no longer verify.
    """
    key = secret or os.environ.get("COATCHECK_SECRET") or secrets.token_urlsafe(32)
    store = store_from_url(store_url) if isinstance(store_url, str) else store_url
    create_tables = getattr(store, "create_tables", None)
    if create_tables is not None:
        create_tables()
    return SessionManager(
        store,
        clock=clock,
        secret_keys=[key],
        sign_cookie=True,
        # Abandoned demo sessions would pile up in the file; one request in a hundred purges.
        cleanup_probability=0.01,
        # The demo is served over plain http on localhost, and browsers do not send a Secure
        # cookie over http (localhost exemptions vary), so Secure must be off here. A real
        # deployment behind https keeps the default, secure=True.
        cookie=CookieConfig(name="coatcheck_demo", secure=False, httponly=True, samesite="lax"),
    )


# -- HTML ------------------------------------------------------------------------------------


def _page(title: str, body: str, session: Session | None = None) -> bytes:
    flashes = ""
    if session is not None:
        flashes = "".join(
            f'<p class="flash">{escape(str(message))}</p>' for _, message in session.pop_flashed()
        )
    who = ""
    if session is not None and session.user is not None:
        who = f' <span class="muted">— signed in as {escape(str(session.user))}</span>'
    html = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{escape(title)} · coatcheck demo</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>{_STYLE}</style></head>
<body>
<nav><a href="/">Home</a><a href="/note">Note</a><a href="/login">Log in</a>
<a href="/logout">Log out</a></nav>
<h1>{escape(title)}{who}</h1>
{flashes}
{body}
<p class="muted">coatcheck demo: the session lives server-side; your browser holds only a signed
ticket in the <code>coatcheck_demo</code> cookie.</p>
</body></html>
"""
    return html.encode("utf-8")


def _token_field(session: Session) -> str:
    return f'<input type="hidden" name="token" value="{escape(session.create_form_token())}">'


def _logout_form(session: Session) -> str:
    token = _token_field(session)
    return f'<form method="post" action="/logout">{token}<button>Log out</button></form>'


# -- the app ---------------------------------------------------------------------------------


class _Response:
    __slots__ = ("body", "headers", "status")

    def __init__(
        self, status: str, body: bytes, headers: list[tuple[str, str]] | None = None
    ) -> None:
        self.status = status
        self.body = body
        self.headers = headers or []


def _redirect(location: str) -> _Response:
    # 303: after a POST the browser follows with a GET, so a reload does not resubmit.
    return _Response("303 See Other", b"", [("Location", location)])


def _form(environ: WSGIEnvironment) -> dict[str, str] | None:
    """The urlencoded POST body as single values; None when it is too large or not a form."""
    ctype = environ.get("CONTENT_TYPE", "").split(";")[0].strip().lower()
    if ctype != "application/x-www-form-urlencoded":
        return None
    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        return None
    if length < 0 or length > _MAX_FORM_BYTES:
        return None
    raw = environ["wsgi.input"].read(length).decode("utf-8", "replace")
    return {k: v[0] for k, v in parse_qs(raw, keep_blank_values=True).items()}


def _expired_form(session: Session) -> _Response:
    body = (
        '<p class="error">This form has expired or was already submitted. '
        "Forms can be sent once; please start again.</p>"
        '<p><a href="/">Back to the start page</a></p>'
    )
    return _Response("400 Bad Request", _page("Form expired", body, session))


def _home(environ: WSGIEnvironment, session: Session) -> _Response:
    session["visits"] = visits = int(session.get("visits", 0)) + 1
    parts = []
    if "bye=1" in environ.get("QUERY_STRING", "").split("&"):
        # A flash cannot survive destroy(), so logout hands its message over in the URL.
        parts.append('<p class="flash">You have been logged out; your old session is gone.</p>')
    times = "time" if visits == 1 else "times"
    parts.append(f"<p>You have visited this page <strong>{visits}</strong> {times}.</p>")
    if session.user is None:
        parts.append('<p>You are not logged in. <a href="/login">Log in</a></p>')
    else:
        parts.append(f"<p>Logged in as <strong>{escape(str(session.user))}</strong>.</p>")
        parts.append(_logout_form(session))
    note = session.get("note")
    if note:
        parts.append(f"<p>Your note:</p><pre>{escape(str(note))}</pre>")
    parts.append('<p><a href="/note">Write a note</a></p>')
    return _Response("200 OK", _page("Home", "\n".join(parts), session))


def _login(environ: WSGIEnvironment, session: Session) -> _Response:
    error = ""
    if environ["REQUEST_METHOD"] == "POST":
        form = _form(environ)
        if form is None or not session.consume_form_token(form.get("token")):
            return _expired_form(session)
        name = " ".join(form.get("name", "").split())
        if name and len(name) <= _MAX_NAME:
            session.user = name
            # A new id at every privilege change: an id planted before login (session
            # fixation) is worthless after it.
            session.regenerate()
            session.flash(f"Welcome, {name}!")
            return _redirect("/")
        error = f'<p class="error">Please give a name of 1 to {_MAX_NAME} characters.</p>'
    body = f"""{error}
<form method="post" action="/login">{_token_field(session)}
<p><label>Your name <input type="text" name="name" maxlength="{_MAX_NAME}" autofocus></label></p>
<p><button>Log in</button></p></form>
<p class="muted">No password: this demo shows sessions, not authentication.
Logging in gives your session a new id; the old cookie stops working.</p>"""
    status = "400 Bad Request" if error else "200 OK"
    return _Response(status, _page("Log in", body, session))


def _note(environ: WSGIEnvironment, session: Session) -> _Response:
    if environ["REQUEST_METHOD"] == "POST":
        form = _form(environ)
        if form is None or not session.consume_form_token(form.get("token")):
            return _expired_form(session)
        session["note"] = form.get("note", "")[:_MAX_NOTE]
        session.flash("Note saved.")
        return _redirect("/")
    current = escape(str(session.get("note", "")))
    body = f"""<form method="post" action="/note">{_token_field(session)}
<p><label>A note, kept in your session<br>
<textarea name="note" rows="4" maxlength="{_MAX_NOTE}">{current}</textarea></label></p>
<p><button>Save</button></p></form>
<p class="muted">The form carries a single-use token: submitting it twice (back button, reload)
gets a "form expired" page.</p>"""
    return _Response("200 OK", _page("Note", body, session))


def _logout(environ: WSGIEnvironment, session: Session) -> _Response:
    if environ["REQUEST_METHOD"] == "POST":
        form = _form(environ)
        if form is None or not session.consume_form_token(form.get("token")):
            return _expired_form(session)
        session.destroy()
        return _redirect("/?bye=1")
    body = _logout_form(session) + '<p class="muted">Logging out deletes the whole session.</p>'
    return _Response("200 OK", _page("Log out", body, session))


_ROUTES: dict[str, Callable[[WSGIEnvironment, Session], _Response]] = {
    "/": _home,
    "/login": _login,
    "/note": _note,
    "/logout": _logout,
}


def demo_pages(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
    """The demo's pages as a WSGI app; it expects ``environ["coatcheck.session"]``."""
    session: Session = environ["coatcheck.session"]
    handler = _ROUTES.get(environ.get("PATH_INFO") or "/")
    method = environ["REQUEST_METHOD"]
    if handler is None:
        response = _Response("404 Not Found", _page("Not found", '<p><a href="/">Home</a></p>'))
    elif method not in ("GET", "HEAD", "POST") or (handler is _home and method == "POST"):
        response = _Response("405 Method Not Allowed", _page("Method not allowed", ""))
        response.headers.append(("Allow", "GET, HEAD" if handler is _home else "GET, HEAD, POST"))
    else:
        response = handler(environ, session)
    headers = [
        ("Content-Type", "text/html; charset=utf-8"),
        ("Content-Length", str(len(response.body))),
        *_SECURITY_HEADERS,
        *response.headers,
    ]
    start_response(response.status, headers)
    return [b"" if method == "HEAD" else response.body]


def create_app(manager: SessionManager) -> WSGIApplication:
    """The complete demo WSGI app: :func:`demo_pages` behind the session middleware."""
    app: WSGIApplication = SessionMiddleware(demo_pages, manager)
    return app


# -- the server ------------------------------------------------------------------------------


class DemoServer(socketserver.ThreadingMixIn, WSGIServer):
    """``wsgiref``'s server, one thread per request, so a slow browser blocks nobody else."""

    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


def make_demo_server(
    app: WSGIApplication, host: str = "127.0.0.1", port: int = 8000, *, quiet: bool = False
) -> DemoServer:
    """A bound, listening server for ``app``; call ``serve_forever()`` on it.

    ``port=0`` picks a free port (read it back from ``server.server_port``).
    """
    handler = _QuietHandler if quiet else WSGIRequestHandler
    return make_server(host, port, app, server_class=DemoServer, handler_class=handler)


def run(server: DemoServer, manager: SessionManager, out: IO[str] | None = None) -> None:
    """Print the URL of ``server``, serve until Ctrl-C, then close the server and ``manager``."""
    out = out or sys.stdout
    try:
        with server:
            host = str(server.server_address[0])
            shown = f"[{host}]" if ":" in host else host
            out.write(f"coatcheck demo on http://{shown}:{server.server_port}/ ")
            out.write(f"(sessions in {manager.store.name}); Ctrl-C stops it\n")
            out.flush()
            try:
                server.serve_forever()
            except KeyboardInterrupt:
                out.write("stopped\n")
                out.flush()
    finally:
        manager.close()


def serve(
    host: str = "127.0.0.1",
    port: int = 8000,
    store_url: str | None = None,
    secret: str | None = None,
    out: IO[str] | None = None,
) -> None:
    """Run the demo until Ctrl-C, printing its URL first.

    ``store_url`` defaults to ``$COATCHECK_STORE``, else :data:`DEFAULT_DEMO_STORE`.
    """
    manager = create_manager(store_url or default_store(), secret)
    try:
        server = make_demo_server(create_app(manager), host, port)
    except BaseException:
        manager.close()
        raise
    run(server, manager, out)
