//! runstate: `RUN_DIR/.flatline/state.json`, flatline's own memory of a run, as sections.
//!
//! Several concerns keep something across runs (the workers' last health, the signalled
//! targets of a reclaim, the pid namespace and clock offset, where a deadline stopped a run,
//! problems already reported). Each owns one top-level key of one JSON object; a writer
//! changes only its key and keeps every other key as it found it, so no concern can erase
//! another's memory. The file is written only under the run lock, atomically, and only when
//! some section changed.

pub mod reported;
pub mod resume;

use crate::fs::{Dir, ReadError};
use serde_json::{Map, Value};
use std::ffi::OsStr;

/// The file name inside `.flatline/`.
pub const FILE: &str = "state.json";
/// Mode of a new state file: the lock group may read it (SPEC §4).
pub const MODE: u32 = 0o640;
const MAX_BYTES: usize = 16 << 20;

/// The state document of one run, as read, plus the changes not yet written.
#[derive(Debug, Default)]
pub struct RunState {
    sections: Map<String, Value>,
    changed: bool,
}

/// Why the stored state could not be used (the run then starts from an empty state).
#[derive(Debug)]
pub enum StateError {
    /// Not a JSON object: the message says what was found.
    Invalid(String),
    Read(ReadError),
}

impl std::fmt::Display for StateError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StateError::Invalid(what) => write!(f, "not a flatline state document: {what}"),
            StateError::Read(error) => write!(f, "{error}"),
        }
    }
}

impl RunState {
    /// Parses a state document; anything but a JSON object is an error.
    pub fn parse(bytes: &[u8]) -> Result<RunState, StateError> {
        match serde_json::from_slice::<Value>(bytes) {
            Ok(Value::Object(sections)) => Ok(RunState {
                sections,
                changed: false,
            }),
            Ok(_) => Err(StateError::Invalid("not a JSON object".into())),
            Err(error) => Err(StateError::Invalid(error.to_string())),
        }
    }

    /// Reads `state.json` from the `.flatline` directory; a missing file is an empty state.
    pub fn read(state_dir: &Dir) -> Result<RunState, StateError> {
        let mut buf = Vec::new();
        match state_dir.read_file(OsStr::new(FILE), MAX_BYTES, &mut buf) {
            Ok(_) => RunState::parse(&buf),
            Err(ReadError::NotFound) => Ok(RunState::default()),
            Err(error) => Err(StateError::Read(error)),
        }
    }

    /// One concern's section, as stored.
    pub fn section(&self, key: &str) -> Option<&Value> {
        self.sections.get(key)
    }

    /// Replaces one concern's section; a value equal to the stored one changes nothing.
    pub fn set_section(&mut self, key: &str, value: Value) {
        if self.sections.get(key) != Some(&value) {
            self.sections.insert(key.to_owned(), value);
            self.changed = true;
        }
    }

    /// Removes one concern's section.
    pub fn remove_section(&mut self, key: &str) {
        if self.sections.remove(key).is_some() {
            self.changed = true;
        }
    }

    /// Whether a section was set or removed since the state was read.
    #[cfg(test)]
    pub fn is_changed(&self) -> bool {
        self.changed
    }

    /// The document as written: sections in their stored order, new ones after.
    pub fn render(&self) -> Vec<u8> {
        let mut sections = self.sections.clone();
        sections
            .entry("schema_version")
            .or_insert_with(|| Value::from(1));
        crate::model::render(&Value::Object(sections))
    }

    /// Writes the state atomically when a section changed; a run that changed nothing
    /// leaves the file byte-identical.
    pub fn write_if_changed(&mut self, state_dir: &Dir) -> Result<(), crate::fs::StoreError> {
        if !self.changed {
            return Ok(());
        }
        crate::fs::write_in_dir_group(state_dir, OsStr::new(FILE), &self.render(), MODE)?;
        self.changed = false;
        Ok(())
    }
}

/// The path of a run's state file, for messages.
pub fn path_of(run_dir: &std::path::Path) -> std::path::PathBuf {
    run_dir.join(".flatline").join(FILE)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_section_change_keeps_the_other_sections() {
        let mut state =
            RunState::parse(br#"{"schema_version":1,"workers":{"a":"healthy"},"x":[1]}"#).unwrap();
        assert!(!state.is_changed());
        state.set_section("workers", json!({"a": "healthy"}));
        assert!(!state.is_changed(), "an equal value is no change");
        state.set_section("signalled", json!([{"pid": 42}]));
        assert!(state.is_changed());
        let written: Value = serde_json::from_slice(&state.render()).unwrap();
        assert_eq!(
            written,
            json!({"schema_version":1,"workers":{"a":"healthy"},"x":[1],"signalled":[{"pid":42}]})
        );
        state.remove_section("x");
        let written: Value = serde_json::from_slice(&state.render()).unwrap();
        assert!(written.get("x").is_none());
        assert!(written.get("workers").is_some());
    }

    #[test]
    fn only_an_object_is_a_state() {
        assert!(RunState::parse(b"[]").is_err());
        assert!(RunState::parse(b"{").is_err());
        assert!(RunState::parse(b"{}").unwrap().section("workers").is_none());
    }
}
