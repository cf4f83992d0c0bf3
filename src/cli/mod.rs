//! cli: the one table of commands and flags, the parser built on it, `--help` and the man page.
//!
//! `COMMANDS` and `FLAGS` are the single source: the parser looks flags up there, `--help`
//! prints them, and `man/flatline.1` is generated from them (a test fails when the committed
//! page differs). Parsing only records what was typed (`LowArgs`); `config` resolves it.

mod apply;
mod commands;
mod complete;
pub mod config;
mod flags;
mod help;
mod man;
mod parse;

pub use commands::*;
pub use complete::*;
pub use flags::*;
pub use help::*;
pub use man::*;
pub use parse::*;

#[cfg(test)]
mod tests;
