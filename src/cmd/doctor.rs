//! doctor: checks run directories, the host and a systemd unit, and says how to fix each
//! finding (SPEC §13). Exit 0 clean, 1 findings, 2 usage. Writes nothing.

use crate::cli::config::Config;
use crate::core::doctor::{self, Finding};
use crate::core::unit;
use crate::exit::Exit;
use crate::fs::doctor::Accounts;
use crate::interrupt::Stop;
use crate::output::{Diagnostics, Header, Output};
use crate::shell::doctor::{Expected, check_run};
use serde::Serialize;
use std::path::Path;

/// A finding record (`kind: "finding"`).
#[derive(Debug, Serialize)]
pub struct FindingRecord<'a> {
    pub kind: &'static str,
    pub run_dir: Option<&'a str>,
    pub check: &'static str,
    pub path: Option<&'a str>,
    pub message: &'a str,
    pub fix: &'a str,
}

/// `flatline doctor`.
pub fn run(config: &Config, diag: &mut Diagnostics, stop: &Stop) -> Exit {
    let accounts = Accounts::read();
    let caller = crate::fs::effective_uid();
    let mut expected = Expected {
        uid: caller,
        name: accounts
            .users
            .iter()
            .find(|u| u.1 == caller)
            .map_or_else(|| format!("uid {caller}"), |u| u.0.clone()),
    };
    let mut groups: Vec<(Option<String>, Vec<Finding>)> = Vec::new();
    if let Some(file) = &config.check_unit {
        let (user, findings) = check_unit(file, &accounts);
        if let Some(user) = user {
            expected = user;
        }
        groups.push((None, findings));
    }
    let mut host = crate::proc::doctor::host_facts();
    host.openat2 = crate::fs::doctor::openat2_available();
    host.root = caller == 0;
    groups.push((None, doctor::host_findings(&host)));
    for path in &config.run_dirs {
        if let Some(exit) = stop.check() {
            diag.raise(exit);
            break;
        }
        let findings = check_run(path, config, &accounts, &expected);
        groups.push((Some(path.to_string_lossy().into_owned()), findings));
    }
    let header = Header {
        run_dirs: config
            .run_dirs
            .iter()
            .map(|p| p.to_string_lossy().into_owned())
            .collect(),
        checked_at: config.now,
    };
    let mut output = Output::for_config(config, header);
    let mut count = 0;
    for (run_dir, findings) in &groups {
        for finding in findings {
            count += 1;
            let record = FindingRecord {
                kind: "finding",
                run_dir: run_dir.as_deref(),
                check: finding.check,
                path: finding.path.as_deref(),
                message: &finding.message,
                fix: &finding.fix,
            };
            if let Err(error) = output.record(&record) {
                return crate::output::stdout_failed(diag, &error);
            }
        }
    }
    let tally = match count {
        0 => "doctor: nothing found".to_string(),
        n => format!("doctor: {n} finding(s)"),
    };
    let empty: [serde_json::Value; 0] = [];
    if let Err(error) = output.finish(&empty, &diag.errors.clone(), &tally) {
        diag.error(
            Path::new("stdout"),
            &crate::fs::io_message(&error),
            Exit::FileProblem,
        );
    }
    if count > 0 {
        diag.raise(Exit::Attention);
    }
    diag.exit
}

/// `--check-unit FILE`: the unit's `User=` and the findings of its `ExecStart=` lines.
fn check_unit(file: &Path, accounts: &Accounts) -> (Option<Expected>, Vec<Finding>) {
    let shown = file.to_string_lossy().into_owned();
    let text = match std::fs::read(file) {
        Ok(bytes) if bytes.len() <= crate::fs::MAX_DOCUMENT_BYTES => {
            String::from_utf8_lossy(&bytes).into_owned()
        }
        Ok(_) => return (None, vec![unit_unreadable(&shown, "larger than 16 MiB")]),
        Err(error) => {
            return (
                None,
                vec![unit_unreadable(&shown, &crate::fs::io_message(&error))],
            );
        }
    };
    let parsed = unit::read_unit(&text);
    let mut findings = Vec::new();
    let user = parsed.user.clone().unwrap_or_else(|| "root".to_string());
    let expected = match accounts.uid(&user) {
        Some(uid) => Some(Expected { uid, name: user }),
        None => {
            findings.push(
                Finding::new(
                    "unit_user",
                    format!("User={user} is not a user of this host"),
                    "create the user or fix User=",
                )
                .at(shown.clone()),
            );
            None
        }
    };
    if parsed.exec_starts.is_empty() {
        findings.push(
            Finding::new(
                "unit_exec_start",
                "the unit has no ExecStart=",
                "add ExecStart=/usr/local/bin/flatline sweep … %f",
            )
            .at(shown.clone()),
        );
    }
    let scratch = scratch_run_dir();
    for (line, value) in &parsed.exec_starts {
        let at = format!("{shown}:{line}");
        let mut found = Vec::new();
        check_exec_start(value, &parsed, &scratch, &mut found);
        findings.extend(found.into_iter().map(|f| f.at(at.clone())));
    }
    (expected, findings)
}

/// A run directory for `%i`, `%I` and `%f` that names nothing real: resolving a command line
/// looks at no file.
fn scratch_run_dir() -> String {
    "/run/flatline-doctor/scratch-run".to_string()
}

fn check_exec_start(value: &str, parsed: &unit::Unit, scratch: &str, out: &mut Vec<Finding>) {
    let Some(argv) = unit::exec_argv(value, parsed, scratch, out) else {
        return;
    };
    let Some(program) = argv.first() else {
        return;
    };
    if !program.text.ends_with("/flatline") && program.text != "flatline" {
        out.push(Finding::new(
            "unit_not_flatline",
            format!(
                "ExecStart= runs {}, not flatline: its arguments are not checked",
                program.text
            ),
            "run flatline directly in ExecStart=, so that its command line can be checked",
        ));
        return;
    }
    out.extend(unit::duration_spaces(&argv, |name| {
        crate::cli::FLAGS
            .iter()
            .any(|flag| flag.long == name && flag.value == Some("DURATION"))
    }));
    let args: Vec<&str> = argv[1..].iter().map(|w| w.text.as_str()).collect();
    let resolved = crate::cli::parse(args.iter().copied()).and_then(|low| match low.mode() {
        crate::cli::Mode::Run(command) => {
            crate::cli::config::resolve(low, command, false).map(|_| ())
        }
        _ => Err(crate::cli::UsageError("it runs no command".into())),
    });
    if let Err(error) = resolved {
        out.push(Finding::new(
            "unit_usage_error",
            format!("flatline refuses the command line: {}", error.0),
            "fix the options of ExecStart= (see flatline COMMAND --help); every timer run would exit 2",
        ));
    }
}

fn unit_unreadable(path: &str, problem: &str) -> Finding {
    Finding::new(
        "unit_unreadable",
        format!("cannot read the unit: {problem}"),
        "name a readable unit file",
    )
    .at(path)
}
