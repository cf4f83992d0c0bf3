//! Integration tests: the real binary on temporary run directories (one test binary).

mod adversarial;
mod cli;
mod concurrency;
mod crash;
mod crash_writers;
mod deploy;
mod deployment;
mod fanin;
mod fanin_ownership;
mod filesec;
mod fuzz_replay;
mod huge_stream;
mod identity;
mod lock;
mod ops;
mod output;
mod parser_mismatch;
mod pid_reuse;
mod random_input;
mod reclaim;
mod reclaim_safety;
mod refresh;
mod status;
mod support;
mod sweep;
mod team;
