//! Ending with the process that started us.
//!
//! `prescient local` and the process pool start replicas and the load generator as children. If the
//! parent is killed outright (SIGKILL, an OOM kill), it cannot stop them, and they would keep ports and
//! CPU. The kernel's parent-death signal would do this, but setting it needs `unsafe` (between fork and
//! exec) and fires when the *thread* that spawned the child exits, which a tokio runtime does freely.
//! Polling the parent's pid is safe and exact: when the parent dies, the child is re-parented, and its
//! parent pid changes.

use std::time::Duration;

/// How often the parent pid is checked.
const POLL: Duration = Duration::from_millis(500);

/// Resolves once this process's parent is no longer `parent_pid` (it exited and we were re-parented),
/// or at once if it already is not. Never resolves for `None`.
pub async fn parent_gone(parent_pid: Option<u32>) {
    let Some(parent_pid) = parent_pid else {
        return std::future::pending().await;
    };
    while std::os::unix::process::parent_id() == parent_pid {
        tokio::time::sleep(POLL).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn resolves_at_once_when_the_parent_is_someone_else() {
        let not_our_parent = std::os::unix::process::parent_id().wrapping_add(1);
        tokio::time::timeout(Duration::from_secs(1), parent_gone(Some(not_our_parent)))
            .await
            .expect("resolves without waiting");
    }

    #[tokio::test]
    async fn waits_while_the_parent_lives() {
        let parent = std::os::unix::process::parent_id();
        let waited = tokio::time::timeout(Duration::from_millis(1200), parent_gone(Some(parent))).await;
        assert!(waited.is_err(), "our parent is alive");
        let never = tokio::time::timeout(Duration::from_millis(100), parent_gone(None)).await;
        assert!(never.is_err());
    }
}
