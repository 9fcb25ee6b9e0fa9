#!/usr/bin/env bash
# A 3-step pipeline under roar: preprocess -> train -> evaluate, in a fresh git repository,
# registered as it runs into a team registry (GLaaS) the demo starts itself.
#
# The demo's roar (its roard, store, config) and its registry live in the demo's directory, so
# your own roar and its settings are left alone; both are stopped when the demo ends.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
bin=${ROAR_BIN:-$here/../.venv/bin}
work=$(mktemp -d "${TMPDIR:-/tmp}/roar-demo.XXXXXX")
project=$work/pipeline
roar_home=$work/roar-home
mkdir -p -m 700 "$roar_home/run"
export XDG_RUNTIME_DIR=$roar_home/run XDG_CONFIG_HOME=$roar_home/config
export XDG_DATA_HOME=$roar_home/data XDG_STATE_HOME=$roar_home/state
glaas_pid=
cleanup() {
    "$bin/roarctl" daemon stop >/dev/null 2>&1 || true
    if [ -n "$glaas_pid" ]; then kill "$glaas_pid" 2>/dev/null || true; wait "$glaas_pid" 2>/dev/null || true; fi
}
trap cleanup EXIT

# The registry: SQLite in the demo's directory, on a free port, with one user whose SSH key
# the demo makes.
port=$("$bin/python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
registry=http://127.0.0.1:$port
db=sqlite://$work/glaas.db
ssh-keygen -q -t ed25519 -N "" -C roar-demo -f "$roar_home/id_ed25519"
"$bin/glaas" admin --db "$db" user add demo --key-file "$roar_home/id_ed25519.pub" >/dev/null
"$bin/glaas" serve --db "$db" --port "$port" 2>"$work/glaas.log" &
glaas_pid=$!
"$bin/python" - "$registry" <<'PY'
import sys, time, httpx
for _ in range(600):
    try:
        if httpx.get(sys.argv[1] + "/api/v1/health").status_code == 200:
            sys.exit(0)
    except httpx.TransportError:
        time.sleep(0.05)
sys.exit("glaas serve did not start: see glaas.log in the demo directory")
PY

mkdir "$project" && cd "$project"
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
echo "== demo project: $project (registry: $registry)"
set -x
"$bin/roarctl" config set registry.url "$registry"
"$bin/roarctl" auth login --key "$roar_home/id_ed25519"
"$bin/roarctl" config set registry.auto true
"$bin/roarctl" run python3 preprocess.py raw.csv clean.csv
"$bin/roarctl" run python3 train.py clean.csv model.json
"$bin/roarctl" run python3 evaluate.py clean.csv model.json metrics.json
"$bin/roarctl" log
"$bin/roarctl" dag
"$bin/roarctl" lineage metrics.json
"$bin/roarctl" show metrics.json
"$bin/roarctl" show "$("$bin/roarctl" log -n 1 --json | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["id"])')"
# the jobs went to the registry in the background; register names metrics.json's page there
"$bin/roarctl" register metrics.json
metrics=$("$bin/roarctl" show metrics.json --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["artifact"]["hash"])')
"$bin/roarctl" lineage "$metrics" --remote
"$bin/roarctl" status
set +x
echo "== metrics.json in the registry: $("$bin/roarctl" register metrics.json --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["targets"][0]["url"])')"
echo "   (the demo stops its registry now; serve it again with: $bin/glaas serve --db $db --port $port)"
