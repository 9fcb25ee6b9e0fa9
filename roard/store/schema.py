"""The store's schema: append-only migrations. PRAGMA user_version records how many have run, so
an old database is brought forward on open and a newer one (from a later roar) is refused.

Never edit a migration that has shipped: add one. tests/data/store-v1.db proves an old store
still loads.
"""

from __future__ import annotations

MIGRATIONS: list[str] = [
    # 1: projects, jobs, artifacts, paths, what each job read and wrote, the hash cache, blobs.
    # job_io holds only integers so that a run with thousands of files dirties few pages.
    """
    CREATE TABLE projects (
        id INTEGER PRIMARY KEY,
        root BLOB NOT NULL UNIQUE,
        created REAL NOT NULL
    );
    CREATE TABLE blobs (
        hash TEXT PRIMARY KEY,      -- blake3 of body: packages lists, hardware, environments
        body BLOB NOT NULL          -- msgpack
    );
    CREATE TABLE jobs (
        seq INTEGER PRIMARY KEY,
        id TEXT NOT NULL UNIQUE,    -- what users see: 12 hex digits
        project_id INTEGER REFERENCES projects(id),
        status TEXT NOT NULL,       -- running | complete | interrupted | recovered | partial
        command TEXT NOT NULL,      -- display form, redacted
        argv BLOB NOT NULL,         -- msgpack list[str], redacted
        cwd BLOB NOT NULL,
        started REAL NOT NULL,
        ended REAL,
        exit_code INTEGER,
        signal INTEGER,
        n_inputs INTEGER NOT NULL DEFAULT 0,
        n_outputs INTEGER NOT NULL DEFAULT 0,
        git BLOB,                   -- msgpack GitState
        env_blob TEXT REFERENCES blobs(hash),
        hardware_blob TEXT REFERENCES blobs(hash),
        packages BLOB,              -- msgpack {interpreter: blob hash}
        processes BLOB,             -- msgpack list[ProcView]
        blind_spots BLOB,           -- msgpack list[str]
        filtered BLOB               -- msgpack FilteredSummary
    );
    CREATE INDEX jobs_by_start ON jobs(started);
    CREATE INDEX jobs_by_project ON jobs(project_id, started);
    CREATE INDEX jobs_by_status ON jobs(status);
    CREATE TABLE artifacts (
        id INTEGER PRIMARY KEY,
        hash TEXT NOT NULL UNIQUE,  -- blake3 hex
        size INTEGER NOT NULL,
        first_seen REAL NOT NULL
    );
    CREATE TABLE paths (
        id INTEGER PRIMARY KEY,
        path BLOB NOT NULL UNIQUE   -- absolute, resolved; bytes because paths need not be UTF-8
    );
    CREATE TABLE job_io (
        job INTEGER NOT NULL REFERENCES jobs(seq) ON DELETE CASCADE,
        role INTEGER NOT NULL CHECK (role IN (0, 1)),   -- 0: input, 1: output
        path INTEGER NOT NULL REFERENCES paths(id),
        artifact INTEGER NOT NULL REFERENCES artifacts(id),
        previous TEXT,              -- for an output that replaced a file: the old content's hash
        PRIMARY KEY (job, role, path)
    ) WITHOUT ROWID;
    CREATE INDEX job_io_by_artifact ON job_io(artifact, role);
    CREATE INDEX job_io_by_path ON job_io(path);
    CREATE TABLE hash_cache (
        dev INTEGER NOT NULL,
        ino INTEGER NOT NULL,
        size INTEGER NOT NULL,
        mtime_ns INTEGER NOT NULL,
        ctime_ns INTEGER NOT NULL,
        hash TEXT NOT NULL,
        PRIMARY KEY (dev, ino)
    ) WITHOUT ROWID;
    """,
    # 2: sessions and steps (@1, @B1), labels, named collections, project env vars.
    """
    CREATE TABLE sessions (
        id INTEGER PRIMARY KEY,
        project_id INTEGER REFERENCES projects(id),   -- NULL: runs outside any project
        started REAL NOT NULL
    );
    CREATE INDEX sessions_by_project ON sessions(project_id, id);
    ALTER TABLE jobs ADD COLUMN session_id INTEGER REFERENCES sessions(id);
    ALTER TABLE jobs ADD COLUMN step INTEGER;             -- position in the session's pipeline
    ALTER TABLE jobs ADD COLUMN kind TEXT NOT NULL DEFAULT 'run';  -- run | build
    ALTER TABLE jobs ADD COLUMN trackers BLOB;            -- msgpack list[TrackerRun]
    CREATE INDEX jobs_by_session ON jobs(session_id, kind, step, started);
    CREATE TABLE labels (
        target TEXT NOT NULL,       -- 'job:<id>' or 'artifact:<hash>'
        key TEXT NOT NULL,
        value TEXT NOT NULL,
        PRIMARY KEY (target, key)
    ) WITHOUT ROWID;
    CREATE TABLE collections (
        name TEXT NOT NULL,
        artifact INTEGER NOT NULL REFERENCES artifacts(id),
        path BLOB,
        PRIMARY KEY (name, artifact)
    ) WITHOUT ROWID;
    CREATE TABLE project_env (
        project_id INTEGER NOT NULL REFERENCES projects(id),
        name TEXT NOT NULL,
        value TEXT NOT NULL,        -- injected into runs; shown redacted everywhere
        PRIMARY KEY (project_id, name)
    ) WITHOUT ROWID;
    """,
    # 3: network peers a job connected to (external sources), msgpack list[str]
    """
    ALTER TABLE jobs ADD COLUMN external BLOB;
    """,
    # 4: registration (roard.registration): the outbox of jobs to send to the registry, and
    # the registry id each job got. Both go with their job (`roarctl pop`).
    """
    CREATE TABLE outbox (
        job INTEGER PRIMARY KEY REFERENCES jobs(seq) ON DELETE CASCADE,
        queued REAL NOT NULL,
        visibility TEXT,            -- private | team | public; NULL: registry.visibility
        attempts INTEGER NOT NULL DEFAULT 0,
        error TEXT,                 -- the last failure to send it
        error_at REAL,
        held INTEGER NOT NULL DEFAULT 0  -- 1: the registry refused it (400): not retried
    );
    CREATE TABLE registered (
        job INTEGER NOT NULL REFERENCES jobs(seq) ON DELETE CASCADE,
        registry TEXT NOT NULL,     -- the registry's URL
        id TEXT NOT NULL,           -- the job's registry id (roar.canonical.job_id)
        at REAL NOT NULL,
        PRIMARY KEY (job, registry)
    ) WITHOUT ROWID;
    CREATE INDEX registered_by_registry ON registered(registry, at);
    """,
    # 5: what a job used beyond Python. System packages and conda environments repeat from job
    # to job: blobs, stored once.
    """
    ALTER TABLE jobs ADD COLUMN system_blob TEXT REFERENCES blobs(hash);  -- SystemPackages
    ALTER TABLE jobs ADD COLUMN conda_blob TEXT REFERENCES blobs(hash);   -- CondaEnv
    ALTER TABLE jobs ADD COLUMN container BLOB;                           -- msgpack Container
    """,
    # 6: the training request a run was for (`roarctl run --request R-12`), as its id
    """
    ALTER TABLE jobs ADD COLUMN request TEXT;
    """,
    # 7: compute accounting: what a job used (CPU, peak memory, wall time, GPUs).
    """
    ALTER TABLE jobs ADD COLUMN usage BLOB;     -- msgpack roar.model.Usage; NULL: not measured
    """,
]
SCHEMA_VERSION = len(MIGRATIONS)


def statements(script: str) -> list[str]:
    """A migration's statements, one by one (executescript() would COMMIT first)."""
    lines = [line.split("--", 1)[0] for line in script.splitlines()]
    return [s.strip() for s in "\n".join(lines).split(";") if s.strip()]
