//! The flatline binary: parse, run, exit — the only place that sets the exit status.

use std::io::Write;

fn main() {
    let exit = flatline::main_with_args(std::env::args_os().skip(1));
    let _ = std::io::stdout().flush();
    std::process::exit(exit.code());
}
