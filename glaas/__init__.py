"""GLaaS, the lineage registry: stores what roar recorded (never file contents), keyed by
content hash, for a team. It imports roar (the shared model and wire contract) and nothing of
roard or roarctl."""
