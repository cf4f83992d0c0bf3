//! shell: what every command shares between reading and printing. `runs` is the scan (the
//! runs, their listings, the view of each delegation file); `workers` reads the heartbeat
//! workers; `state` is flatline's own memory of a run; `commit` is the write-retry loop: a
//! document change re-read and re-applied when another writer got there first. The shared
//! run loop and the tree kill are to come here.

pub mod commit;
pub mod runs;
pub mod state;
pub mod workers;
