-- Reserved for the requests branch (issue 14), whose 0003 adds this same column among its
-- tables; an integration keeps that file and drops this one. Compute accounting (0004) reads it
-- to tell an agent's jobs from a person's.
ALTER TABLE users ADD COLUMN agent INTEGER NOT NULL DEFAULT 0;
