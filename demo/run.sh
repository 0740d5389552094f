#!/usr/bin/env bash
# Runs lifeboat's main job on the bundled demo: generates small real backups (two good, one corrupted, one
# stale), runs every drill, and shows the history kept in SQLite (demo/state/lifeboat.db).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --quiet --release -p lifeboat -p lifeboat-fixtures
target/release/lifeboat-fixtures demo demo/backups
lb() { target/release/lifeboat --config demo/lifeboat.toml "$@"; }
echo
echo "== lifeboat check-config"
lb check-config
echo
echo "== lifeboat snapshots app-archives"
lb snapshots app-archives
echo
echo "== lifeboat drill --all"
set +e
lb drill --all
code=$?
set -e
echo
echo "exit code $code (1 = at least one drill failed: here the corrupted and the stale backups, as intended)"
echo
echo "== lifeboat history"
lb history --limit 8
echo
echo "== lifeboat report (the current quarter, as HTML) and verify-ledger"
lb report --period current-quarter --format html --output demo/report.html
lb verify-ledger --no-evidence | tail -1
echo "open demo/report.html in a browser (print it to PDF for an auditor)"
if [ "$code" -eq 1 ]; then exit 0; else exit "$code"; fi
