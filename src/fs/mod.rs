//! fs: policy over the file system beneath a run directory. `read` opens and reads without
//! ever following a symlink (directory descriptors, bounded reads); `meta` says what `fstat`
//! showed and why a read was refused; `range` reads a range skipping holes; `named` resolves
//! the paths documents name, and `named::owner` reads them as their owner; `write` makes
//! atomic, checked, durable writes through a `write::temp` file; `lock` (with
//! `lock::state_dir`) holds the run lock; `group` gives the lock group; `race` names where
//! another writer's rename can land inside a read (hooks for unit tests).

pub mod doctor;
mod group;
mod lock;
mod meta;
mod named;
mod race;
mod range;
mod read;
mod write;

pub use group::*;
pub use lock::*;
pub use meta::*;
pub use named::*;
pub use range::*;
pub use read::*;
pub use write::*;
