#!/usr/bin/env bash
# Wall time of `flatline reclaim --grace 1s` over N workers that ignore SIGTERM (so every one
# needs SIGKILL after the grace), several runs, against what N × grace would be (the seed's
# one-worker-at-a-time reclaim). Usage: bench/reclaim.sh [BIN] [N] [RUNS]
# Every run must report all N workers `killed`, or the script fails. Workers left over by a
# failed or interrupted run are killed and the temp directories removed on exit.
set -euo pipefail
bin=${1:-target/release/flatline}
n=${2:-100}
runs=${3:-5}
boot_id=$(cat /proc/sys/kernel/random/boot_id)
pid_ns=$(stat -L -c %i /proc/self/ns/pid)
times=()
pids=()
run=
cleanup() {
  if ((${#pids[@]})); then kill -KILL "${pids[@]}" 2>/dev/null || true; fi
  if [ -n "$run" ]; then rm -rf "$run"; fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
for r in $(seq 1 "$runs"); do
  run=$(mktemp -d "${TMPDIR:-/tmp}/flatline-reclaim.XXXXXX")
  mkdir -p "$run/delegations"
  pids=()
  for i in $(seq 1 "$n"); do
    sh -c "trap '' TERM; exec sleep 600" &
    pids+=($!)
    disown $!
  done
  # Wait (10 s at most) until every worker has exec'd sleep with TERM ignored (bit 15 in
  # SigIgn).
  deadline=$((SECONDS + 10))
  for pid in "${pids[@]}"; do
    until grep -q '^SigIgn:.*[4-7cdef]...$' "/proc/$pid/status" 2>/dev/null &&
          [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = sleep ]; do
      if ((SECONDS > deadline)); then
        echo "reclaim.sh: worker $pid did not start ignoring SIGTERM" >&2
        exit 1
      fi
    done
  done
  i=0
  for pid in "${pids[@]}"; do
    ticks=$(awk '{sub(/.*\) /, ""); print $20}' "/proc/$pid/stat")
    printf '{"delegation_id":"w%03d","child_agent":{"status":"running"},"worker_lifecycle":{"process_id":%d,"last_progress_at":"2020-01-01T00:00:00Z","process_fingerprint":{"start_ticks":%d,"boot_id":"%s","pid_ns":%d}}}\n' \
      "$i" "$pid" "$ticks" "$boot_id" "$pid_ns" > "$run/delegations/w$(printf %03d $i).json"
    i=$((i + 1))
  done
  start=$EPOCHREALTIME
  "$bin" reclaim --grace 1s --format ndjson "$run" > "$run/out.ndjson"
  end=$EPOCHREALTIME
  killed=$(grep -c '"termination":"killed"' "$run/out.ndjson" || true)
  ms=$(awk -v s="$start" -v e="$end" 'BEGIN { printf "%d", (e - s) * 1000 }')
  times+=("$ms")
  echo "run $r: $n workers reclaimed in ${ms} ms ($killed killed)"
  if [ "$killed" -ne "$n" ]; then
    echo "reclaim.sh: only $killed of $n workers were reported killed" >&2
    exit 1
  fi
  for pid in "${pids[@]}"; do
    if [ -e "/proc/$pid" ] && ! grep -q '^State:.*[ZX]' "/proc/$pid/status" 2>/dev/null; then
      echo "reclaim.sh: worker $pid survived" >&2
      exit 1
    fi
  done
  pids=()
  rm -rf "$run"
  run=
done
sorted=($(printf '%s\n' "${times[@]}" | sort -n))
median=${sorted[$(( ${#sorted[@]} / 2 ))]}
p90=${sorted[$(( (${#sorted[@]} * 9 + 9) / 10 - 1 ))]}   # nearest rank
echo "reclaim: $n TERM-ignoring workers, --grace 1s: median ${median} ms (p90 ${p90}, min ${sorted[0]}, max ${sorted[-1]}); one worker at a time would be $n × 1 s = ${n} s; target ≤ 1500 ms"
