-- Compute accounting: what each registered job used (from its record's usage, written with the
-- job at ingest) and the price table that turns it into cost (glaas admin price set).

CREATE TABLE job_usage (
    job BIGINT PRIMARY KEY REFERENCES jobs(seq),
    project TEXT,                       -- the job's project (its directory's name)
    cpu_seconds DOUBLE PRECISION NOT NULL,      -- user + system, whole process tree
    gpu_seconds DOUBLE PRECISION NOT NULL,      -- GPUs visible x wall time
    gpus INTEGER NOT NULL,
    gpu_model TEXT,                     -- as nvidia-smi names it, e.g. "NVIDIA H100 80GB HBM3"
    max_rss_bytes BIGINT NOT NULL,
    wall_seconds DOUBLE PRECISION NOT NULL
);
CREATE TABLE prices (
    resource TEXT COLLATE "C" PRIMARY KEY,      -- cpu | gpu (any GPU) | gpu:NAME (a model containing NAME)
    per_hour DOUBLE PRECISION NOT NULL,         -- in the registry's currency
    updated DOUBLE PRECISION NOT NULL
);
CREATE INDEX jobs_by_started ON jobs(started);  -- the report's window
