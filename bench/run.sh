#!/usr/bin/env bash
# bench/run.sh: every line of SPEC §8, side by side with its floor program, in one run; prints
# each figure as it is measured and the table of ratios at the end (the table of BENCHMARKS.md:
# `make bench 2>&1 | tee bench.out` reproduces the whole raw output). `make bench` builds the
# release binary and runs this. Usage: bench/run.sh [BIN]   (default target/release/flatline)
#
# Inputs are generated deterministically (bench/gen.c) in one temp directory
# (${TMPDIR:-/tmp}/flatline-bench.*), reused across measurements and removed on exit, with
# every worker process this script spawned. Timing is bench/abrun.c: commands alternate
# round by round, warm-up rounds first (page cache warm), medians and p90 of BENCH_RUNS runs.
# Environment, to try the script on a smaller scale (the defaults are SPEC §8's): BENCH_SIZES
# ("1000 10000 100000"), BENCH_RUNS (30), BENCH_WORKERS (2000 live workers), BENCH_TREES (2000
# workers of 5 processes), BENCH_RECLAIM_RUNS (30).
set -euo pipefail
export LC_ALL=C

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
bin=$(realpath "${1:-target/release/flatline}")
[ -x "$bin" ] || { echo "bench: $bin is not built (make build)" >&2; exit 1; }
sizes=${BENCH_SIZES:-1000 10000 100000}
runs=${BENCH_RUNS:-30}
n_workers=${BENCH_WORKERS:-2000}
n_trees=${BENCH_TREES:-2000}
reclaim_runs=${BENCH_RECLAIM_RUNS:-30}
now=2026-11-22T08:00:00Z   # --now for the generated runs: their states never change
now_s=1795334400

