use super::*;
use crate::exit;
use std::ffi::OsString;

fn parse_ok(args: &[&str]) -> LowArgs {
    parse(args.iter().copied()).unwrap()
}

fn parse_err(args: &[&str]) -> String {
    parse(args.iter().copied()).unwrap_err().0
}

#[test]
fn every_command_variant_has_one_table_entry() {
    for def in COMMANDS {
        assert_eq!(def.command.def().name, def.name);
        assert_eq!(
            COMMANDS.iter().filter(|d| d.command == def.command).count(),
            1
        );
    }
}

#[test]
fn max_stream_read_takes_bytes_or_k_m_g() {
    assert_eq!(parse_size("4096"), Ok(4096));
    assert_eq!(parse_size("64K"), Ok(64 << 10));
    assert_eq!(parse_size("32M"), Ok(32 << 20));
    assert_eq!(parse_size("2g"), Ok(2 << 30));
    for bad in ["", "M", "1.5M", "32MB", "-1", "1T", "99999999999999999999G"] {
        assert!(parse_size(bad).is_err(), "{bad}");
    }
    let a = parse_ok(&["refresh", "--max-stream-read", "8M", "run"]);
    assert_eq!(a.max_stream_read, Some(8 << 20));
    assert!(parse_err(&["sweep", "--max-stream-read=1M", "run"]).contains("at least 2M"));
    assert!(parse_err(&["beat", "--max-stream-read=8M", "hb"]).contains("does not apply"));
}

#[test]
fn flag_names_are_unique() {
    for flag in FLAGS {
        assert_eq!(
            FLAGS.iter().filter(|f| f.long == flag.long).count(),
            1,
            "{}",
            flag.long
        );
        assert_eq!(FLAGS.iter().filter(|f| f.id == flag.id).count(), 1);
        if let Some(short) = flag.short {
            assert_eq!(FLAGS.iter().filter(|f| f.short == Some(short)).count(), 1);
        }
    }
}

#[test]
fn values_come_after_equals_or_as_the_next_argument() {
    let a = parse_ok(&["status", "--stale-after=30s", "--format", "json", "run"]);
    assert_eq!(a.command, Some(Command::Status));
    assert_eq!(a.stale_after, Some(30_000));
    assert_eq!(a.format, Some(Format::Json));
    assert_eq!(a.operands, vec![OsString::from("run")]);
    let b = parse_ok(&["--format=tsv", "status", "a", "b"]);
    assert_eq!(b.format, Some(Format::Tsv));
    assert_eq!(b.operands.len(), 2);
}

#[test]
fn every_duration_option_takes_a_systemd_time_span() {
    for flag in FLAGS.iter().filter(|flag| flag.value == Some("DURATION")) {
        let command = COMMANDS
            .iter()
            .find(|def| flag.commands & def.command.bit() != 0)
            .map_or("status", |def| def.name);
        for text in ["4min", "1h 30min", "1.5"] {
            let typed = format!("--{}={text}", flag.long);
            let low = parse_ok(&[command, &typed, "r"]);
            assert!(low.seen.contains(&flag.id), "{typed}");
        }
        let message = parse_err(&[command, &format!("--{}", flag.long), "4 lightyears"]);
        assert!(
            message.starts_with(&format!("--{}: ", flag.long)),
            "{message}"
        );
        assert!(message.contains("e.g. 45s, 4min"), "{message}");
    }
    let low = parse_ok(&["sweep", "--deadline", "4min", "--grace=1m30s", "r"]);
    assert_eq!(low.deadline, Some(240_000));
    assert_eq!(low.grace, Some(90_000));
    let low = parse_ok(&["status", "--stale-after", "1h 30min", "r"]);
    assert_eq!(low.stale_after, Some(5_400_000));
}

