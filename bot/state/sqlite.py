"""SQLite state store: one file, one writer thread, schema created on first start.

sqlite3 blocks, so every statement runs on a single dedicated thread; that also serializes
writes, which makes each claim, and each fenced write of a record, an atomic check-and-set.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import sqlite3
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from bot.domain.approvals import Approval
from bot.domain.records import CLAIMING_ACTIONS, Lock, OperationRecord
from bot.state.base import Fenced

T = TypeVar("T")

SCHEMA = """
CREATE TABLE IF NOT EXISTS operations (
    id TEXT PRIMARY KEY,
    app TEXT NOT NULL,
    env TEXT NOT NULL,
    state TEXT NOT NULL,
    owner TEXT,
    generation INTEGER NOT NULL DEFAULT 0,
    lease_until REAL NOT NULL DEFAULT 0,
    created_at REAL NOT NULL,
    body TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS operations_target ON operations (app, env, created_at);
CREATE INDEX IF NOT EXISTS operations_state ON operations (state);
CREATE TABLE IF NOT EXISTS claims (
    target TEXT PRIMARY KEY,
    op_id TEXT NOT NULL,
    generation INTEGER NOT NULL DEFAULT 0,
    expires_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS locks (
    target TEXT PRIMARY KEY,
    body TEXT NOT NULL,
    expires_at REAL
);
CREATE TABLE IF NOT EXISTS deliveries (
    id TEXT PRIMARY KEY,
    expires_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS audit (
    at REAL NOT NULL,
    body TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS approvals (
    id TEXT PRIMARY KEY,
    version INTEGER NOT NULL,
    body TEXT NOT NULL,
    state TEXT NOT NULL DEFAULT 'open'
);
"""
# Columns added since the first schema: (table, column, definition), added when missing.
MIGRATIONS = (
    ("operations", "generation", "INTEGER NOT NULL DEFAULT 0"),
    ("claims", "generation", "INTEGER NOT NULL DEFAULT 0"),
    ("approvals", "state", "TEXT NOT NULL DEFAULT 'open'"),  # older rows: their body decides
)


class SqliteStore:
    """StateStore on a local SQLite file (`TUGBOAT_STATE=sqlite:///PATH`)."""

    def __init__(self, path: str | Path) -> None:
        self._path = str(path)
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite")
        self._db: sqlite3.Connection | None = None

    async def _run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        def in_thread() -> T:
            db = self._db
            assert db is not None, "store used before open()"
            db.execute("BEGIN IMMEDIATE")  # reads and writes of one call form one atomic step
            try:
                result = fn(db)
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")
            return result

        return await asyncio.get_running_loop().run_in_executor(self._thread, in_thread)

    async def open(self) -> None:
        def connect() -> None:
            Path(self._path).parent.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(self._path, check_same_thread=False, isolation_level=None)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            db.execute("PRAGMA busy_timeout=5000")
            db.executescript(SCHEMA)
            _migrate(db)
            self._db = db

        await asyncio.get_running_loop().run_in_executor(self._thread, connect)

    async def close(self) -> None:
        def disconnect() -> None:
            if self._db is not None:
                self._db.close()
                self._db = None

        await asyncio.get_running_loop().run_in_executor(self._thread, disconnect)
        self._thread.shutdown(wait=True)

    # -- operations ------------------------------------------------------------------------

    @staticmethod
    def _put(db: sqlite3.Connection, record: OperationRecord, lease_until: float | None = None) -> None:
        record.updated_at = time.time()
        db.execute(
            "INSERT INTO operations"
            " (id, app, env, state, owner, generation, lease_until, created_at, body)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
            " ON CONFLICT(id) DO UPDATE SET state=excluded.state, owner=excluded.owner,"
            " generation=excluded.generation,"
            " lease_until=CASE WHEN ? IS NULL THEN operations.lease_until"
            " ELSE excluded.lease_until END,"
            " body=excluded.body",
            (
                record.id,
                record.app,
                record.env,
                record.state,
                record.owner,
                record.generation,
                lease_until or 0,
                record.created_at,
                record.to_json(),
                lease_until,
            ),
        )

    async def claim_target(self, record: OperationRecord, lease_s: float) -> OperationRecord | None:
        def claim(db: sqlite3.Connection) -> OperationRecord | None:
            _fence(db, record)
            now = time.time()
            holder = _live_holder(db, record, now)
            if holder is not None:
                return holder
            _set_claim(db, record, now + lease_s)
            self._put(db, record, now + lease_s)
            return None

        return await self._run(claim)

    async def renew_claim(self, record: OperationRecord, lease_s: float) -> bool:
        def renew(db: sqlite3.Connection) -> bool:
            until = time.time() + lease_s
            mine = db.execute(
                "UPDATE operations SET lease_until = ? WHERE id = ? AND owner IS ? AND generation = ?",
                (until, record.id, record.owner, record.generation),
            )
            if mine.rowcount == 0:
                return False  # adopted by someone else (or by a newer us), or never saved
            db.execute(
                "UPDATE claims SET expires_at = ?, generation = ?"
                " WHERE target = ? AND op_id = ? AND generation <= ?",
                (until, record.generation, record.target_key, record.id, record.generation),
            )
            return True  # the claim, where held, went with it

        return await self._run(renew)

    async def release_target(self, record: OperationRecord) -> None:
        await self._run(
            lambda db: db.execute(
                "DELETE FROM claims WHERE target = ? AND op_id = ? AND generation <= ?",
                (record.target_key, record.id, record.generation),
            )
        )

    async def active_on(self, app: str, env: str) -> OperationRecord | None:
        def find(db: sqlite3.Connection) -> OperationRecord | None:
            row = db.execute(
                "SELECT o.body FROM claims c JOIN operations o ON o.id = c.op_id"
                " WHERE c.target = ? AND o.state = 'running'",
                (f"{app}/{env}",),
            ).fetchone()
            return OperationRecord.from_json(row[0]) if row else None

        return await self._run(find)

    async def save(self, record: OperationRecord) -> None:
        def write(db: sqlite3.Connection) -> None:
            _fence(db, record)
            self._put(db, record)

        await self._run(write)

    async def get(self, op_id: str) -> OperationRecord | None:
        row = await self._run(
            lambda db: db.execute("SELECT body FROM operations WHERE id = ?", (op_id,)).fetchone()
        )
        return OperationRecord.from_json(row[0]) if row else None

    async def unfinished(self) -> list[OperationRecord]:
        rows = await self._run(
            lambda db: db.execute(
                "SELECT body FROM operations WHERE state = 'running' ORDER BY created_at"
            ).fetchall()
        )
        return [OperationRecord.from_json(r[0]) for r in rows]

    async def adopt(self, record: OperationRecord, owner: str, lease_s: float) -> bool:
        adopted = dataclasses.replace(record, owner=owner, generation=record.generation + 1)

        def take(db: sqlite3.Connection) -> bool:
            now = time.time()
            cur = db.execute(
                "UPDATE operations SET owner = ?, generation = ?, lease_until = ?"
                " WHERE id = ? AND state = 'running' AND generation = ?"
                " AND (lease_until < ? OR owner = ? OR owner IS NULL)",
                (owner, adopted.generation, now + lease_s, record.id, record.generation, now, owner),
            )
            if cur.rowcount == 0:
                return False
            self._put(db, adopted, now + lease_s)
            if adopted.action in CLAIMING_ACTIONS and _live_holder(db, adopted, now) is None:
                _set_claim(db, adopted, now + lease_s)
            return True

        if not await self._run(take):
            return False
        record.owner, record.generation, record.updated_at = owner, adopted.generation, adopted.updated_at
        return True

    async def history(self, app: str, env: str, limit: int = 10) -> list[OperationRecord]:
        rows = await self._run(
            lambda db: db.execute(
                "SELECT body FROM operations WHERE app = ? AND env = ? ORDER BY created_at DESC LIMIT ?",
                (app, env, limit),
            ).fetchall()
        )
        return [OperationRecord.from_json(r[0]) for r in rows]

    # -- locks, deliveries, audit ----------------------------------------------------------

    async def lock(self, lock: Lock) -> Lock | None:
        def take(db: sqlite3.Connection) -> Lock | None:
            existing = _read_lock(db, lock.app, lock.env)
            if existing is not None:
                return existing
            db.execute(
                "INSERT OR REPLACE INTO locks (target, body, expires_at) VALUES (?, ?, ?)",
                (f"{lock.app}/{lock.env}", lock.to_json(), lock.expires_at),
            )
            return None

        return await self._run(take)

    async def unlock(self, app: str, env: str) -> Lock | None:
        def release(db: sqlite3.Connection) -> Lock | None:
            existing = _read_lock(db, app, env)
            db.execute("DELETE FROM locks WHERE target = ?", (f"{app}/{env}",))
            return existing

        return await self._run(release)

    async def get_lock(self, app: str, env: str) -> Lock | None:
        return await self._run(lambda db: _read_lock(db, app, env))

    async def first_delivery(self, delivery_id: str, ttl_s: float = 7 * 86_400) -> bool:
        def remember(db: sqlite3.Connection) -> bool:
            now = time.time()
            db.execute("DELETE FROM deliveries WHERE id = ? AND expires_at < ?", (delivery_id, now))
            cur = db.execute(
                "INSERT OR IGNORE INTO deliveries (id, expires_at) VALUES (?, ?)",
                (delivery_id, now + ttl_s),
            )
            return cur.rowcount == 1

        return await self._run(remember)

    async def audit(self, entry: dict[str, Any]) -> None:
        await self._run(
            lambda db: db.execute(
                "INSERT INTO audit (at, body) VALUES (?, ?)", (time.time(), json.dumps(entry))
            )
        )

    async def audit_entries(self, limit: int = 100) -> list[dict[str, Any]]:
        rows = await self._run(
            lambda db: db.execute("SELECT body FROM audit ORDER BY at DESC LIMIT ?", (limit,)).fetchall()
        )
        return [json.loads(r[0]) for r in rows]

    # -- approvals -------------------------------------------------------------------------

    async def create_approval(self, approval: Approval) -> None:
        await self._run(
            lambda db: db.execute(
                "INSERT INTO approvals (id, version, body, state) VALUES (?, ?, ?, ?)",
                (approval.id, approval.version, approval.to_json(), approval.state),
            )
        )

    async def get_approval(self, approval_id: str) -> Approval | None:
        row = await self._run(
            lambda db: db.execute("SELECT body FROM approvals WHERE id = ?", (approval_id,)).fetchone()
        )
        return Approval.from_json(row[0]) if row else None

    async def open_approvals(self) -> list[Approval]:
        rows = await self._run(
            lambda db: db.execute("SELECT body FROM approvals WHERE state = 'open'").fetchall()
        )
        found = (Approval.from_json(r[0]) for r in rows)
        return sorted((a for a in found if a.state == "open"), key=lambda a: a.created_at)

    async def update_approval(self, approval: Approval) -> bool:
        read = approval.version
        written = dataclasses.replace(approval, version=read + 1)

        def write(db: sqlite3.Connection) -> bool:
            cur = db.execute(
                "UPDATE approvals SET version = ?, body = ?, state = ? WHERE id = ? AND version = ?",
                (written.version, written.to_json(), written.state, approval.id, read),
            )
            return cur.rowcount == 1

        if not await self._run(write):
            return False
        approval.version = written.version
        return True


def _live_holder(db: sqlite3.Connection, record: OperationRecord, now: float) -> OperationRecord | None:
    """Another, still running operation whose claim on the target has not expired; else None.

    A free target, an expired claim, our own claim and a finished holder all leave it free.
    """
    row = db.execute(
        "SELECT o.body FROM claims c JOIN operations o ON o.id = c.op_id"
        " WHERE c.target = ? AND c.expires_at > ? AND c.op_id != ?",
        (record.target_key, now, record.id),
    ).fetchone()
    if row is None:
        return None
    held = OperationRecord.from_json(row[0])
    return None if held.finished else held


def _set_claim(db: sqlite3.Connection, record: OperationRecord, until: float) -> None:
    db.execute(
        "INSERT OR REPLACE INTO claims (target, op_id, generation, expires_at) VALUES (?, ?, ?, ?)",
        (record.target_key, record.id, record.generation, until),
    )


def _fence(db: sqlite3.Connection, record: OperationRecord) -> None:
    """Raise Fenced unless `record` may overwrite its stored row (see StateStore.save)."""
    row = db.execute("SELECT owner, generation FROM operations WHERE id = ?", (record.id,)).fetchone()
    if row is None:
        return
    owner, generation = row
    if generation != record.generation or (record.owner is not None and owner != record.owner):
        raise Fenced(record.id, owner, generation)


def _migrate(db: sqlite3.Connection) -> None:
    """Add the columns a database made by an older Tugboat lacks (one writer at a time)."""
    db.execute("BEGIN IMMEDIATE")
    try:
        for table, column, definition in MIGRATIONS:
            columns = {row[1] for row in db.execute(f"PRAGMA table_info({table})")}
            if column not in columns:
                db.execute(f"ALTER TABLE {table} ADD COLUMN {column} {definition}")
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")


def _read_lock(db: sqlite3.Connection, app: str, env: str) -> Lock | None:
    row = db.execute("SELECT body FROM locks WHERE target = ?", (f"{app}/{env}",)).fetchone()
    if row is None:
        return None
    lock = Lock.from_json(row[0])
    return lock if lock.active() else None
