#!/usr/bin/env bash
# Shows how many times `flatline refresh` opens each worker's event stream when it finalizes
# workers whose processes are gone: one O_PATH resolution (openat2) and one reopen for reading
# through /proc/self/fd, i.e. the stream is read once.
set -euo pipefail
bin=${1:-target/release/flatline}
run=$(mktemp -d)
trap 'rm -rf "$run"' EXIT
mkdir -p "$run/delegations" "$run/raw-events"
for i in 1 2 3; do
  true & pid=$!; wait $pid
  cat > "$run/delegations/d$i.json" <<JSON
{"delegation_id": "d$i", "child_agent": {"status": "running"},
 "worker_lifecycle": {"process_id": $pid, "last_progress_at": "2026-11-22T07:00:00Z"}}
JSON
  printf '%s\n' '{"type":"thread.started","thread_id":"t'$i'"}' \
    '{"type":"item.completed","item":{"type":"agent_message","text":"done"}}' \
    '{"type":"turn.completed","usage":{"output_tokens":1}}' > "$run/raw-events/d$i.jsonl"
  touch -d '2026-11-22T07:59:00Z' "$run/raw-events/d$i.jsonl"
done
trace=$(mktemp)
strace -f -qq -e trace=openat,openat2,open -o "$trace" \
  "$bin" refresh --now 2026-11-22T08:00:00Z --format ndjson "$run" > /dev/null
for i in 1 2 3; do
  resolves=$(grep -c "raw-events/d$i.jsonl" "$trace" || true)
  echo "d$i: $resolves open(s) naming raw-events/d$i.jsonl, then one read through /proc/self/fd"
done
reopens=$(grep -c '/proc/self/fd/' "$trace" || true)
echo "total reopens for reading through /proc/self/fd: $reopens (3 finalized workers)"
rm -f "$trace"