#[test]
fn unknown_names_get_the_nearest_known_one_when_it_is_close() {
    for (typed, message) in [
        (
            vec!["status", "--fromat=json"],
            "unknown option '--fromat' (did you mean --format?)",
        ),
        (
            vec!["status", "--formt"],
            "unknown option '--formt' (did you mean --format?)",
        ),
        (
            vec!["status", "--stale-afte", "1s"],
            "(did you mean --stale-after?)",
        ),
        (
            vec!["sweep", "--dedline", "4min"],
            "(did you mean --deadline?)",
        ),
        (
            vec!["stauts"],
            "unknown command 'stauts' (did you mean status?)",
        ),
        (
            vec!["reclam"],
            "unknown command 'reclam' (did you mean reclaim?)",
        ),
        (
            vec!["fanin"],
            "unknown command 'fanin' (did you mean fan-in?)",
        ),
        (vec!["hlep"], "unknown command 'hlep' (did you mean help?)"),
    ] {
        let error = parse_err(&typed);
        assert!(error.contains(message), "{typed:?}: {error}");
    }
    for typed in [
        vec!["status", "--bogus"],
        vec!["status", "-x"],
        vec!["status", "--ab"],
        vec!["frobnicate"],
        vec!["st"],
    ] {
        let error = parse_err(&typed);
        assert!(!error.contains("did you mean"), "{typed:?}: {error}");
    }
}

#[test]
fn edit_distances() {
    assert_eq!(edit_distance("format", "format"), 0);
    assert_eq!(edit_distance("fromat", "format"), 1);
    assert_eq!(edit_distance("formt", "format"), 1);
    assert_eq!(edit_distance("formats", "format"), 1);
    assert_eq!(edit_distance("fxrmat", "format"), 1);
    assert_eq!(edit_distance("ofrmta", "format"), 2);
    assert_eq!(edit_distance("", "abc"), 3);
    assert_eq!(edit_distance("abc", ""), 3);
    assert_eq!(edit_distance("bogus", "beat"), 4);
}

