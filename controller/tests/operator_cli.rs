//! The operator's command line: `prescient crd` prints the committed manifest, `prescient run --help`
//! documents every flag, and `run` without a cluster fails with a clear message instead of hanging.
#![allow(clippy::unwrap_used)]

use std::process::Command;

fn prescient() -> Command {
    Command::new(env!("CARGO_BIN_EXE_prescient"))
}

#[test]
fn crd_command_prints_the_committed_manifest() {
    let output = prescient().arg("crd").output().unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let committed = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../manifests/crd/predictiveautoscaler.yaml"
    ))
    .unwrap();
    assert!(
        String::from_utf8(output.stdout).unwrap() == committed,
        "regenerate: cargo run -p prescient -- crd > manifests/crd/predictiveautoscaler.yaml"
    );
}

#[test]
fn run_help_lists_every_flag() {
    let output = prescient().args(["run", "--help"]).output().unwrap();
    assert!(output.status.success());
    let help = String::from_utf8(output.stdout).unwrap();
    for flag in [
        "--prometheus-url",
        "--dashboard-addr",
        "--dashboard-token",
        "--metrics-addr",
        "--log-format",
        "--leader-election",
        "--lease-namespace",
        "--lease-name",
    ] {
        assert!(
            help.contains(flag),
            "`prescient run --help` lacks {flag}:\n{help}"
        );
    }
    assert!(
        help.contains("PRESCIENT_DASHBOARD_TOKEN"),
        "the token's env var is documented"
    );
}

#[test]
fn run_without_a_cluster_fails_with_a_clear_message() {
    let home = tempfile::tempdir().unwrap();
    let output = prescient()
        .args([
            "run",
            "--metrics-addr",
            "127.0.0.1:0",
            "--dashboard-addr",
            "127.0.0.1:0",
        ])
        .env("HOME", home.path())
        .env("KUBECONFIG", home.path().join("missing-kubeconfig"))
        .env_remove("KUBERNETES_SERVICE_HOST")
        .env_remove("KUBERNETES_SERVICE_PORT")
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("connecting to Kubernetes"), "{stderr}");
}

/// An HTTP/1.1 GET on 127.0.0.1, answering (status code, body).
fn get(addr: &str, path: &str) -> (u16, String) {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    let code = answer.split_whitespace().nth(1).unwrap().parse().unwrap();
    let body = answer
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (code, body)
}

#[test]
fn run_serves_probes_and_metrics_and_stops_on_sigterm() {
    use std::io::BufRead;
    // A kubeconfig whose API server does not answer: the client is built, the watch keeps failing and
    // retrying, and the probes and /metrics are served all the same.
    let dir = tempfile::tempdir().unwrap();
    let dead_port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let kubeconfig = dir.path().join("kubeconfig");
    std::fs::write(
        &kubeconfig,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: dead\n  cluster:\n    server: http://127.0.0.1:{dead_port}\n\
             contexts:\n- name: dead\n  context:\n    cluster: dead\n    user: nobody\n    namespace: prescient\n\
             current-context: dead\nusers:\n- name: nobody\n  user: {{}}\n"
        ),
    )
    .unwrap();
    let mut child = prescient()
        .args(["run", "--leader-election=false", "--log-format", "json"])
        .args(["--metrics-addr", "127.0.0.1:0", "--dashboard-addr", "127.0.0.1:0"])
        .args(["--prometheus-url", "http://127.0.0.1:9"])
        .env("KUBECONFIG", &kubeconfig)
        .env("RUST_LOG", "info")
        .env_remove("KUBERNETES_SERVICE_HOST")
        .stderr(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let stderr = std::io::BufReader::new(child.stderr.take().unwrap());
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in stderr.lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut addrs = None;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let mut seen = Vec::new();
    while addrs.is_none() && std::time::Instant::now() < deadline {
        if let Ok(line) = rx.recv_timeout(std::time::Duration::from_millis(200)) {
            if let Ok(json) = serde_json::from_str::<serde_json::Value>(&line)
                && json["message"] == "prescient operator started"
            {
                addrs = Some((
                    json["metrics"].as_str().unwrap().to_owned(),
                    json["dashboard"].as_str().unwrap().to_owned(),
                ));
            }
            seen.push(line);
        }
    }
    let Some((metrics, dashboard)) = addrs else {
        let _ = child.kill();
        panic!("no start-up line in the JSON logs within 30 s: {seen:#?}");
    };
    assert_eq!(get(&metrics, "/healthz").0, 200);
    let (code, body) = get(&metrics, "/readyz");
    assert_eq!(code, 200, "{body}");
    let (code, body) = get(&metrics, "/metrics");
    assert_eq!(code, 200);
    assert!(body.contains("prescient_reconcile_total"), "{body}");
    let dashboard = dashboard
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_owned();
    assert_eq!(get(&dashboard, "/api/v1/autoscalers").0, 200);

    let pid = nix::unistd::Pid::from_raw(i32::try_from(child.id()).unwrap());
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(status.success(), "exit after SIGTERM: {status}");
            break;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("prescient run did not stop within 20 s of SIGTERM");
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}
