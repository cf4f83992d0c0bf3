//! Temp files, the test hook and error messages.

use super::*;

#[test]
fn remove_stale_temps_removes_only_flatline_temps() {
    let scratch = Scratch::new("stale");
    for file in [
        ".d1.json.flatline.123.tmp",
        ".d1.json.tmp",
        ".other",
        "d1.json",
        ".d1.json.flatline..tmp",
        ".d1.json.flatline.12a.tmp",
    ] {
        std::fs::write(scratch.path().join(file), "x").unwrap();
    }
    std::fs::create_dir(scratch.path().join(".dir.flatline.7.tmp")).unwrap();
    let target = scratch.path().join("target");
    std::fs::write(&target, "keep").unwrap();
    symlink(&target, scratch.path().join(".link.flatline.8.tmp")).unwrap();
    let dir = scratch.dir();
    let removed = remove_stale_temps(&dir, &dir.entries().unwrap()).unwrap();
    assert_eq!(removed, 1);
    assert_eq!(
        scratch.names(),
        [
            ".d1.json.flatline..tmp",
            ".d1.json.flatline.12a.tmp",
            ".d1.json.tmp",
            ".dir.flatline.7.tmp",
            ".link.flatline.8.tmp",
            ".other",
            "d1.json",
            "target",
        ]
    );
    assert_eq!(std::fs::read(&target).unwrap(), b"keep");
}

#[test]
fn temp_names_round_trip() {
    let temp = temp_name(name("d1.json"));
    assert_eq!(
        temp,
        OsString::from(format!(".d1.json.flatline.{}.tmp", std::process::id()))
    );
    assert!(is_temp_name(&temp));
    assert!(is_temp_name(name(".a.flatline.1.tmp")));
    assert!(!is_temp_name(name("..flatline.1.tmp")));
    assert!(is_temp_name(name(".a.flatline.b.flatline.9.tmp")));
    assert!(!is_temp_name(name(".flatline.1.tmp")));
    assert!(!is_temp_name(name("d1.json.flatline.1.tmp")));
    assert!(!is_temp_name(name(".d1.json.flatline.1.tmp.x")));
    let random = random_temp_name(name("d1.json"), "0123456789abcdef");
    assert!(is_temp_name(&random));
    assert!(!is_temp_name(name(".d1.json.flatline.1.xyz.tmp")));
}

/// A writer of the directory plants what flatline cannot remove (a non-empty directory,
/// a FIFO) at the predictable temp name: the write still lands, through a random name,
/// and the trap is left as it was.
#[test]
fn a_trap_at_the_temp_name_does_not_stop_the_write() {
    let scratch = Scratch::new("trap");
    let dir = scratch.dir();
    std::fs::write(scratch.path().join("d.json"), b"{}\n").unwrap();
    let trap = scratch.path().join(temp_name(name("d.json")));
    std::fs::create_dir(&trap).unwrap();
    std::fs::write(trap.join("inside"), b"x").unwrap();
    write_atomic(&dir, name("d.json"), b"{\"a\":1}\n", 0o644).unwrap();
    assert_eq!(
        std::fs::read(scratch.path().join("d.json")).unwrap(),
        b"{\"a\":1}\n"
    );
    assert!(trap.join("inside").exists(), "the trap is left alone");
    let temps: Vec<String> = scratch
        .names()
        .into_iter()
        .filter(|n| {
            is_temp_name(OsStr::new(n)) && *n != trap.file_name().unwrap().to_string_lossy()
        })
        .collect();
    assert!(temps.is_empty(), "{temps:?}");
}

#[test]
fn errors_read_as_one_line_causes() {
    assert_eq!(StoreError::Symlink.to_string(), "is a symlink, refused");
    assert_eq!(
        StoreError::MultipleLinks(2).to_string(),
        "has 2 hard links, not replaced"
    );
    let denied = io::Error::from_raw_os_error(libc::EPERM);
    assert_eq!(
        StoreError::KeepOwnership(denied).to_string(),
        "cannot keep its owner, group and mode (operation not permitted), not replaced"
    );
    let missing = io::Error::from_raw_os_error(libc::ENOENT);
    assert_eq!(
        StoreError::Io(missing).to_string(),
        "no such file or directory"
    );
}

#[cfg(debug_assertions)]
#[test]
fn the_test_hook_parses_its_variable() {
    let parsed = test_hook::parse(name("d1.json:2")).unwrap();
    let scratch = Scratch::new("hookparse");
    std::fs::write(scratch.path().join("d1.json"), "{}").unwrap();
    let dir = scratch.dir();
    for _ in 0..3 {
        parsed.apply(&dir, name("d1.json"));
    }
    let text = std::fs::read_to_string(scratch.path().join("d1.json")).unwrap();
    assert!(text.contains("\"test_interference\": 2"), "{text}");
    assert!(test_hook::parse(name("a:b:3")).is_some());
    for bad in [
        "d1.json",
        "d1.json:",
        ":3",
        "d1.json:x",
        "d1.json:-1",
        "d:99999999999",
    ] {
        assert!(test_hook::parse(name(bad)).is_none(), "{bad}");
    }
}

#[cfg(debug_assertions)]
#[test]
fn the_test_hook_forces_a_change_that_is_detected() {
    let scratch = Scratch::new("hook");
    let file = scratch.path().join("d1.json");
    let original = b"{\n  \"id\": \"d1\",\n  \"n\": 12345678901234567890\n}\n";
    std::fs::write(&file, original).unwrap();
    let interference = test_hook::parse(name("d1.json:1")).unwrap();
    let dir = scratch.dir();
    let mut hook = || interference.apply(&dir, name("d1.json"));
    let outcome =
        replace_checked_with(&dir, name("d1.json"), original, b"{}\n", &mut hook).unwrap();
    let Replaced::Changed(current) = outcome else {
        panic!("{outcome:?}");
    };
    let value: serde_json::Value = serde_json::from_slice(&current).unwrap();
    assert_eq!(value["test_interference"], 1);
    assert_eq!(value["n"].to_string(), "12345678901234567890");
    assert_eq!(std::fs::read(&file).unwrap(), current);
    scratch.assert_no_temp();

    // The count is spent: the retry with the new bytes goes through.
    let outcome =
        replace_checked_with(&dir, name("d1.json"), &current, b"{}\n", &mut hook).unwrap();
    assert_eq!(outcome, Replaced::Written);
    assert_eq!(std::fs::read(&file).unwrap(), b"{}\n");
}
