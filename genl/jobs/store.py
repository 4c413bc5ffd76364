"""SQLite job history: one row per job with its exact spec, status and outputs.

The file survives restarts. `recover()` runs once at start-up: a job still marked 'running' was
interrupted by the server stopping, so it is marked failed; queued jobs are returned to be re-queued.
"""
from __future__ import annotations

import json
import sqlite3
import threading
import time
from pathlib import Path
from typing import Iterable, Optional

from .spec import FAILED, FINAL, QUEUED, RUNNING, Job, JobSpec

SERVER_STOPPED = "The server stopped while this job was running. Re-run it to try again."

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
_COLUMNS = ("id", "kind", "spec", "status", "created", "started", "finished", "progress", "message", "outputs")


class JobStore:
    """Thread-safe (one connection behind a lock); the UI threads and event listeners share it."""

    def __init__(self, path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(self.path), check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.executescript(_SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # ---- writes ---------------------------------------------------------------------------------
    def add(self, spec: JobSpec, created: Optional[float] = None) -> Job:
        job = Job(id=spec.id, kind=spec.kind, spec=spec, created=created or time.time())
        with self._lock:
            self._db.execute(
                "INSERT INTO jobs (id, kind, spec, status, created) VALUES (?, ?, ?, ?, ?)",
                (job.id, job.kind, spec.to_json(), job.status, job.created),
            )
        return job

    def update(self, job_id: str, **values) -> None:
        """Set columns; `outputs` may be a dict."""
        if not values:
            return
        unknown = set(values) - set(_COLUMNS[3:])
        if unknown:
            raise KeyError(f"Not job columns: {sorted(unknown)}")
        if "outputs" in values:
            values["outputs"] = json.dumps(values["outputs"])
        cols = ", ".join(f"{k} = ?" for k in values)
        with self._lock:
            self._db.execute(f"UPDATE jobs SET {cols} WHERE id = ?", (*values.values(), job_id))

    def delete(self, job_id: str) -> None:
        with self._lock:
            self._db.execute("DELETE FROM jobs WHERE id = ?", (job_id,))

    def recover(self) -> list[Job]:
        """After a restart: fail jobs left running, return queued jobs (oldest first) to re-queue."""
        with self._lock:
            self._db.execute(
                "UPDATE jobs SET status = ?, message = ?, finished = ? WHERE status = ?",
                (FAILED, SERVER_STOPPED, time.time(), RUNNING),
            )
        return self.list(statuses=(QUEUED,), newest_first=False)

    # ---- reads ----------------------------------------------------------------------------------
    def get(self, job_id: str) -> Optional[Job]:
        with self._lock:
            row = self._db.execute(f"SELECT {', '.join(_COLUMNS)} FROM jobs WHERE id = ?", (job_id,)).fetchone()
        return _to_job(row) if row else None

    def list(self, statuses: Optional[Iterable[str]] = None, limit: Optional[int] = None,
             newest_first: bool = True) -> list[Job]:
        sql, args = f"SELECT {', '.join(_COLUMNS)} FROM jobs", []
        if statuses is not None:
            statuses = list(statuses)
            sql += f" WHERE status IN ({', '.join('?' * len(statuses))})"
            args += statuses
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
        outputs=json.loads(d["outputs"] or "{}"),
    )


__all__ = ["JobStore", "SERVER_STOPPED", "FINAL"]
