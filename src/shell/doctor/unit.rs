//! doctor's `--check-unit FILE`: the unit's `User=` and the findings of its `ExecStart=`
//! lines (SPEC §13), each command line resolved as flatline would resolve it. The unit is
//! parsed by `core::unit`.

use super::Expected;
use crate::core::doctor::Finding;
use crate::core::unit;
use crate::fs::doctor::Accounts;
use std::path::Path;

/// `--check-unit FILE`: the unit's `User=` and the findings of its `ExecStart=` lines.
pub fn check_unit(file: &Path, accounts: &Accounts) -> (Option<Expected>, Vec<Finding>) {
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
