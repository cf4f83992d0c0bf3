//! unit: a systemd unit's `ExecStart=` read as systemd reads it (systemd.service(5),
//! systemd.unit(5)), so that `flatline doctor --check-unit` can hand the command line to
//! flatline's own parser: prefixes stripped, specifiers resolved for a scratch run directory,
//! quoting and escapes applied, `${VAR}` expanded from `Environment=` (and reported when it
//! cannot be), and an unquoted space inside a duration noticed.

use crate::core::doctor::Finding;

/// What a unit file says that doctor looks at.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Unit {
    /// `User=` (the last one wins); `None`: the service runs as root.
    pub user: Option<String>,
    /// Every non-empty `ExecStart=` value with its 1-based line number.
    pub exec_starts: Vec<(usize, String)>,
    /// `Environment=` assignments, in order (a later one wins).
    pub environment: Vec<(String, String)>,
    /// Whether the unit has `EnvironmentFile=` (its variables are not read here).
    pub environment_file: bool,
}

/// One word of a command line, and whether any part of it was quoted or escaped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Word {
    pub text: String,
    pub quoted: bool,
}

/// Reads the keys doctor needs (continuation lines joined, comments skipped).
pub fn read_unit(text: &str) -> Unit {
    let mut unit = Unit::default();
    let mut pending = String::new();
    let mut first_line = 0;
    for (index, line) in text.lines().enumerate() {
        let trimmed = line.trim();
        if pending.is_empty() {
            if trimmed.starts_with('#') || trimmed.starts_with(';') {
                continue;
            }
            first_line = index + 1;
        }
        if let Some(head) = trimmed.strip_suffix('\\') {
            pending.push_str(head);
            pending.push(' ');
            continue;
        }
        pending.push_str(trimmed);
        let line = std::mem::take(&mut pending);
        let Some((key, value)) = line.split_once('=') else {
            continue;
        };
        let value = value.trim();
        match key.trim() {
            "ExecStart" if value.is_empty() => unit.exec_starts.clear(),
            "ExecStart" => unit.exec_starts.push((first_line, value.to_string())),
            "User" => unit.user = (!value.is_empty()).then(|| value.to_string()),
            "Environment" => {
                for word in split(value).unwrap_or_default() {
                    if let Some((name, value)) = word.text.split_once('=') {
                        unit.environment.push((name.to_string(), value.to_string()));
                    }
                }
            }
            "EnvironmentFile" => unit.environment_file = true,
            _ => {}
        }
    }
    unit
}

/// Splits a command line as systemd does: words separated by whitespace, single and double
/// quotes, C-style backslash escapes.
pub fn split(line: &str) -> Result<Vec<Word>, String> {
    let mut words = Vec::new();
    let mut chars = line.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        if chars.peek().is_none() {
            return Ok(words);
        }
        let mut word = Word {
            text: String::new(),
            quoted: false,
        };
        let mut quote = None;
        while let Some(c) = chars.next() {
            match (quote, c) {
                (None, c) if c.is_whitespace() => break,
                (None, '"' | '\'') => {
                    quote = Some(c);
                    word.quoted = true;
                }
                (Some(q), c) if c == q => quote = None,
                (_, '\\') => {
                    word.quoted = true;
                    match chars.next() {
                        Some('n') => word.text.push('\n'),
                        Some('t') => word.text.push('\t'),
                        Some(other) => word.text.push(other),
                        None => return Err("a trailing backslash".into()),
                    }
                }
                (_, c) => word.text.push(c),
            }
        }
        if quote.is_some() {
            return Err("an unterminated quote".into());
        }
        words.push(word);
    }
}

/// The escaped form of a path, as `%i` gives it for `systemd-escape --path`.
pub fn escape_path(path: &str) -> String {
    let trimmed = path.trim_matches('/');
    let mut out = String::new();
    for (index, byte) in trimmed.bytes().enumerate() {
        match byte {
            b'/' => out.push('-'),
            b'.' if index == 0 => out.push_str("\\x2e"),
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b':' | b'_' | b'.' => {
                out.push(char::from(byte))
            }
            _ => out.push_str(&format!("\\x{byte:02x}")),
        }
    }
    if out.is_empty() { "-".into() } else { out }
}

/// Resolves the specifiers of one `ExecStart=` value for an instance whose run directory is
/// `run_dir` (`%i` escaped, `%I` and `%f` as they are, `%%` a percent sign). Any other
/// specifier is left as it is and reported.
pub fn specifiers(text: &str, run_dir: &str, findings: &mut Vec<Finding>) -> String {
    let mut out = String::new();
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('%') => out.push('%'),
            Some('f') | Some('I') => out.push_str(run_dir),
            Some('i') => out.push_str(&escape_path(run_dir)),
            other => {
                let spelled = other.map(String::from).unwrap_or_default();
                findings.push(Finding::new(
                    "unit_specifier",
                    format!("the specifier %{spelled} is not one doctor resolves (%i, %I, %f, %%)"),
                    "check the command line by hand, or use %i, %I or %f for the run directory",
                ));
                out.push('%');
                out.push_str(&spelled);
            }
        }
    }
    out
}

