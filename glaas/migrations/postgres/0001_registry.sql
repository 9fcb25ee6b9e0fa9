-- The registry: accounts and their SSH keys, teams, settings, the replay guard, and lineage
-- keyed by content: artifacts by BLAKE3 hash, jobs by canonical id, sessions by hash.

CREATE TABLE users (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    created DOUBLE PRECISION NOT NULL,
    disabled SMALLINT NOT NULL DEFAULT 0
);
CREATE TABLE keys (
    fingerprint TEXT PRIMARY KEY,       -- SHA256:... as `ssh-keygen -l` prints it
    user_id BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    public_key TEXT NOT NULL,           -- the authorized_keys form
    created DOUBLE PRECISION NOT NULL
);
CREATE INDEX keys_by_user ON keys(user_id);
CREATE TABLE teams (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    created DOUBLE PRECISION NOT NULL
);
CREATE TABLE members (
    team_id BIGINT NOT NULL REFERENCES teams(id) ON DELETE CASCADE,
    user_id BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    PRIMARY KEY (team_id, user_id)
);
CREATE INDEX members_by_user ON members(user_id, team_id);
CREATE TABLE settings (
    name TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE signatures (               -- each signature is accepted once while it is fresh
    digest TEXT PRIMARY KEY,
    expires DOUBLE PRECISION NOT NULL
);
CREATE INDEX signatures_by_expiry ON signatures(expires);

CREATE TABLE artifacts (
    hash TEXT COLLATE "C" PRIMARY KEY,             -- blake3 hex: the primary index
    size BIGINT NOT NULL
);
CREATE TABLE sessions (
    hash TEXT COLLATE "C" PRIMARY KEY,
    host TEXT NOT NULL,
    started DOUBLE PRECISION NOT NULL,
    project TEXT
);
CREATE TABLE jobs (
    seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,  -- arrival order: io rows append
    id TEXT COLLATE "C" NOT NULL UNIQUE,           -- roar.canonical.job_id of the record
    owner_id BIGINT NOT NULL REFERENCES users(id),
    visibility TEXT NOT NULL CHECK (visibility IN ('private', 'team', 'public')),
    team_id BIGINT REFERENCES teams(id),
    session TEXT COLLATE "C" REFERENCES sessions(hash),
    registered DOUBLE PRECISION NOT NULL,
    command TEXT NOT NULL,              -- summary columns, copied from the record
    started DOUBLE PRECISION NOT NULL,
    ended DOUBLE PRECISION,
    status TEXT NOT NULL,
    kind TEXT NOT NULL,
    exit_code INTEGER,
    step INTEGER,
    record TEXT NOT NULL                -- the canonical roar.model.Job as JSON
);
CREATE INDEX jobs_by_session ON jobs(session, started);
CREATE TABLE io (
    job BIGINT NOT NULL REFERENCES jobs(seq),
    role SMALLINT NOT NULL CHECK (role IN (0, 1)),   -- 0: input, 1: output
    hash TEXT COLLATE "C" NOT NULL REFERENCES artifacts(hash),
    path TEXT NOT NULL,
    PRIMARY KEY (job, role, path)
);
CREATE INDEX io_by_hash ON io(hash, role);
