//! The record of a doctor finding (SPEC §13).

use serde::Serialize;

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
