#!/usr/bin/env bash
# bench/launch.sh: `flatline run` (SPEC §8, §12), side by side with its floors.
#   1. launch to the RUNNING record (SPEC §8's figure: the worker's identity on disk), read
#      by bench/launch-running.c watching delegations/ with inotify, against a bare
#      fork+exec+wait;
#   2. launch overhead: `flatline run --no-watch -- /bin/true` (queued delegation placed,
#      spawn, pidfd + fingerprint, running record, wait, final record: three fsynced
#      writes) against a bare fork+exec of /bin/true;
#   3. the --tee relay: a producer writing SIZE bytes through `flatline run --tee` (stream
#      file + run's stdout on /dev/null) against the same producer piped into a splice(2)
#      pipe-to-file copy (bench/splice.c) on the same filesystem.
# Usage: bench/launch.sh [BIN] [SIZE_MIB]   (default target/release/flatline, 256)
set -euo pipefail
export LC_ALL=C
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
bin=$(realpath "${1:-target/release/flatline}")
mib=${2:-256}
bytes=$((mib * 1048576))
[ -x "$bin" ] || { echo "bench: $bin is not built (make build)" >&2; exit 1; }
work=$(mktemp -d "${TMPDIR:-/tmp}/flatline-launch.XXXXXX")
trap 'rm -rf "$work"' EXIT
cc -O2 -o "$work/abrun" bench/abrun.c
cc -O2 -o "$work/splice" bench/splice.c
cc -O2 -o "$work/launch-running" bench/launch-running.c
cc -O2 -o "$work/floor" bench/floor.c
mkdir -p "$work/run"
echo "# flatline run benchmarks ($(date -u +%Y-%m-%dT%H:%MZ))"
echo "machine: $(nproc) cores, Linux $(uname -r); temp dir $(findmnt -n -o FSTYPE -T "$work" 2>/dev/null || stat -f -c %T "$work") ($work)"
echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
report() { awk -F'\t' '{ printf "  %-14s median %9.3f ms  (min %.3f, max %.3f; %d runs)  user %.1f ms  sys %.1f ms\n", $1, $3, $4, $5, $2, $6, $7 }'; }
median() { awk -F'\t' -v n="$1" '$1 == n { print $3 }' "$2"; }
clean='rm -rf "$0"/delegations "$0"/raw-events'

# The launch first, on the quiet machine: the relay's hundreds of megabytes written and
# removed keep this VM busy for a minute (writeback, discards, freed memory), and every fsync
# and fork of a launch measured after them waits behind that (bench/run.sh does the same).
sync
echo "## launch to the running record vs a bare fork+exec+wait"
rm -rf "$work/run/delegations" "$work/run/raw-events"
"$work/launch-running" 41 "$bin" "$work/run" | sed 's/^/  /'
echo "## launch overhead: flatline run -- /bin/true vs a bare fork+exec"
"$work/abrun" 41 3 \
  run sh -c "$clean; exec \"\$1\" run --run-dir \"\$0\" --no-watch -- /bin/true 2>/dev/null" "$work/run" "$bin" \
  :: bare sh -c 'exec /bin/true' \
  > "$work/launch.tsv"
report < "$work/launch.tsv"
run=$(median run "$work/launch.tsv")
bare=$(median bare "$work/launch.tsv")
echo "  overhead: $(awk -v a="$run" -v b="$bare" 'BEGIN{printf "%.2f", a-b}') ms per launch (target ≤ 2 ms to the delegation written; this is launch to the final record, three fsynced writes included)"

echo "## --tee relay: $mib MiB through a pipe to the stream file"
"$work/abrun" 11 2 \
  relay sh -c "$clean; exec \"\$1\" run --run-dir \"\$0\" --tee --no-watch -- head -c $bytes /dev/zero 2>/dev/null" "$work/run" "$bin" \
  :: splice sh -c "$clean; head -c $bytes /dev/zero | \"\$1\" \"\$0\"/splice.out" "$work/run" "$work/splice" \
  > "$work/relay.tsv"
report < "$work/relay.tsv"
relay=$(median relay "$work/relay.tsv")
floor=$(median splice "$work/relay.tsv")
echo "  throughput: relay $(awk -v b=$bytes -v t="$relay" 'BEGIN{printf "%.0f", b/1048576/(t/1000)}') MiB/s, splice $(awk -v b=$bytes -v t="$floor" 'BEGIN{printf "%.0f", b/1048576/(t/1000)}') MiB/s; relay/splice speed ratio $(awk -v a="$floor" -v b="$relay" 'BEGIN{printf "%.2f", a/b}') (target ≥ 0.8)"

echo "fsync of a 4 KiB write on this device: $("$work/floor" --fsync "$work/run" 30)"
echo "load average at end: $(cut -d' ' -f1-3 /proc/loadavg)"
