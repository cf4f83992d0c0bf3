//! shell: what every command shares between reading and printing. `session` is the run loop
//! (open, lock, resume, stop); `runs` is the scan (the runs, their listings, the view of each
//! delegation file); `workers` reads the heartbeat workers; `state` is flatline's own memory of
//! a run; `commit` is the write-retry loop: a document change re-read and re-applied when
//! another writer got there first; `tree_kill` signals workers and their process trees
//! together, all in one grace; `launch` is `flatline run`'s spawn, watch and records.
//! The work of the commands, shared where two need it: `refresh`, `reclaim`, `fan_in`,
//! `health_events`, `explain`, `finalize`, `doctor`.

pub mod activity;
pub mod commit;
pub mod doctor;
pub mod explain;
pub mod fan_in;
pub mod finalize;
pub mod health_events;
pub mod last_run;
pub mod launch;
pub mod reclaim;
pub mod refresh;
pub mod runs;
pub mod session;
pub mod state;
pub mod tree_kill;
pub mod workers;

pub use session::{Access, for_each_run};
