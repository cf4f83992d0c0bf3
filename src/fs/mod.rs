//! fs: policy over the file system beneath a run directory. `read` opens and reads without
//! ever following a symlink (directory descriptors, bounded reads, named paths read as their
//! owner); `write` makes atomic, checked, durable writes and holds the run lock.

pub mod doctor;
mod read;
mod write;

pub use read::*;
pub use write::*;
