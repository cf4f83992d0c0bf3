use super::*;

fn good_host() -> HostFacts {
    HostFacts {
        pid_max: Some(MIN_PID_MAX),
        ptrace_scope: Some(1),
        hidepid: None,
        pidfd: true,
        openat2: true,
        protected_hardlinks: Some(1),
        root: true,
    }
}

fn checks(findings: &[Finding]) -> Vec<&'static str> {
    findings.iter().map(|f| f.check).collect()
}

#[test]
fn a_good_host_has_no_findings() {
    assert!(host_findings(&good_host()).is_empty());
}

#[test]
fn each_host_misconfiguration_is_found_with_a_fix() {
    let host = HostFacts {
        pid_max: Some(32_768),
        ptrace_scope: Some(3),
        hidepid: Some("2".into()),
        pidfd: false,
        openat2: false,
        protected_hardlinks: Some(0),
        root: false,
    };
    let findings = host_findings(&host);
    assert_eq!(
        checks(&findings),
        [
            "pid_max",
            "ptrace_scope",
            "hidepid",
            "pidfd",
            "openat2",
            "protected_hardlinks"
        ]
    );
    assert!(findings.iter().all(|f| !f.fix.is_empty()));
    assert!(findings[0].fix.contains("4194304"));
    // hidepid does not hide anything from root.
    let root = HostFacts {
        root: true,
        hidepid: Some("2".into()),
        ..good_host()
    };
    assert!(host_findings(&root).is_empty());
}

#[test]
fn writable_directories_without_the_sticky_bit() {
    let dir = |mode| DirFacts {
        uid: 1000,
        gid: 1000,
        mode,
    };
    assert!(writable_directory("/r", dir(0o755), true).is_none());
    assert!(writable_directory("/r", dir(0o1777), true).is_none());
    assert!(writable_directory("/r", dir(0o775), false).is_none());
    let found = writable_directory("/r", dir(0o775), true).unwrap();
    assert!(found.fix.contains("g-w"), "{found:?}");
    let found = writable_directory("/r", dir(0o757), false).unwrap();
    assert!(found.fix.contains("o-w"), "{found:?}");
}

#[test]
fn state_dir_owner_mode_and_files() {
    let dir = |uid, mode| StateDirFacts {
        dir: Some(Ok(DirFacts { uid, gid: 0, mode })),
        files: vec![("lock", Ok((uid, 0, 0o640, 1)))],
    };
    assert!(state_dir_findings("/r/.flatline", &dir(0, 0o750), (0, "root"), 1000).is_empty());
    assert!(state_dir_findings("/r/.flatline", &dir(1000, 0o750), (0, "root"), 1000).is_empty());
    assert_eq!(
        checks(&state_dir_findings(
            "/r/.flatline",
            &dir(2000, 0o770),
            (0, "root"),
            1000
        )),
        ["state_dir_owner", "state_dir_mode"]
    );
    let files = StateDirFacts {
        dir: Some(Ok(DirFacts {
            uid: 0,
            gid: 0,
            mode: 0o750,
        })),
        files: vec![
            ("lock", Ok((0, 0, 0o644, 1))),
            ("state.json", Ok((0, 0, 0o640, 2))),
        ],
    };
    assert_eq!(
        checks(&state_dir_findings("/r/.flatline", &files, (0, "root"), 0)),
        ["state_file", "state_file"]
    );
    assert!(
        state_dir_findings("/r/.flatline", &StateDirFacts::default(), (0, "root"), 0).is_empty()
    );
}

#[test]
fn lock_group_members_that_are_workers() {
    let found = lock_group_findings(
        "/r/.flatline/lock",
        50,
        &[0, 1000, 2000, 3000],
        &[2000, 1000],
        1000,
    );
    assert_eq!(found.len(), 1);
    assert!(found[0].message.contains("uid 2000"), "{found:?}");
    assert!(lock_group_findings("/r/.flatline/lock", 50, &[1000], &[1000], 1000).is_empty());
}

#[test]
fn delegations_missing_identity_timestamps_skew_and_namespace() {
    let running = DelegationFacts {
        running: true,
        has_pid: true,
        ..DelegationFacts::default()
    };
    assert_eq!(
        checks(&delegation_findings("d.json", &running, 0, 60_000, None)),
        ["identity_timestamps"]
    );
    let fingerprinted = DelegationFacts {
        has_fingerprint: true,
        ..running.clone()
    };
    assert!(delegation_findings("d.json", &fingerprinted, 0, 60_000, None).is_empty());
    let complete = DelegationFacts {
        has_anchor: true,
        has_launch: true,
        timestamps: vec![("started_at", 1_000), ("last_progress_at", 200_000)],
        pid_ns: Some(7),
        ..running.clone()
    };
    assert_eq!(
        checks(&delegation_findings(
            "d.json",
            &complete,
            100_000,
            60_000,
            Some(7)
        )),
        ["clock_skew"]
    );
    assert_eq!(
        checks(&delegation_findings(
            "d.json",
            &complete,
            200_000,
            60_000,
            Some(8)
        )),
        ["pid_namespace"]
    );
    // A finished delegation needs no identity.
    let done = DelegationFacts {
        running: false,
        ..running
    };
    assert!(delegation_findings("d.json", &done, 0, 60_000, None).is_empty());
}
