use super::*;

const AT: Millis = 1_000_000;

fn denied() -> Unreadable {
    Unreadable("permission denied: needs ptrace-attach rights".into())
}

/// A sleeping process with fd 0 on /dev/null, one thread in nanosleep, no sockets.
fn process(pid: i32) -> ProcessFacts {
    ProcessFacts {
        pid,
        comm: "worker".into(),
        state: Ok(b'S'),
        arch: Ok(Arch::X86_64),
        stdin: Ok(FdKind::Other),
        threads: Ok(vec![thread(pid, 230, 0)]),
        stdin_in_epoll: Ok(false),
        connections: Ok(vec![]),
    }
}

fn thread(tid: i32, nr: i64, arg0: u64) -> ThreadFacts {
    ThreadFacts {
        tid,
        syscall: Ok(SyscallLine::Call { nr, arg0 }),
    }
}

fn tree(processes: Vec<ProcessFacts>) -> TreeFacts {
    TreeFacts { at: AT, processes }
}

fn code(processes: Vec<ProcessFacts>) -> StallCode {
    diagnose(&tree(processes), None).code
}

#[test]
fn a_thread_reading_a_stdin_pipe_is_stdin_pipe() {
    let mut p = process(10);
    p.stdin = Ok(FdKind::Pipe);
    p.threads = Ok(vec![thread(10, 0, 0)]);
    let stall = diagnose(&tree(vec![process(9), p]), None);
    assert_eq!(stall.code, StallCode::StdinPipe);
    assert!(
        stall.detail.starts_with(STDIN_PIPE_DETAIL),
        "{}",
        stall.detail
    );
    assert!(stall.detail.contains("process 10"), "{}", stall.detail);
    assert_eq!(stall.since, AT);
}

#[test]
fn readv_and_pread64_on_fd_0_count_and_a_socket_stdin_too() {
    for nr in [19, 17] {
        let mut p = process(10);
        p.stdin = Ok(FdKind::Socket(77));
        p.threads = Ok(vec![thread(10, nr, 0)]);
        assert_eq!(code(vec![p]), StallCode::StdinPipe, "nr {nr}");
    }
}

#[test]
fn a_read_on_another_descriptor_is_not_stdin() {
    let mut p = process(10);
    p.stdin = Ok(FdKind::Pipe);
    p.threads = Ok(vec![thread(10, 0, 3)]);
    assert_eq!(code(vec![p]), StallCode::Idle);
}

#[test]
fn a_read_on_fd_0_that_is_not_a_pipe_is_not_stdin_pipe() {
    let mut p = process(10);
    p.threads = Ok(vec![thread(10, 0, 0)]);
    assert_eq!(code(vec![p]), StallCode::Idle);
}

#[test]
fn the_node_form_every_thread_waiting_with_fd_0_in_epoll() {
    let mut p = process(10);
    p.stdin = Ok(FdKind::Pipe);
    p.threads = Ok(vec![
        thread(10, 232, 13),
        thread(11, 202, 0),
        thread(12, 202, 0),
    ]);
    p.stdin_in_epoll = Ok(true);
    let stall = diagnose(&tree(vec![p.clone()]), None);
    assert_eq!(stall.code, StallCode::StdinPipe);
    assert!(stall.detail.contains("epoll"), "{}", stall.detail);
    // fd 0 not registered: not the Node form.
    p.stdin_in_epoll = Ok(false);
    assert_eq!(code(vec![p.clone()]), StallCode::Idle);
    // One thread elsewhere (running): not every thread waits.
    p.stdin_in_epoll = Ok(true);
    let mut threads = p.threads.clone().unwrap();
    threads.push(ThreadFacts {
        tid: 13,
        syscall: Ok(SyscallLine::Running),
    });
    p.threads = Ok(threads);
    assert_eq!(code(vec![p]), StallCode::Idle);
}

#[test]
fn the_node_form_on_aarch64_uses_its_table() {
    let mut p = process(10);
    p.arch = Ok(Arch::Aarch64);
    p.stdin = Ok(FdKind::Pipe);
    p.threads = Ok(vec![thread(10, 22, 13), thread(11, 98, 0)]);
    p.stdin_in_epoll = Ok(true);
    assert_eq!(code(vec![p.clone()]), StallCode::StdinPipe);
    p.threads = Ok(vec![thread(10, 63, 0)]);
    assert_eq!(code(vec![p.clone()]), StallCode::StdinPipe);
    // x86_64's read number means something else on aarch64 (io_setup).
    p.threads = Ok(vec![thread(10, 0, 0)]);
    assert_eq!(code(vec![p]), StallCode::Idle);
}

#[test]
fn an_unreadable_syscall_is_said_never_guessed() {
    let mut p = process(10);
    p.stdin = Ok(FdKind::Pipe);
    p.threads = Ok(vec![ThreadFacts {
        tid: 10,
        syscall: Err(denied()),
    }]);
    let stall = diagnose(&tree(vec![p]), None);
    assert_eq!(stall.code, StallCode::Unknown);
    assert!(
        stall.detail.contains(
            "could not read the system call of thread 10 of process 10: permission denied"
        ),
        "{}",
        stall.detail
    );
}

