//! model: what the files say — the documents flatline reads, parsed leniently and lazily.
//!
//! `lenient` is the framework (a field of the wrong JSON type becomes a warning, not a
//! failed document), `object` declares lenient objects with it, `document` parses and
//! renders whole documents, `delegation` is the delegation document (SPEC §1.1) and `team`
//! the team layout's worker specs and heartbeats (SPEC §5).

mod delegation;
mod document;
mod lenient;
mod object;
mod team;

pub use delegation::*;
pub use document::*;
pub use lenient::*;
pub use object::{Nested, WrongType, push_key};
pub use team::{HeartbeatDoc, WorkerSpec};

#[cfg(test)]
mod tests;
