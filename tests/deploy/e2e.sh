#!/usr/bin/env bash
# The README's deployment, played end to end inside a private pid namespace (run as its init
# by tests/integration/deployment.rs): an orchestrator of an ordinary uid launches workers and
# rewrites their delegations under the run lock, while root runs the shipped unit's exact
# ExecStart line every two seconds.
#
#   e2e.sh FLATLINE UNIT_FILE RUN_DIR ORCH_UID
#
# Workers (all in task card card-1, each with stale_after_ms 3000):
#   progress  appends an event every 0.7 s for ~9 s, then completes: never signalled
#   stuck     prints one event and sleeps: reclaimed by a sweep
#   quick     completes at once: finalized completed
#   reused    completes after 3 s, exits, and its pid is recycled (ns_last_pid) by a decoy
#             of the same uid, which must survive every sweep
# Prints "note: …" lines for the test and "done" at the end.
set -u
bin=$1 unit=$2 run=$3 orch=$4
note() { echo "note: $*"; }
iso() { date -u +%Y-%m-%dT%H:%M:%S.%3NZ; }
as_orch() { setpriv --reuid="$orch" --regid="$orch" --clear-groups "$@"; }

# The unit's ExecStart, with %f (the instance's run directory) substituted and the
# installed binary path replaced by the one under test.
exec_start=$(sed -n 's/^ExecStart=//p' "$unit")
exec_start=${exec_start//%f/$run}
exec_start=${exec_start//\/usr\/local\/bin\/flatline/$bin}
note "exec_start $exec_start"
sweeps=0
sweep() {
  # shellcheck disable=SC2086
  $exec_start >>"$run.sweep.out" 2>>"$run.sweep.err"
  local rc=$?
  sweeps=$((sweeps + 1))
  note "sweep $sweeps exit $rc"
}

mkdir -p "$run/delegations" "$run/raw-events"
chown -R "$orch:$orch" "$run"
chmod 0750 "$run"
chmod 0770 "$run/delegations" "$run/raw-events"

# The timer's first run creates .flatline/ with the run directory's group.
sweep

# An agent: an event stream shaped like `codex exec --json`.
cat >"$run/agent.sh" <<'AGENT'
#!/usr/bin/env bash
mode=$1 out=$2
ev() { printf '%s\n' "$1" >>"$out"; }
ev '{"type":"thread.started","thread_id":"th-'"$mode"'"}'
case $mode in
  progress)
    for i in $(seq 1 13); do
      ev '{"type":"item.completed","item":{"id":"i'"$i"'","type":"agent_message","text":"step '"$i"'"}}'
      sleep 0.7
    done
    ev '{"type":"turn.completed","usage":{"input_tokens":1,"output_tokens":1}}'
    echo natural >"$out.exit" ;;
  stuck) exec sleep 1000 ;;
  reused) sleep 3
     ev '{"type":"item.completed","item":{"id":"i","type":"agent_message","text":"done"}}'
     ev '{"type":"turn.completed","usage":{"input_tokens":1,"output_tokens":1}}'
     echo natural >"$out.exit" ;;
  *) ev '{"type":"item.completed","item":{"id":"i","type":"agent_message","text":"done"}}'
     ev '{"type":"turn.completed","usage":{"input_tokens":1,"output_tokens":1}}'
     echo natural >"$out.exit" ;;
esac
AGENT
chmod 0755 "$run/agent.sh"

# The orchestrator: writes each delegation under the lock (jq, temp file, rename).
cat >"$run/orch.sh" <<'ORCH'
#!/usr/bin/env bash
run=$1 id=$2 mode=$3
lock=$run/.flatline/lock
iso() { date -u +%Y-%m-%dT%H:%M:%S.%3NZ; }
doc=$run/delegations/$id.json
put() { # put JQ_FILTER [ARGS...]: rewrite the delegation under the run lock
  local filter=$1; shift
  flock "$lock" bash -c '
    doc=$1 filter=$2; shift 2
    if [ -e "$doc" ]; then jq "$@" "$filter" "$doc" >"$doc.tmp.$$" || exit 1
    else jq -n "$@" "$filter" >"$doc.tmp.$$" || exit 1; fi
    mv "$doc.tmp.$$" "$(dirname "$doc")/$(basename "$doc")"' _ "$doc" "$filter" "$@"
}
stream=$run/raw-events/$id.jsonl
queued=$(iso)
put '{delegation_id:$id, task_card_id:"card-1", child_agent:{status:"queued"},
      worker_launch_evidence:{raw_events_file:$stream},
      worker_lifecycle:{state:"queued", queued_at:$q, launch_requested_at:$q,
                        stale_after_ms:3000}, orchestrator:{updates:0}}' \
  --arg id "$id" --arg q "$queued" --arg stream "$stream"
: >"$stream"
"$run/agent.sh" "$mode" "$stream" &
pid=$!
started=$(iso)
put '.child_agent.status="running" | .worker_lifecycle.state="running_active"
     | .worker_lifecycle.process_id=$pid | .worker_lifecycle.started_at=$s
     | .worker_lifecycle.last_progress_at=$s' --argjson pid "$pid" --arg s "$started"
echo "$pid" >"$run/$id.pid"
# Keep writing while the sweeps run: none of these updates may be lost.
n=0
for _ in $(seq 1 30); do
  sleep 0.5
  n=$((n + 1))
  put '.orchestrator.updates += 1' || exit 1
  echo "$n" >"$run/$id.updates"
done
wait "$pid" 2>/dev/null
ORCH
chmod 0755 "$run/orch.sh"

for w in progress stuck quick reused; do
  as_orch "$run/orch.sh" "$run" "$w" "$w" &
done
orchestrators=$(jobs -p)

# The reused worker: once it has exited, its pid is recycled for a decoy of the same uid.
for _ in $(seq 1 100); do [ -s "$run/reused.pid" ] && break; sleep 0.1; done
rpid=$(cat "$run/reused.pid")
note "reused worker $rpid"
sweep   # sees every worker alive (or just finished) and stamps fingerprints
for _ in $(seq 1 100); do kill -0 "$rpid" 2>/dev/null || break; sleep 0.05; done
# Reap: the worker is the orchestrator's child; wait until /proc forgets it.
for _ in $(seq 1 100); do [ -e "/proc/$rpid" ] || break; sleep 0.05; done
echo $((rpid - 1)) >/proc/sys/kernel/ns_last_pid
as_orch sleep 1000 &
decoy=$!
note "decoy $decoy"

for _ in $(seq 1 9); do sleep 2; sweep; done
wait $orchestrators
sweep

spid=$(cat "$run/stuck.pid")
ppid_=$(cat "$run/progress.pid")
if kill -0 "$decoy" 2>/dev/null; then note "decoy alive"; else note "decoy dead"; fi
if kill -0 "$spid" 2>/dev/null; then note "stuck alive"; else note "stuck dead"; fi
[ -e "$run/raw-events/progress.jsonl.exit" ] && note "progress exited naturally"
for w in progress stuck quick reused; do
  note "updates $w $(cat "$run/$w.updates") $(jq -c .orchestrator.updates "$run/delegations/$w.json")"
done
kill "$decoy" 2>/dev/null
note done
