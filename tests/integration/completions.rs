//! Shell completions from the one flag table: bash loads them and completes commands,
//! options and their values; zsh and fish parse them (where installed; CI installs both);
//! `make install` puts them where each shell looks.

use crate::support::*;
use std::process::Command;

fn script(shell: &str) -> String {
    let out = flatline(["--generate", shell]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(!out.stdout.is_empty());
    out.stdout
}

/// Runs `shell -c CODE` with the script in `$1`.
fn in_shell(shell: &str, code: &str, script: &str) -> Outcome {
    let dir = TempDir::new("completions");
    let path = dir.join("script");
    std::fs::write(&path, script).unwrap();
    let mut command = Command::new(shell);
    if shell == "fish" {
        // fish takes no positional arguments after -c: the path goes into the code.
        let quoted = format!("'{}'", path.display());
        command.arg("-c").arg(code.replace("$argv[1]", &quoted));
    } else {
        command.arg("-c").arg(code).arg(shell).arg(&path);
    }
    run_command(&mut command, HANG_GUARD)
}

fn available(shell: &str) -> bool {
    if have(shell) {
        return true;
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "{shell} is missing, and CI must skip nothing (.ci/run installs it)"
    );
    eprintln!("SKIPPED: {shell} is not installed (apt-get install {shell})");
    false
}

#[test]
fn bash_loads_the_completions_and_completes_from_the_table() {
    if !available("bash") {
        return;
    }
    let code = r#"source "$1" || exit 9
complete -p flatline || exit 8
complete_words() { COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); COMPREPLY=(); _flatline; echo "${COMPREPLY[*]}"; }
complete_words flatline swe
complete_words flatline doctor --check-u
complete_words flatline status --format ''
complete_words flatline --generate ''
complete_words flatline beat --ev
"#;
    let out = in_shell("bash", code, &script("bash"));
    assert_eq!(out.code, 0, "{out:?}");
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(
        lines,
        [
            "complete -F _flatline flatline",
            "sweep",
            "--check-unit",
            "text ndjson json tsv prometheus",
            "man schema bash zsh fish",
            "--every",
        ],
        "{}",
        out.stderr
    );
    // The way a user loads it, from the binary itself.
    let mut command = Command::new("bash");
    command.arg("-c").arg(format!(
        "source <('{}' --generate bash); complete -p flatline",
        bin()
    ));
    let out = run_command(&mut command, HANG_GUARD);
    assert_eq!(
        out.stdout.trim(),
        "complete -F _flatline flatline",
        "{out:?}"
    );
}

#[test]
fn zsh_parses_the_completions() {
    if !available("zsh") {
        return;
    }
    let out = in_shell("zsh", "zsh -n \"$1\"", &script("zsh"));
    assert_eq!(out.code, 0, "{out:?}");
    let text = script("zsh");
    assert!(text.starts_with("#compdef flatline\n"));
    for flag in flatline::cli::FLAGS.iter().filter(|f| f.commands != 0) {
        assert!(
            text.contains(&format!("'--{}[", flag.long))
                || text.contains(&format!("'*--{}[", flag.long)),
            "--{}",
            flag.long
        );
    }
}

#[test]
fn fish_parses_the_completions_and_completes_commands() {
    if !available("fish") {
        return;
    }
    let out = in_shell("fish", "fish -n $argv[1]", &script("fish"));
    assert_eq!(out.code, 0, "{out:?}");
    let out = in_shell(
        "fish",
        "source $argv[1]; complete -C 'flatline doct'; complete -C 'flatline status --form'",
        &script("fish"),
    );
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stdout.starts_with("doctor\t"), "{}", out.stdout);
    assert!(out.stdout.contains("--format\t"), "{}", out.stdout);
}

#[test]
fn make_install_puts_the_completions_where_each_shell_looks() {
    if !have("make") {
        eprintln!("SKIPPED: make is not installed");
        return;
    }
    let dest = TempDir::new("install");
    // The binary is already built: install it and what it generates, without rebuilding.
    let mut command = Command::new("make");
    command
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .arg("--no-print-directory")
        .arg("-o")
        .arg("build")
        .arg("install")
        .arg(format!("BIN={}", bin()))
        .arg(format!("DESTDIR={}", dest.path().display()))
        .arg("PREFIX=/usr");
    let out = run_command(&mut command, HANG_GUARD);
    assert_eq!(out.code, 0, "{out:?}");
    for (path, shell) in [
        ("usr/share/bash-completion/completions/flatline", "bash"),
        ("usr/share/zsh/site-functions/_flatline", "zsh"),
        ("usr/share/fish/vendor_completions.d/flatline.fish", "fish"),
    ] {
        let installed =
            std::fs::read_to_string(dest.join(path)).unwrap_or_else(|e| panic!("{path}: {e}"));
        assert_eq!(installed, script(shell), "{path}");
    }
}
