-- Compute accounting: what each registered job used (from its record's usage, written with the
-- job at ingest) and the price table that turns it into cost (glaas admin price set).

CREATE TABLE job_usage (
    job INTEGER PRIMARY KEY REFERENCES jobs(seq),
    project TEXT,                       -- the job's project (its directory's name)
    cpu_seconds REAL NOT NULL,      -- user + system, whole process tree
    gpu_seconds REAL NOT NULL,      -- GPUs visible x wall time
    gpus INTEGER NOT NULL,
    gpu_model TEXT,                     -- as nvidia-smi names it, e.g. "NVIDIA H100 80GB HBM3"
    max_rss_bytes INTEGER NOT NULL,
    wall_seconds REAL NOT NULL
);
CREATE TABLE prices (
    resource TEXT PRIMARY KEY,      -- cpu | gpu (any GPU) | gpu:NAME (a model containing NAME)
    per_hour REAL NOT NULL,         -- in the registry's currency
    updated REAL NOT NULL
);
CREATE INDEX jobs_by_started ON jobs(started);  -- the report's window