#[test]
fn the_version_names_the_commit_and_its_date_when_known() {
    assert_eq!(version_line("1.2.3", None, None), "flatline 1.2.3\n");
    assert_eq!(
        version_line("1.2.3", Some("abc1234"), Some("2026-12-01")),
        "flatline 1.2.3 (abc1234 2026-12-01)\n"
    );
    assert_eq!(
        version_line("1.2.3", Some("abc1234"), None),
        "flatline 1.2.3 (abc1234)\n"
    );
    assert!(
        version_text().starts_with(&format!("flatline {} ", env!("CARGO_PKG_VERSION")))
            || version_text() == format!("flatline {}\n", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn the_usage_lists_every_command_and_help() {
    let usage = usage_text();
    for def in COMMANDS {
        assert!(usage.contains(&format!("  {} ", def.name)), "{}", def.name);
    }
    assert!(usage.contains("  help [COMMAND] "));
    assert!(help_text().contains("  help [COMMAND] "));
}

#[test]
fn repeatable_filters_accumulate() {
    let a = parse_ok(&[
        "status",
        "--task-card",
        "t1",
        "--task-card=t2",
        "--state",
        "stale,timed_out",
        "--state=queued",
        "r",
    ]);
    assert_eq!(a.task_cards, ["t1", "t2"]);
    assert_eq!(a.states, ["stale", "timed_out", "queued"]);
}

#[test]
fn usage_errors_say_what_is_wrong() {
    assert!(parse_err(&["frobnicate"]).contains("unknown command 'frobnicate'"));
    assert!(parse_err(&["status", "--bogus"]).contains("unknown option '--bogus'"));
    assert!(
        parse_err(&["status", "--stale-after", "45x"])
            .contains("--stale-after: invalid duration '45x': unknown unit 'x'")
    );
    assert!(parse_err(&["status", "--stale-after", "45x"]).contains("e.g. 45s, 4min"));
    assert!(parse_err(&["status", "--stale-after", "0s"]).contains("greater than 0"));
    assert!(parse_err(&["status", "--format", "xml"]).contains("unknown format 'xml'"));
    assert!(parse_err(&["status", "--now", "noon"]).contains("not an RFC 3339"));
    assert!(parse_err(&["status", "--state", "sleepy"]).contains("unknown state 'sleepy'"));
    assert!(parse_err(&["status", "--stale-after"]).contains("needs a value"));
}

#[test]
fn modes() {
    assert_eq!(parse_ok(&["--help"]).mode(), Mode::Help(None));
    assert_eq!(
        parse_ok(&["status", "-h"]).mode(),
        Mode::Help(Some(Command::Status))
    );
    assert_eq!(
        parse_ok(&["--help", "status"]).mode(),
        Mode::Help(Some(Command::Status))
    );
    assert_eq!(parse_ok(&["-V"]).mode(), Mode::Version);
    assert_eq!(parse_ok(&["--generate", "man"]).mode(), Mode::Man);
    assert_eq!(parse_ok(&["--generate", "schema"]).mode(), Mode::Schema);
    assert_eq!(parse_ok(&[]).mode(), Mode::Usage);
    assert_eq!(parse_ok(&["--format=json"]).mode(), Mode::Usage);
    assert_eq!(parse_ok(&["help"]).mode(), Mode::Help(None));
    assert_eq!(
        parse_ok(&["help", "sweep"]).mode(),
        Mode::Help(Some(Command::Sweep))
    );
    assert!(parse_err(&["help", "swep"]).contains("did you mean sweep?"));
    assert_eq!(
        parse_ok(&["status", "r"]).mode(),
        Mode::Run(Command::Status)
    );
}

#[test]
fn help_names_every_flag_and_exit_status() {
    let help = help_text();
    for flag in FLAGS {
        assert!(help.contains(&format!("--{}", flag.long)), "{}", flag.long);
    }
    for (code, _) in exit::TABLE {
        assert!(help.contains(&format!("  {code} ")), "{code}");
    }
    for def in COMMANDS {
        let command_help = command_help_text(def.command);
        for flag in FLAGS.iter().filter(|f| f.commands & def.command.bit() != 0) {
            assert!(command_help.contains(&format!("--{}", flag.long)));
        }
    }
}

#[test]
fn the_committed_man_page_is_generated_from_the_table() {
    let committed = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/man/flatline.1"))
        .unwrap_or_default();
    assert!(
        committed == man_page(),
        "man/flatline.1 differs from the flag table: run `make man` and commit the result"
    );
}

#[test]
fn the_man_page_documents_every_flag() {
    let page = man_page();
    for flag in FLAGS {
        assert!(
            page.contains(&format!("Fl \\-{}", roff(flag.long))),
            "{}",
            flag.long
        );
    }
}

#[test]
fn run_takes_the_workers_argv_as_it_is() {
    let low = parse([
        "run", "--id", "w1", "--tee", "--", "codex", "exec", "--json", "do it",
    ])
    .unwrap();
    assert_eq!(low.command, Some(Command::Run));
    assert_eq!(low.run.id.as_deref(), Some("w1"));
    assert!(low.run.tee);
    assert_eq!(low.run.command, ["codex", "exec", "--json", "do it"]);
    // Without `--`, the first operand starts the argv: its options are the worker's.
    let low = parse(["run", "--no-watch", "sh", "-c", "echo --stale-after"]).unwrap();
    assert!(low.run.no_watch);
    assert_eq!(low.run.command, ["sh", "-c", "echo --stale-after"]);
    assert_eq!(low.stale_after, None);
}

#[test]
fn run_options_are_checked() {
    assert!(parse(["run", "--id", "../x", "--", "true"]).is_err());
    assert!(parse(["run", "--stdin", "pipe", "--", "true"]).is_err());
    let low = parse(["run", "--stdin", "inherit", "--", "true"]).unwrap();
    assert!(low.run.stdin_inherit);
    // Run's own flags apply to run alone; the scan's --format does not apply to run.
    assert!(parse(["status", "--tee", "r"]).is_err());
    assert!(parse(["run", "--format", "json", "--", "true"]).is_err());
    assert!(parse(["run", "--now", "2026-11-22T08:00:00Z", "--", "true"]).is_err());
}
