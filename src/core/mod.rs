//! core: the pure decisions — views, plans, digests, health. Nothing here touches files,
//! processes, the clock or the environment; the layers above read, call in here, and act.

pub mod activity;
pub mod digest;
pub mod doctor;
pub mod explain;
pub mod finalize;
pub mod health;
pub mod identity;
pub mod launch;
pub mod lifecycle;
pub mod plan;
pub mod stall;
pub mod text;
pub mod time;
pub mod unit;

#[cfg(test)]
mod purity;
