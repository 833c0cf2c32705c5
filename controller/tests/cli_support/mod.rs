//! What every `prescient` subcommand that writes to stdout must do with a reader that goes away or a
//! disk that fills: shared by the CLI tests of `demo`, `forecast`/`backtest` and `simulate`.

use std::process::{Command, Stdio};

/// Runs `command` with its stdout closed before the first byte is read (`| head -c0`: every write is
/// EPIPE) and asserts a quiet exit 0: success, no panic. Returns stderr for further checks.
pub fn assert_quiet_into_a_closed_pipe(command: &mut Command, what: &str) -> String {
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(output.status.success(), "{what} into a closed pipe: {stderr}");
    assert!(
        !stderr.contains("panicked"),
        "{what} into a closed pipe: {stderr}"
    );
    stderr
}

/// Runs `command` with stdout on `/dev/full` and asserts the clear error: exit 1, "cannot write the
/// output … No space left", no panic.
pub fn assert_clear_error_on_a_full_disk(command: &mut Command, what: &str) {
    let output = command
        .stdout(std::fs::File::create("/dev/full").unwrap())
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{what} > /dev/full: {stderr}");
    assert!(!stderr.contains("panicked"), "{what} > /dev/full: {stderr}");
    assert!(
        stderr.contains("cannot write the output") && stderr.contains("No space left"),
        "{what} > /dev/full: {stderr}"
    );
}
