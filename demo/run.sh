#!/usr/bin/env bash
# A 3-step pipeline under roar: preprocess -> train -> evaluate, in a fresh git repository.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
bin=${ROAR_BIN:-$here/../.venv/bin}
work=$(mktemp -d "${TMPDIR:-/tmp}/roar-demo.XXXXXX")
cd "$work"
# Use the real interpreter: a pyenv shim is a bash script that runs a dozen processes first.
real_python=$(python3 -c 'import sys; print(sys.executable)')
export PATH="$(dirname "$real_python"):$PATH"
git init -q . && cp "$here"/preprocess.py "$here"/train.py "$here"/evaluate.py .
python3 - <<'PY'
import random
random.seed(7)
with open("raw.csv", "w") as f:
    f.write("x,y\n")
    for i in range(200):
        x = random.uniform(0, 100)
        f.write(f"{x:.3f},{'' if i % 17 == 0 else f'{3 * x / 10 + 2 + random.gauss(0, 0.5):.3f}'}\n")
PY
git add . && git -c user.name=demo -c user.email=demo@example.com commit -qm "demo pipeline"
echo "== demo project: $work"
set -x
"$bin/roarctl" run python3 preprocess.py raw.csv clean.csv
"$bin/roarctl" run python3 train.py clean.csv model.json
"$bin/roarctl" run python3 evaluate.py clean.csv model.json metrics.json
"$bin/roarctl" log
"$bin/roarctl" dag
"$bin/roarctl" lineage metrics.json
"$bin/roarctl" show metrics.json
"$bin/roarctl" show "$("$bin/roarctl" log -n 1 --json | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["id"])')"