work=$(mktemp -d "${TMPDIR:-/tmp}/flatline-bench.XXXXXX")
workers=()
spawner=
cleanup() {
  if ((${#workers[@]})); then
    { kill -KILL "${workers[@]}"; wait "${workers[@]}"; } 2>/dev/null || true
  fi
  stop_spawner
  rm -rf "$work"
}
# bench/spawn.c's processes die with it (PR_SET_PDEATHSIG): killing its one pid ends them all.
stop_spawner() {
  if [ -n "$spawner" ]; then
    { kill -KILL "$spawner"; wait "$spawner"; } 2>/dev/null || true
  fi
  spawner=
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP

failures=()
summary=()   # rows of the final table: measurement|flatline|floor|ratio|target|verdict|bound
row() { summary+=("$1|$2|$3|$4|$5|$6|$7"); }
fail() { failures+=("$1"); echo "FAILED: $1"; }

# ---------------------------------------------------------------------------------------------
# Tools and machine
cc -O2 -o "$work/gen" bench/gen.c
cc -O2 -o "$work/floor" bench/floor.c
cc -O2 -o "$work/abrun" bench/abrun.c
cc -O2 -o "$work/spawn" bench/spawn.c
cc -O2 -o "$work/launch-running" bench/launch-running.c
gen=$work/gen floor=$work/floor abrun=$work/abrun spawn=$work/spawn

echo "# flatline benchmarks ($(date -u +%Y-%m-%dT%H:%MZ))"
echo "machine: $(nproc) cores ($(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo)), Linux $(uname -r), $(awk '/MemTotal/ {printf "%.0f GiB", $2 / 1048576}' /proc/meminfo) RAM"
device="temp dir $work on $(findmnt -n -o SOURCE,FSTYPE -T "$work" 2>/dev/null | tr -s ' ' || stat -f -c %T "$work"), repository on $(findmnt -n -o SOURCE,FSTYPE -T "$root" 2>/dev/null | tr -s ' ' || echo '?'); $("$floor" --fsync "$work" 30)"
echo "device: $device; page cache warm (warm-up rounds before timing)"
echo "binary: $bin ($("$bin" --version 2>/dev/null | head -1)), built from $(git rev-parse --short HEAD 2>/dev/null || echo '?')$(git diff --quiet HEAD -- src 2>/dev/null || echo ' + uncommitted changes in src/'); jq $(jq --version); $(cc --version | head -1)"
echo "method: $runs timed runs per command (unless said), alternating; median and p90 (nearest rank) of the wall time"
load_start=$(cut -d' ' -f1-3 /proc/loadavg)
echo "load average at start: $load_start (other processes on the machine add noise to every figure)"
echo

# measure RUNS WARMUP NAME CMD... [:: NAME CMD...]...: runs abrun, keeps its lines in
# $work/results.tsv and prints them for people.
measure() {
  local out
  out=$("$abrun" "$@")
  printf '%s\n' "$out" >> "$work/results.tsv"
  printf '%s\n' "$out" | awk -F'\t' '{
    printf "  %-22s median %10.3f ms  p90 %10.3f ms  (min %.3f, max %.3f; %d runs)  user %.1f ms  sys %.1f ms  peak RSS %.1f MiB\n",
      $1, $3, $11, $4, $5, $2, $6, $7, $8 / 1024 }'
}
# field NAME COLUMN: one figure of a measured command (3 median, 4 min, 5 max, 6 user, 7 sys,
# 8 RSS KiB, 11 p90).
field() { awk -F'\t' -v n="$1" -v c="$2" '$1 == n { v = $c } END { print v }' "$work/results.tsv"; }
# calc EXPR: floating-point arithmetic.
calc() { awk "BEGIN { printf \"%.2f\", $1 }"; }
ms() { printf '%s ms (p90 %s)' "$(field "$1" 3)" "$(field "$1" 11)"; }
cpu() { calc "$(field "$1" 6) + $(field "$1" 7)"; }
json_bytes() { find "$1/delegations" -type f -printf '%s\n' | awk '{ s += $1 } END { print s + 0 }'; }
verdict() { if awk "BEGIN { exit !($1) }"; then echo met; else echo "**NOT met**"; fi; }
# start_workers N SIZE: N idle workers of SIZE processes each (bench/spawn.c); their pids in
# $work/pids, the launch and start instants (ms) in launch_ms and started_ms.
start_workers() {
  stop_spawner
  launch_ms=$(date +%s%3N)
  : > "$work/pids"
  "$spawn" "$1" "$2" > "$work/pids" &
  spawner=$!
  local deadline=$((SECONDS + 60))
  until [ "$(wc -l < "$work/pids")" -eq "$1" ] && ! [ -e "/proc/$spawner/fd/1" ]; do
    if ((SECONDS > deadline)) || ! kill -0 "$spawner" 2>/dev/null; then
      fail "spawn $1 $2 did not start its workers"; return 1
    fi
    sleep 0.05
  done
  started_ms=$(date +%s%3N)
}

# ---------------------------------------------------------------------------------------------
# flatline run's launch to its RUNNING record (the worker's identity on disk; the worker is
# held before exec until then), seen by bench/launch-running.c through inotify on delegations/,
# against a bare fork+exec+wait. Measured first, on the quiet machine: every later line
# generates and removes hundreds of megabytes (and `cargo bench` compiles), and for a minute
# after that this VM works off the freed memory and the discards where the guest cannot see
# it; two fsynced records and a fork then cost 1–3 ms more (BENCHMARKS.md). Its row is printed
# with the relay's.
lr_out=
if "$bin" run --help > /dev/null 2>&1; then
  echo "## flatline run: launch to the running record vs a bare fork+exec+wait"
  mkdir -p "$work/run-launch"
  sync
  lr_out=$("$work/launch-running" "$runs" "$bin" "$work/run-launch") || fail "bench/launch-running.c"
  printf '%s\n' "$lr_out" | sed 's/^/  /'
  rm -rf "$work/run-launch"
  echo
fi

# ---------------------------------------------------------------------------------------------
echo "## status --format ndjson vs the JSON-validating floor (and the I/O alone) vs jq"
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
  # jq takes about 0.5 ms a file: 30 runs of it at 10,000 would take 3 minutes, at 100,000
  # 25; it is timed 7 times at 10,000 only (a ratio per file, the same at any size).
  jq_cmd=()
  if [ "$n" -eq 10000 ]; then jq_cmd=(:: "jq-$n" "runs=$((runs < 7 ? runs : 7))" bash -c "$(jq_run)" sh "$run" "$now" bench/status.jq); fi
  echo "$n delegations ($(du -sk "$run/delegations" | cut -f1) KiB on disk; $(json_bytes "$run") bytes of JSON):"
  measure "$runs" 2 \
    "floor-json-$n" "$floor" --json "$run/delegations" :: \
    "floor-io-$n" "$floor" "$run/delegations" :: \
    "status-$n" "$bin" status --format ndjson --now "$now" "$run" "${jq_cmd[@]}"
  [ "$n" -ge 10000 ] || continue
  floor_ms=$(field "floor-json-$n" 3) status_ms=$(field "status-$n" 3)
  vs_floor=$(calc "$status_ms / $floor_ms") vs_p90=$(calc "$(field "status-$n" 11) / $(field "floor-json-$n" 11)")
  cpu_floor=$(calc "$(cpu "status-$n") / $(cpu "floor-json-$n")")
  echo "  per file: floor (JSON validated) $(calc "$floor_ms * 1000 / $n") µs, I/O alone $(calc "$(field "floor-io-$n" 3) * 1000 / $n") µs, status $(calc "$status_ms * 1000 / $n") µs; status = ${vs_floor} × floor (p90 ${vs_p90} ×; CPU time user+sys ${cpu_floor} ×)"
  row "status, $n delegations: wall" "$(ms "status-$n")" "validating floor $(ms "floor-json-$n")" "${vs_floor} × (p90 ${vs_p90} ×)" "≤ 1.5 × floor" "$(verdict "$vs_floor <= 1.5")" "kernel time per file (openat, fstat, read, close) overlapped with serde_json's parse by the read-ahead thread"
  row "status, $n delegations: CPU (user+sys)" "$(cpu "status-$n") ms" "validating floor $(cpu "floor-json-$n") ms" "${cpu_floor} ×" "≤ 2 × floor" "$(verdict "$cpu_floor <= 2")" "serde_json's parse of the whole document, the record's output, the reader thread's hand-offs"
  if [ "$n" -eq 10000 ]; then
    vs_jq=$(calc "$(field "jq-$n" 3) / $status_ms")
    row "status, $n delegations, vs jq" "$(ms "status-$n")" "jq $(ms "jq-$n"), $(field "jq-$n" 2) runs" "${vs_jq} × faster" "≥ 10 × faster" "$(verdict "$vs_jq >= 10")" "jq interprets bench/status.jq per file (user time)"
  fi
done
echo

# ---------------------------------------------------------------------------------------------
echo "## peak resident memory of status in every output format"
small=${sizes%% *} large=${sizes##* }
name_bytes=$(find "$work/r$large/delegations" -type f -printf '%f\n' | awk '{ s += length($0) } END { printf "%.2f", s / NR }')
echo "  /usr/bin/time -v cross-check (ndjson, $large): $( (command -v /usr/bin/time >/dev/null && /usr/bin/time -v "$bin" status --format ndjson --now "$now" "$work/r$large" 2>&1 >/dev/null | awk -F': ' '/Maximum resident/ {print $2 " KiB"}') || echo "/usr/bin/time not installed")"
# ru_maxrss varies little from run to run: 5 runs of each (the 100,000 runs take a second).
mem_runs=$((runs < 5 ? runs : 5))
mem_bound() {
  case $1 in
    json) echo "the listing (6 B a file), and each task card's counts until the document's summary (about 130 B a card: 60 B of counts, a 20-byte B-tree slot, the id's heap block; 8 files a card here)" ;;
    text) echo "the listing (6 B a file); the first rows that fix the columns' widths are a constant" ;;
    *) echo "the sorted listing: each name in one buffer with its type byte and NUL, a 4-byte offset, a bit to visit it (6 B a file)" ;;
  esac
}
for format in ndjson text json tsv prometheus; do
  measure "$mem_runs" 0 \
    "mem-$format-$small" "$bin" status --format "$format" --now "$now" "$work/r$small" :: \
    "mem-$format-$large" "$bin" status --format "$format" --now "$now" "$work/r$large"
  rss_small=$(field "mem-$format-$small" 8) rss_large=$(field "mem-$format-$large" 8)
  per_file=$(calc "($rss_large - $rss_small) * 1024 / ($large - $small)")
  beyond=$(calc "$per_file - $name_bytes")
  echo "  $format: $small: $(calc "$rss_small / 1024") MiB; $large: $(calc "$rss_large / 1024") MiB (medians of ru_maxrss over $mem_runs runs); growth ${per_file} B/file, ${beyond} B/file beyond the name (${name_bytes} B)"
  row "peak RSS of status --format $format, $small → $large files" "$(calc "$rss_large / 1024") MiB at $large" "$(calc "$rss_small / 1024") MiB at $small" "+${per_file} B/file (${beyond} B beyond the ${name_bytes} B name)" "≤ 32 B/file beyond the name" "$(verdict "$beyond <= 32")" "$(mem_bound "$format")"
done
echo

# ---------------------------------------------------------------------------------------------
echo "## start-up on an empty run directory vs /bin/true"
mkdir -p "$work/empty/delegations"   # an empty run directory: delegations/ and nothing in it
measure $((runs > 51 ? runs : 51)) 5 true /bin/true :: startup "$bin" status --format ndjson "$work/empty"
true_ms=$(field true 3) start_ms=$(field startup 3)
echo "  limit true + 1 ms = $(calc "$true_ms + 1") ms"
row "start-up, empty run dir" "$(ms startup)" "/bin/true $(ms true)" "+$(calc "$start_ms - $true_ms") ms" "≤ true + 1 ms" "$(verdict "$start_ms <= $true_ms + 1")" "the dynamic loader (libc only: the unwinder is linked in), signal handlers, the runtime's stack guard"
echo

# ---------------------------------------------------------------------------------------------
echo "## liveness of $n_workers live workers vs the /proc + pidfd floor vs kill -0 per worker"
start_workers "$n_workers" 1
mapfile -t live_pids < "$work/pids"
"$gen" "$work/live" --live "$launch_ms" "$started_ms" "$started_ms" < "$work/pids"
verified=$("$bin" status --format ndjson --stale-after 1h "$work/live" | jq -s '[.[] | select(.process_alive == true and .process_identity == "verified")] | length')
echo "  check: $verified of $n_workers workers alive and verified by flatline"
[ "$verified" -eq "$n_workers" ] || fail "liveness: only $verified of $n_workers workers verified"
# The seed's way: one process per check. /bin/kill (procps) where it exists, else a shell.
if [ -x /bin/kill ]; then
  kill_loop='for p in $1; do /bin/kill -0 "$p" || exit 1; done'
else
  kill_loop='for p in $1; do sh -c "kill -0 $p" || exit 1; done'
fi
# The kill -0 loop takes 1–4 ms a worker (seconds a run at 2,000): 11 runs of it.
measure "$runs" 2 \
  floor-live "$floor" --json "$work/live/delegations" --pids "$work/pids" :: \
  status-live "$bin" status --format ndjson --stale-after 1h --no-activity "$work/live" :: \
  kill0-loop "runs=$((runs < 11 ? runs : 11))" sh -c "$kill_loop" sh "${live_pids[*]}"
live_ms=$(field status-live 3) lfloor_ms=$(field floor-live 3) loop_ms=$(field kill0-loop 3)
per() { calc "$1 * 1000 / $n_workers"; }
echo "  per worker: flatline status $(per "$live_ms") µs, floor $(per "$lfloor_ms") µs, kill -0 spawned per worker $(per "$loop_ms") µs"
row "liveness, $n_workers live workers, vs /proc floor" "$(ms status-live) = $(per "$live_ms") µs/worker" "floor $(ms floor-live) = $(per "$lfloor_ms") µs/worker" "$(calc "$live_ms / $lfloor_ms") × (p90 $(calc "$(field status-live 11) / $(field floor-live 11)") ×)" "≤ 1.5 × floor" "$(verdict "$live_ms <= 1.5 * $lfloor_ms")" "pidfd_open and /proc/PID/stat per worker (the kernel formats stat); /proc/PID/status is read by reclaim and sweep only; --no-activity: the activity sample has its own lines"
row "liveness, $n_workers live workers, vs kill -0" "$(per "$live_ms") µs/worker" "kill -0 loop $(ms kill0-loop) = $(per "$loop_ms") µs/worker, $(field kill0-loop 2) runs" "$(calc "$loop_ms / $live_ms") × faster" "≥ 50 × faster" "$(verdict "$loop_ms / $live_ms >= 50")" "a spawned process per check costs what the machine makes it"
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
  # Delegations and streams; .flatline/activity.json holds each run's fresh samples (SPEC §11).
  find "$dir" -path "$dir/.flatline" -prune -o -type f -printf '%p %s %T@\n' | sort > "$work/before-$size"
done
measure "$runs" 2 \
  status-1k "$bin" status --format ndjson "$work/streams-1k" :: \
  status-100m "$bin" status --format ndjson "$work/streams-100m" :: \
  refresh-1k "$bin" refresh --format ndjson "$work/streams-1k" :: \
  refresh-100m "$bin" refresh --format ndjson "$work/streams-100m"
for size in 1k 100m; do
  find "$work/streams-$size" -path "$work/streams-$size/.flatline" -prune -o -type f -printf '%p %s %T@\n' | sort | cmp -s - "$work/before-$size" ||
    fail "refresh wrote to streams-$size during the measurement"
done
for cmd in status refresh; do
  small_ms=$(field "$cmd-1k" 3) big_ms=$(field "$cmd-100m" 3)
  row "$cmd, 10 live workers, 100 MB vs 1 KB streams" "$(ms "$cmd-100m")" "1 KB streams $(ms "$cmd-1k")" "$(calc "$big_ms / $small_ms") ×" "independent of the stream's size" "$(verdict "$big_ms <= 1.25 * $small_ms || $big_ms - $small_ms < 1")" "a live worker's stream is only stat'ed, never read"
done
rm -rf "$work"/streams-*
stop_spawner
echo

# ---------------------------------------------------------------------------------------------
echo "## $n_trees live workers with trees of 5 processes vs one /proc scan + stat and io of each"
echo "  (status on live trees; once activity sampling (§11) is merged, status includes it)"
start_workers "$n_trees" 5
"$gen" "$work/trees" --live "$launch_ms" "$started_ms" "$started_ms" < "$work/pids"
verified=$("$bin" status --format ndjson --stale-after 1h "$work/trees" | jq -s '[.[] | select(.process_alive == true)] | length')
echo "  check: $verified of $n_trees workers alive for flatline; $(ls /proc | grep -c '^[0-9]') processes on the machine"
[ "$verified" -eq "$n_trees" ] || fail "activity: only $verified of $n_trees workers alive"
measure "$runs" 2 \
  floor-trees "$floor" --json "$work/trees/delegations" --tree "$work/pids" :: \
  status-trees "$bin" status --format ndjson --stale-after 1h "$work/trees"
t_ms=$(field status-trees 3) tf_ms=$(field floor-trees 3)
echo "  per worker: flatline status $(calc "$t_ms * 1000 / $n_trees") µs, floor $(calc "$tf_ms * 1000 / $n_trees") µs"
row "status of $n_trees live workers × 5 processes (activity sampled)" "$(ms status-trees)" "floor $(ms floor-trees)" "$(calc "$t_ms / $tf_ms") × (p90 $(calc "$(field status-trees 11) / $(field floor-trees 11)") ×)" "≤ 2 × floor" "$(verdict "$t_ms <= 2 * $tf_ms")" "the floor's one /proc scan (stat of every process on the machine) and io of the 5 per tree"
stop_spawner
echo

# ---------------------------------------------------------------------------------------------
echo "## finalize: a stream of --max-stream-read vs a 1 TB sparse stream"
fin=$work/finalize
mkdir -p "$fin/bound/delegations" "$fin/bound/raw-events" "$fin/huge/delegations" "$fin/huge/raw-events"
true & dead=$!; wait "$dead"
cat > "$fin/d.json" <<JSON
{"delegation_id": "d1", "child_agent": {"status": "running"},
 "worker_lifecycle": {"process_id": $dead, "last_progress_at": "2026-11-22T07:00:00Z"}}
JSON
head=$fin/head tail=$fin/tail
{ printf '%s\n' '{"type":"thread.started","thread_id":"019a2d7a-6455-7170-a661-c6d8b94c630a"}' '{"type":"turn.started"}'
  (yes "$line" || true) | head -c 1048576 | head -n -1; } > "$head"
{ (yes "$line" || true) | head -c $((7 * 1048576)) | head -n -1
  printf '%s\n' '{"type":"item.completed","item":{"id":"item_9","type":"agent_message","text":"done"}}' '{"type":"turn.completed","usage":{"input_tokens":10,"cached_input_tokens":0,"output_tokens":5}}'; } > "$tail"
cat "$head" "$tail" > "$fin/bound/raw-events/d1.jsonl"
cp "$head" "$fin/huge/raw-events/d1.jsonl"
truncate -s $((1099511627776 - $(stat -c %s "$tail"))) "$fin/huge/raw-events/d1.jsonl"
cat "$tail" >> "$fin/huge/raw-events/d1.jsonl"
echo "  streams: $(stat -c %s "$fin/bound/raw-events/d1.jsonl") bytes vs $(stat -c %s "$fin/huge/raw-events/d1.jsonl") bytes ($(du -k "$fin/huge/raw-events/d1.jsonl" | cut -f1) KiB allocated); --max-stream-read 8M"
finalize_cmd='cp "$1" "$2/delegations/d1.json" && exec "$3" refresh --max-stream-read 8M --format ndjson "$2"'
for v in bound huge; do
  out=$(timeout 60 sh -c "$finalize_cmd" sh "$fin/d.json" "$fin/$v" "$bin" || true)
  echo "  check ($v): $(printf '%s' "$out" | jq -r '[.action // "-", .state // "-", (.raw_output_truncated // false | tostring)] | join(" ")' 2>/dev/null | head -1)"
  printf '%s' "$out" | grep -q '"returned\|"completed' || fail "finalize ($v) did not complete the worker"
done
measure "$runs" 2 \
  finalize-bound sh -c "$finalize_cmd" sh "$fin/d.json" "$fin/bound" "$bin" :: \
  finalize-1tb sh -c "$finalize_cmd" sh "$fin/d.json" "$fin/huge" "$bin"
fb=$(field finalize-bound 3) fh=$(field finalize-1tb 3)
row "finalize, 1 TB sparse stream vs 8 MiB stream, --max-stream-read 8M" "$(ms finalize-1tb)" "8 MiB stream $(ms finalize-bound)" "$(calc "$fh / $fb") ×" "bounded by --max-stream-read" "$(verdict "$fh <= 1.25 * $fb")" "the digest of 1 MiB + 7 MiB (SPEC §1.4), whatever the size"
rm -rf "$fin"
echo

# ---------------------------------------------------------------------------------------------
echo "## event digest (cargo bench --bench digest)"
digest_out=$(cargo bench --locked --bench digest 2>"$work/digest.err") || { cat "$work/digest.err" >&2; fail "cargo bench --bench digest"; }
printf '%s\n' "$digest_out" | sed 's/^/  /'
rate=$(printf '%s\n' "$digest_out" | sed -n 's/^digest: .*= \([0-9]*\) MB\/s$/\1/p')
mb=$(printf '%s\n' "$digest_out" | sed -n 's/^digest: \([0-9.]*\) MB in.*/\1/p')
p90_rate=$(printf '%s\n' "$digest_out" | sed -n 's/.*; p90 \([0-9]*\) MB\/s;.*/\1/p')
if [ -n "$rate" ]; then
  row "event digest, $mb MB Codex stream" "$rate MB/s (p90 ${p90_rate:-?} MB/s; 31 runs)" "-" "-" "≥ 500 MB/s" "$(verdict "$rate >= 500")" "serde_json's parse of every line into a borrowed struct"
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
echo "## reclaim of 100 TERM-ignoring workers, --grace 1s (bench/reclaim.sh, $reclaim_runs runs)"
reclaim_out=$(bash bench/reclaim.sh "$bin" 100 "$reclaim_runs") || { printf '%s\n' "$reclaim_out"; fail "bench/reclaim.sh"; }
printf '%s\n' "$reclaim_out" | tail -3 | sed 's/^/  /'
r=$(printf '%s\n' "$reclaim_out" | sed -n 's/.*median \([0-9]*\) ms (p90 \([0-9]*\), min \([0-9]*\), max \([0-9]*\)).*/\1 \2/p')
if [ -n "$r" ]; then
  set -- $r
  row "reclaim, 100 TERM-ignoring workers, --grace 1s" "$1 ms (p90 $2)" "the grace: 1000 ms" "+$(($1 - 1000)) ms" "≤ 1500 ms" "$(verdict "$1 <= 1500")" "the grace itself (1 s), then SIGKILL and 100 writes"
fi
echo

# ---------------------------------------------------------------------------------------------
echo "## flatline run: relay (--tee) vs a splice(2) copy (the launch was measured first)"
if "$bin" run --help > /dev/null 2>&1; then
  rr=$work/run-relay
  mkdir -p "$rr"
  if [ -n "$lr_out" ]; then
    set -- $(printf '%s\n' "$lr_out" | sed -n 's/^launch to running record: median \([0-9.]*\) ms, p90 \([0-9.]*\) ms.*/\1 \2/p')
    lr_med=$1 lr_p90=$2
    set -- $(printf '%s\n' "$lr_out" | sed -n 's/^bare fork+exec+wait: *median \([0-9.]*\) ms, p90 \([0-9.]*\) ms.*/\1 \2/p')
    extra=$(calc "$lr_med - $1")
    row "run launch to the running record (measured first)" "$lr_med ms (p90 $lr_p90)" "fork+exec+wait $1 ms (p90 $2)" "+$extra ms" "≤ fork+exec + 2 ms" "$(verdict "$extra <= 2")" "start-up, then the queued and the running record, each a temp file, data fsync and rename (2 fsyncs; the directory fsync comes after the worker is let go), with the worker forked meanwhile; pidfd and fingerprint"
  fi
  (yes "$line" || true) | head -c $((64 * 1048576)) > "$work/relay-input"
  relay_cmd='rm -rf "$1"/delegations "$1"/raw-events && exec "$2" run --run-dir "$1" --tee --no-watch -- cat "$3"'
  splice_cmd='rm -f "$1"/spliced && exec "$2" --splice "$1"/spliced cat "$3"'
  measure "$runs" 2 \
    relay sh -c "$relay_cmd" sh "$rr" "$bin" "$work/relay-input" :: \
    splice sh -c "$splice_cmd" sh "$rr" "$floor" "$work/relay-input"
  rel=$(calc "$(field splice 3) / $(field relay 3)")
  row "run --tee relay of 64 MiB (throughput vs splice)" "$(ms relay)" "splice copy $(ms splice)" "$rel × the splice rate" "≥ 0.8 × splice" "$(verdict "$rel >= 0.8")" "copying to the stream and to stdout, digesting the stream"
else
  echo "  flatline run is not built in this binary: skipped (the line appears once it is merged)"
  row "run relay and launch" "not built yet, skipped" "splice copy; fork+exec (bench/floor.c)" "-" "≥ 0.8 × splice; ≤ fork+exec + 2 ms" "-" "-"
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
    measure "$runs" 1 \
      floor-sweep "$floor" --json "$sw/delegations" :: \
      sweep "ok=0,1" "$bin" sweep --format ndjson "$sw"
    if find "$sw" -type f -printf '%p %s %T@\n' | sort | cmp -s - "$work/before-sweep"; then
      writes="no writes"
    else
      writes="FILES CHANGED"
      fail "sweep wrote to a run where nothing changed"
    fi
    echo "  files after the measured sweeps: $writes"
    row "sweep, 10000 delegations, nothing changed" "$(ms sweep), peak RSS $(calc "$(field sweep 8) / 1024") MiB" "floor $(ms floor-sweep)" "$(calc "$(field sweep 3) / $(field floor-sweep 3)") × floor" "no writes" "$([ "$writes" = "no writes" ] && echo met || echo "**NOT met**")" "reading and judging every delegation; nothing to write"
  fi
else
  echo "sweep: not built yet, skipped"
  row "sweep, 10000 delegations, nothing changed" "not built yet, skipped" "-" "-" "no writes" "-" "-"
fi
echo

# ---------------------------------------------------------------------------------------------
# Activity sample of 200 live workers with trees of 5 processes (SPEC §8, §11): its own script.
if activity=$(bench/activity.sh "$bin" 2>/dev/null); then
  printf '%s\n' "$activity"
  ratio=$(printf '%s\n' "$activity" | sed -n 's/.*: \([0-9.]*\) × floor.*/\1/p')
  row "activity sample, 200 live workers × 5 processes" "$(printf '%s\n' "$activity" | sed -n 's/.*activity costs \([^;]*\);.*/\1/p')" "floor: one /proc scan + stat and io of each tree process" "${ratio:-?} × floor" "≤ 2 × floor" "$(verdict "${ratio:-99} <= 2")" "one /proc scan per invocation, then stat and io of the 5 processes of each tree (the floor's mandatory work), the verdict and the record"
else
  fail "activity: bench/activity.sh failed"
fi
echo

# ---------------------------------------------------------------------------------------------
echo "load average at end: $(cut -d' ' -f1-3 /proc/loadavg)"
echo
echo "## summary"
echo "device: $device"
echo "load average at start $load_start, at end $(cut -d' ' -f1-3 /proc/loadavg)"
echo
echo "| measurement | flatline (median, p90) | floor (median, p90) | ratio | SPEC §8 target | verdict | what bounds it |"
echo "| --- | --- | --- | --- | --- | --- | --- |"
for r in "${summary[@]}"; do
  IFS='|' read -r a b c d e f g <<< "$r"
  echo "| $a | $b | $c | $d | $e | $f | $g |"
done
if ((${#failures[@]})); then
  echo
  printf 'FAILED: %s\n' "${failures[@]}"
  exit 1
fi
