//! core: the pure decisions — views, plans, digests, health. Nothing here touches files,
//! processes, the clock or the environment; the layers above read, call in here, and act.

pub(crate) mod activity;
pub mod digest;
pub(crate) mod doctor;
pub(crate) mod explain;
pub(crate) mod finalize;
pub(crate) mod health;
pub(crate) mod identity;
pub(crate) mod launch;
pub mod lifecycle;
pub(crate) mod plan;
pub(crate) mod stall;
pub mod text;
pub mod time;
pub(crate) mod unit;

#[cfg(test)]
mod purity;
