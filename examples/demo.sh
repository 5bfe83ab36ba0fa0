#!/usr/bin/env bash
# The quick start: a small git project (fixtures/repos/quickstart) with a pushed commit, an uncommitted
# change and an untracked file, sent as a task to the embedded default server, enqueued, reproduced and run
# by the launcher; then its log and final status.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-.venv/bin}
demo=.demo/quickstart
rm -rf .demo && mkdir -p .demo
cp -r fixtures/repos/quickstart "$demo"
g() { git -C "$demo" -c user.name=demo -c user.email=demo@example.com "$@"; }
g init -q -b main && g add -A && g commit -q -m "quickstart"
git init -q --bare -b main .demo/origin.git
g remote add origin "$PWD/.demo/origin.git" && g push -q -u origin main
sed -i 's/default=0.1/default=0.2/' "$demo/train.py"   # uncommitted: travels in the patch
echo "seed: 7" > "$demo/config.yaml"                      # untracked: travels too
echo "== clearml-task: capture the project (commit + local changes) and enqueue it"
"$BIN/clearml-task" --project examples --name quickstart --folder "$demo" --script train.py \
    --queue default --args epochs=20 --output json > .demo/task.json
task=$("$BIN/python" -c 'import json; print(json.load(open(".demo/task.json"))["id"])')
"$BIN/clearml-launcher" queues
echo "== clearml-launcher: reproduce and run task $task"
"$BIN/clearml-launcher" execute --id "$task"
echo "== its log, as stored on the server"
"$BIN/clearml-launcher" logs "$task" | grep -v '^launcher:\|^workspace:\|^environment:'
"$BIN/clearml-launcher" tasks --status completed failed | head -n 5
echo "== to look at it in a browser: $BIN/clearml-launcher ui   (serves the embedded data dir on loopback)"
