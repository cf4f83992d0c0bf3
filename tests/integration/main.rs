//! Integration tests: the real binary on temporary run directories (one test binary).

mod fanin;
mod identity;
mod ops;
mod reclaim;
mod refresh;
mod status;
mod support;
mod sweep;
mod team;
