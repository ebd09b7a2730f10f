"""The ledger: every model call's result, keyed by a content hash of everything that determines it.

A SQLite database (WAL mode) in the run folder. A result is committed the moment it exists, before any
later step uses it, so a killed run restarted with the same command repeats no finished call and loses
nothing. Submitted provider batches are recorded the same way. A finished call is ``done`` (a judge reply that could not be parsed is finished too: asking
again would be paid again); a call that errored is ``failed``, recorded with its error, and asked again by
a rerun.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from mmaip_core.errors import StorageError

__all__ = ["DONE", "FAILED", "Entry", "Ledger", "LedgerKind"]

LedgerKind = Literal["generation", "judgement", "evaluation"]
DONE, FAILED = "done", "failed"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS entries (
    key TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    status TEXT NOT NULL,
    record TEXT NOT NULL,
    cost REAL NOT NULL DEFAULT 0,
    updated_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS entries_kind ON entries(kind, status);
CREATE TABLE IF NOT EXISTS batches (
    batch_id TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    keys TEXT NOT NULL,
    collected INTEGER NOT NULL DEFAULT 0,
    updated_at REAL NOT NULL
);
"""


@contextmanager
def _storage_errors(path: Path) -> Iterator[None]:
    """sqlite3's errors as one StorageError that names the ledger and says what to do."""
    try:
        yield
    except sqlite3.OperationalError as exc:  # full disk, read-only folder, locked beyond the timeout
        raise StorageError(path, f"cannot use the ledger: {exc}") from exc
    except sqlite3.DatabaseError as exc:  # not a database, malformed, truncated
        raise StorageError(
            path,
            f"the ledger is damaged ({exc}); move it away to start the folder afresh (every call is then made again)",
        ) from exc


@dataclass(frozen=True)
class Entry:
    """One stored result: ``status`` is "done" (finished; never asked again) or "failed" (asked again on a rerun)."""

    key: str
    kind: str
    status: str
    record: dict[str, Any]
    cost: float

    @property
    def done(self) -> bool:
        return self.status == DONE


class Ledger:
    """A SQLite ledger at ``path`` (created if missing). Safe to share between threads."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        with _storage_errors(self.path):
            self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=30)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.executescript(_SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    @contextmanager
    def _cursor(self) -> Iterator[sqlite3.Cursor]:
        with self._lock, _storage_errors(self.path):
            yield self._db.cursor()

    def put(self, key: str, kind: LedgerKind, status: str, record: dict[str, Any], cost: float = 0.0) -> None:
        """Store (or replace) the result of ``key`` and commit it at once."""
        with self._cursor() as cur:
            cur.execute(
                "INSERT OR REPLACE INTO entries (key, kind, status, record, cost, updated_at) VALUES (?, ?, ?, ?, ?, ?)",
                (key, kind, status, json.dumps(record, default=str), cost, time.time()),
            )

    def get_many(self, keys: Iterable[str]) -> dict[str, Entry]:
        """Stored results of ``keys`` (missing keys are absent from the result)."""
        wanted = list(dict.fromkeys(keys))
        found: dict[str, Entry] = {}
        with self._cursor() as cur:
            for start in range(0, len(wanted), 500):
                chunk = wanted[start : start + 500]
                marks = ",".join("?" * len(chunk))
                rows = cur.execute(
                    f"SELECT key, kind, status, record, cost FROM entries WHERE key IN ({marks})", chunk
                ).fetchall()
                for key, kind, status, record, cost in rows:
                    found[key] = Entry(key, kind, status, json.loads(record), cost)
        return found

    def total_cost(self, kind: LedgerKind | None = None) -> float:
        """Sum of the cost of stored entries."""
        query = "SELECT COALESCE(SUM(cost), 0) FROM entries" + (" WHERE kind = ?" if kind else "")
        with self._cursor() as cur:
            return float(cur.execute(query, [kind] if kind else []).fetchone()[0])

    # --- provider batch jobs (OpenAI Batch API, Anthropic Message Batches) ------------------------------

    def put_batch(self, batch_id: str, owner: str, keys: list[str]) -> None:
        """Remember a submitted batch (``owner``: the scorer's fingerprint) the moment it exists, so a
        restarted run collects it instead of submitting the same calls again."""
        with self._cursor() as cur:
            cur.execute(
                "INSERT OR REPLACE INTO batches (batch_id, owner, keys, collected, updated_at) VALUES (?, ?, ?, 0, ?)",
                (batch_id, owner, json.dumps(keys), time.time()),
            )

    def open_batches(self, owner: str) -> dict[str, list[str]]:
        """Batches of ``owner`` not collected yet: batch id -> call keys."""
        with self._cursor() as cur:
            rows = cur.execute(
                "SELECT batch_id, keys FROM batches WHERE owner = ? AND collected = 0 ORDER BY updated_at", (owner,)
            ).fetchall()
        return {batch_id: json.loads(keys) for batch_id, keys in rows}

    def close_batch(self, batch_id: str) -> None:
        """Mark a batch collected (its results are in the ledger)."""
        with self._cursor() as cur:
            cur.execute("UPDATE batches SET collected = 1, updated_at = ? WHERE batch_id = ?", (time.time(), batch_id))
