use super::*;

fn texts(words: &[Word]) -> Vec<&str> {
    words.iter().map(|w| w.text.as_str()).collect()
}

#[test]
fn the_splitter_reads_quotes_and_escapes_as_systemd_does() {
    let words = split(r#"/bin/flatline sweep --deadline "1h 30min" 'a b' c\ d %f"#).unwrap();
    assert_eq!(
        texts(&words),
        [
            "/bin/flatline",
            "sweep",
            "--deadline",
            "1h 30min",
            "a b",
            "c d",
            "%f"
        ]
    );
    assert!(!words[1].quoted && words[3].quoted && words[5].quoted);
    assert!(split("a 'b").is_err());
    assert!(split("a b\\").is_err());
}

#[test]
fn units_give_exec_start_user_and_environment() {
    let unit = read_unit(
        "[Service]\n# ExecStart=/no\nUser=flat\nEnvironment=A=1 \"B=two words\"\nExecStart=/bin/flatline \\\n  sweep %f\n",
    );
    assert_eq!(
        unit.exec_starts,
        [(5, "/bin/flatline  sweep %f".to_string())]
    );
    assert_eq!(unit.user.as_deref(), Some("flat"));
    assert_eq!(
        unit.environment,
        [
            ("A".to_string(), "1".to_string()),
            ("B".to_string(), "two words".to_string())
        ]
    );
    // An empty ExecStart= resets the list, as in a drop-in.
    let unit = read_unit("ExecStart=/a\nExecStart=\nExecStart=/b\n");
    assert_eq!(unit.exec_starts, [(3, "/b".to_string())]);
}

#[test]
fn prefixes_and_specifiers_are_resolved() {
    let mut findings = Vec::new();
    let argv = exec_argv(
        "-@/bin/flatline flatline status %f %i 100%%",
        &Unit::default(),
        "/srv/runs/r-42",
        &mut findings,
    )
    .unwrap();
    assert_eq!(
        texts(&argv),
        [
            "/bin/flatline",
            "status",
            "/srv/runs/r-42",
            "srv-runs-r\\x2d42",
            "100%"
        ]
    );
    assert!(findings.is_empty());
    exec_argv(
        "/bin/flatline status %n",
        &Unit::default(),
        "/r",
        &mut findings,
    );
    assert_eq!(findings[0].check, "unit_specifier");
}

#[test]
fn variables_expand_from_environment_or_are_reported() {
    let unit = read_unit("Environment=\"ARGS=--wait 30s\" DL=4min\nEnvironment=IGNORED 30s\n");
    let mut findings = Vec::new();
    let argv = exec_argv(
        "/bin/flatline sweep $ARGS --deadline ${DL} ${NOPE} %f",
        &unit,
        "/r",
        &mut findings,
    )
    .unwrap();
    assert_eq!(
        texts(&argv),
        [
            "/bin/flatline",
            "sweep",
            "--wait",
            "30s",
            "--deadline",
            "4min",
            "${NOPE}",
            "/r"
        ]
    );
    assert_eq!(findings.len(), 1, "{findings:?}");
    assert_eq!(findings[0].check, "unit_variable");
    assert!(findings[0].message.contains("${NOPE}"));
}

#[test]
fn an_unquoted_space_inside_a_duration_is_warned_about() {
    let is_duration = |name: &str| name == "deadline";
    let words = split("/bin/flatline sweep --deadline 1h 30min /r").unwrap();
    let findings = duration_spaces(&words, is_duration);
    assert_eq!(findings.len(), 1);
    assert_eq!(findings[0].check, "unit_duration_space");
    assert!(
        findings[0].fix.contains("\"1h 30min\""),
        "{:?}",
        findings[0]
    );
    let words = split("/bin/flatline sweep --deadline=1h 30min /r").unwrap();
    assert_eq!(duration_spaces(&words, is_duration).len(), 1);
    for fine in [
        "/bin/flatline sweep --deadline \"1h 30min\" /r",
        "/bin/flatline sweep --deadline 1h30min /r",
        "/bin/flatline sweep --deadline 4min 2026 /r",
        "/bin/flatline sweep --wait 1h 30min /r",
    ] {
        assert!(
            duration_spaces(&split(fine).unwrap(), is_duration).is_empty(),
            "{fine}"
        );
    }
}

#[test]
fn escaped_paths_match_systemd_escape() {
    assert_eq!(escape_path("/srv/runs/r42"), "srv-runs-r42");
    assert_eq!(escape_path("/srv/my runs/.x"), "srv-my\\x20runs-.x");
    assert_eq!(escape_path("/"), "-");
}
