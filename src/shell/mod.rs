//! shell: what every command shares between reading and printing. `commit` is the
//! write-retry loop: a document change re-read and re-applied when another writer got there
//! first. The shared run loop and the tree kill are to come here.

pub mod commit;
pub mod doctor;
