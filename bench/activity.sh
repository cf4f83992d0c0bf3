#!/usr/bin/env bash
# bench/activity.sh: the activity sample of SPEC §8 / §11: 200 live workers with trees of 5
# processes (a bash and 4 sleeps each), `status` with and without activity, against a floor
# that scans /proc once and reads stat and io of every tree process once (bench/activity-floor.c).
# Usage: bench/activity.sh [BIN]   (default target/release/flatline). bench/run.sh calls it.
set -euo pipefail
export LC_ALL=C
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
bin=$(realpath "${1:-target/release/flatline}")
[ -x "$bin" ] || { echo "bench: $bin is not built (make build)" >&2; exit 1; }
work=$(mktemp -d "${TMPDIR:-/tmp}/flatline-activity.XXXXXX")
workers=()
cleanup() {
  if ((${#workers[@]})); then
    # The trees, by pid: each worker's sleeps first, then the worker.
    local children=()
    for w in "${workers[@]}"; do
      read -ra kids < "/proc/$w/task/$w/children" 2>/dev/null || true
      children+=("${kids[@]}")
    done
    if ((${#children[@]})); then kill -KILL "${children[@]}" 2>/dev/null || true; fi
    { kill -KILL "${workers[@]}"; wait "${workers[@]}"; } 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
cc -O2 -o "$work/gen" bench/gen.c
cc -O2 -o "$work/abrun" bench/abrun.c
cc -O2 -o "$work/floor" bench/activity-floor.c

echo "## activity sample of 200 live workers, trees of 5 processes"
launch_ms=$(date +%s%3N)
for _ in $(seq 200); do
  bash -c 'sleep 900 & sleep 900 & sleep 900 & sleep 900 & wait' &
  workers+=($!)
done
sleep 0.5
started_ms=$(date +%s%3N)
printf '%s\n' "${workers[@]}" | "$work/gen" "$work/live" --live "$launch_ms" "$started_ms" "$started_ms"
check=$("$bin" status --format ndjson --stale-after 1h "$work/live" | jq -s '[.[] | select(.activity.processes == 5)] | length')
echo "  check: $check of 200 workers sampled with 5 processes"
"$work/abrun" 31 3 \
  status-activity "$bin" status --format ndjson --stale-after 1h "$work/live" :: \
  status-no-activity "$bin" status --format ndjson --stale-after 1h --no-activity "$work/live" :: \
  floor "$work/floor" "${workers[@]}" > "$work/results.tsv"
awk -F'\t' '{ printf "  %-20s median %8.3f ms p90 %8.3f ms (min %.3f, max %.3f; %d runs) user %.1f ms sys %.1f ms\n", $1, $3, $11, $4, $5, $2, $6, $7 }' "$work/results.tsv"
awk -F'\t' '
  $1 == "status-activity" { a = $3 } $1 == "status-no-activity" { n = $3 } $1 == "floor" { f = $3 }
  END {
    printf "  activity costs %.3f ms (%.1f µs per worker); floor %.3f ms (%.1f µs per worker): %.2f × floor (target ≤ 2 ×)\n",
      a - n, (a - n) * 1000 / 200, f, f * 1000 / 200, (a - n) / f
  }' "$work/results.tsv"
