#!/usr/bin/env python3
"""Instructions per request, counted by callgrind: a figure that load on the machine cannot move.

Run: ``.venv/bin/python benchmarks/instructions.py [--src DIR] [--requests N]``

Wall-clock figures (``overhead.py``) swing by a fifth from one run to the next on a shared
virtual machine; the instructions a request executes do not (valgrind's callgrind counts them,
the same on every run for the same code and ``PYTHONHASHSEED``). For the WSGI and the ASGI
middleware on the memory store, a read-modify-write request (the session cookie, the app
increments a counter) is run ``N + 100`` and ``100`` times in two processes under callgrind;
the difference divided by ``N`` is one request's instructions, setup and interpreter start
left out. ``--src`` points at another checkout's ``src`` folder (the public API this uses,
``SessionManager``, the middlewares and ``MemoryStore``, is the same there), so two versions
compare in one run. Garbage collection is off while requests run, as in ``overhead.py``.
Needs valgrind (Debian's ``valgrind`` package).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

# The child: the app, the middleware and the loop of requests (public API only).
CHILD = r"""
import asyncio, gc, sys
from coatcheck import AsyncSessionManager, SessionManager
from coatcheck.asgi import SessionMiddleware as ASGIMiddleware
from coatcheck.stores import AsyncMemoryStore, MemoryStore
from coatcheck.wsgi import SessionMiddleware

flavour, count = sys.argv[1], int(sys.argv[2])


def app(environ, start_response):
    session = environ["coatcheck.session"]
    session["n"] = session.get("n", 0) + 1
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"ok"]


def wsgi():
    middleware = SessionMiddleware(app, SessionManager(MemoryStore()))
    sent = {}

    def start_response(status, headers, exc_info=None):
        sent["headers"] = headers
        return lambda data: None

    environ = {"REQUEST_METHOD": "POST", "PATH_INFO": "/", "REMOTE_ADDR": "192.0.2.1"}
    list(middleware(dict(environ), start_response))
    cookie = dict(sent["headers"])["Set-Cookie"].split(";")[0]
    environ["HTTP_COOKIE"] = cookie
    gc.disable()
    for _ in range(count):
        list(middleware(dict(environ), start_response))


async def asgi_app(scope, receive, send):
    session = scope["session"]
    session["n"] = session.get("n", 0) + 1
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})


async def asgi():
    middleware = ASGIMiddleware(asgi_app, AsyncSessionManager(AsyncMemoryStore()))
    sent = []

    async def send(message):
        sent.append(message)

    async def receive():
        return {"type": "http.request"}

    scope = {"type": "http", "method": "POST", "path": "/", "headers": [],
             "client": ("192.0.2.1", 1)}
    await middleware(dict(scope), receive, send)
    cookie = dict(sent[0]["headers"])[b"set-cookie"].split(b";")[0]
    scope["headers"] = [(b"cookie", cookie)]
    gc.disable()
    for _ in range(count):
        sent.clear()
        await middleware(dict(scope), receive, send)


wsgi() if flavour == "wsgi" else asyncio.run(asgi())
"""

BASE = 100


def instructions(child: Path, flavour: str, count: int, src: str | None) -> int:
    """Instructions callgrind counted for a child process running ``count`` requests."""
    env = dict(os.environ, PYTHONHASHSEED="0")
    if src:
        env["PYTHONPATH"] = src
    with tempfile.TemporaryDirectory() as scratch:
        command = [
            "valgrind",
            "--tool=callgrind",
            f"--callgrind-out-file={scratch}/out",
            sys.executable,
            str(child),
            flavour,
            str(count),
        ]
        done = subprocess.run(command, env=env, capture_output=True, text=True, check=True)
    found = re.search(r"Collected : (\d+)", done.stderr)
    if found is None:
        raise RuntimeError(f"callgrind printed no total:\n{done.stderr[-2000:]}")
    return int(found.group(1))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--src", help="another checkout's src folder, measured instead")
    parser.add_argument("--requests", type=int, default=1000)
    args = parser.parse_args()
    if shutil.which("valgrind") is None:
        print("instructions.py needs valgrind (apt-get install valgrind)", file=sys.stderr)
        return 2
    src = str(Path(args.src).resolve()) if args.src else None
    print(f"instructions per read-modify-write request, memory store ({src or 'this checkout'})")
    with tempfile.TemporaryDirectory() as scratch:
        child = Path(scratch) / "requests.py"
        child.write_text(CHILD)
        for flavour in ("wsgi", "asgi"):
            many = instructions(child, flavour, BASE + args.requests, src)
            few = instructions(child, flavour, BASE, src)
            print(f"  {flavour.upper()}: {(many - few) // args.requests:,}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
