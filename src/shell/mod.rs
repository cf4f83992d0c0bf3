//! shell: what every command shares between reading and printing. `session` is the run
//! loop (open, lock, resume, stop); `commit` is the write-retry loop: a document change
//! re-read and re-applied when another writer got there first. The tree kill is to come here.

pub mod commit;
pub mod session;

pub use session::{Access, Session, for_each_run};
