-- io's rows are written only by a batch's ingest, in the transaction that has just written
-- their job and artifacts (glaas.store write_batch), and no job or artifact is ever deleted:
-- the foreign keys re-checked what that already guarantees, one lookup per row per key.
-- SQLite cannot drop a constraint: the table is rebuilt without them (same columns and keys).
CREATE TABLE io_unchecked (
    job INTEGER NOT NULL,               -- jobs(seq)
    role INTEGER NOT NULL CHECK (role IN (0, 1)),   -- 0: input, 1: output
    hash TEXT NOT NULL,                 -- artifacts(hash)
    path TEXT NOT NULL,
    PRIMARY KEY (job, role, path)
) WITHOUT ROWID;
INSERT INTO io_unchecked (job, role, hash, path) SELECT job, role, hash, path FROM io;
DROP TABLE io;
ALTER TABLE io_unchecked RENAME TO io;
CREATE INDEX io_by_hash ON io(hash, role);
