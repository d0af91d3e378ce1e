"""The SQLite job journal: the one truth about jobs.

Every job is a row. Its ``phase`` says how far the daemon got, so that a
restart after ``kill -9`` knows what to redo (see docs/crash-safety.md):

``claiming``   row written, the input may or may not have been renamed yet
``queued``     input is in the work area, waiting for a worker (or a retry)
``running``    a worker has it
``publishing`` the result is decided; outputs, status and original are being placed
``done``       final; ``state`` is success, failed or aborted

The journal runs in WAL mode with ``synchronous=FULL``: a committed phase
survives a crash of the process and of the machine, and readers (``hotfolder
status``) never block the daemon. A transition whose loss a restart does not
care about (``running``: recovery queues ``queued`` and ``running`` jobs alike)
is committed without its own fsync (``durable=False``); the next durable
commit, which fsyncs the same write-ahead log, makes it durable too. Several
jobs' transitions can share one commit (:meth:`Journal.insert_many`,
:meth:`Journal.update_many`): one fsync instead of one per job.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from hotfolder.errors import StartupError
from hotfolder.models import JobState

SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    job_id        TEXT PRIMARY KEY,
    folder        TEXT NOT NULL,
    state         TEXT NOT NULL,
    phase         TEXT NOT NULL,
    name          TEXT NOT NULL,
    rel_dir       TEXT NOT NULL DEFAULT '',
    input_name    TEXT NOT NULL,
    source        TEXT NOT NULL,
    work_dir      TEXT NOT NULL,
    workflow      TEXT NOT NULL,
    profile       TEXT NOT NULL,
    kind          TEXT NOT NULL DEFAULT 'file',
    input_size    INTEGER NOT NULL DEFAULT 0,
    input_mtime   INTEGER NOT NULL DEFAULT 0,
    created_at    REAL NOT NULL,
    started_at    REAL,
    finished_at   REAL,
    attempts      INTEGER NOT NULL DEFAULT 0,
    not_before    REAL NOT NULL DEFAULT 0,
    error_code    TEXT,
    message       TEXT,
    result        TEXT,
    published_name TEXT,
    status_json   TEXT,
    extra_inputs  TEXT NOT NULL DEFAULT '[]',
    manifest      TEXT,
    progress      TEXT
);
CREATE TABLE IF NOT EXISTS requests (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    job_id        TEXT NOT NULL,
    action        TEXT NOT NULL,
    requested_at  REAL NOT NULL,
    answer        TEXT
);
CREATE INDEX IF NOT EXISTS jobs_state ON jobs (state, folder);
CREATE INDEX IF NOT EXISTS jobs_phase ON jobs (phase);
"""

#: The journal's file name in the state dir.
JOURNAL_NAME = "journal.sqlite3"


def journal_path(state_dir: Path) -> Path:
    """Where the job journal of a state dir lives."""
    return state_dir / JOURNAL_NAME


#: Size, mtime and ctime (ns) of one claimed input.
Stamp = tuple[int, int, int]

UNFINISHED_PHASES = ("waiting", "claiming", "queued", "running", "publishing", "retrying")


@dataclass
class JobRecord:
    """One journal row."""

    job_id: str
    folder: str
    state: str
    phase: str
    name: str
    rel_dir: str
    input_name: str
    source: str
    work_dir: str
    workflow: str
    profile: str
    kind: str = "file"
    input_size: int = 0
    input_mtime: int = 0
    created_at: float = 0.0
    started_at: float | None = None
    finished_at: float | None = None
    attempts: int = 0
    not_before: float = 0.0
    error_code: str | None = None
    message: str | None = None
    result: str | None = None
    published_name: str | None = None
    status_json: str | None = None
    #: JSON list of further input names, in order, for jobs with several inputs.
    extra_inputs: str = "[]"
    #: The validated manifest (JSON) of a manifest job; None for single files.
    manifest: str | None = None
    #: JSON ``[pages done, pages]`` while a page-counting step runs; None otherwise.
    progress: str | None = None
    #: Stamps of the inputs taken right after their claim (see hotfolder.claimed);
    #: kept in memory only: a restart stamps recovered inputs anew.
    claimed: tuple[Stamp, ...] | None = field(
        default=None, compare=False, metadata={"memory": True}
    )
    #: True when the kernel said nobody had the inputs open for writing at the
    #: claim (a lease on a local folder); memory only, like ``claimed``.
    writer_free: bool = field(default=False, compare=False, metadata={"memory": True})

    @property
    def work_input(self) -> Path:
        """Where the (first) claimed original lives while the job is unfinished."""
        return Path(self.work_dir) / "input" / self.input_name

    @property
    def input_names(self) -> list[str]:
        """Every input name in order, the first being ``input_name``."""
        return [self.input_name, *json.loads(self.extra_inputs)]

    @property
    def work_inputs(self) -> list[Path]:
        """Where every claimed original lives while the job is unfinished."""
        return [Path(self.work_dir) / "input" / name for name in self.input_names]

    @property
    def job_state(self) -> JobState:
        """The state as an enum."""
        return JobState(self.state)

    def status(self) -> dict[str, Any] | None:
        """The final status document, once published."""
        return None if self.status_json is None else dict(json.loads(self.status_json))

    def pages_progress(self) -> tuple[int, int] | None:
        """(pages done, pages) of a running job that reports them, else None."""
        if self.progress is None or self.phase != "running":
            return None
        done, total = json.loads(self.progress)
        return int(done), int(total)

    def document(self) -> dict[str, Any]:
        """The status JSON of a finished job, or a summary of an unfinished one."""
        status = self.status()
        if status is not None and self.phase == "done":
            return status
        progress = self.pages_progress()
        pages = {} if progress is None else {"pagesDone": progress[0], "pages": progress[1]}
        return {
            "jobId": self.job_id,
            "status": self.state,
            "message": self.message or "",
            "folder": self.folder,
            "workflow": self.workflow,
            "profile": self.profile,
            "name": self.name,
            "inputs": [{"name": self.input_name, "bytes": self.input_size}],
            "attempts": self.attempts,
            **pages,
        }


