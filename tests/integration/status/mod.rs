//! `flatline status` on temporary run directories, with `--now`, checked field by field.

use crate::support::*;
use serde_json::{Value, json};
use std::os::unix::fs::PermissionsExt;

mod formats;
mod listing;
mod states;

fn running(id: &str, lifecycle: Value) -> Value {
    delegation(id, "running", lifecycle)
}
