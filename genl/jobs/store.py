"""SQLite job history and the durable queue: one row per job with its spec, status, queue position, owner.

Why SQLite (not an embedded queue library): the history must be queryable (owner, status, newest first)
and the queue is tiny (one row per waiting job), so one table holds both and one transaction moves a job
between them. One connection, owned by this object, behind a lock; WAL so readers never block the worker
events; `busy_timeout` so another process reading the file (a backup, `sqlite3` on the command line) makes
writes wait instead of fail. The file lives in the private folder: it is never served over HTTP, because
a served download is another open/close of the file in this process, which drops SQLite's POSIX locks.

`recover()` runs once at start-up: a job still marked running was interrupted by the server stopping;
queued jobs are returned, in queue order, to run again.
"""
from __future__ import annotations

import json
import sqlite3
import threading
import time
from pathlib import Path
from typing import Iterable, Optional

from .spec import FINAL, INTERRUPTED, QUEUED, RUNNING, Job, JobSpec

SERVER_STOPPED = "The server stopped while this job was running. Re-run it to try again."
SCHEMA_VERSION = 2  # 1: no queue position / owner / shared columns

_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    spec TEXT NOT NULL,
    status TEXT NOT NULL,
    created REAL NOT NULL,
    started REAL,
    finished REAL,
    progress REAL NOT NULL DEFAULT 0,
    message TEXT NOT NULL DEFAULT '',
    outputs TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX IF NOT EXISTS jobs_created ON jobs (created);
