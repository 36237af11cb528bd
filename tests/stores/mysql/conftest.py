"""Fixtures of the MySQLStore tests: the store URL of the test's own table, a plain
connection to look behind the store, a store on that table."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pymysql
import pytest

from coatcheck.stores._sync.mysql import MySQLStore

from .._proxy import TCPProxy
from ._raw import connect_raw


@pytest.fixture
def url(server: tuple[str, int], table: str) -> str:
    return f"mysql://root@{server[0]}:{server[1]}/test?table={table}"


@pytest.fixture
def proxied_url(proxy: TCPProxy, table: str) -> str:
    """``url`` through ``proxy``, which the test can stop and start."""
    return f"mysql://root@127.0.0.1:{proxy.port}/test?table={table}"


@pytest.fixture
def raw(server: tuple[str, int], table: str) -> Iterator[pymysql.Connection[Any]]:
    """A plain connection for looking behind the store; drops the test's table at the end."""
    conn = connect_raw(server)
    yield conn
    with conn.cursor() as cur:
        cur.execute(f"DROP TABLE IF EXISTS `{table}`")
    conn.close()


@pytest.fixture
def store(url: str, raw: pymysql.Connection[Any]) -> Iterator[MySQLStore]:
    s = MySQLStore.from_url(url)
    s.create_tables()
    yield s
    s.close()
