//! doctor: checks run directories, the host and a systemd unit, and says how to fix each
//! finding (SPEC §13). Exit 0 clean, 1 findings, 2 usage. Writes nothing.

use crate::cli::config::Config;
use crate::core::doctor::{self, Finding};
use crate::exit::Exit;
use crate::fs::doctor::Accounts;
use crate::interrupt::Stop;
use crate::output::{Diagnostics, FindingRecord, Header, Output};
use crate::shell::doctor::{Expected, check_run, check_unit};
use std::path::Path;

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