/// `$` and an opening brace, and the closing brace, written as escapes: unbalanced braces
/// in literals read as code to the line counter of the shape check.
const VAR_OPEN: &str = "$\u{7b}";
const VAR_CLOSE: char = '\u{7d}';

/// Expands `${NAME}` inside words and a whole-word `$NAME` (which systemd splits at
/// whitespace) from `Environment=`. A variable the unit does not set is reported: doctor
/// cannot know what the manager's environment or an `EnvironmentFile=` holds.
pub fn expand(words: Vec<Word>, unit: &Unit, findings: &mut Vec<Finding>) -> Vec<Word> {
    let mut out = Vec::new();
    for word in words {
        if let Some(name) = word.text.strip_prefix('$').filter(|n| is_name(n)) {
            match lookup(unit, name, findings) {
                Some(value) => out.extend(value.split_whitespace().map(|text| Word {
                    text: text.to_string(),
                    quoted: false,
                })),
                None => out.push(word),
            }
            continue;
        }
        let mut text = String::new();
        let mut rest = word.text.as_str();
        while let Some(at) = rest.find(VAR_OPEN) {
            text.push_str(&rest[..at]);
            let after = &rest[at + 2..];
            match after.find(VAR_CLOSE) {
                Some(end) if is_name(&after[..end]) => {
                    match lookup(unit, &after[..end], findings) {
                        Some(value) => text.push_str(&value),
                        None => text.push_str(&rest[at..at + 3 + end]),
                    }
                    rest = &after[end + 1..];
                }
                _ => {
                    // Not a variable: the dollar and the brace stay as they were written.
                    text.push_str(&rest[at..at + 2]);
                    rest = after;
                }
            }
        }
        text.push_str(rest);
        out.push(Word {
            text,
            quoted: word.quoted,
        });
    }
    out
}

fn is_name(name: &str) -> bool {
    !name.is_empty()
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
        && !name.as_bytes()[0].is_ascii_digit()
}

fn lookup(unit: &Unit, name: &str, findings: &mut Vec<Finding>) -> Option<String> {
    if let Some((_, value)) = unit.environment.iter().rev().find(|(n, _)| n == name) {
        return Some(value.clone());
    }
    let from = if unit.environment_file {
        "an EnvironmentFile= or the manager's environment, which doctor does not read"
    } else {
        "the manager's environment, which doctor does not read"
    };
    findings.push(Finding::new(
        "unit_variable",
        format!("${{{name}}} cannot be expanded: no Environment= sets it, so it comes from {from}"),
        format!("set it with Environment={name}=… in the unit, or write its value in ExecStart="),
    ));
    None
}

/// The argv systemd would execute for one `ExecStart=` value: prefixes `-@+!:` stripped
/// (with `@` the second word is argv\[0\] and is dropped), split, specifiers resolved,
/// variables expanded. The first word is the program.
pub fn exec_argv(
    value: &str,
    unit: &Unit,
    run_dir: &str,
    findings: &mut Vec<Finding>,
) -> Option<Vec<Word>> {
    let prefixes = value.len() - value.trim_start_matches(['-', '@', '+', '!', ':']).len();
    let at = value[..prefixes].contains('@');
    let mut words = match split(&value[prefixes..]) {
        Ok(words) => words,
        Err(problem) => {
            findings.push(Finding::new(
                "unit_syntax",
                format!("ExecStart= has {problem}"),
                "fix the quoting of the command line",
            ));
            return None;
        }
    };
    if at && words.len() > 1 {
        words.remove(1);
    }
    // Specifiers are resolved in the split words: an escape in `%i` stays as it is.
    for word in &mut words {
        word.text = specifiers(&word.text, run_dir, findings);
    }
    Some(expand(words, unit, findings))
}

/// Warns about a duration option whose value was cut at an unquoted space (`--deadline 1h
/// 30min` gives the duration `1h` and a run directory named `30min`). `takes_duration` says
/// whether a long option's value is a duration.
pub fn duration_spaces(words: &[Word], takes_duration: impl Fn(&str) -> bool) -> Vec<Finding> {
    let mut findings = Vec::new();
    for (index, word) in words.iter().enumerate() {
        let Some(flag) = word.text.strip_prefix("--") else {
            continue;
        };
        let (name, value_at) = match flag.split_once('=') {
            Some((name, _)) => (name, index),
            None => (flag, index + 1),
        };
        if !takes_duration(name) {
            continue;
        }
        let (Some(value), Some(next)) = (words.get(value_at), words.get(value_at + 1)) else {
            continue;
        };
        let continues = !value.quoted
            && !next.quoted
            && next.text.bytes().next().is_some_and(|b| b.is_ascii_digit())
            && next.text.bytes().any(|b| b.is_ascii_alphabetic())
            && crate::core::time::parse_duration(&next.text).is_ok();
        if continues {
            let whole = format!(
                "{} {}",
                value.text.rsplit('=').next().unwrap_or(""),
                next.text
            );
            findings.push(Finding::new(
                "unit_duration_space",
                format!(
                    "--{name} takes '{}' and '{}' becomes another argument: the space inside the duration '{whole}' is not quoted",
                    value.text.rsplit('=').next().unwrap_or(""),
                    next.text
                ),
                format!("quote it (--{name} \"{whole}\") or write it without the space"),
            ));
        }
    }
    findings
}

#[cfg(test)]
mod tests;
