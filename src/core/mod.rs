//! core: the pure decisions — views, plans, digests, health. Nothing here touches files,
//! processes, the clock or the environment; the layers above read, call in here, and act.

pub mod digest;
pub mod doctor;
pub mod finalize;
pub mod health;
pub mod identity;
pub mod lifecycle;
pub mod plan;
pub mod text;
pub mod time;
pub mod unit;

#[cfg(test)]
mod purity;
