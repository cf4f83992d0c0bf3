//! resume: where a run cut short (the deadline, a signal) stopped in `delegations/`, kept
//! in `.flatline/state.json` under `resume` so that the next run starts there (SPEC §4).
//!
//! Runs always begin at the first file in name order; a timer whose runs keep hitting the
//! deadline would then never reach the files at the end. With the stored name, the next run
//! starts at that file and wraps around; a complete run removes the section, and the order
//! is file-name order again.

use crate::exit::Exit;
use crate::fs::Dir;
use crate::output::Diagnostics;
use crate::shell::runs::Run;
use crate::shell::state::{self as runstate, RunState};
use serde_json::{Value, json};
use std::ffi::{OsStr, OsString};

/// The section of `state.json` this module owns.
pub const SECTION: &str = "resume";

/// The stored name to start from: `{"delegations": "NAME"}`; anything else is no start.
pub fn parse(section: Option<&Value>) -> Option<OsString> {
    let name = section?.get("delegations")?.as_str()?;
    // A name from a listing: one path component, never empty.
    if name.is_empty() || name.contains('/') {
        return None;
    }
    Some(OsString::from(name))
}

/// The section for a scan that stopped before `name` (`None` for a name that is not UTF-8:
/// that run starts from the beginning again).
pub fn render(name: &OsStr) -> Option<Value> {
    Some(json!({ "delegations": name.to_str()? }))
}

/// Where this run's scan of `delegations/` starts, from its stored state. A state that
/// cannot be read starts at the beginning (the commands that own that state report it).
pub fn start(state_dir: &Dir) -> Option<OsString> {
    let state = RunState::read(state_dir).ok()?;
    parse(state.section(SECTION))
}

/// Records where the scan stopped (`stopped_at`), or that it completed (`None`: the section
/// goes). Reads the state afresh, so the other sections stay as they are; writes only on a
/// change.
pub fn record(state_dir: &Dir, run: &Run, stopped_at: Option<&OsStr>, diag: &mut Diagnostics) {
    let path = runstate::path_of(&run.path);
    let mut state = match RunState::read(state_dir) {
        Ok(state) => state,
        Err(error) => {
            // Never replace a state document flatline cannot read with a fresh one.
            if stopped_at.is_some() {
                diag.error(
                    &path,
                    &format!("{error}; where the run stopped is not recorded"),
                    Exit::FileProblem,
                );
            }
            return;
        }
    };
    match stopped_at.and_then(render) {
        Some(section) => state.set_section(SECTION, section),
        None => state.remove_section(SECTION),
    }
    if let Err(error) = state.write_if_changed(state_dir) {
        diag.error(&path, &error.to_string(), Exit::FileProblem);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_section_round_trips() {
        let section = render(OsStr::new("d0812.json")).unwrap();
        assert_eq!(section, json!({"delegations": "d0812.json"}));
        assert_eq!(parse(Some(&section)), Some(OsString::from("d0812.json")));
    }

    #[test]
    fn a_section_that_names_no_file_is_no_start() {
        for section in [
            json!(null),
            json!("d1.json"),
            json!({}),
            json!({"delegations": 7}),
            json!({"delegations": ""}),
            json!({"delegations": "../d1.json"}),
        ] {
            assert_eq!(parse(Some(&section)), None, "{section}");
        }
        assert_eq!(parse(None), None);
    }

    #[test]
    fn a_name_that_is_not_utf8_is_not_stored() {
        use std::os::unix::ffi::OsStrExt;
        assert_eq!(render(OsStr::from_bytes(b"d\xff.json")), None);
    }
}
