//! flatline beat: atomic heartbeats, once and on a signal.

use super::*;

#[test]
fn beat_writes_atomically_and_a_reader_never_sees_a_torn_heartbeat() {
    let dir = TempDir::new("beat");
    let file = dir.join("heartbeat.json");
    let mut life = Proc::sleep();
    let mut beater = Command::new(bin())
        .args(["beat"])
        .arg(&file)
        .args(["--name", "w7", "--every", "1ms", "--while-pid"])
        .arg(life.pid().to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let started = std::time::Instant::now();
    let mut seen = std::collections::HashSet::new();
    let mut reads = 0u64;
    while seen.len() < 1_000 {
        assert!(
            started.elapsed() < HANG_GUARD,
            "only {} beats seen",
            seen.len()
        );
        let Ok(bytes) = std::fs::read(&file) else {
            continue; // not created yet
        };
        reads += 1;
        let doc: Value = serde_json::from_slice(&bytes).unwrap_or_else(|e| {
            panic!(
                "a torn heartbeat after {reads} reads: {e}: {:?}",
                String::from_utf8_lossy(&bytes)
            )
        });
        assert_eq!(doc["status"], "alive");
        assert_eq!(doc["name"], "w7");
        seen.insert(doc["ts"].as_str().unwrap().to_string());
    }
    // The worker ends: beat writes a final "stopped" and exits 0.
    life.child.kill().unwrap();
    life.child.wait().unwrap();
    let status = beater.wait().unwrap();
    assert!(status.success(), "{status:?}");
    let last: Value = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
    assert_eq!(last["status"], "stopped");
    assert_eq!(last["name"], "w7");
    let leftovers: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(leftovers, [std::ffi::OsString::from("heartbeat.json")]);
}

#[test]
fn beat_once_and_on_a_signal() {
    let dir = TempDir::new("beat-once");
    let file = dir.join("w9").join("heartbeat.json");
    std::fs::create_dir_all(file.parent().unwrap()).unwrap();
    let out = flatline([
        OsStr::new("beat"),
        file.as_os_str(),
        OsStr::new("--status"),
        OsStr::new("ready"),
    ]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let doc: Value = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
    assert_eq!(
        (doc["status"].as_str(), doc["name"].as_str()),
        (Some("ready"), Some("w9"))
    );
    // A looping beat ends on SIGTERM with a final "stopped".
    let mut beater = Command::new(bin())
        .arg("beat")
        .arg(&file)
        .args(["--every", "50ms"])
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    let started = std::time::Instant::now();
    loop {
        let doc: Value = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
        if doc["status"] == "alive" {
            break;
        }
        assert!(started.elapsed() < HANG_GUARD);
        std::thread::yield_now();
    }
    // SAFETY: signals the beat this test started.
    assert_eq!(unsafe { libc::kill(beater.id() as i32, libc::SIGTERM) }, 0);
    let status = beater.wait().unwrap();
    assert_eq!(status.code(), Some(128 + libc::SIGTERM));
    let doc: Value = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
    assert_eq!(doc["status"], "stopped");
    // A symlinked heartbeat file is refused.
    let link = dir.join("link.json");
    std::os::unix::fs::symlink(&file, &link).unwrap();
    let out = flatline([OsStr::new("beat"), link.as_os_str()]);
    assert_eq!(out.code, 3);
    assert_eq!(
        out.stderr,
        format!("flatline: {}: is a symlink, refused\n", link.display())
    );
}
