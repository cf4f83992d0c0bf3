//! The shipped deployment: every unit file under `contrib/` must start a flatline that works.
//!
//! `systemd-analyze verify` checks a unit's syntax, not whether the program accepts its
//! command line: a `--deadline 4min` that flatline rejected once left every timer sweeping
//! nothing. Here each `ExecStart=` line is read as systemd reads it (prefixes, specifiers,
//! quoting), parsed and resolved by flatline itself, and the instantiated service's command
//! is run for real on a run directory with a stuck worker, inside a private pid namespace.

use crate::support::*;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Every unit file flatline ships.
fn unit_files() -> Vec<PathBuf> {
    let mut units = Vec::new();
    let mut dirs = vec![PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/contrib"
    ))];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else if path
                .extension()
                .and_then(|e| e.to_str())
                .is_some_and(|e| ["service", "timer", "socket", "path"].contains(&e))
            {
                units.push(path);
            }
        }
    }
    units.sort();
    units
}

/// The `ExecStart=` values of a unit file (continuation lines joined, comments skipped).
fn exec_starts(unit: &str) -> Vec<String> {
    let mut lines = Vec::new();
    let mut pending = String::new();
    for line in unit.lines() {
        let trimmed = line.trim();
        if pending.is_empty() && (trimmed.starts_with('#') || trimmed.starts_with(';')) {
            continue;
        }
        if let Some(head) = trimmed.strip_suffix('\\') {
            pending.push_str(head);
            pending.push(' ');
            continue;
        }
        pending.push_str(trimmed);
        lines.push(std::mem::take(&mut pending));
    }
    lines
        .into_iter()
        .filter_map(|line| {
            let (key, value) = line.split_once('=')?;
            (key.trim() == "ExecStart").then(|| value.trim().to_string())
        })
        .filter(|value| !value.is_empty())
        .collect()
}

/// Resolves the specifiers systemd expands in ExecStart (systemd.unit(5)) for an instance
/// whose unescaped path is `path`; any other specifier fails the test, so that a unit using
/// one is looked at here first.
fn specifiers(text: &str, path: &Path) -> String {
    let path = path.to_str().unwrap();
    let escaped = path
        .trim_start_matches('/')
        .replace('-', "\\x2d")
        .replace('/', "-");
    let mut out = String::new();
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('%') => out.push('%'),
            Some('f') | Some('I') => out.push_str(path),
            Some('i') => out.push_str(&escaped),
            other => panic!("specifier %{other:?} in {text:?}: teach this test what it means"),
        }
    }
    out
}

/// Splits a command line as systemd does (systemd.service(5), "Command lines"): words
/// separated by whitespace, single and double quotes, C-style backslash escapes.
fn split_systemd(line: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut chars = line.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        if chars.peek().is_none() {
            return words;
        }
        let mut word = String::new();
        let mut quote = None;
        while let Some(c) = chars.next() {
            match (quote, c) {
                (None, c) if c.is_whitespace() => break,
                (None, '"' | '\'') => quote = Some(c),
                (Some(q), c) if c == q => quote = None,
                (_, '\\') => match chars.next() {
                    Some('n') => word.push('\n'),
                    Some('t') => word.push('\t'),
                    Some(other) => word.push(other),
                    None => panic!("trailing backslash in {line:?}"),
                },
                (_, c) => word.push(c),
            }
        }
        assert!(quote.is_none(), "unterminated quote in {line:?}");
        assert_ne!(
            word, ";",
            "several commands on one line in {line:?}: not handled"
        );
        words.push(word);
    }
}

/// The argv systemd would execute for `value` (an ExecStart value): prefixes stripped,
/// specifiers resolved for the run directory `run_dir`, split; the first word is the program.
fn exec_argv(value: &str, run_dir: &Path) -> Vec<String> {
    let at = value.starts_with('@')
        || value
            .trim_start_matches(['-', '+', '!', ':'])
            .starts_with('@');
    let command = value.trim_start_matches(['-', '@', '+', '!', ':']);
    let mut argv = split_systemd(&specifiers(command, run_dir));
    if at {
        // `@`: the second word is argv[0], the first the program.
        argv.remove(1);
    }
    argv
}

/// The flatline ExecStart lines of every shipped unit, as argv for the run directory.
fn flatline_commands(run_dir: &Path) -> Vec<(PathBuf, Vec<String>)> {
    let mut commands = Vec::new();
    for unit in unit_files() {
        let text = std::fs::read_to_string(&unit).unwrap();
        for value in exec_starts(&text) {
            let argv = exec_argv(&value, run_dir);
            assert!(
                argv[0].ends_with("/flatline"),
                "{}: ExecStart runs {:?}, not flatline",
                unit.display(),
                argv[0]
            );
            commands.push((unit.clone(), argv));
        }
    }
    commands
}

