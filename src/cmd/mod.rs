//! cmd: one file per subcommand, orchestration only: the walk over the runs (through
//! `shell::for_each_run`), the order of the steps and the printing. What two commands share
//! lives below (`shell/`, `output/`, `core/`): no command module names another
//! (`core/purity.rs` checks it).

pub mod beat;
pub mod doctor;
pub mod explain;
pub mod fanin;
pub mod finalize;
pub mod health_events;
pub mod reclaim;
pub mod refresh;
pub mod run;
pub mod status;
pub mod sweep;
