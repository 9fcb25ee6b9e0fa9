-- Each io row carries its artifact's size, and the artifacts table goes: an artifact is only
-- ever seen through the io rows of visible jobs, so the table added nothing a read needs but
-- the size, and cost every ingest one random-key B-tree insert per new artifact. The ingest
-- writes every row of a hash with the size first stored for it (glaas.store write_batch), so
-- any row's size is the artifact's. io_by_hash (hash, role) stays as it is.
ALTER TABLE io ADD COLUMN size BIGINT;
UPDATE io SET size = a.size FROM artifacts a WHERE a.hash = io.hash;
-- every io row has its artifact (the ingest wrote it first); 0 if one ever did not
UPDATE io SET size = 0 WHERE size IS NULL;
ALTER TABLE io ALTER COLUMN size SET NOT NULL;
DROP TABLE artifacts;
