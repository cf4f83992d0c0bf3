//! Unit tests of the sweep phases over in-memory inputs: no file, no process, no signal.

use super::changes::Changes;
use super::fan_in::ended_members;
use super::signal::{BATCH_AFTER, Signaller, Signals};
use super::state::Entry;
use super::write::{Landed, Writer, write_all};
use crate::core::lifecycle::{ChildStatus, State};
use crate::core::plan::reclaim::{Reclaim, Termination};
use crate::exit::Exit;
use crate::shell::commit::Written;
use crate::shell::fan_in::FanInStamp;
use crate::shell::reclaim::{Kill, TargetInfo};
use std::ffi::OsString;
use std::path::PathBuf;
use std::time::{Duration, Instant};

fn entry(run: usize, name: &str, card: Option<(&str, usize)>, changes: Changes) -> Entry {
    Entry {
        run,
        name: OsString::from(name),
        path: PathBuf::from(format!("delegations/{name}")),
        owner: 0,
        delegation_id: Some(name.to_string()),
        bytes: b"{}".to_vec(),
        changes,
        kill: None,
        card: card.map(|(card, position)| (card.to_string(), position)),
    }
}

fn reclaim(termination: Termination) -> Reclaim {
    Reclaim {
        state: State::Stale,
        termination,
        process_id: None,
        stale_at: Some(0),
        timed_out_at: None,
        signal_via: None,
        descendants_signalled: Vec::new(),
        survivors: Vec::new(),
    }
}

fn marked(termination: Termination) -> Changes {
    Changes {
        reclaim: Some(reclaim(termination)),
        ..Changes::default()
    }
}

fn stamp() -> Changes {
    Changes {
        stamp: Some(FanInStamp { at: 7 }),
        ..Changes::default()
    }
}

/// A worker found stuck: its kill (never sent by these tests) and what the view said.
fn stuck(name: &str, pid: i32) -> Entry {
    let host = crate::core::identity::test_host();
    let pid = crate::core::identity::validate_found(pid, &host).expect("a valid test pid");
    let mut entry = entry(0, name, None, Changes::default());
    let info = TargetInfo {
        state: State::Stale,
        process_id: Some(pid.get().into()),
        stale_at: Some(0),
        timed_out_at: None,
    };
    entry.kill = Some((Kill::new(pid, 1, 0), info));
    entry
}

fn with_stamp(mut changes: Changes) -> Changes {
    changes.stamp = Some(FanInStamp { at: 7 });
    changes
}

mod changes;
mod fan_in;
mod scan;
mod signal;
mod write;
