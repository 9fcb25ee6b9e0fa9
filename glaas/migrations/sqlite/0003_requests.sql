-- Training requests (glaas.requests): a request's current revision, every revision's spec, and
-- its append-only events. Accounts marked agent (`glaas admin user add --kind agent`) file,
-- comment, claim and complete, never approve or reject. Runs that name a request are linked to
-- it as they are registered.

ALTER TABLE users ADD COLUMN agent INTEGER NOT NULL DEFAULT 0;
CREATE TABLE requests (
    id INTEGER PRIMARY KEY,             -- shown as R-<id>
    requester_id INTEGER NOT NULL REFERENCES users(id),
    reviewer_id INTEGER NOT NULL REFERENCES users(id),
    state TEXT NOT NULL CHECK (state IN ('pending', 'approved', 'rejected', 'withdrawn',
        'expired', 'claimed', 'completed', 'failed', 'cancelled')),
    revision INTEGER NOT NULL,          -- the current spec's revision (1, 2, ...)
    spec_hash TEXT NOT NULL,            -- sha256 of the current spec's canonical JSON
    created REAL NOT NULL,
    updated REAL NOT NULL,
    expires REAL,                       -- while approved: when the approval lapses
    claimed_by INTEGER REFERENCES users(id)
);
CREATE INDEX requests_by_state ON requests(state, id);
CREATE TABLE request_revisions (
    request_id INTEGER NOT NULL REFERENCES requests(id),
    revision INTEGER NOT NULL,
    spec TEXT NOT NULL,                 -- roar.registry.RequestSpec as canonical JSON
    spec_hash TEXT NOT NULL,
    created REAL NOT NULL,
    PRIMARY KEY (request_id, revision)
) WITHOUT ROWID;
CREATE TABLE request_events (
    seq INTEGER PRIMARY KEY,
    request_id INTEGER NOT NULL REFERENCES requests(id),
    action TEXT NOT NULL,               -- filed, revised, approved, rejected, withdrawn, ...
    state TEXT NOT NULL,                -- the state after it
    actor_id INTEGER REFERENCES users(id),  -- NULL: the registry itself (an approval expired)
    agent INTEGER NOT NULL DEFAULT 0,   -- the actor was an agent account
    at REAL NOT NULL,
    comment TEXT,
    revision INTEGER NOT NULL,
    spec_hash TEXT NOT NULL,
    key TEXT                            -- the fingerprint of the key that signed it
);
CREATE INDEX request_events_by_request ON request_events(request_id, seq);
CREATE TABLE request_runs (
    request_id INTEGER NOT NULL REFERENCES requests(id),
    job_id TEXT NOT NULL,               -- jobs.id of a registered run that named the request
    PRIMARY KEY (request_id, job_id)
) WITHOUT ROWID;
CREATE TABLE webhook_deliveries (       -- glaas.webhooks: each POST to make, until it is made
    id INTEGER PRIMARY KEY,
    url TEXT NOT NULL,
    event TEXT NOT NULL,                -- request.<action>
    body TEXT NOT NULL,                 -- the JSON sent
    created REAL NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_at REAL NOT NULL,              -- when to try (again)
    taken_until REAL,                   -- a worker is trying it until then
    error TEXT,                         -- the last failure
    done REAL                           -- delivered (or given up: error says why) at
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries(done, next_at);
