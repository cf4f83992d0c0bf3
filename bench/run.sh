#!/usr/bin/env bash
# bench/run.sh: every measurement of issue 7 (SPEC §8), side by side, in one run; prints each
# figure as it is measured and a summary table at the end. `make bench` builds the release
# binary and runs this. Usage: bench/run.sh [BIN]   (default target/release/flatline)
#
# Inputs are generated deterministically (bench/gen.c) in one temp directory
# (${TMPDIR:-/tmp}/flatline-bench.*), reused across measurements and removed on exit, with
# every worker process this script spawned. Timing is bench/abrun.c: commands alternate
# round by round, warm-up rounds first (page cache warm), medians with min–max.
# Environment: BENCH_SIZES (default "1000 10000 100000") to try the script on smaller runs.
set -euo pipefail
export LC_ALL=C

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
bin=$(realpath "${1:-target/release/flatline}")
[ -x "$bin" ] || { echo "bench: $bin is not built (make build)" >&2; exit 1; }
sizes=${BENCH_SIZES:-1000 10000 100000}
now=2026-11-22T08:00:00Z   # --now for the generated runs: their states never change
now_s=1795334400

work=$(mktemp -d "${TMPDIR:-/tmp}/flatline-bench.XXXXXX")
workers=()
cleanup() {
  if ((${#workers[@]})); then
    { kill -KILL "${workers[@]}"; wait "${workers[@]}"; } 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP

failures=()
summary=()   # rows of the final table: measurement|flatline|baseline|ratio|target|verdict
row() { summary+=("$1|$2|$3|$4|$5|$6"); }
fail() { failures+=("$1"); echo "FAILED: $1"; }

# ---------------------------------------------------------------------------------------------
# Tools and machine
cc -O2 -o "$work/gen" bench/gen.c
cc -O2 -o "$work/floor" bench/floor.c
cc -O2 -o "$work/abrun" bench/abrun.c
gen=$work/gen floor=$work/floor abrun=$work/abrun

echo "# flatline benchmarks ($(date -u +%Y-%m-%dT%H:%MZ))"
echo "machine: $(nproc) cores ($(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo)), Linux $(uname -r), $(awk '/MemTotal/ {printf "%.0f GiB", $2 / 1048576}' /proc/meminfo) RAM"
echo "filesystems: repository $(findmnt -n -o FSTYPE -T "$root" 2>/dev/null || stat -f -c %T "$root"), temp dir $(findmnt -n -o FSTYPE -T "$work" 2>/dev/null || stat -f -c %T "$work") ($work); page cache warm (warm-up rounds before timing)"
echo "binary: $bin ($("$bin" --version 2>/dev/null | head -1)), built from $(git rev-parse --short HEAD 2>/dev/null || echo '?')$(git diff --quiet HEAD -- src 2>/dev/null || echo ' + uncommitted changes in src/'); jq $(jq --version); $(cc --version | head -1)"
echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg) (other processes on the machine add noise to every figure)"
echo

# measure RUNS WARMUP NAME CMD... [:: NAME CMD...]...: runs abrun, keeps its lines in
# $work/results.tsv and prints them for people.
measure() {
  local out
  out=$("$abrun" "$@")
  printf '%s\n' "$out" >> "$work/results.tsv"
  printf '%s\n' "$out" | awk -F'\t' '{
    printf "  %-22s median %10.3f ms  (min %.3f, max %.3f; %d runs)  user %.1f ms  sys %.1f ms  peak RSS %.1f MiB\n",
      $1, $3, $4, $5, $2, $6, $7, $8 / 1024 }'
}
# field NAME COLUMN: one figure of a measured command (3 median, 4 min, 5 max, 8 RSS KiB).
field() { awk -F'\t' -v n="$1" -v c="$2" '$1 == n { v = $c } END { print v }' "$work/results.tsv"; }
# calc EXPR: floating-point arithmetic.
calc() { awk "BEGIN { printf \"%.2f\", $1 }"; }
ms() { printf '%s ms (%s–%s)' "$(field "$1" 3)" "$(field "$1" 4)" "$(field "$1" 5)"; }
json_bytes() { find "$1/delegations" -type f -printf '%s\n' | awk '{ s += $1 } END { print s + 0 }'; }
# Kills (SIGKILL) and reaps the workers this script spawned, quietly.
stop_workers() {
  if ((${#workers[@]})); then
    { kill -KILL "${workers[@]}"; wait "${workers[@]}"; } 2>/dev/null || true
  fi
  workers=()
}
verdict() { if awk "BEGIN { exit !($1) }"; then echo met; else echo "NOT met"; fi; }

# ---------------------------------------------------------------------------------------------
echo "## status --format ndjson vs the I/O floor vs jq"
for n in $sizes; do
  "$gen" "$work/r$n" "$n" "$now_s"
done
jq_run() { # the jq pipeline over one run directory, as one command line for abrun
  printf '%s' 'printf "%s\0" "$1"/delegations/*.json | xargs -0 -s 1000000 jq -c --arg now "$2" --arg run_dir "$1" -f "$3"'
}
for n in $sizes; do
  run=$work/r$n
  # Equivalence of the jq program on this data (1k and 10k; 100k is the same generator).
  if [ "$n" -le 10000 ]; then
    "$bin" status --format ndjson --now "$now" "$run" > "$work/flatline.out"
    bash -c "$(jq_run)" sh "$run" "$now" bench/status.jq > "$work/jq.out"
    jq -r '[.path, .state] | @tsv' "$work/flatline.out" > "$work/flatline.state"
    jq -r '[.path, .state] | @tsv' "$work/jq.out" > "$work/jq.state"
    jq -cS . "$work/flatline.out" > "$work/flatline.canon"
    jq -cS . "$work/jq.out" > "$work/jq.canon"
    total=$(wc -l < "$work/flatline.state")
    same_state=$(paste -d'\n' "$work/flatline.state" "$work/jq.state" | awk 'NR % 2 { a = $0; next } a == $0 { s++ } END { print s + 0 }')
    same_record=$(paste -d'\n' "$work/flatline.canon" "$work/jq.canon" | awk 'NR % 2 { a = $0; next } a == $0 { s++ } END { print s + 0 }')
    fields=$(head -1 "$work/flatline.out" | jq 'keys | length')
    echo "check: bench/status.jq vs flatline at $n: state identical for $same_state/$total files; whole record ($fields fields) identical for $same_record/$total; states: $(cut -f2 "$work/flatline.state" | sort | uniq -c | awk '{printf "%s%s %s", sep, $1, $2; sep = ", "}')"
    if [ "$same_state" -ne "$n" ] || [ "$total" -ne "$n" ] || [ "$(wc -l < "$work/jq.state")" -ne "$n" ]; then
      fail "bench/status.jq does not compute flatline's states at $n"
    fi
    rm -f "$work"/flatline.* "$work"/jq.*
  fi
  case $n in
    1000) runs=21 warm=2 jq_runs=11 ;;
    10000) runs=21 warm=2 jq_runs=5 ;;
    *) runs=11 warm=1 jq_runs=3 ;;
  esac
  echo "$n delegations ($(du -sk "$run/delegations" | cut -f1) KiB on disk; $(json_bytes "$run") bytes of JSON):"
  measure "$runs" "$warm" \
    "floor-$n" "$floor" "$run/delegations" :: \
    "status-$n" "$bin" status --format ndjson --now "$now" "$run" :: \
    "jq-$n" "runs=$jq_runs" bash -c "$(jq_run)" sh "$run" "$now" bench/status.jq
  floor_ms=$(field "floor-$n" 3) status_ms=$(field "status-$n" 3) jq_ms=$(field "jq-$n" 3)
  vs_floor=$(calc "$status_ms / $floor_ms") vs_jq=$(calc "$jq_ms / $status_ms")
  cpu_floor=$(calc "($(field "status-$n" 6) + $(field "status-$n" 7)) / ($(field "floor-$n" 6) + $(field "floor-$n" 7))")
  echo "  per file: floor $(calc "$floor_ms * 1000 / $n") µs, status $(calc "$status_ms * 1000 / $n") µs, jq $(calc "$jq_ms * 1000 / $n") µs; status = ${vs_floor} × floor (CPU time user+sys: ${cpu_floor} ×); jq = ${vs_jq} × status"
  if [ "$n" -ge 10000 ]; then
    row "status, $n delegations, vs I/O floor" "$(ms "status-$n")" "floor $(ms "floor-$n")" "${vs_floor} × (CPU time ${cpu_floor} ×)" "≤ 2 × floor" "$(verdict "$vs_floor <= 2")"
  fi
  row "status, $n delegations, vs jq" "$(ms "status-$n")" "jq $(ms "jq-$n")" "${vs_jq} × faster" "≥ 4 × faster" "$(verdict "$vs_jq >= 4")"
done
echo

# ---------------------------------------------------------------------------------------------
echo "## peak resident memory of status"
small=${sizes%% *} large=${sizes##* }
rss_small=$(field "status-$small" 8) rss_large=$(field "status-$large" 8)
echo "  /usr/bin/time -v cross-check at $large: $( (command -v /usr/bin/time >/dev/null && /usr/bin/time -v "$bin" status --format ndjson --now "$now" "$work/r$large" 2>&1 >/dev/null | awk -F': ' '/Maximum resident/ {print $2 " KiB"}') || echo "/usr/bin/time not installed")"
per_file=$(calc "($rss_large - $rss_small) * 1024 / ($large - $small)")
doc_bytes=$(calc "$(json_bytes "$work/r$small") / $small")
echo "  $small: $(calc "$rss_small / 1024") MiB; $large: $(calc "$rss_large / 1024") MiB (medians of ru_maxrss); growth ${per_file} bytes per file, a document is ${doc_bytes} bytes"
row "peak RSS, $small vs $large delegations" "$(calc "$rss_large / 1024") MiB at $large" "$(calc "$rss_small / 1024") MiB at $small" "+${per_file} B/file" "flat: < 1/10 document ($(calc "$doc_bytes / 10") B) per file" "$(verdict "$per_file < $doc_bytes / 10")"
echo

# ---------------------------------------------------------------------------------------------
echo "## start-up on an empty run directory vs /bin/true"
mkdir "$work/empty"
measure 51 5 true /bin/true :: startup "$bin" status --format ndjson "$work/empty"
true_ms=$(field true 3) start_ms=$(field startup 3)
limit=$(calc "2 * $true_ms + 2")
echo "  limit 2 × true + 2 ms = $limit ms"
row "start-up, empty run dir" "$(ms startup)" "/bin/true $(ms true)" "$(calc "$start_ms / $true_ms") ×" "≤ 2 × true + 2 ms = $limit ms" "$(verdict "$start_ms <= $limit")"
echo

# ---------------------------------------------------------------------------------------------
echo "## liveness of 200 live workers vs kill -0 per worker"
launch_ms=$(date +%s%3N)
live_pids=()
for _ in $(seq 200); do
  sleep 900 &   # bounded: even a SIGKILLed run leaves nothing behind for long
  workers+=($!)
  live_pids+=($!)
done
started_ms=$(date +%s%3N)
printf '%s\n' "${live_pids[@]}" | "$gen" "$work/live" --live "$launch_ms" "$started_ms" "$started_ms"
# The same 200 documents, not running: the cost of status without any process check.
mkdir -p "$work/idle/delegations"
for f in "$work"/live/delegations/*.json; do
  sed 's/"status": "running"/"status": "completed"/' "$f" > "$work/idle/delegations/${f##*/}"
done
verified=$("$bin" status --format ndjson --stale-after 1h "$work/live" | jq -s '[.[] | select(.process_alive == true and .process_identity == "verified")] | length')
echo "  check: $verified of 200 workers alive and verified by flatline"
[ "$verified" -eq 200 ] || fail "liveness: only $verified of 200 workers verified"
# The seed's way: one process per check. /bin/kill (procps) where it exists, else a shell.
if [ -x /bin/kill ]; then
  kill_loop='for p in $1; do /bin/kill -0 "$p" || exit 1; done'
else
  kill_loop='for p in $1; do sh -c "kill -0 $p" || exit 1; done'
fi
measure 11 2 \
  status-live "$bin" status --format ndjson --stale-after 1h "$work/live" :: \
  status-idle "$bin" status --format ndjson --stale-after 1h "$work/idle" :: \
  kill0-loop sh -c "$kill_loop" sh "${live_pids[*]}"
live_ms=$(field status-live 3) idle_ms=$(field status-idle 3) loop_ms=$(field kill0-loop 3)
echo "  per worker: flatline status $(calc "$live_ms * 1000 / 200") µs (of which liveness and identity $(calc "($live_ms - $idle_ms) * 1000 / 200") µs), kill -0 spawned per worker $(calc "$loop_ms * 1000 / 200") µs"
check_ms=$(calc "$live_ms - $idle_ms")
if awk "BEGIN { exit !($check_ms > 0) }"; then
  row "liveness check alone (live − not running), per worker" "$(calc "$check_ms * 1000 / 200") µs" "kill -0 $(calc "$loop_ms * 1000 / 200") µs" "$(calc "$loop_ms / $check_ms") × faster" "(≥ 50 × faster)" "$(verdict "$loop_ms / $check_ms >= 50")"
fi
row "liveness, 200 live workers" "$(ms status-live) = $(calc "$live_ms * 1000 / 200") µs/worker" "kill -0 loop $(ms kill0-loop) = $(calc "$loop_ms * 1000 / 200") µs/worker" "$(calc "$loop_ms / $live_ms") × faster" "≥ 50 × faster" "$(verdict "$loop_ms / $live_ms >= 50")"
echo

# ---------------------------------------------------------------------------------------------
echo "## status and refresh over 10 live workers: streams of 1 KB vs 100 MB each"
line='{"type":"item.completed","item":{"id":"item_1","type":"command_execution","command":"bash -lc '"'"'cargo test parser'"'"'","aggregated_output":"running 12 tests\ntest parser::tests::case_1 ... ok\ntest parser::tests::case_2 ... ok\ntest result: ok. 12 passed; 0 failed\n","exit_code":0,"status":"completed"}}'
for size in 1k 100m; do
  dir=$work/streams-$size
  printf '%s\n' "${live_pids[@]:0:10}" | "$gen" "$dir" --live "$launch_ms" "$started_ms" "$started_ms"
  mkdir -p "$dir/raw-events"
done
stream=$work/streams-1k/raw-events/live-0000.jsonl
{ printf '%s\n' '{"type":"thread.started","thread_id":"019a2d7a-6455-7170-a661-c6d8b94c630a"}' '{"type":"turn.started"}'
  for _ in 1 2 3; do printf '%s\n' "$line"; done; } > "$stream"
{ head -n 2 "$stream"; (yes "$line" || true) | head -n $((100000000 / (${#line} + 1))); } > "$work/streams-100m/raw-events/live-0000.jsonl"
for i in $(seq 1 9); do
  cp "$stream" "$work/streams-1k/raw-events/live-000$i.jsonl"
  cp "$work/streams-100m/raw-events/live-0000.jsonl" "$work/streams-100m/raw-events/live-000$i.jsonl"
done
for size in 1k 100m; do
  dir=$work/streams-$size
  first=$("$bin" refresh --format ndjson "$dir" | grep -c '"action":"progressed"' || true)
  second=$("$bin" refresh --format ndjson "$dir" | wc -l)
  read_bytes=$(strace -f -qq -e trace=read,pread64,readv,preadv -o "$work/trace" "$bin" refresh --format ndjson "$dir" > /dev/null && awk '{ n = $NF } n ~ /^[0-9]+$/ { s += n } END { print s + 0 }' "$work/trace")
  echo "  streams of $size: $(du -sh "$dir/raw-events" | cut -f1) of streams; first refresh progressed $first of 10 (progress and fingerprint stamped), next refresh $second actions; a refresh reads $read_bytes bytes in all"
  find "$dir" -type f -printf '%p %s %T@\n' | sort > "$work/before-$size"
done
measure 11 2 \
  status-1k "$bin" status --format ndjson "$work/streams-1k" :: \
  status-100m "$bin" status --format ndjson "$work/streams-100m" :: \
  refresh-1k "$bin" refresh --format ndjson "$work/streams-1k" :: \
  refresh-100m "$bin" refresh --format ndjson "$work/streams-100m"
for size in 1k 100m; do
  find "$work/streams-$size" -type f -printf '%p %s %T@\n' | sort | cmp -s - "$work/before-$size" ||
    fail "refresh wrote to streams-$size during the measurement"
done
for cmd in status refresh; do
  small=$(field "$cmd-1k" 3) big=$(field "$cmd-100m" 3)
  row "$cmd, 10 live workers, 100 MB vs 1 KB streams" "$(ms "$cmd-100m")" "$(ms "$cmd-1k")" "$(calc "$big / $small") ×" "flat in stream size" "$(verdict "$big <= 1.25 * $small || $big - $small < 1")"
done
rm -rf "$work"/streams-*
stop_workers
echo

# ---------------------------------------------------------------------------------------------
echo "## event digest (cargo bench --bench digest)"
digest_out=$(cargo bench --locked --bench digest 2>"$work/digest.err") || { cat "$work/digest.err" >&2; fail "cargo bench --bench digest"; }
printf '%s\n' "$digest_out" | sed 's/^/  /'
rate=$(printf '%s\n' "$digest_out" | sed -n 's/^digest: .*= \([0-9]*\) MB\/s$/\1/p')
mb=$(printf '%s\n' "$digest_out" | sed -n 's/^digest: \([0-9.]*\) MB in.*/\1/p')
range=$(printf '%s\n' "$digest_out" | sed -n 's/.*(min \([0-9.]*\), max \([0-9.]*\)).*/\1 \2/p')
if [ -n "$rate" ] && [ -n "$range" ]; then
  set -- $range
  slowest=$(printf '%s\n' "$digest_out" | sed -n 's/.*; min \([0-9]*\) MB\/s;.*/\1/p')
  row "event digest, $mb MB Codex stream" "$rate MB/s (runs $1–$2 s; slowest run ${slowest:-?} MB/s)" "-" "-" "≥ 200 MB/s" "$(verdict "$rate >= 200")"
else
  fail "digest: no figure in the output of cargo bench"
fi
echo

# ---------------------------------------------------------------------------------------------
echo "## one read of the stream per finalized worker (bench/stream-opens.sh)"
opens_out=$(bash bench/stream-opens.sh "$bin") || { printf '%s\n' "$opens_out"; fail "bench/stream-opens.sh"; }
printf '%s\n' "$opens_out" | sed 's/^/  /'
echo

# ---------------------------------------------------------------------------------------------
echo "## reclaim of 100 TERM-ignoring workers, --grace 1s (bench/reclaim.sh)"
reclaim_out=$(bash bench/reclaim.sh "$bin" 100 5) || { printf '%s\n' "$reclaim_out"; fail "bench/reclaim.sh"; }
printf '%s\n' "$reclaim_out" | sed 's/^/  /'
r=$(printf '%s\n' "$reclaim_out" | sed -n 's/.*median \([0-9]*\) ms (min \([0-9]*\), max \([0-9]*\)).*/\1 \2 \3/p')
if [ -n "$r" ]; then
  set -- $r
  row "reclaim, 100 TERM-ignoring workers, --grace 1s" "$1 ms ($2–$3)" "100 × grace = 100000 ms" "$(calc "100000 / $1") × faster" "≤ 2000 ms" "$(verdict "$1 <= 2000")"
fi
echo

# ---------------------------------------------------------------------------------------------
echo "## sweep over 10,000 delegations where nothing changed"
if "$bin" sweep --help > /dev/null 2>&1; then
  sw=$work/sweep
  if [ -d "$work/r10000" ]; then cp -a "$work/r10000" "$sw"; else "$gen" "$sw" 10000 "$now_s"; fi
  # The generated run is hours old by the real clock: the first sweeps settle it (reclaim
  # the running workers, then collapse the fan-ins that became ready); the measured sweeps
  # must then change nothing.
  settled=0 settle_exit=0
  for i in 1 2 3 4; do
    find "$sw" -type f -printf '%p %s %T@\n' | sort > "$work/before-sweep"
    settle_exit=0
    "$bin" sweep --format ndjson "$sw" > "$work/sweep-$i.out" || settle_exit=$?
    changed=$(find "$sw" -type f -printf '%p %s %T@\n' | sort | diff - "$work/before-sweep" | grep -c '^<' || true)
    echo "  settling sweep $i: exit $settle_exit, $changed files written; records: $(jq -r '[.kind, .action // .outcome // (if .ready == false then "not ready" else null end)] | map(select(. != null)) | join(" ")' "$work/sweep-$i.out" | sort | uniq -c | awk '{c = $1; $1 = ""; printf "%s%s%s", sep, c, $0; sep = ","}')"
    if [ "$changed" -eq 0 ]; then settled=1; break; fi
  done
  if [ "$settle_exit" -gt 1 ] || [ "$settled" -eq 0 ]; then
    fail "sweep does not settle (exit $settle_exit, still writing after 4 sweeps)"
  else
    measure 7 1 \
      floor-sweep "$floor" "$sw/delegations" :: \
      sweep "ok=0,1" "$bin" sweep --format ndjson "$sw"
    if find "$sw" -type f -printf '%p %s %T@\n' | sort | cmp -s - "$work/before-sweep"; then
      writes="no writes"
    else
      writes="FILES CHANGED"
      fail "sweep wrote to a run where nothing changed"
    fi
    echo "  files after the measured sweeps: $writes"
    row "sweep, 10000 delegations, nothing changed" "$(ms sweep), peak RSS $(calc "$(field sweep 8) / 1024") MiB" "floor $(ms floor-sweep)" "$(calc "$(field sweep 3) / $(field floor-sweep 3)") × floor" "no writes" "$([ "$writes" = "no writes" ] && echo met || echo "NOT met")"
  fi
else
  echo "sweep: not built yet, skipped"
  row "sweep, 10000 delegations, nothing changed" "not built yet, skipped" "-" "-" "no writes" "-"
fi
echo

# ---------------------------------------------------------------------------------------------
# Activity sample of 200 live workers with trees of 5 processes (SPEC §8, §11): its own script.
if activity=$(bench/activity.sh "$bin" 2>/dev/null); then
  printf '%s\n' "$activity"
  ratio=$(printf '%s\n' "$activity" | sed -n 's/.*: \([0-9.]*\) × floor.*/\1/p')
  row "activity sample, 200 live workers × 5 processes" "$(printf '%s\n' "$activity" | sed -n 's/.*activity costs \([^;]*\);.*/\1/p')" "floor: one /proc scan + stat and io of each tree process" "${ratio:-?} × floor" "≤ 2 × floor" "$(verdict "${ratio:-99} <= 2")"
else
  fail "activity: bench/activity.sh failed"
fi
echo

# ---------------------------------------------------------------------------------------------
echo "load average at end: $(cut -d' ' -f1-3 /proc/loadavg)"
echo
echo "## summary"
echo "| measurement | flatline (median, min–max) | baseline | ratio | target | verdict |"
echo "| --- | --- | --- | --- | --- | --- |"
for r in "${summary[@]}"; do
  IFS='|' read -r a b c d e f <<< "$r"
  echo "| $a | $b | $c | $d | $e | $f |"
done
if ((${#failures[@]})); then
  echo
  printf 'FAILED: %s\n' "${failures[@]}"
  exit 1
fi
