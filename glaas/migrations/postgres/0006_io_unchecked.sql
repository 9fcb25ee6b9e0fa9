-- io's rows are written only by a batch's ingest, in the transaction that has just written
-- their job and artifacts (glaas.store write_batch), and no job or artifact is ever deleted:
-- the foreign keys re-checked what that already guarantees, one lookup per row per key
-- (measured: half the time of an io insert, 115 of 225 ms for 5,000 rows).
ALTER TABLE io DROP CONSTRAINT IF EXISTS io_job_fkey;
ALTER TABLE io DROP CONSTRAINT IF EXISTS io_hash_fkey;
