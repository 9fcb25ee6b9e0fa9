"""roard: the per-user roar daemon (store, hashing, capture, queries)."""
