#!/usr/bin/env bash
# bench/profile.sh: the repeatable profile behind BENCHMARKS.md (not part of `make bench`).
# Generates the 10,000-delegation run of bench/run.sh, runs `flatline status` over it under
# `valgrind --tool=callgrind` (instruction counts: the same on every run, unlike time), and
# prints the total, the syscalls per file (strace -c) and the top functions, inclusive and
# exclusive. Usage: bench/profile.sh [BIN] [N]   (default target/release/flatline, 10000)
set -euo pipefail
export LC_ALL=C
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
bin=$(realpath "${1:-target/release/flatline}")
n=${2:-10000}
work=$(mktemp -d "${TMPDIR:-/tmp}/flatline-profile.XXXXXX")
trap 'rm -rf "$work"' EXIT
cc -O2 -o "$work/gen" bench/gen.c
"$work/gen" "$work/run" "$n" 1795334400
cmd=("$bin" status --format ndjson --now 2026-11-22T08:00:00Z "$work/run")
echo "## syscalls (strace -f -c: every thread), $n delegations"
strace -f -c -o "$work/strace" "${cmd[@]}" > /dev/null
awk 'NR > 2 && $NF != "total" && $4 ~ /^[0-9]+$/ && $4 > 100 { printf "  %-12s %8d calls  (%.2f per file)\n", $NF, $4, $4 / '"$n"' }' "$work/strace"
echo "## callgrind, $n delegations"
valgrind --tool=callgrind --callgrind-out-file="$work/cg.out" "${cmd[@]}" > /dev/null 2> "$work/cg.err"
total=$(sed -n 's/.*Collected : \([0-9]*\).*/\1/p' "$work/cg.err")
echo "  instructions: $total ($((total / n)) per file)"
echo "## inclusive (top 25 flatline/serde frames)"
callgrind_annotate --inclusive=yes "$work/cg.out" 2>/dev/null |
  grep -E '^ *[0-9,]+ \(' | grep -E 'flatline::|serde_json::|serde_core::|time::' |
  grep -v -E 'lang_start|backtrace|flatline::main' | head -25 | sed -E 's/ \[[^]]*\]$//; s|/root/.cargo/registry/src/[^/]*/||; s|/rustc/[0-9a-f]*/||' ||
  true   # head closes the pipe early: not a failure
echo "## exclusive (top 20)"
callgrind_annotate "$work/cg.out" 2>/dev/null | grep -E '^ *[0-9,]+ \(' | head -21 | tail -20 |
  sed -E 's/ \[[^]]*\]$//; s|/root/.cargo/registry/src/[^/]*/||; s|/rustc/[0-9a-f]*/||' || true
