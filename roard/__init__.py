"""roard: the per-user roar daemon (store, hashing, capture, queries)."""

__version__ = "0.1.0"
