-- The registry: accounts and their SSH keys, teams, settings, the replay guard, and lineage
-- keyed by content: artifacts by BLAKE3 hash, jobs by canonical id, sessions by hash.

CREATE TABLE users (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    created REAL NOT NULL,
    disabled INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE keys (
    fingerprint TEXT PRIMARY KEY,       -- SHA256:... as `ssh-keygen -l` prints it
    user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    public_key TEXT NOT NULL,           -- the authorized_keys form
    created REAL NOT NULL
) WITHOUT ROWID;
CREATE INDEX keys_by_user ON keys(user_id);
CREATE TABLE teams (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    created REAL NOT NULL
);
CREATE TABLE members (
    team_id INTEGER NOT NULL REFERENCES teams(id) ON DELETE CASCADE,
    user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    PRIMARY KEY (team_id, user_id)
) WITHOUT ROWID;
CREATE INDEX members_by_user ON members(user_id, team_id);
CREATE TABLE settings (
    name TEXT PRIMARY KEY,
    value TEXT NOT NULL
) WITHOUT ROWID;
CREATE TABLE signatures (               -- each signature is accepted once while it is fresh
    digest TEXT PRIMARY KEY,
    expires REAL NOT NULL
) WITHOUT ROWID;
CREATE INDEX signatures_by_expiry ON signatures(expires);

CREATE TABLE artifacts (
    hash TEXT PRIMARY KEY,              -- blake3 hex: the primary index
    size INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE sessions (
    hash TEXT PRIMARY KEY,
    host TEXT NOT NULL,
    started REAL NOT NULL,
    project TEXT
) WITHOUT ROWID;
CREATE TABLE jobs (
    seq INTEGER PRIMARY KEY,            -- in arrival order: io rows append, they do not scatter
    id TEXT NOT NULL UNIQUE,            -- roar.canonical.job_id of the record
    owner_id INTEGER NOT NULL REFERENCES users(id),
    visibility TEXT NOT NULL CHECK (visibility IN ('private', 'team', 'public')),
    team_id INTEGER REFERENCES teams(id),
    session TEXT REFERENCES sessions(hash),
    registered REAL NOT NULL,
    command TEXT NOT NULL,              -- summary columns, copied from the record
    started REAL NOT NULL,
    ended REAL,
    status TEXT NOT NULL,
    kind TEXT NOT NULL,
    exit_code INTEGER,
    step INTEGER,
    record TEXT NOT NULL                -- the canonical roar.model.Job as JSON
);
CREATE INDEX jobs_by_session ON jobs(session, started);
CREATE TABLE io (
    job INTEGER NOT NULL REFERENCES jobs(seq),
    role INTEGER NOT NULL CHECK (role IN (0, 1)),   -- 0: input, 1: output
    hash TEXT NOT NULL REFERENCES artifacts(hash),
    path TEXT NOT NULL,
    PRIMARY KEY (job, role, path)
) WITHOUT ROWID;
CREATE INDEX io_by_hash ON io(hash, role);
