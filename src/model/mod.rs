//! model: what the files say — the documents flatline reads, parsed leniently and lazily.
//!
//! `lenient` is the framework (a field of the wrong JSON type becomes a warning, not a
//! failed document), `object` declares lenient objects with it, `document` parses and
//! renders whole documents, and `delegation` is the delegation document (SPEC §1.1).

mod delegation;
mod document;
mod lenient;
mod object;

pub use delegation::*;
pub use document::*;
pub use lenient::*;
pub(crate) use object::lenient_object;
pub use object::{Nested, WrongType, push_key};

#[cfg(test)]
mod tests;
