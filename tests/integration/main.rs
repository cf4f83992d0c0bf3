//! Integration tests: the real binary on temporary run directories (one test binary).

mod adversarial;
mod cli;
mod concurrency;
mod crash;
mod deploy;
mod fanin;
mod identity;
mod ops;
mod pid_reuse;
mod random_input;
mod reclaim;
mod refresh;
mod status;
mod support;
mod sweep;
mod team;
