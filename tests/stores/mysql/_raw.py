"""Plain PyMySQL connections, for looking behind the store or getting in its way."""

from __future__ import annotations

from typing import Any

import pymysql

__all__ = ["connect_raw", "lock_the_table", "query"]


def connect_raw(server: tuple[str, int], **kwargs: Any) -> pymysql.Connection[Any]:
    return pymysql.connect(
        host=server[0], port=server[1], user="root", database="test", autocommit=True, **kwargs
    )


def query(conn: pymysql.Connection[Any], statement: str, *args: Any) -> list[tuple[Any, ...]]:
    with conn.cursor() as cur:
        cur.execute(statement, args or None)
        return list(cur.fetchall())


def lock_the_table(raw_conn: pymysql.Connection[Any], table: str) -> None:
    with raw_conn.cursor() as cur:
        cur.execute("BEGIN")
        cur.execute(f"SELECT * FROM `{table}` FOR UPDATE")  # noqa: S608 - the test's own table
