//! cmd: one file per subcommand. Today they still hold their own run loops and writes; the
//! shared loop (`shell/`) will leave them only the orchestration.

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
