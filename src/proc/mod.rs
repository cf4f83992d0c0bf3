//! proc: liveness of worker processes, read from `/proc` and `kill(pid, 0)`; pidfds,
//! signals and waits.
//!
//! flatline never signals a process that is not the worker. The validated `Pid` and the
//! pure identity decision live in `core::identity`; this module makes the observations the
//! decision is made on, and sends signals only to a `Pid`.

pub mod activity;
pub mod doctor;
mod host;
mod observe;
mod signal;
pub mod stall;

pub use host::*;
pub use observe::*;
pub use signal::*;

#[cfg(test)]
mod tests;
