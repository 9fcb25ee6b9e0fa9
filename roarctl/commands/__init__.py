"""roarctl's commands, one module per group; roarctl.cli registers them on the click group.

run (run, build), project (init, status, log, show), pipeline (reset, pop, dag, lineage,
inputs, diff, export), metadata (env, label, collection), config, registry (auth, register),
request, daemon, completion; common holds what they share. None imports roarctl.cli: a command
module is a list of commands.
"""