#[test]
fn unreadable_threads_stdin_arch_and_epoll_are_said() {
    type Change = fn(&mut ProcessFacts);
    let cases: Vec<(Change, &str)> = vec![
        (|p| p.threads = Err(denied()), "the threads of process 10"),
        (|p| p.stdin = Err(denied()), "fd 0 of process 10"),
        (|p| p.arch = Err(denied()), "the architecture of process 10"),
        (
            |p| {
                p.threads = Ok(vec![thread(10, 232, 4)]);
                p.stdin_in_epoll = Err(denied());
            },
            "the epoll sets of process 10",
        ),
        (|p| p.state = Err(denied()), "the state of process 10"),
        (
            |p| p.connections = Err(denied()),
            "the sockets of process 10",
        ),
    ];
    for (change, said) in cases {
        let mut p = process(10);
        p.stdin = Ok(FdKind::Pipe);
        change(&mut p);
        let stall = diagnose(&tree(vec![p]), None);
        assert_eq!(stall.code, StallCode::Unknown, "{said}");
        assert!(stall.detail.contains(said), "{said}: {}", stall.detail);
    }
}

#[test]
fn a_compat_task_gives_unknown() {
    let mut p = process(10);
    p.arch = Ok(Arch::Other);
    p.stdin = Ok(FdKind::Pipe);
    p.threads = Ok(vec![thread(10, 3, 0)]);
    let stall = diagnose(&tree(vec![p]), None);
    assert_eq!(stall.code, StallCode::Unknown);
    assert!(stall.detail.contains("compat task"), "{}", stall.detail);
    assert_eq!(classify(Arch::X86_64, 0x4000_0000), Call::Unknown);
}

#[test]
fn stopped_wins_and_names_the_letter() {
    for letter in [b'T', b't'] {
        let mut p = process(11);
        p.state = Ok(letter);
        // A stopped reader still shows its read: stopped is the stronger fact.
        p.stdin = Ok(FdKind::Pipe);
        p.threads = Ok(vec![thread(11, 0, 0)]);
        let stall = diagnose(&tree(vec![process(10), p]), None);
        assert_eq!(stall.code, StallCode::Stopped);
        assert!(
            stall
                .detail
                .contains(&format!("state {}", char::from(letter))),
            "{}",
            stall.detail
        );
    }
}

#[test]
fn all_close_wait_is_peer_closed() {
    let mut p = process(10);
    p.connections = Ok(vec![TcpState::CloseWait, TcpState::Listen]);
    let mut q = process(11);
    q.connections = Ok(vec![TcpState::CloseWait]);
    let stall = diagnose(&tree(vec![p.clone(), q]), None);
    assert_eq!(stall.code, StallCode::PeerClosed);
    assert!(stall.detail.contains("2 TCP"), "{}", stall.detail);
    // One established among them: a live connection, network_wait.
    let mut q = process(11);
    q.connections = Ok(vec![TcpState::Established]);
    assert_eq!(code(vec![p, q]), StallCode::NetworkWait);
}

#[test]
fn a_listening_socket_alone_is_idle() {
    let mut p = process(10);
    p.connections = Ok(vec![TcpState::Listen]);
    assert_eq!(code(vec![p]), StallCode::Idle);
}

#[test]
fn disk_wait_needs_d_in_both_samples() {
    let mut p = process(10);
    p.state = Ok(b'D');
    let facts = tree(vec![p]);
    let first = diagnose(&facts, None);
    assert_eq!(first.code, StallCode::Idle);
    assert!(first.detail.contains("state D"), "{}", first.detail);
    let previous = Previous {
        stall: first.clone(),
        disk_sleepers: facts.disk_sleepers(),
    };
    let second = diagnose(&facts, Some(&previous));
    assert_eq!(second.code, StallCode::DiskWait);
    // Another process was in D before: not the same one twice.
    let previous = Previous {
        stall: first,
        disk_sleepers: vec![99],
    };
    assert_eq!(diagnose(&facts, Some(&previous)).code, StallCode::Idle);
}

#[test]
fn since_is_kept_while_the_code_stays() {
    let mut p = process(10);
    p.state = Ok(b'T');
    let facts = TreeFacts {
        at: AT + 5_000,
        processes: vec![p],
    };
    let earlier = Stall {
        code: StallCode::Stopped,
        detail: String::new(),
        since: AT,
    };
    let previous = Previous {
        stall: earlier.clone(),
        disk_sleepers: vec![],
    };
    assert_eq!(diagnose(&facts, Some(&previous)).since, AT);
    let other = Previous {
        stall: Stall {
            code: StallCode::Idle,
            ..earlier
        },
        disk_sleepers: vec![],
    };
    assert_eq!(diagnose(&facts, Some(&other)).since, AT + 5_000);
}

