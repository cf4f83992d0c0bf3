#!/usr/bin/env bash
# Checks the static binary: no NEEDED library in its dynamic section, and it runs in an
# empty root holding only itself and a run directory (no /proc, no libc, no /etc).
set -euo pipefail
bin=${1:?usage: static-check.sh PATH_TO_STATIC_BINARY}
if readelf -d "$bin" | grep -q NEEDED; then
  echo "static-check: $bin needs shared libraries:" >&2
  readelf -d "$bin" | grep NEEDED >&2
  exit 1
fi
echo "static-check: readelf -d lists no NEEDED library"
if [ "$(id -u)" -ne 0 ]; then
  if [ -n "${CI:-}" ]; then echo "static-check: chroot needs root, and CI must skip nothing" >&2; exit 1; fi
  echo "SKIPPED: the empty-root run needs root (chroot)"
  exit 0
fi
root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
cp "$bin" "$root/flatline"
cp -r examples/run "$root/run"
out=$(chroot "$root" /flatline status --format ndjson --now 2026-11-22T08:00:00Z /run)
count=$(printf '%s\n' "$out" | grep -c '"kind":"delegation"')
if [ "$count" -ne 9 ]; then
  echo "static-check: expected 9 delegation records in the empty root, got $count" >&2
  printf '%s\n' "$out" >&2
  exit 1
fi
printf '%s\n' "$out" | grep -q '"delegation_id":"d03-stale","task_card_id":"card-api","work_kind":"implementation","status":"running","state":"stale"'
echo "static-check: runs in an empty root (chroot with only the binary and a run directory): $count records"
