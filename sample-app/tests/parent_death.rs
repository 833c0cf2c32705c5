//! A replica and the load generator started with `--parent-pid` end when their parent is killed outright
//! (SIGKILL gives the parent no chance to stop them).
#![allow(clippy::unwrap_used)]

use std::{
    io::{BufRead, BufReader},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

/// Whether `pid` is a live process (a zombie waiting for its new parent to reap it counts as gone).
fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state follows the parenthesised command name: `pid (comm) S ...`.
        Ok(stat) => stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_some_and(|state| state != "Z" && state != "X"),
        Err(_) => false,
    }
}

/// Starts `program args… --parent-pid <shell>` in the background of a shell, prints its pid, and
/// returns (shell, child pid). The shell then sleeps until it is killed.
fn start_under_a_shell(program: &str, args: &str) -> (std::process::Child, u32) {
    let script = format!("\"{program}\" {args} --parent-pid $$ >/dev/null 2>&1 & echo $!; exec sleep 600");
    let mut shell = Command::new("sh")
        .args(["-c", &script])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(shell.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    (shell, line.trim().parse().unwrap())
}

fn ends_after_its_parent_is_killed(program: &str, args: &str) {
    let (mut shell, pid) = start_under_a_shell(program, args);
    // `exec sleep` keeps the shell's pid, so the child's parent stays the one it was told about.
    std::thread::sleep(Duration::from_millis(1500));
    assert!(alive(pid), "{program} should run while its parent lives");
    shell.kill().unwrap();
    shell.wait().unwrap();
    let deadline = Instant::now() + Duration::from_secs(15);
    while alive(pid) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    let still_alive = alive(pid);
    if still_alive {
        let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
    }
    assert!(!still_alive, "{program} outlived its parent");
}

#[test]
fn a_replica_ends_when_its_parent_is_killed() {
    ends_after_its_parent_is_killed(
        env!("CARGO_BIN_EXE_sample-app"),
        "--listen 127.0.0.1:0 --shutdown-grace 1s",
    );
}

#[test]
fn the_load_generator_ends_when_its_parent_is_killed() {
    let dir = tempfile::tempdir().unwrap();
    let trace = dir.path().join("trace.csv");
    std::fs::write(&trace, "timestamp,value\n0,1\n60,1\n120,1\n").unwrap();
    // Nothing listens on the target: the replay just counts errors while it waits.
    let args = format!(
        "--trace \"{}\" --target 127.0.0.1:9 --duration 10m",
        trace.display()
    );
    ends_after_its_parent_is_killed(env!("CARGO_BIN_EXE_loadgen"), &args);
}
