//! plan: the decisions of the commands, as functions of what was read.

pub mod fan_in;
pub mod recheck;
pub mod reclaim;
pub mod refresh;
