//! The `activity` object of a delegation record (SPEC §11): the tree's totals, what it used
//! since the stored sample, and its top consumer.

use super::{JsonWriter, Ts, WriteJson};
use crate::core::activity::Activity;
use crate::core::stall::Stall;
use serde::Serialize;
use serde_json::{Map, Value};

/// `activity` in a delegation record.
#[derive(Debug, Serialize)]
pub struct ActivityRecord<'a> {
    pub cpu_ms: u64,
    pub io_bytes: Option<u64>,
    pub processes: u64,
    pub cpu_ms_since: Option<u64>,
    pub io_bytes_since: Option<u64>,
    pub since: Ts,
    pub top: Option<TopRecord<'a>>,
}

/// The process of the tree that used the most CPU since the stored sample.
#[derive(Debug, Serialize)]
pub struct TopRecord<'a> {
    pub pid: i32,
    pub comm: &'a str,
    pub cpu_ms_since: u64,
}

impl<'a> ActivityRecord<'a> {
    pub fn new(activity: &'a Activity) -> ActivityRecord<'a> {
        ActivityRecord {
            cpu_ms: activity.cpu_ms,
            io_bytes: activity.io_bytes,
            processes: activity.processes,
            cpu_ms_since: activity.cpu_ms_since,
            io_bytes_since: activity.io_bytes_since,
            since: Ts(activity.since),
            top: activity.top.as_ref().map(|top| TopRecord {
                pid: top.pid,
                comm: &top.comm,
                cpu_ms_since: top.cpu_ms_since,
            }),
        }
    }
}

/// `stall` in a delegation record (SPEC §11 "Diagnosis"): what the quiet worker's tree
/// waits on, since when, and the evidence in words.
#[derive(Debug, Serialize)]
pub struct StallRecord<'a> {
    pub code: &'static str,
    pub detail: &'a str,
    pub since: Ts,
}

impl<'a> StallRecord<'a> {
    pub fn new(stall: &'a Stall) -> StallRecord<'a> {
        StallRecord {
            code: stall.code.as_str(),
            detail: &stall.detail,
            since: Ts(Some(stall.since)),
        }
    }
}

impl WriteJson for StallRecord<'_> {
    fn write_json(&self, out: &mut JsonWriter<'_>) {
        out.key(true, "code");
        out.str(self.code);
        out.key(false, "detail");
        out.str(self.detail);
        out.key(false, "since");
        out.ts(self.since);
        out.end();
    }
}

/// The NOTE words of a delegation row about its activity and stall: `busy: 48.1s CPU since
/// the last sample, top cargo 4300` for a running_busy worker, `stall: stdin_pipe` when the
/// stall diagnosis named one.
pub fn notes(row: &Map<String, Value>) -> Vec<String> {
    let mut words = Vec::new();
    if row.get("state").and_then(Value::as_str) == Some("running_busy")
        && let Some(activity) = row.get("activity").and_then(Value::as_object)
    {
        let cpu = activity
            .get("cpu_ms_since")
            .and_then(Value::as_u64)
            .unwrap_or(0);
        let mut text = format!(
            "busy: {}.{}s CPU since the last sample",
            cpu / 1000,
            cpu % 1000 / 100
        );
        if let Some(top) = activity.get("top").and_then(Value::as_object) {
            let comm = top.get("comm").and_then(Value::as_str).unwrap_or("?");
            let pid = top.get("pid").and_then(Value::as_i64).unwrap_or(0);
            text.push_str(&format!(", top {comm} {pid}"));
        }
        words.push(text);
    }
    if let Some(code) = row
        .get("stall")
        .and_then(|stall| stall.get("code"))
        .and_then(Value::as_str)
    {
        words.push(format!("stall: {code}"));
    }
    words
}

impl WriteJson for ActivityRecord<'_> {
    fn write_json(&self, out: &mut JsonWriter<'_>) {
        out.key(true, "cpu_ms");
        out.int(self.cpu_ms);
        out.key(false, "io_bytes");
        out.opt_int(self.io_bytes);
        out.key(false, "processes");
        out.int(self.processes);
        out.key(false, "cpu_ms_since");
        out.opt_int(self.cpu_ms_since);
        out.key(false, "io_bytes_since");
        out.opt_int(self.io_bytes_since);
        out.key(false, "since");
        out.ts(self.since);
        out.key(false, "top");
        match &self.top {
            Some(top) => {
                out.key(true, "pid");
                out.int(top.pid);
                out.key(false, "comm");
                out.str(top.comm);
                out.key(false, "cpu_ms_since");
                out.int(top.cpu_ms_since);
                out.end();
            }
            None => out.null(),
        }
        out.end();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::activity::{Top, Verdict};

    #[test]
    fn the_hand_written_json_is_serde_json_s() {
        let mut activity = Activity {
            verdict: Verdict::Busy,
            cpu_ms: 48_100,
            io_bytes: None,
            processes: 3,
            cpu_ms_since: Some(48_100),
            io_bytes_since: None,
            since: Some(1_700_000_000_000),
            top: Some(Top {
                pid: 4242,
                comm: "car\u{1b}go".into(),
                cpu_ms_since: 40_000,
            }),
            new_process: false,
            at_ms: 1_700_000_060_000,
            busy_by: None,
        };
        for _ in 0..2 {
            let record = ActivityRecord::new(&activity);
            let mut bytes = Vec::new();
            record.write_json(&mut JsonWriter(&mut bytes));
            assert_eq!(
                String::from_utf8(bytes).unwrap(),
                super::super::to_string_safe(&record).unwrap()
            );
            activity.top = None;
        }
    }

    #[test]
    fn the_hand_written_stall_is_serde_json_s() {
        let stall = Stall {
            code: crate::core::stall::StallCode::StdinPipe,
            detail: "process 7 (\"py\u{1b}\") is in read on fd 0".into(),
            since: 1_700_000_000_123,
        };
        let record = StallRecord::new(&stall);
        let mut bytes = Vec::new();
        record.write_json(&mut JsonWriter(&mut bytes));
        let text = String::from_utf8(bytes).unwrap();
        assert_eq!(text, super::super::to_string_safe(&record).unwrap());
        assert!(text.starts_with("{\"code\":\"stdin_pipe\","), "{text}");
        assert!(
            text.ends_with("\"since\":\"2023-11-14T22:13:20.123Z\"}"),
            "{text}"
        );
    }

    #[test]
    fn the_note_says_busy_and_the_stall() {
        let row = serde_json::json!({
            "state": "running_busy",
            "activity": {"cpu_ms_since": 48_150, "top": {"pid": 4300, "comm": "cargo"}},
            "stall": null,
        });
        assert_eq!(
            notes(row.as_object().unwrap()),
            ["busy: 48.1s CPU since the last sample, top cargo 4300"]
        );
        let row = serde_json::json!({
            "state": "running_quiet",
            "activity": {"cpu_ms_since": 0, "top": null},
            "stall": {"code": "stdin_pipe"},
        });
        assert_eq!(notes(row.as_object().unwrap()), ["stall: stdin_pipe"]);
    }
}
