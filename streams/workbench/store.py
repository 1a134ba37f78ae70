"""The workbench's own store: users and the case events, in SQLite (``.zhijian/console.db`` by default) or in
PostgreSQL when given a URL (``--db postgresql://user@host:5432/db``).

Schema changes are numbered migrations applied in order at start (``schema_version`` remembers the
last): a store written by an older console is brought up to date, never rebuilt. The same migrations
serve both databases (SQLite's ``INTEGER PRIMARY KEY AUTOINCREMENT`` and ``BLOB`` become PostgreSQL's
``BIGSERIAL PRIMARY KEY`` and ``BYTEA``). The cases themselves are not stored: they are rebuilt from the
alert topic (deterministic case ids) and the case events replayed onto them, the events being also
written to ``zhijian.case-events`` for other systems.

>>> s = Store(":memory:")
>>> s.version
3
>>> s.add_user("li", "analyst", "a long enough secret")
>>> s.check_password("li", "a long enough secret"), s.check_password("li", "wrong"), s.check_password("x", "y")
('analyst', None, None)
"""
from __future__ import annotations

import hashlib
import hmac
import os
import sqlite3
from contextlib import nullcontext
from pathlib import Path
from typing import Any

ROLES = ("analyst", "operator", "supervisor")
MIN_PASSWORD = 12

MIGRATIONS = [
    """CREATE TABLE users (name TEXT PRIMARY KEY, role TEXT NOT NULL, salt BLOB NOT NULL, hash BLOB NOT NULL);
       CREATE TABLE case_events (seq INTEGER PRIMARY KEY AUTOINCREMENT, case_id TEXT NOT NULL, kind TEXT NOT NULL,
                                 at TEXT NOT NULL, "user" TEXT, status TEXT, verdict TEXT, comment TEXT);""",
    """CREATE INDEX case_events_case ON case_events (case_id);
       CREATE TABLE meta (key TEXT PRIMARY KEY, value BLOB NOT NULL);""",
    # assignment 指派 and its due date; the short case numbers (2026-000123), given once and kept
    """ALTER TABLE case_events ADD COLUMN assignee TEXT;
       ALTER TABLE case_events ADD COLUMN due TEXT;
       CREATE TABLE case_numbers (case_id TEXT PRIMARY KEY, year INTEGER NOT NULL, seq INTEGER NOT NULL,
                                  UNIQUE (year, seq));""",
]


class StoreError(ValueError):
    pass


def _hash(password: str, salt: bytes) -> bytes:
    return hashlib.scrypt(password.encode(), salt=salt, n=2**14, r=8, p=1, dklen=32)


def is_url(db: str | Path) -> bool:
    return str(db).startswith(("postgresql://", "postgres://"))


def _postgres(sql: str) -> str:
    """A statement of SQLite's dialect, as PostgreSQL reads it (the few differences the migrations use)."""
    return (sql.replace("INTEGER PRIMARY KEY AUTOINCREMENT", "BIGSERIAL PRIMARY KEY").replace("BLOB", "BYTEA")
            .replace("?", "%s"))


