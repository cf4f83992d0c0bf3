//! The Kubernetes examples (`contrib/kubernetes/`, SPEC §9): each flatline container's
//! `command` + `args` is a command line flatline accepts, the DaemonSet runs in the host's pid
//! namespace and the sidecar shares its pod's, and both have the systemd unit's capabilities
//! and no others.

use std::path::Path;

fn manifest(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("contrib/kubernetes")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// A YAML scalar as written in these manifests: plain, or double-quoted (JSON escapes).
fn scalar(text: &str) -> String {
    let text = text.trim();
    if text.starts_with('"') {
        serde_json::from_str(text).unwrap_or_else(|e| panic!("{text}: {e}"))
    } else {
        text.to_string()
    }
}

/// The block sequence under `key:` that starts at line `at` (items indented below it).
fn sequence(lines: &[&str], at: usize) -> Vec<String> {
    let indent = lines[at].len() - lines[at].trim_start().len();
    let mut items = Vec::new();
    for line in &lines[at + 1..] {
        let trimmed = line.trim_start();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let deeper = line.len() - trimmed.len() > indent;
        match trimmed.strip_prefix("- ") {
            Some(item) if deeper || line.len() - trimmed.len() == indent => {
                items.push(scalar(item))
            }
            _ => break,
        }
    }
    items
}

/// For each container with a `command:`, its argv (`command` then `args`).
fn container_commands(text: &str) -> Vec<Vec<String>> {
    let lines: Vec<&str> = text.lines().collect();
    let mut commands = Vec::new();
    for (at, line) in lines.iter().enumerate() {
        if line.trim() == "command:" {
            let mut argv = sequence(&lines, at);
            let args_at = lines[at + 1..]
                .iter()
                .position(|l| l.trim() == "args:")
                .map(|offset| at + 1 + offset);
            if let Some(args_at) = args_at {
                argv.extend(sequence(&lines, args_at));
            }
            commands.push(argv);
        }
    }
    commands
}

/// The capabilities a container adds (after `add:`).
fn added_capabilities(text: &str) -> Vec<String> {
    let lines: Vec<&str> = text.lines().collect();
    let at = lines
        .iter()
        .position(|l| l.trim() == "add:")
        .expect("capabilities add:");
    let mut caps = sequence(&lines, at);
    caps.sort();
    caps
}

/// The unit's `CapabilityBoundingSet=`, without the `CAP_` prefixes.
fn unit_capabilities() -> Vec<String> {
    let unit = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/contrib/systemd/flatline-sweep@.service"
    ))
    .unwrap();
    let line = unit
        .lines()
        .find(|l| l.starts_with("CapabilityBoundingSet="))
        .expect("CapabilityBoundingSet=");
    let mut caps: Vec<String> = line["CapabilityBoundingSet=".len()..]
        .split_whitespace()
        .map(|cap| cap.trim_start_matches("CAP_").to_string())
        .collect();
    caps.sort();
    caps
}

fn accepts(name: &str, argv: &[String]) -> flatline::cli::config::Config {
    assert!(argv[0].ends_with("/flatline"), "{name}: runs {:?}", argv[0]);
    let low = flatline::cli::parse(argv[1..].iter().map(String::as_str))
        .unwrap_or_else(|e| panic!("{name}: {argv:?}: usage error: {}", e.0));
    let flatline::cli::Mode::Run(command) = low.mode() else {
        panic!("{name}: {argv:?} runs no command");
    };
    flatline::cli::config::resolve(low, command, false)
        .unwrap_or_else(|e| panic!("{name}: {argv:?}: usage error: {}", e.0))
}

#[test]
fn the_extractor_reads_block_sequences() {
    let text = "    command:\n      - \"/bin/flatline\"\n    args:\n      - sweep\n      - \"a b\"\n    image: x\n";
    assert_eq!(
        container_commands(text),
        [["/bin/flatline", "sweep", "a b"]]
    );
}

#[test]
fn the_daemonset_runs_a_sweep_every_interval_in_the_hosts_pid_namespace() {
    let text = manifest("daemonset.yaml");
    assert!(text.contains("\n      hostPID: true\n"), "hostPID: true");
    assert!(
        text.contains("hostPath:"),
        "the run directories as a hostPath"
    );
    let commands = container_commands(&text);
    assert_eq!(commands.len(), 1, "{commands:?}");
    let config = accepts("daemonset.yaml", &commands[0]);
    assert_eq!(config.command, flatline::cli::Command::Sweep);
    let every = config.sweep_every.expect("sweep --every");
    assert!(config.deadline.is_some_and(|d| d <= every));
    assert_eq!(added_capabilities(&text), unit_capabilities());
    assert!(text.contains("- ALL"), "every other capability dropped");
}

#[test]
fn the_sidecar_shares_the_pods_pid_namespace() {
    let text = manifest("sidecar.yaml");
    assert!(text.contains("\n  shareProcessNamespace: true\n"));
    let commands = container_commands(&text);
    assert_eq!(commands.len(), 1, "{commands:?}");
    let config = accepts("sidecar.yaml", &commands[0]);
    assert_eq!(config.command, flatline::cli::Command::Sweep);
    assert!(config.sweep_every.is_some());
    assert_eq!(added_capabilities(&text), unit_capabilities());
}
