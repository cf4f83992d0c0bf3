//! shell: what every command shares between reading and printing. `commit` is the
//! write-retry loop: a document change re-read and re-applied when another writer got there
//! first. `tree_kill` signals workers and their process trees together, all in one grace.
//! The shared run loop is to come here.

pub mod commit;
pub mod tree_kill;