#[test]
fn an_empty_tree_is_unknown_and_a_plain_sleeper_idle() {
    assert_eq!(code(vec![]), StallCode::Unknown);
    let stall = diagnose(&tree(vec![process(10)]), None);
    assert_eq!(stall.code, StallCode::Idle);
    assert!(!stall.detail.contains("could not read"));
}

#[test]
fn codes_have_their_spec_names() {
    let names: Vec<&str> = [
        StallCode::StdinPipe,
        StallCode::PeerClosed,
        StallCode::Stopped,
        StallCode::DiskWait,
        StallCode::NetworkWait,
        StallCode::Idle,
        StallCode::Unknown,
    ]
    .iter()
    .map(|c| c.as_str())
    .collect();
    assert_eq!(
        names,
        [
            "stdin_pipe",
            "peer_closed",
            "stopped",
            "disk_wait",
            "network_wait",
            "idle",
            "unknown"
        ]
    );
}

#[test]
fn syscall_lines_parse() {
    assert_eq!(parse_syscall("running\n"), Some(SyscallLine::Running));
    assert_eq!(
        parse_syscall("-1 0x7ffd5c3e0e48 0x7f1b2c\n"),
        Some(SyscallLine::NotInSyscall)
    );
    assert_eq!(
        parse_syscall("0 0x0 0x55d1c0a3e000 0x20000 0x0 0x0 0x0 0x7ffd 0x7f1b\n"),
        Some(SyscallLine::Call { nr: 0, arg0: 0 })
    );
    assert_eq!(
        parse_syscall("232 0xd 0x7ffe 0x400 0xffffffff 0x0 0x0 0x7ffd 0x7f1b"),
        Some(SyscallLine::Call { nr: 232, arg0: 13 })
    );
    assert_eq!(parse_syscall(""), None);
    assert_eq!(parse_syscall("abc 0x0"), None);
    assert_eq!(parse_syscall("0 zz"), None);
}

#[test]
fn epoll_fdinfo_lists_its_targets() {
    let text = "pos:\t0\nflags:\t02000002\nmnt_id:\t15\nino:\t1057\n\
                tfd:       13 events:       19 data:                d  pos:0 ino:2c05 sdev:e\n\
                tfd:        0 events:       19 data:                0  pos:0 ino:2c01 sdev:e\n";
    assert_eq!(parse_epoll_tfds(text), vec![13, 0]);
    assert_eq!(parse_epoll_tfds("pos:\t0\nflags:\t02\n"), Vec::<i64>::new());
}

#[test]
fn fd_links_name_pipes_sockets_and_epoll() {
    assert_eq!(parse_fd_link(b"pipe:[123]"), FdKind::Pipe);
    assert_eq!(parse_fd_link(b"socket:[456]"), FdKind::Socket(456));
    assert_eq!(parse_fd_link(b"socket:[x]"), FdKind::Other);
    assert_eq!(parse_fd_link(b"/dev/null"), FdKind::Other);
    assert!(is_eventpoll(b"anon_inode:[eventpoll]"));
    assert!(!is_eventpoll(b"anon_inode:[eventfd]"));
}

#[test]
fn net_tcp_tables_give_inode_and_state() {
    let text = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n\
   0: 0100007F:A2C3 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 41234 1 0000 100 0 0 10 0\n\
   1: 0100007F:B0B0 0100007F:A2C3 08 00000000:00000000 00:00000000 00000000     0        0 41240 1 0000 20 4 30 10 -1\n\
   2: 0100007F:B0B1 0100007F:A2C3 01 00000000:00000000 00:00000000 00000000     0        0 41241 1 0000 20 4 30 10 -1\n\
   3: 0100007F:B0B2 0100007F:A2C3 06 00000000:00000000 03:00000000 00000000     0        0 0 3 0000\n\
   garbage\n";
    assert_eq!(
        parse_net_tcp(text),
        vec![
            (41234, TcpState::Listen),
            (41240, TcpState::CloseWait),
            (41241, TcpState::Established),
        ]
    );
}

#[test]
fn auxv_word_size_tells_a_compat_task() {
    let mut native = Vec::new();
    for (key, value) in [(33u64, 0x7ffd_0000_0000u64), (16, 0xbfeb_fbff), (0, 0)] {
        native.extend_from_slice(&key.to_ne_bytes());
        native.extend_from_slice(&value.to_ne_bytes());
    }
    assert_eq!(arch_from_auxv(&native, Arch::X86_64), Some(Arch::X86_64));
    assert_eq!(arch_from_auxv(&native, Arch::Aarch64), Some(Arch::Aarch64));
    let mut compat = Vec::new();
    for (key, value) in [(32u32, 0xf7f1_0000u32), (33, 0xf7f0_0000), (0, 0)] {
        compat.extend_from_slice(&key.to_ne_bytes());
        compat.extend_from_slice(&value.to_ne_bytes());
    }
    assert_eq!(arch_from_auxv(&compat, Arch::X86_64), Some(Arch::Other));
    assert_eq!(arch_from_auxv(&[0; 4], Arch::X86_64), None);
    assert_eq!(arch_from_auxv(&[0; 16], Arch::X86_64), None);
}