"""
_ADDED = {"position": "INTEGER", "owner": "TEXT NOT NULL DEFAULT ''", "shared": "INTEGER NOT NULL DEFAULT 0"}
_COLUMNS = ("id", "kind", "spec", "status", "created", "started", "finished", "progress", "message", "outputs",
            "position", "owner", "shared")
_WRITABLE = set(_COLUMNS[3:])


class JobStore:
    """Thread-safe (one connection behind a lock); the UI threads and event listeners share it."""

    def __init__(self, path, busy_timeout: float = 30.0):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(self.path), timeout=busy_timeout, check_same_thread=False,
                                   isolation_level=None)
        self._db.execute(f"PRAGMA busy_timeout = {int(busy_timeout * 1000)}")
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.executescript(_SCHEMA)
        self._migrate()

    def _migrate(self) -> None:
        """Old databases (version 1): add the queue/owner columns; queued jobs keep their submission order."""
        have = {row[1] for row in self._db.execute("PRAGMA table_info(jobs)")}
        with self._transaction():
            for name, decl in _ADDED.items():
                if name not in have:
                    self._db.execute(f"ALTER TABLE jobs ADD COLUMN {name} {decl}")
            if "position" not in have:
                ids = [r[0] for r in self._db.execute(
                    "SELECT id FROM jobs WHERE status = ? ORDER BY created, id", (QUEUED,))]
                self._db.executemany("UPDATE jobs SET position = ? WHERE id = ?",
                                     [(i, job_id) for i, job_id in enumerate(ids, 1)])
            self._db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    def _transaction(self):
        db = self._db

        class _Tx:
            def __enter__(self):
                db.execute("BEGIN IMMEDIATE")

            def __exit__(self, exc_type, *_):
                db.execute("COMMIT" if exc_type is None else "ROLLBACK")

        return _Tx()

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # ---- writes ---------------------------------------------------------------------------------
    def add(self, spec: JobSpec, created: Optional[float] = None, owner: str = "") -> Job:
        """A new queued job at the end of the queue, durable before this returns."""
        created = created or time.time()
        with self._lock, self._transaction():
            last = self._db.execute("SELECT MAX(position) FROM jobs WHERE status = ?", (QUEUED,)).fetchone()[0]
            self._db.execute(
                "INSERT INTO jobs (id, kind, spec, status, created, position, owner) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (spec.id, spec.kind, spec.to_json(), QUEUED, created, (last or 0) + 1, owner or ""),
            )
        return self.get(spec.id)

    def update(self, job_id: str, **values) -> None:
        """Set columns; `outputs` may be a dict."""
        if not values:
            return
        unknown = set(values) - _WRITABLE
        if unknown:
            raise KeyError(f"Not job columns: {sorted(unknown)}")
        if "outputs" in values:
            values["outputs"] = json.dumps(values["outputs"])
        if "shared" in values:
            values["shared"] = int(bool(values["shared"]))
        cols = ", ".join(f"{k} = ?" for k in values)
        with self._lock:
            self._db.execute(f"UPDATE jobs SET {cols} WHERE id = ?", (*values.values(), job_id))

    def set_queue(self, job_ids: list[str]) -> None:
        """Persist the queue order: positions 1..n for `job_ids`, none for every other row."""
        with self._lock, self._transaction():
            self._db.execute("UPDATE jobs SET position = NULL WHERE position IS NOT NULL")
            self._db.executemany("UPDATE jobs SET position = ? WHERE id = ?",
                                 [(i, job_id) for i, job_id in enumerate(job_ids, 1)])

    def delete(self, job_id: str) -> None:
        with self._lock:
            self._db.execute("DELETE FROM jobs WHERE id = ?", (job_id,))

    def recover(self) -> list[Job]:
        """After a restart: mark jobs left running as interrupted; return queued jobs in queue order."""
        with self._lock:
            self._db.execute(
                "UPDATE jobs SET status = ?, message = ?, finished = ?, position = NULL WHERE status = ?",
                (INTERRUPTED, SERVER_STOPPED, time.time(), RUNNING),
            )
        return self.queued()

    # ---- reads ----------------------------------------------------------------------------------
    def get(self, job_id: str) -> Optional[Job]:
        with self._lock:
            row = self._db.execute(f"SELECT {', '.join(_COLUMNS)} FROM jobs WHERE id = ?", (job_id,)).fetchone()
        return _to_job(row) if row else None

    def queued(self) -> list[Job]:
        """Queued jobs, next to run first."""
        with self._lock:
            rows = self._db.execute(f"SELECT {', '.join(_COLUMNS)} FROM jobs WHERE status = ? "
                                    "ORDER BY position IS NULL, position, created, id", (QUEUED,)).fetchall()
        return [_to_job(r) for r in rows]

    def list(self, statuses: Optional[Iterable[str]] = None, limit: Optional[int] = None,
             newest_first: bool = True, visible_to: Optional[str] = None) -> list[Job]:
        """Jobs, newest first. `visible_to`: only that user's jobs and shared ones (None: everyone's)."""
        sql, where, args = f"SELECT {', '.join(_COLUMNS)} FROM jobs", [], []
        if statuses is not None:
            statuses = list(statuses)
            where.append(f"status IN ({', '.join('?' * len(statuses))})")
            args += statuses
        if visible_to is not None:
            where.append("(owner = ? OR shared = 1)")
            args.append(visible_to)
        if where:
            sql += " WHERE " + " AND ".join(where)
        order = "DESC" if newest_first else "ASC"
        sql += f" ORDER BY created {order}, id {order}"
        if limit is not None:
            sql += " LIMIT ?"
            args.append(int(limit))
        with self._lock:
            rows = self._db.execute(sql, args).fetchall()
        return [_to_job(r) for r in rows]

    def count(self, status: Optional[str] = None) -> int:
        with self._lock:
            if status is None:
                return self._db.execute("SELECT COUNT(*) FROM jobs").fetchone()[0]
            return self._db.execute("SELECT COUNT(*) FROM jobs WHERE status = ?", (status,)).fetchone()[0]


def _to_job(row) -> Job:
    d = dict(zip(_COLUMNS, row))
    return Job(
        id=d["id"], kind=d["kind"], spec=JobSpec.from_json(d["spec"]), status=d["status"], created=d["created"],
        started=d["started"], finished=d["finished"], progress=d["progress"] or 0.0, message=d["message"] or "",
        outputs=json.loads(d["outputs"] or "{}"), position=d["position"] or 0, owner=d["owner"] or "",
        shared=bool(d["shared"]),
    )


__all__ = ["JobStore", "SERVER_STOPPED", "FINAL"]
