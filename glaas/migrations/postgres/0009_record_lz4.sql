-- A job's record (~2.5 KB of JSON) is over PostgreSQL's 2 KB TOAST threshold, so each one is
-- compressed as it is stored, by pglz unless told otherwise: 96 us of the database's CPU a job
-- at ingest, and lz4 takes ~55 (a 20,000-job load in one process); records stay compressed.
-- It applies to records stored from now on. A PostgreSQL built without lz4 keeps pglz, and one
-- older than 14 (no SET COMPRESSION: run as a string, so that its syntax error is caught) too.
DO $$
BEGIN
    EXECUTE 'ALTER TABLE jobs ALTER COLUMN record SET COMPRESSION lz4';
EXCEPTION WHEN feature_not_supported OR syntax_error THEN
    NULL;
END
$$;
