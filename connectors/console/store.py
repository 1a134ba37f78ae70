"""The workbench's own store: users and the case events, in SQLite (``.zhijian/console.db`` by default).

Schema changes are numbered migrations applied in order at start (``schema_version`` remembers the
last): a store written by an older console is brought up to date, never rebuilt. The cases themselves
are not stored: they are rebuilt from the alert topic (deterministic case ids) and the case events
replayed onto them, the events being also written to ``zhijian.case-events`` for other systems.

>>> s = Store(":memory:")
>>> s.version
2
>>> s.add_user("li", "analyst", "a long enough secret")
>>> s.check_password("li", "a long enough secret"), s.check_password("li", "wrong"), s.check_password("x", "y")
('analyst', None, None)
"""
from __future__ import annotations

import hashlib
import hmac
import os
import sqlite3
from pathlib import Path
from typing import Any

ROLES = ("analyst", "operator", "supervisor")
MIN_PASSWORD = 12

MIGRATIONS = [
    """CREATE TABLE users (name TEXT PRIMARY KEY, role TEXT NOT NULL, salt BLOB NOT NULL, hash BLOB NOT NULL);
       CREATE TABLE case_events (seq INTEGER PRIMARY KEY AUTOINCREMENT, case_id TEXT NOT NULL, kind TEXT NOT NULL,
                                 at TEXT NOT NULL, user TEXT, status TEXT, verdict TEXT, comment TEXT);""",
    """CREATE INDEX case_events_case ON case_events (case_id);
       CREATE TABLE meta (key TEXT PRIMARY KEY, value BLOB NOT NULL);""",
]


class StoreError(ValueError):
    pass


def _hash(password: str, salt: bytes) -> bytes:
    return hashlib.scrypt(password.encode(), salt=salt, n=2**14, r=8, p=1, dklen=32)


class Store:
    def __init__(self, path: str | Path) -> None:
        if str(path) != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(str(path), check_same_thread=False)
        self.db.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
        row = self.db.execute("SELECT version FROM schema_version").fetchone()
        self.version = row[0] if row else 0
        for n, sql in enumerate(MIGRATIONS[self.version:], start=self.version + 1):
            with self.db:
                self.db.executescript(sql)
                self.db.execute("DELETE FROM schema_version")
                self.db.execute("INSERT INTO schema_version VALUES (?)", (n,))
            self.version = n

    def secret(self) -> bytes:
        """The key that signs session cookies (made once, kept in the store)."""
        row = self.db.execute("SELECT value FROM meta WHERE key = 'secret'").fetchone()
        if row:
            return bytes(row[0])
        value = os.urandom(32)
        with self.db:
            self.db.execute("INSERT INTO meta VALUES ('secret', ?)", (value,))
        return value

    def add_user(self, name: str, role: str, password: str) -> None:
        if role not in ROLES:
            raise StoreError(f"role {role!r} is not one of {', '.join(ROLES)}")
        if len(password) < MIN_PASSWORD:
            raise StoreError(f"a password needs at least {MIN_PASSWORD} characters")
        salt = os.urandom(16)
        with self.db:
            self.db.execute("INSERT OR REPLACE INTO users VALUES (?, ?, ?, ?)", (name, role, salt, _hash(password, salt)))

    def check_password(self, name: str, password: str) -> str | None:
        """The user's role when the password is theirs, else None."""
        row = self.db.execute("SELECT role, salt, hash FROM users WHERE name = ?", (name,)).fetchone()
        if row is None:
            _hash(password, b"0" * 16)  # the same work for an unknown name: no timing hint
            return None
        return row[0] if hmac.compare_digest(_hash(password, bytes(row[1])), bytes(row[2])) else None

    def role_of(self, name: str) -> str | None:
        row = self.db.execute("SELECT role FROM users WHERE name = ?", (name,)).fetchone()
        return row[0] if row else None

    def add_event(self, event: dict[str, Any]) -> None:
        with self.db:
            self.db.execute("INSERT INTO case_events (case_id, kind, at, user, status, verdict, comment) "
                            "VALUES (:case_id, :kind, :at, :user, :status, :verdict, :comment)",
                            {k: event.get(k) for k in ("case_id", "kind", "at", "user", "status", "verdict", "comment")})

    def events(self) -> list[dict[str, Any]]:
        cur = self.db.execute("SELECT case_id, kind, at, user, status, verdict, comment FROM case_events ORDER BY seq")
        return [dict(zip(("case_id", "kind", "at", "user", "status", "verdict", "comment"), r)) for r in cur]
