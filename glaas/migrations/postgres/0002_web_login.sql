-- The web pages' login: one-time links (roarctl auth web) and the sessions they open. Only the
-- SHA-256 of each token is stored; a row names the key that signed the link's request, so
-- removing a key (or disabling its user) ends its web sessions too.

CREATE TABLE web_links (
    digest TEXT PRIMARY KEY,            -- sha256 hex of the token in the link
    fingerprint TEXT NOT NULL,          -- the key that asked for it
    expires DOUBLE PRECISION NOT NULL
);
CREATE TABLE web_sessions (
    digest TEXT PRIMARY KEY,            -- sha256 hex of the session cookie's value
    fingerprint TEXT NOT NULL,
    created DOUBLE PRECISION NOT NULL,
    expires DOUBLE PRECISION NOT NULL
);
CREATE INDEX web_sessions_by_expiry ON web_sessions(expires);