class Store:
    def __init__(self, db: str | Path) -> None:
        self.postgres = is_url(db)
        if self.postgres:
            try:
                import psycopg
            except ImportError:  # pragma: no cover — a dependency of the project
                raise StoreError("PostgreSQL needs psycopg: pip install 'psycopg[binary]'") from None
            try:
                self.db: Any = psycopg.connect(str(db), autocommit=True)
            except psycopg.Error as e:
                raise StoreError(f"cannot connect to {_redacted(str(db))}: {str(e).strip().splitlines()[0]}") from None
        else:
            if str(db) != ":memory:":
                Path(db).parent.mkdir(parents=True, exist_ok=True)
            self.db = sqlite3.connect(str(db), check_same_thread=False)
        self._run("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
        row = self._run("SELECT version FROM schema_version").fetchone()
        self.version = row[0] if row else 0
        for n, sql in enumerate(MIGRATIONS[self.version:], start=self.version + 1):
            with self._transaction():
                if self.postgres:
                    self.db.execute(_postgres(sql))
                else:
                    self.db.executescript(sql)
                self._run("DELETE FROM schema_version")
                self._run("INSERT INTO schema_version VALUES (?)", (n,))
            self.version = n

    def _run(self, sql: str, params: tuple[Any, ...] = ()) -> Any:
        return self.db.execute(_postgres(sql) if self.postgres else sql, params)

    def _transaction(self) -> Any:
        return self.db.transaction() if self.postgres else (self.db if not self.db.in_transaction else nullcontext())

    def users(self) -> int:
        return self._run("SELECT count(*) FROM users").fetchone()[0]

    def secret(self) -> bytes:
        """The key that signs session cookies (made once, kept in the store)."""
        row = self._run("SELECT value FROM meta WHERE key = 'secret'").fetchone()
        if row:
            return bytes(row[0])
        value = os.urandom(32)
        with self._transaction():
            self._run("INSERT INTO meta VALUES ('secret', ?)", (value,))
        return value

    def add_user(self, name: str, role: str, password: str) -> None:
        if role not in ROLES:
            raise StoreError(f"role {role!r} is not one of {', '.join(ROLES)}")
        if len(password) < MIN_PASSWORD:
            raise StoreError(f"a password needs at least {MIN_PASSWORD} characters")
        salt = os.urandom(16)
        with self._transaction():
            self._run("INSERT INTO users VALUES (?, ?, ?, ?) ON CONFLICT (name) DO UPDATE SET role = excluded.role, "
                      "salt = excluded.salt, hash = excluded.hash", (name, role, salt, _hash(password, salt)))

    def check_password(self, name: str, password: str) -> str | None:
        """The user's role when the password is theirs, else None."""
        row = self._run("SELECT role, salt, hash FROM users WHERE name = ?", (name,)).fetchone()
        if row is None:
            _hash(password, b"0" * 16)  # the same work for an unknown name: no timing hint
            return None
        return row[0] if hmac.compare_digest(_hash(password, bytes(row[1])), bytes(row[2])) else None

    def role_of(self, name: str) -> str | None:
        row = self._run("SELECT role FROM users WHERE name = ?", (name,)).fetchone()
        return row[0] if row else None

    def user_names(self) -> list[tuple[str, str]]:
        """Every user as (name, role), by name: whom a case can be assigned to."""
        return [(r[0], r[1]) for r in self._run("SELECT name, role FROM users ORDER BY name")]

    def add_event(self, event: dict[str, Any]) -> None:
        with self._transaction():
            self._run(f"INSERT INTO case_events ({_COLUMNS}) VALUES ({', '.join('?' * len(EVENT_FIELDS))})",
                      tuple(event.get(k) for k in EVENT_FIELDS))

    def events(self) -> list[dict[str, Any]]:
        cur = self._run(f"SELECT {_COLUMNS} FROM case_events ORDER BY seq")
        return [dict(zip(EVENT_FIELDS, r)) for r in cur]

    def case_numbers(self) -> dict[str, tuple[int, int]]:
        """case id → (year, sequence) of every number given so far."""
        return {r[0]: (r[1], r[2]) for r in self._run("SELECT case_id, year, seq FROM case_numbers")}

    def add_case_numbers(self, rows: list[tuple[str, int, int]]) -> None:
        """Keep newly given numbers (case id, year, sequence), in one transaction; a case that has a number keeps
        the one it was given first."""
        if not rows:
            return
        with self._transaction():
            sql = "INSERT INTO case_numbers (case_id, year, seq) VALUES (?, ?, ?) ON CONFLICT (case_id) DO NOTHING"
            if self.postgres:
                with self.db.cursor() as cur:
                    cur.executemany(_postgres(sql), rows)
            else:
                self.db.executemany(sql, rows)


EVENT_FIELDS = ("case_id", "kind", "at", "user", "status", "verdict", "comment", "assignee", "due")
_COLUMNS = ", ".join(f'"{f}"' if f == "user" else f for f in EVENT_FIELDS)


def _redacted(url: str) -> str:
    """A database URL without its password, for an error line."""
    scheme, _, rest = url.partition("://")
    if "@" in rest:
        auth, _, host = rest.rpartition("@")
        rest = auth.split(":", 1)[0] + ":***@" + host if ":" in auth else rest
    return f"{scheme}://{rest}"
