"""Fixtures of the PostgreSQLStore tests: where the server is, a plain connection to look
behind the store, a store on the test's own table."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from psycopg import sql

from coatcheck.stores._sync.postgresql import PostgreSQLStore

from .._proxy import TCPProxy


@pytest.fixture
def conninfo(server: tuple[str, int]) -> str:
    return f"postgresql://postgres@{server[0]}:{server[1]}/test"


@pytest.fixture
def proxied_url(proxy: TCPProxy, table: str) -> str:
    """A store URL for the test's table through ``proxy``, which the test can stop and start."""
    return f"postgresql://postgres@127.0.0.1:{proxy.port}/test?table={table}"


@pytest.fixture
def raw(conninfo: str, table: str) -> Iterator[psycopg.Connection[Any]]:
    """A plain connection for looking behind the store; drops the test's table at the end."""
    with psycopg.connect(conninfo, autocommit=True) as conn:
        yield conn
        conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier(table)))


@pytest.fixture
def store(conninfo: str, table: str, raw: psycopg.Connection[Any]) -> Iterator[PostgreSQLStore]:
    s = PostgreSQLStore.from_url(f"{conninfo}?table={table}")
    s.create_tables()
    yield s
    s.close()
