//! The activity sample of a worker's process tree, read from `/proc` (SPEC §11).
//!
//! One scan of `/proc/*/stat` gives every process's parent, start and CPU; a worker's tree is
//! found in it with the same descendant walk reclaim uses (`identity::descendants`), and only
//! the tree's processes have their `io` read. A table serves every worker of an invocation
//! until the second look asks for a fresh one.

use crate::core::activity::{self, MAX_KEPT_PROCESSES, ProcessSample, Sample};
use crate::core::identity::{ProcEntry, descendants, parse_stat};
use crate::core::time::Millis;
use std::collections::HashMap;

/// One scan of `/proc`: the process table with each process's CPU, and when it was read.
#[derive(Debug, Default)]
pub struct Table {
    pub at_ms: Millis,
    entries: Vec<ProcEntry>,
    /// Per entry (same index): `(cpu ticks, comm)`.
    cpu: Vec<(u64, String)>,
    index: HashMap<i32, usize>,
}

impl Table {
    /// Reads `/proc/*/stat` once, on the real clock.
    pub fn read() -> Table {
        let mut table = Table::default();
        let Ok(entries) = std::fs::read_dir("/proc") else {
            table.at_ms = super::now_ms();
            return table;
        };
        let mut buf = Vec::with_capacity(512);
        for entry in entries.flatten() {
            let Some(pid) = entry
                .file_name()
                .to_str()
                .and_then(|n| n.parse::<i32>().ok())
            else {
                continue;
            };
            if super::host::read_proc(pid, "stat", &mut buf).is_err() {
                continue;
            }
            let (Some(stat), Some(cpu)) = (parse_stat(&buf), activity::parse_stat_cpu(&buf)) else {
                continue;
            };
            table.index.insert(pid, table.entries.len());
            table.entries.push(ProcEntry {
                pid,
                ppid: stat.ppid,
                start_ticks: stat.start_ticks,
                exited: stat.exited(),
                kernel_thread: stat.kernel_thread(),
            });
            table.cpu.push((cpu.1, cpu.0));
        }
        table.at_ms = super::now_ms();
        table
    }

    /// The processes of the table, for the tree of a worker.
    pub fn entries(&self) -> &[ProcEntry] {
        &self.entries
    }

    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The sample of the tree of the process `pid` started at `start_ticks`: `None` when
    /// that process is not in the table (gone, or another process holds the pid).
    pub fn sample(&self, pid: i32, start_ticks: u64, ticks_per_second: i64) -> Option<Sample> {
        let &root = self.index.get(&pid)?;
        let entry = self.entries[root];
        if entry.start_ticks != start_ticks || entry.exited {
            return None;
        }
        let tree = std::iter::once(entry).chain(descendants(&self.entries, pid, start_ticks));
        let mut sample = Sample {
            at_ms: self.at_ms,
            io_bytes: Some(0),
            ..Sample::default()
        };
        let mut buf = Vec::with_capacity(256);
        for process in tree {
            let Some(&at) = self.index.get(&process.pid) else {
                continue;
            };
            let (ticks, comm) = &self.cpu[at];
            let cpu_ms = activity::ticks_to_ms(*ticks, ticks_per_second);
            sample.cpu_ms = sample.cpu_ms.saturating_add(cpu_ms);
            sample.processes += 1;
            sample.newest_start = sample.newest_start.max(process.start_ticks);
            // A live process whose io cannot be read (no ptrace rights over it) makes the
            // tree's I/O unknown: CPU alone counts. An exited one (reaped meanwhile) is skipped.
            let io = super::host::read_proc(process.pid, "io", &mut buf)
                .ok()
                .and_then(|()| activity::parse_io(&buf));
            sample.io_bytes = match (sample.io_bytes, io) {
                (Some(total), Some(bytes)) => Some(total.saturating_add(bytes)),
                (total, None) if process.exited => total,
                _ => None,
            };
            if sample.procs.len() < MAX_KEPT_PROCESSES {
                sample.procs.push(ProcessSample {
                    pid: process.pid,
                    start_ticks: process.start_ticks,
                    cpu_ms,
                    comm: comm.clone(),
                });
            }
        }
        Some(sample)
    }
}

#[cfg(test)]
mod tests;
