"""roar's core, shared by roard (the daemon), roarctl (the CLI) and glaas (the registry): the wire
messages, the versioned record of jobs and artifacts, paths, configuration, projects, hashing and
redaction. It imports none of those packages."""

__version__ = "0.1.0"