_COLUMNS = tuple(f.name for f in fields(JobRecord) if not f.metadata.get("memory"))


class Journal:
    """Thread-safe access to the job journal at ``path``."""

    def __init__(self, path: Path, *, readonly: bool = False) -> None:
        self.path = path
        try:
            if readonly:
                self._db = sqlite3.connect(
                    f"file:{path}?mode=ro", uri=True, check_same_thread=False, timeout=10
                )
            else:
                path.parent.mkdir(parents=True, exist_ok=True)
                self._db = sqlite3.connect(
                    path, check_same_thread=False, timeout=30, isolation_level=None
                )
                self._db.execute("PRAGMA journal_mode=WAL")
                self._db.execute("PRAGMA synchronous=FULL")
                self._db.executescript(SCHEMA)
                self._migrate()
        except sqlite3.Error as exc:
            raise StartupError(f"cannot open the job journal {path}: {exc}") from None
        self._db.row_factory = sqlite3.Row
        self._lock = threading.Lock()

    def close(self) -> None:
        """Close the connection."""
        with self._lock:
            self._db.close()

    @contextmanager
    def _tx(self, *, durable: bool = True) -> Iterator[sqlite3.Connection]:
        with self._lock:
            if not durable:
                # In WAL mode NORMAL skips only the fsync of the log at commit; the
                # database stays consistent whatever happens (see the module doc).
                self._db.execute("PRAGMA synchronous=NORMAL")
            try:
                self._db.execute("BEGIN IMMEDIATE")
                try:
                    yield self._db
                except BaseException:
                    self._db.execute("ROLLBACK")
                    raise
                self._db.execute("COMMIT")
            finally:
                if not durable:
                    self._db.execute("PRAGMA synchronous=FULL")

    def _migrate(self) -> None:
        # Journals written by 0.1.0 lack columns added since; add them in place.
        present = {row[1] for row in self._db.execute("PRAGMA table_info(jobs)")}
        if "extra_inputs" not in present:
            self._db.execute("ALTER TABLE jobs ADD COLUMN extra_inputs TEXT NOT NULL DEFAULT '[]'")
        if "manifest" not in present:
            self._db.execute("ALTER TABLE jobs ADD COLUMN manifest TEXT")
        if "progress" not in present:
            self._db.execute("ALTER TABLE jobs ADD COLUMN progress TEXT")

    def finished_before(self, cutoff: float) -> list[str]:
        """Ids of finished jobs whose final state is older than ``cutoff`` (Unix time)."""
        with self._lock:
            rows = self._db.execute(
                "SELECT job_id FROM jobs WHERE phase = 'done' AND "
                "COALESCE(finished_at, created_at) < ? ORDER BY job_id",
                (cutoff,),
            ).fetchall()
        return [str(row[0]) for row in rows]

    def job_ids(self) -> set[str]:
        """Every job id in the journal."""
        with self._lock:
            return {str(row[0]) for row in self._db.execute("SELECT job_id FROM jobs")}

    # --- requests from `hotfolder cancel` / `hotfolder retry` to the running daemon ---

    def add_request(self, job_id: str, action: str) -> int:
        """Queue a request for the daemon; returns its id."""
        with self._lock:
            cursor = self._db.execute(
                "INSERT INTO requests (job_id, action, requested_at) VALUES (?, ?, ?)",
                (job_id, action, time.time()),
            )
            return int(cursor.lastrowid or 0)

    def open_requests(self) -> list[tuple[int, str, str]]:
        """Unanswered requests, oldest first: (id, job id, action)."""
        with self._lock:
            rows = self._db.execute(
                "SELECT id, job_id, action FROM requests WHERE answer IS NULL ORDER BY id"
            ).fetchall()
        return [(int(r[0]), str(r[1]), str(r[2])) for r in rows]

    def answer_request(self, request_id: int, answer: str) -> None:
        """Record the daemon's answer; answers older than a day are dropped."""
        with self._lock:
            self._db.execute("UPDATE requests SET answer = ? WHERE id = ?", (answer, request_id))
            self._db.execute(
                "DELETE FROM requests WHERE answer IS NOT NULL AND requested_at < ?",
                (time.time() - 86400,),
            )

    def request_answer(self, request_id: int) -> str | None:
        """The daemon's answer to a request, once given."""
        with self._lock:
            row = self._db.execute(
                "SELECT answer FROM requests WHERE id = ?", (request_id,)
            ).fetchone()
        return None if row is None or row[0] is None else str(row[0])

    def insert(self, record: JobRecord) -> None:
        """Add a new job row (committed before the input is renamed)."""
        self.insert_many([record])

    def insert_many(self, records: Sequence[JobRecord]) -> None:
        """Add several job rows in one durable commit."""
        placeholders = ", ".join("?" for _ in _COLUMNS)
        sql = f"INSERT INTO jobs ({', '.join(_COLUMNS)}) VALUES ({placeholders})"  # noqa: S608
        with self._tx() as db:
            db.executemany(
                sql, [[_to_db(getattr(record, name)) for name in _COLUMNS] for record in records]
            )

    def update(self, job_id: str, *, durable: bool = True, **changes: Any) -> None:
        """Change some columns of one job in one transaction.

        ``durable=False`` commits without an fsync of its own: only for transitions a
        restart can do without (the next durable commit makes it durable anyway).
        """
        self.update_many([(job_id, changes)], durable=durable)

    def update_many(
        self, changes: Sequence[tuple[str, dict[str, Any]]], *, durable: bool = True
    ) -> None:
        """Change columns of several jobs (job id, {column: value}) in one transaction."""
        for _, columns in changes:
            unknown = set(columns) - set(_COLUMNS)
            if unknown:
                raise KeyError(f"unknown journal columns: {sorted(unknown)}")
        with self._tx(durable=durable) as db:
            for job_id, columns in changes:
                assignments = ", ".join(f"{name} = ?" for name in columns)
                db.execute(
                    f"UPDATE jobs SET {assignments} WHERE job_id = ?",  # noqa: S608
                    [*(_to_db(value) for value in columns.values()), job_id],
                )

    def delete(self, job_id: str) -> None:
        """Forget a job whose input vanished before it was claimed."""
        with self._tx() as db:
            db.execute("DELETE FROM jobs WHERE job_id = ?", (job_id,))

    def get(self, job_id: str) -> JobRecord | None:
        """One job by id."""
        rows = self._select("SELECT * FROM jobs WHERE job_id = ?", (job_id,))
        return rows[0] if rows else None

    def unfinished(self) -> list[JobRecord]:
        """Jobs a restart must resume, oldest first."""
        marks = ", ".join("?" for _ in UNFINISHED_PHASES)
        return self._select(
            f"SELECT * FROM jobs WHERE phase IN ({marks}) ORDER BY job_id",  # noqa: S608
            UNFINISHED_PHASES,
        )

    def recent(
        self, *, folder: str | None = None, state: str | None = None, limit: int = 50
    ) -> list[JobRecord]:
        """Newest jobs first, optionally filtered by folder and state."""
        clauses, params = [], []
        if folder:
            clauses.append("folder = ?")
            params.append(folder)
        if state:
            clauses.append("state = ?")
            params.append(state)
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        return self._select(
            f"SELECT * FROM jobs {where} ORDER BY job_id DESC LIMIT ?",  # noqa: S608
            (*params, limit),
        )

    def writable(self) -> bool:
        """True when a write transaction can be opened (disk not read-only, not locked)."""
        try:
            with self._lock:
                self._db.execute("BEGIN IMMEDIATE")
                self._db.execute("ROLLBACK")
        except sqlite3.Error:
            return False
        return True

    def counts(self) -> dict[str, int]:
        """Number of jobs per state."""
        with self._lock:
            rows = self._db.execute("SELECT state, COUNT(*) FROM jobs GROUP BY state").fetchall()
        return {row[0]: row[1] for row in rows}

    def _select(self, sql: str, params: Sequence[Any]) -> list[JobRecord]:
        with self._lock:
            rows = self._db.execute(sql, params).fetchall()
        return [
            JobRecord(**{key: _from_db(row[key]) for key in row.keys()})  # noqa: SIM118
            for row in rows
        ]


def _to_db(value: Any) -> Any:
    # Names that are not valid UTF-8 carry lone surrogates, which SQLite text
    # cannot hold; they are stored as their raw bytes instead.
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return value.encode("utf-8", "surrogateescape")
    return value


def _from_db(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.decode("utf-8", "surrogateescape")
    return value
