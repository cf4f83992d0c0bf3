//! `--help`, the usage line and `--version`, printed from the flag table.

use super::*;
use crate::exit;
use std::fmt::Write as _;

pub(super) fn flag_synopsis(flag: &Flag) -> String {
    let mut text = String::new();
    if let Some(short) = flag.short {
        let _ = write!(text, "-{short}, ");
    }
    let _ = write!(text, "--{}", flag.long);
    if let Some(value) = flag.value {
        let _ = write!(text, " {value}");
    }
    text
}

pub(super) fn wrap(text: &str, indent: usize, width: usize, out: &mut String) {
    let mut column = 0;
    for word in text.split_whitespace() {
        if column > indent && column + 1 + word.len() > width {
            out.push('\n');
            column = 0;
        }
        if column == 0 {
            out.push_str(&" ".repeat(indent));
            column = indent;
        } else {
            out.push(' ');
            column += 1;
        }
        out.push_str(word);
        column += word.len();
    }
    out.push('\n');
}

/// `flatline --help`: commands, every flag in one line, the exit statuses.
pub fn help_text() -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "flatline {} - watchdog for the worker processes of AI-agent orchestrators\n",
        env!("CARGO_PKG_VERSION")
    );
    out.push_str("Usage: flatline COMMAND [OPTIONS] RUN_DIR...\n\nCommands:\n");
    command_list(&mut out);
    out.push_str("\nOptions:\n");
    let width = FLAGS
        .iter()
        .map(|flag| flag_synopsis(flag).len())
        .max()
        .unwrap_or(0);
    for flag in FLAGS {
        let _ = writeln!(out, "  {:<width$}  {}", flag_synopsis(flag), flag.about);
    }
    out.push_str(
        "\nDurations are systemd time spans: 1500ms, 45s, 1.5s, 4min, 1m30s, 1h 30min, 2d, 1w;\n\
         a bare number is seconds; parts of a millisecond round up (see DURATIONS in the man page).\n\
         Every option takes its value as the next argument or after '='.\n\nExit status:\n",
    );
    for (code, meaning) in exit::TABLE {
        let mut line = String::new();
        wrap(meaning, 9, 90, &mut line);
        let _ = write!(out, "  {code:<6}{}", &line[8..]);
    }
    out.push_str("\n'flatline COMMAND --help' describes a command and its options in full;\n'man flatline' has everything.\n");
    out
}

/// The commands, one line each, `help` last.
pub(super) fn command_list(out: &mut String) {
    for def in COMMANDS {
        let _ = writeln!(out, "  {:<15} {}", def.name, def.about);
    }
    out.push_str("  help [COMMAND]  print this help, or a command's (flatline COMMAND --help)\n");
}

/// Bare `flatline`: what to type, on stderr (exit 2).
pub fn usage_text() -> String {
    let mut out = String::from("Usage: flatline COMMAND [OPTIONS] RUN_DIR...\n\nCommands:\n");
    command_list(&mut out);
    out.push_str(
        "\n'flatline --help' lists every option; 'flatline help COMMAND' describes a command.\n",
    );
    out
}

/// `flatline CMD --help`: the command's description and each of its flags in full.
pub fn command_help_text(command: Command) -> String {
    let def = command.def();
    let mut out = String::new();
    let _ = writeln!(
        out,
        "flatline {} - {}\n\nUsage: flatline {} [OPTIONS] {}\n",
        def.name, def.about, def.name, def.operands
    );
    wrap(def.doc, 2, 90, &mut out);
    let _ = writeln!(out, "\n  Writes: {}\n\nOptions:", def.writes);
    for flag in FLAGS
        .iter()
        .filter(|flag| flag.commands & command.bit() != 0 || flag.commands == 0)
    {
        let _ = writeln!(out, "  {}", flag_synopsis(flag));
        wrap(flag.doc, 10, 90, &mut out);
    }
    out
}

/// `flatline --version`: the version, and the commit and its date when the build knew them
/// (build.rs asks git; a build without git or .git has only the version).
pub fn version_text() -> String {
    version_line(
        env!("CARGO_PKG_VERSION"),
        option_env!("FLATLINE_COMMIT"),
        option_env!("FLATLINE_COMMIT_DATE"),
    )
}

pub(super) fn version_line(version: &str, commit: Option<&str>, date: Option<&str>) -> String {
    match (commit, date) {
        (Some(commit), Some(date)) => format!("flatline {version} ({commit} {date})\n"),
        (Some(commit), None) => format!("flatline {version} ({commit})\n"),
        _ => format!("flatline {version}\n"),
    }
}