#[test]
fn the_systemd_splitter_reads_quotes_and_escapes_as_systemd_does() {
    assert_eq!(
        split_systemd(r#"/bin/flatline sweep --deadline "1h 30min" 'a b' c\ d %f"#),
        [
            "/bin/flatline",
            "sweep",
            "--deadline",
            "1h 30min",
            "a b",
            "c d",
            "%f"
        ]
    );
    assert_eq!(
        exec_argv(
            "-@/bin/flatline flatline status %f",
            Path::new("/srv/runs/r-42")
        ),
        ["/bin/flatline", "status", "/srv/runs/r-42"]
    );
    assert_eq!(
        specifiers("%i %I 100%%", Path::new("/srv/runs/r-42")),
        "srv-runs-r\\x2d42 /srv/runs/r-42 100%"
    );
    assert_eq!(
        exec_starts("[Service]\n# ExecStart=/no\nExecStart=/bin/flatline \\\n  sweep %f\n"),
        ["/bin/flatline  sweep %f"]
    );
}

/// (a) Every ExecStart of every shipped unit is a command line flatline accepts.
#[test]
fn every_shipped_unit_starts_a_command_line_flatline_accepts() {
    let run = Run::new();
    let commands = flatline_commands(run.path());
    assert!(!commands.is_empty(), "no ExecStart found under contrib/");
    for (unit, argv) in commands {
        let low =
            flatline::cli::parse(argv[1..].iter().map(String::as_str)).unwrap_or_else(|error| {
                panic!("{}: {argv:?}: usage error: {}", unit.display(), error.0)
            });
        let flatline::cli::Mode::Run(command) = low.mode() else {
            panic!("{}: {argv:?} runs no command", unit.display());
        };
        let config = flatline::cli::config::resolve(low, command, false).unwrap_or_else(|error| {
            panic!("{}: {argv:?}: usage error: {}", unit.display(), error.0)
        });
        assert_eq!(config.run_dirs, [run.path().to_path_buf()]);
    }
}

/// Runs as pid 1 of a private pid namespace: starts a stuck and a healthy worker, records
/// them in `$1` with their process fingerprints, runs the rest of the arguments (the
/// service's command) and reports what survived. `#` lines are the script's own.
const INIT: &str = r##"
run=$1; shift
now() { local us=${EPOCHREALTIME/./}; REPLY=$((us / 1000)); }
stamp() { printf -v REPLY '%(%Y-%m-%dT%H:%M:%S)T.%03dZ' $(($1 / 1000)) $(($1 % 1000)); }
read -r boot < /proc/sys/kernel/random/boot_id
ns=$(stat -Lc %i /proc/self/ns/pid)
worker() { # id pid progress_ms
  local stat; read -r -a stat < "/proc/$2/stat"
  now; stamp $((REPLY - 600000)); local started=$REPLY
  stamp "$3"; local progress=$REPLY
  printf '{"delegation_id":"%s","task_card_id":"c1","child_agent":{"status":"running"},"worker_lifecycle":{"process_id":%s,"started_at":"%s","last_progress_at":"%s","process_fingerprint":{"start_ticks":%s,"boot_id":"%s","pid_ns":%s}}}\n' \
    "$1" "$2" "$started" "$progress" "${stat[21]}" "$boot" "$ns" > "$run/delegations/$1.json"
}
sleep 300 & stuck=$!
sleep 300 & live=$!
now; worker stuck "$stuck" $((REPLY - 300000))
now; worker live "$live" "$REPLY"
"$@"; echo "#exit $?"
gone() { [ ! -e "/proc/$1" ] || grep -q ') Z' "/proc/$1/stat"; }
gone "$stuck" && echo "#stuck gone"
gone "$live" || echo "#live alive"
echo "#done"
"##;

/// (b) The instantiated service's ExecStart, run for real as root: it exits 0, reclaims the
/// stuck worker the test started, and leaves the healthy one alone.
#[test]
fn the_instantiated_service_reclaims_a_stuck_worker_for_real() {
    if !have("unshare") || !is_root() {
        eprintln!("SKIPPED: needs root and unshare");
        return;
    }
    let run = Run::new();
    let service = unit_files()
        .into_iter()
        .find(|unit| unit.to_string_lossy().ends_with("flatline-sweep@.service"))
        .expect("contrib/systemd/flatline-sweep@.service");
    let text = std::fs::read_to_string(&service).unwrap();
    let values = exec_starts(&text);
    assert_eq!(values.len(), 1, "{values:?}");
    let mut argv = exec_argv(&values[0], run.path());
    argv[0] = bin().to_string();
    let mut command = pid_namespace_bash(INIT);
    command.arg(run.path()).args(&argv).env("TZ", "UTC");
    let out = run_command(&mut command, Duration::from_secs(90));
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    let mut notes = Vec::new();
    let mut records = Vec::new();
    for line in out.stdout.lines() {
        match line.strip_prefix('#') {
            Some(note) => notes.push(note.to_string()),
            None => records.push(
                serde_json::from_str::<Value>(line)
                    .unwrap_or_else(|e| panic!("{line:?}: {e}\n{}", out.stdout)),
            ),
        }
    }
    assert_eq!(
        notes,
        ["exit 0", "stuck gone", "live alive", "done"],
        "{}\n{}",
        out.stdout,
        out.stderr
    );
    let acted_on: Vec<(&str, &str)> = records
        .iter()
        .filter(|r| r["kind"] == "action")
        .map(|r| {
            (
                r["action"].as_str().unwrap_or(""),
                r["delegation_id"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert_eq!(acted_on, [("reclaimed", "stuck")], "{}", out.stdout);
    let stuck = run.read_json("delegations/stuck.json");
    assert_eq!(stuck["worker_lifecycle"]["reclaim_state"], "reclaimed");
    let live = run.read_json("delegations/live.json");
    assert!(
        live["worker_lifecycle"].get("reclaim_state").is_none(),
        "{live}"
    );
}
