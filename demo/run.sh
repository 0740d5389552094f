#!/usr/bin/env bash
# Runs lifeboat's main job on the bundled demo: generates small real backups (two good, one corrupted, one
# stale), runs every drill, and shows the history kept in SQLite (demo/state/lifeboat.db).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --quiet --release -p lifeboat -p lifeboat-fixtures
target/release/lifeboat-fixtures demo demo/backups
lb() { target/release/lifeboat --config demo/lifeboat.toml "$@"; }
# Alerts go to a local webhook receiver unless you point LIFEBOAT_DEMO_WEBHOOK at your own endpoint.
if [ -z "${LIFEBOAT_DEMO_WEBHOOK:-}" ]; then
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  mkdir -p demo/state
  python3 demo/receiver.py "$port" demo/state/webhooks &
  receiver=$!
  trap 'kill $receiver 2>/dev/null || true' EXIT
  export LIFEBOAT_DEMO_WEBHOOK="http://127.0.0.1:$port/lifeboat"
  sleep 0.3
fi
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
echo "== lifeboat drill vm-boot (a PBS VM booted in an isolated QEMU, checked, torn down)"
vm_code=0
if command -v qemu-system-x86_64 >/dev/null 2>&1 || [ -x /opt/lifeboat-qemu/usr/bin/qemu-system-x86_64 ]; then
  img=$(bash fixtures/vm/build-image.sh target/vm-fixture)
  target/release/lifeboat-fixtures vm-snapshot "$img" demo/backups/pbs-vm
  set +e
  lb drill vm-boot
  vm_code=$?
  set -e
else
  echo "QEMU is not installed, so the VM drill is skipped. Install it with 'sudo apt-get install qemu-system-x86'"
  echo "(on Debian 12 with a newer qemu-utils, 'bash scripts/test' unpacks it under /opt/lifeboat-qemu instead,"
  echo "leaving qemu-img alone), then run demo/run.sh again."
fi
echo
echo "== lifeboat watch --all (stale backups, failed jobs; alerts go to the webhook)"
set +e
lb watch --all
set -e
echo
echo "== lifeboat outbox --all (every alert, delivered or not)"
lb outbox --all --limit 10
echo
echo "== lifeboat history"
lb history --limit 8
echo
echo "== lifeboat report (the current quarter, as HTML) and verify-ledger"
lb report --period current-quarter --format html --output demo/report.html
lb verify-ledger --no-evidence | tail -1
echo "open demo/report.html in a browser (print it to PDF for an auditor)"
if [ "$vm_code" -ne 0 ]; then exit "$vm_code"; fi
if [ "$code" -eq 1 ]; then exit 0; else exit "$code"; fi
