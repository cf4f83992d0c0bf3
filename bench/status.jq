# status.jq: the jq program equivalent to `flatline status --format ndjson --now NOW` (SPEC §2)
# for delegations without a live process to look at, i.e. the benchmark's generated runs.
# It reads each delegation file (jq -c --arg now NOW --arg run_dir RUN -f bench/status.jq
# RUN/delegations/*.json) and prints the same record flatline prints, field for field: the
# lifecycle state, reclaim state, thresholds, ages, next action, recovery and warnings.
# What it cannot do is look at processes (jq has no kill(2) and no /proc): process_alive and
# process_identity stay null, as flatline prints them for delegations that are not running
# or record no process id.
# bench/run.sh checks that its records equal flatline's on the generated data.

def default_stale: 45000;
def max_clock_skew: 60000;

# RFC 3339 → whole milliseconds since the epoch (truncated), or null when not a timestamp.
def ms:
  if type != "string" then null
  else (capture("^(?<d>[0-9]{4}-[0-9]{2}-[0-9]{2})[Tt](?<t>[0-9]{2}:[0-9]{2}:[0-9]{2})(?<f>\\.[0-9]+)?(?<z>[Zz]|[+-][0-9]{2}:[0-9]{2})$") // null) as $c
    | if $c == null then null
      else (($c.d + "T" + $c.t + "Z") | strptime("%Y-%m-%dT%H:%M:%SZ") | mktime) * 1000
        + (if $c.f then ($c.f[1:] + "00")[0:3] | tonumber else 0 end)
        - (if ($c.z | ascii_downcase) == "z" then 0
           else ($c.z[0:1] | if . == "-" then -1 else 1 end)
             * (($c.z[1:3] | tonumber) * 3600000 + ($c.z[4:6] | tonumber) * 60000) end)
      end
  end;

# Whole milliseconds → "YYYY-MM-DDTHH:MM:SS.mmmZ", as flatline prints instants.
def stamp:
  if . == null then null
  else (. % 1000) as $f
    | ((. - $f) / 1000 | todate | .[0:19]) + "." + ("00" + ($f | tostring) | .[-3:]) + "Z"
  end;

def str: if type == "string" then . else null end;
def integer: if type == "number" and . == floor then . else null end;
def nonempty: if type == "string" then (sub("^\\s+"; "") | sub("\\s+$"; "")) | if . == "" then null else . end else null end;

($now | ms) as $now_ms
| . as $doc
| (if (.worker_lifecycle | type) == "object" then .worker_lifecycle else {} end) as $l
# Timestamps; a present string that is not RFC 3339 is absent, with a warning.
| ["queued_at", "launch_requested_at", "started_at", "process_started_at", "last_progress_at",
   "stale_at", "timed_out_at"] as $names
| (reduce $names[] as $n ({t: {}, warn: []};
      ($l[$n] | str) as $s
      | ($s | ms) as $v
      | .t[$n] = $v
      | if $s != null and $v == null then .warn += ["invalid_timestamp:worker_lifecycle." + $n] else . end)) as $parsed
| $parsed.t as $t
# Thresholds: per worker, else the defaults; out of order per-worker values are clamped.
| ([$l.quiet_after_ms, $l.stale_after_ms, $l.timeout_after_ms]
  | map(integer)
  | (map(select(. != null and . <= 0)) | length > 0) as $nonpositive
  | map(if . != null and . > 0 then . else null end) as [$own_quiet, $own_stale, $own_timeout]
  | ($own_stale // default_stale) as $stale0
  | ($own_timeout // ($stale0 * 2)) as $timeout0
  | (if $timeout0 < $stale0 then $stale0 else $timeout0 end) as $timeout
  | ($timeout0 < $stale0 and ($own_stale != null or $own_timeout != null)) as $bad_timeout
  | ($own_quiet // (($stale0 / 2) | floor)) as $quiet0
  | (if $quiet0 > $stale0 then $stale0 else $quiet0 end) as $quiet1
  | ($quiet0 > $stale0 and ($own_quiet != null or $own_stale != null)) as $bad_quiet
  | {quiet: ([$quiet1, 1] | max), stale: $stale0, timeout: $timeout,
     warn: (if $nonpositive or $bad_timeout or $bad_quiet then ["invalid_threshold"] else [] end)})
  as $th
# Status: child_agent.status, else executor.status, else queued.
| (($doc.child_agent | if type == "object" then .status | str else null end)
   // ($doc.executor | if type == "object" then .status | str else null end)) as $status_text
| ($status_text // "queued") as $status
| (($l.reclaim_state | str) == "reclaimed") as $reclaimed
# Progress baseline and its age.
| ([["last_progress_at", $t.last_progress_at], ["started_at", $t.started_at],
    ["process_started_at", $t.process_started_at],
    ["launch_requested_at", $t.launch_requested_at], ["queued_at", $t.queued_at]]
   | map(select(.[1] != null)) | first) as $baseline
| (if $baseline == null then {elapsed: null, skew: false}
   elif $baseline[1] > $now_ms + max_clock_skew then {elapsed: null, skew: true}
   elif $baseline[1] > $now_ms then {elapsed: 0, skew: true}
   else {elapsed: ($now_ms - $baseline[1]), skew: false} end) as $age
| (if $reclaimed then
     {state: (($l.state | str) as $s
              | if $s == "running" then "running_active"
                elif ["queued", "launching", "running_active", "running_quiet", "stale",
                      "timed_out", "returned", "failed", "cancelled", "unknown"] | index([$s])
                then $s
                elif $status == "completed" then "returned"
                elif $status == "cancelled" then "cancelled"
                else "failed" end), warn: []}
   elif $status == "running" then
     (if $age.skew then ["clock_skew"] else [] end) as $skew
     | if $age.elapsed == null then
         {state: "unknown", warn: ($skew + (if $baseline == null then ["no_progress_baseline"] else [] end))}
       elif $age.elapsed >= $th.timeout then {state: "timed_out", warn: $skew}
       elif $age.elapsed >= $th.stale then {state: "stale", warn: $skew}
       elif $t.launch_requested_at != null and $t.started_at == null then {state: "launching", warn: $skew}
       elif $age.elapsed >= $th.quiet then {state: "running_quiet", warn: $skew}
       else {state: "running_active", warn: $skew} end
   elif $status == "completed" then {state: "returned", warn: []}
   elif $status == "failed" then {state: "failed", warn: []}
   elif $status == "cancelled" then {state: "cancelled", warn: []}
   elif $status == "queued" then {state: "queued", warn: []}
   else {state: "unknown", warn: ["unknown_status"]} end) as $s
| $s.state as $state
| (if $reclaimed then "reclaimed"
   elif $state == "stale" or $state == "timed_out" then "reclaim_needed"
   elif $state == "returned" then "resumable"
   else "not_needed" end) as $reclaim_state
| ($age.elapsed // 0) as $a
| {
    kind: "delegation",
    run_dir: $run_dir,
    path: input_filename,
    delegation_id: (.delegation_id | str),
    task_card_id: (.task_card_id | str),
    work_kind: ((.work_kind | nonempty)
                // (.worker_request | if type == "object" then .work_kind | nonempty else null end)
                // (.worker_launch_evidence | if type == "object" then .work_kind | nonempty else null end)
                // "worker"),
    status: $status,
    state: $state,
    reclaim_state: $reclaim_state,
    process_id: ($l.process_id | integer),
    process_alive: null,
    process_identity: null,
    last_progress_at: ($t.last_progress_at | stamp),
    progress_baseline: ($baseline | if . == null then null else .[0] end),
    elapsed_since_progress_ms: $age.elapsed,
    quiet_after_ms: $th.quiet,
    stale_after_ms: $th.stale,
    timeout_after_ms: $th.timeout,
    stale_at: (if $state == "stale" and ($reclaimed | not) then ($t.stale_at // $baseline[1]) else $t.stale_at end | stamp),
    timed_out_at: (if $state == "timed_out" and ($reclaimed | not) then ($t.timed_out_at // $baseline[1]) else $t.timed_out_at end | stamp),
    next_action: (if $reclaimed then "none"
                  elif $state == "stale" or $state == "timed_out" then "reclaim"
                  elif $state == "returned" then "advance"
                  elif $state == "failed" or $state == "cancelled" then "none"
                  else "await_worker" end),
    transition: ({returned: "completed", timed_out: "reclaimable", stale: "stalled", running_quiet: "quiet"}[$state] // "running"),
    classification: ({returned: "completed", timed_out: "reclaimable", stale: "stalled", running_quiet: "quiet"}[$state] // "running"),
    recovery_action: (if $reclaimed then "ask_operator"
                      elif $state == "stale" or $state == "timed_out" then "reclaim"
                      elif $state == "running_quiet" then "poll"
                      elif $state == "failed" or $state == "cancelled" then "ask_operator"
                      else "wait" end),
    recovery_reason: (if $reclaimed then "the worker was reclaimed; ask the operator how to recover"
                      elif $state == "timed_out" then "worker progress age \($a) ms reached the timeout threshold \($th.timeout) ms"
                      elif $state == "stale" then "worker progress age \($a) ms reached the stale threshold \($th.stale) ms"
                      elif $state == "running_quiet" then "worker progress age \($a) ms reached the quiet threshold \($th.quiet) ms"
                      elif $state == "failed" then "the worker failed; ask the operator how to recover"
                      elif $state == "cancelled" then "the worker was cancelled; ask the operator how to recover"
                      elif $state == "returned" then "the worker returned; wait for fan-in"
                      elif $state == "queued" or $state == "launching" then "the worker has not started; wait for launch"
                      elif $state == "unknown" then "the state cannot be determined; see warnings"
                      else "worker progress age \($a) ms is below the quiet threshold \($th.quiet) ms" end),
    summary: (if $reclaimed then "reclaimed after it stopped making progress; ask the operator how to recover"
              else {queued: "queued and waiting for launch",
                    launching: "launch requested, waiting for the worker to start",
                    running_active: "running with recent progress",
                    running_quiet: "running, quiet: no progress for a while",
                    stale: "stale: no progress past the stale threshold; needs reclaim",
                    timed_out: "timed out: past the timeout threshold; needs reclaim",
                    returned: "returned; ready for fan-in",
                    failed: "failed; needs follow-up",
                    cancelled: "cancelled",
                    unknown: "state unknown: see warnings"}[$state] end),
    needs_attention: (($reclaimed | not) and ($reclaim_state == "reclaim_needed" or $state == "unknown")),
    warnings: ($parsed.warn + $th.warn + $s.warn)
  }
