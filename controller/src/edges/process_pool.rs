//! The local process-pool [`ScaleTarget`]: each replica is a `sample-app` process on a free 127.0.0.1
//! port. It is how `prescient local` and the live end-to-end test scale something real without a cluster.
//!
//! - **Start**: the process is spawned with `--listen 127.0.0.1:0` and reports its port on stdout
//!   (`listening on 127.0.0.1:PORT`), so no port is ever guessed or raced for.
//! - **Ready**: a background task polls every replica's `/readyz`; a replica counts as ready (and is
//!   routed to) only once it answers 200, so the replicas' start-up delay is honoured as a kubelet would.
//! - **Files**: the pool keeps two files current for its neighbours: the *endpoints file* (one
//!   `host:port` per ready replica, for `loadgen`'s round-robin) and a Prometheus `file_sd_configs`
//!   targets file (every running replica, so a starting replica's zero traffic is scraped too).
//! - **Stop**: a replica leaves the endpoints file first, then gets SIGTERM, then SIGKILL after the grace
//!   period; not-ready replicas go first, then the newest, as a ReplicaSet chooses.
//! - **Clean-up**: [`ProcessPool::shutdown`] stops all; dropping the pool kills whatever is left (every
//!   child is spawned with `kill_on_drop`), so no test or Ctrl-C leaves processes behind. If this
//!   process is killed outright (SIGKILL), each replica notices that its parent is gone (it is told
//!   this process's pid in `SAMPLE_APP_PARENT_PID`) and shuts down by itself.

use std::{
    path::{Path, PathBuf},
    process::Stdio,
    sync::{Arc, Mutex, MutexGuard},
    time::Duration,
};

use nix::{sys::signal::Signal, unistd::Pid};
use tokio::{
    io::{AsyncBufReadExt, BufReader},
    process::{Child, Command},
    task::JoinHandle,
};

use super::{ScaleError, ScaleTarget, TargetRef};
use crate::core::ReplicaState;

/// Why the pool could not be created or a replica could not be started.
#[derive(Debug, thiserror::Error)]
pub enum PoolError {
    #[error("sample-app binary {0} does not exist (build it with `cargo build -p sample-app`)")]
    MissingBinary(PathBuf),
    #[error("cannot start {binary}: {source}")]
    Spawn { binary: PathBuf, source: std::io::Error },
    #[error("replica did not report its address within {0:?} (expected a `listening on HOST:PORT` line)")]
    NoAddress(Duration),
    #[error("cannot write {path}: {source}")]
    Write { path: PathBuf, source: std::io::Error },
    #[error("HTTP client: {0}")]
    Client(String),
    #[error("at most {max} replicas allowed, asked for {asked}")]
    TooMany { max: u32, asked: u32 },
}

/// How the pool starts its replicas and where it writes its files.
#[derive(Debug, Clone)]
pub struct PoolConfig {
    /// Path of the `sample-app` binary.
    pub binary: PathBuf,
    /// Extra arguments for every replica (`--startup-delay 5s`, `--concurrency 4`, ...).
    pub args: Vec<String>,
    /// Folder for the endpoints file, the targets file and the replicas' logs.
    pub dir: PathBuf,
    /// How often `/readyz` is polled.
    pub readiness_interval: Duration,
    /// Time between SIGTERM and SIGKILL when stopping a replica.
    pub stop_grace: Duration,
    /// How long a new replica may take to print its address.
    pub start_timeout: Duration,
    /// Refuse to run more replicas than this (protects the machine from a runaway decision).
    pub max_replicas: u32,
    /// The `job` label in the Prometheus targets file.
    pub job: String,
}

impl PoolConfig {
    /// Defaults: readiness polled every 200 ms, 5 s grace, 10 s to start, at most 32 replicas.
    pub fn new(binary: PathBuf, dir: PathBuf) -> Self {
        Self {
            binary,
            args: Vec::new(),
            dir,
            readiness_interval: Duration::from_millis(200),
            stop_grace: Duration::from_secs(5),
            start_timeout: Duration::from_secs(10),
            max_replicas: 32,
            job: "sample-app".to_owned(),
        }
    }

    /// The endpoints file (ready replicas, one `host:port` per line) for `loadgen --endpoints`.
    pub fn endpoints_file(&self) -> PathBuf {
        self.dir.join("endpoints.txt")
    }

    /// The Prometheus `file_sd_configs` targets file (every running replica).
    pub fn targets_file(&self) -> PathBuf {
        self.dir.join("targets.json")
    }
}

/// One running replica.
#[derive(Debug)]
struct Replica {
    id: u64,
    addr: String,
    ready: bool,
    child: Child,
}

#[derive(Debug, Default)]
struct State {
    replicas: Vec<Replica>,
    next_id: u64,
    /// Replicas being stopped (SIGTERM sent), kept so shutdown and Drop can still kill them.
    stopping: Vec<Child>,
    /// Every pid ever started, for tests that check clean-up.
    started_pids: Vec<u32>,
    /// Last contents written, to avoid rewriting unchanged files.
    written: (String, String),
}

/// A pool of local `sample-app` processes; see the module docs.
#[derive(Debug)]
pub struct ProcessPool {
    config: PoolConfig,
    state: Arc<Mutex<State>>,
    client: reqwest::Client,
    readiness: JoinHandle<()>,
    /// Serializes scale operations so two `set_replicas` calls never interleave.
    scaling: tokio::sync::Mutex<()>,
}

fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    // A poisoned lock only means a panic elsewhere mid-update; the list itself is still usable.
    state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn write_atomic(path: &Path, contents: &str) -> Result<(), PoolError> {
    // Write then rename, so readers (loadgen, Prometheus) never see a half-written file.
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, contents)
        .and_then(|()| std::fs::rename(&tmp, path))
        .map_err(|source| PoolError::Write {
            path: path.to_owned(),
            source,
        })
}

impl ProcessPool {
    /// Creates an empty pool (no replica yet), writes empty files and starts readiness polling.
    /// Must be called inside a tokio runtime.
    pub fn new(config: PoolConfig) -> Result<Self, PoolError> {
        if !config.binary.is_file() {
            return Err(PoolError::MissingBinary(config.binary.clone()));
        }
        std::fs::create_dir_all(&config.dir).map_err(|source| PoolError::Write {
            path: config.dir.clone(),
            source,
        })?;
        let client = reqwest::Client::builder()
            .timeout(Duration::from_millis(500))
            .build()
            .map_err(|e| PoolError::Client(e.to_string()))?;
        let state = Arc::new(Mutex::new(State::default()));
        write_files(&config, &mut lock(&state))?;
        let readiness = tokio::spawn(poll_readiness(config.clone(), state.clone(), client.clone()));
        Ok(Self {
            config,
            state,
            client,
            readiness,
            scaling: tokio::sync::Mutex::new(()),
        })
    }

    pub fn config(&self) -> &PoolConfig {
        &self.config
    }

    /// Running replicas (starting or ready) and ready ones.
    pub fn state(&self) -> ReplicaState {
        let state = lock(&self.state);
        let ready = state.replicas.iter().filter(|r| r.ready).count();
        ReplicaState {
            desired: u32::try_from(state.replicas.len()).unwrap_or(u32::MAX),
            ready: u32::try_from(ready).unwrap_or(u32::MAX),
        }
    }

    /// Pids of the running replicas.
    pub fn pids(&self) -> Vec<u32> {
        lock(&self.state)
            .replicas
            .iter()
            .filter_map(|r| r.child.id())
            .collect()
    }

    /// Every pid this pool ever started (running or not).
    pub fn started_pids(&self) -> Vec<u32> {
        lock(&self.state).started_pids.clone()
    }

    /// Addresses of the running replicas.
    pub fn addresses(&self) -> Vec<String> {
        lock(&self.state)
            .replicas
            .iter()
            .map(|r| r.addr.clone())
            .collect()
    }

    /// Starts or stops replicas until `replicas` are running. Returns once new ones are listening (not
    /// necessarily ready) and removed ones have been told to stop.
    pub async fn scale_to(&self, replicas: u32) -> Result<(), PoolError> {
        if replicas > self.config.max_replicas {
            return Err(PoolError::TooMany {
                max: self.config.max_replicas,
                asked: replicas,
            });
        }
        let _guard = self.scaling.lock().await;
        let current = u32::try_from(lock(&self.state).replicas.len()).unwrap_or(u32::MAX);
        if replicas > current {
            let starts = (current..replicas).map(|_| self.start_one());
            let results = futures::future::join_all(starts).await;
            let mut state = lock(&self.state);
            let mut first_error = None;
            for result in results {
                match result {
                    Ok(replica) => state.replicas.push(replica),
                    Err(e) => first_error = first_error.or(Some(e)),
                }
            }
            write_files(&self.config, &mut state)?;
            if let Some(e) = first_error {
                return Err(e);
            }
        } else if replicas < current {
            let mut state = lock(&self.state);
            // Not-ready first, then newest first: the ReplicaSet's preference, and it keeps warm replicas.
            state.replicas.sort_by_key(|r| (!r.ready, r.id));
            let removed = state.replicas.split_off(replicas as usize);
            state.replicas.sort_by_key(|r| r.id);
            // Out of the endpoints file before the signal, so loadgen stops sending first.
            write_files(&self.config, &mut state)?;
            for replica in removed {
                if let Some(pid) = replica.child.id() {
                    terminate(pid);
                }
                state.stopping.push(replica.child);
            }
            drop(state);
            self.reap_later();
        }
        Ok(())
    }

    /// Kills stopping replicas that outlive the grace period, and forgets those that exited.
    fn reap_later(&self) {
        let state = self.state.clone();
        let grace = self.config.stop_grace;
        tokio::spawn(async move {
            let deadline = tokio::time::Instant::now() + grace;
            loop {
                let remaining = {
                    let mut state = lock(&state);
                    state
                        .stopping
                        .retain_mut(|child| !matches!(child.try_wait(), Ok(Some(_))));
                    if tokio::time::Instant::now() >= deadline {
                        for child in &mut state.stopping {
                            let _ = child.start_kill();
                        }
                    }
                    state.stopping.len()
                };
                if remaining == 0 {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        });
    }

    async fn start_one(&self) -> Result<Replica, PoolError> {
        let id = {
            let mut state = lock(&self.state);
            state.next_id += 1;
            state.next_id
        };
        let log_path = self.config.dir.join(format!("replica-{id}.log"));
        let log = std::fs::File::create(&log_path).map_err(|source| PoolError::Write {
            path: log_path.clone(),
            source,
        })?;
        let mut child = Command::new(&self.config.binary)
            .arg("--listen")
            .arg("127.0.0.1:0")
            .args(&self.config.args)
            .env("NO_COLOR", "1")
            // A sample-app replica shuts down when this process is gone, even if it was killed outright.
            .env("SAMPLE_APP_PARENT_PID", std::process::id().to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log))
            .kill_on_drop(true)
            .spawn()
            .map_err(|source| PoolError::Spawn {
                binary: self.config.binary.clone(),
                source,
            })?;
        if let Some(pid) = child.id() {
            lock(&self.state).started_pids.push(pid);
        }
        let Some(stdout) = child.stdout.take() else {
            return Err(PoolError::NoAddress(self.config.start_timeout));
        };
        let mut lines = BufReader::new(stdout).lines();
        let read_addr = async {
            while let Ok(Some(line)) = lines.next_line().await {
                if let Some(addr) = line.strip_prefix("listening on ") {
                    return Some(addr.trim().to_owned());
                }
            }
            None
        };
        match tokio::time::timeout(self.config.start_timeout, read_addr).await {
            Ok(Some(addr)) => {
                // Keep draining stdout so the replica never blocks writing to a full pipe.
                tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
                Ok(Replica {
                    id,
                    addr,
                    ready: false,
                    child,
                })
            }
            _ => {
                let _ = child.start_kill();
                let _ = child.wait().await;
                Err(PoolError::NoAddress(self.config.start_timeout))
            }
        }
    }

    /// Polls `/readyz` of every replica once and updates the files (the background task does this
    /// every `readiness_interval`; tests call it to avoid waiting).
    pub async fn refresh(&self) -> Result<(), PoolError> {
        refresh_once(&self.config, &self.state, &self.client).await
    }

    /// Stops every replica: SIGTERM, then SIGKILL after the grace period; waits until all have exited.
    pub async fn shutdown(&self) {
        self.readiness.abort();
        let _guard = self.scaling.lock().await;
        let mut children: Vec<Child> = {
            let mut state = lock(&self.state);
            let mut children: Vec<Child> = state.replicas.drain(..).map(|r| r.child).collect();
            children.append(&mut state.stopping);
            let _ = write_files(&self.config, &mut state);
            children
        };
        for child in &children {
            if let Some(pid) = child.id() {
                terminate(pid);
            }
        }
        let grace = self.config.stop_grace;
        let waits = children.iter_mut().map(|child| async move {
            if tokio::time::timeout(grace, child.wait()).await.is_err() {
                let _ = child.start_kill();
                let _ = child.wait().await;
            }
        });
        futures::future::join_all(waits).await;
    }
}

impl Drop for ProcessPool {
    fn drop(&mut self) {
        self.readiness.abort();
        // kill_on_drop would do this as the children drop, but only once every Arc holder is gone.
        let mut state = lock(&self.state);
        for replica in &mut state.replicas {
            let _ = replica.child.start_kill();
        }
        for child in &mut state.stopping {
            let _ = child.start_kill();
        }
    }
}

fn terminate(pid: u32) {
    if let Ok(pid) = i32::try_from(pid) {
        let _ = nix::sys::signal::kill(Pid::from_raw(pid), Signal::SIGTERM);
    }
}

/// Writes the endpoints file (ready replicas) and the targets file (all running replicas) if changed.
fn write_files(config: &PoolConfig, state: &mut State) -> Result<(), PoolError> {
    let mut endpoints = String::new();
    for replica in state.replicas.iter().filter(|r| r.ready) {
        endpoints.push_str(&replica.addr);
        endpoints.push('\n');
    }
    let addresses: Vec<&str> = state.replicas.iter().map(|r| r.addr.as_str()).collect();
    let targets = serde_json::json!([{ "targets": addresses, "labels": { "job": config.job } }]).to_string();
    if state.written.0 != endpoints || !config.endpoints_file().exists() {
        write_atomic(&config.endpoints_file(), &endpoints)?;
        state.written.0 = endpoints;
    }
    if state.written.1 != targets || !config.targets_file().exists() {
        write_atomic(&config.targets_file(), &targets)?;
        state.written.1 = targets;
    }
    Ok(())
}

async fn refresh_once(
    config: &PoolConfig,
    state: &Mutex<State>,
    client: &reqwest::Client,
) -> Result<(), PoolError> {
    let probes: Vec<(u64, String)> = {
        let mut state = lock(state);
        // A replica that exited on its own (crash) leaves the pool.
        state
            .replicas
            .retain_mut(|r| !matches!(r.child.try_wait(), Ok(Some(_))));
        state.replicas.iter().map(|r| (r.id, r.addr.clone())).collect()
    };
    let checks = probes.into_iter().map(|(id, addr)| async move {
        let ok = client
            .get(format!("http://{addr}/readyz"))
            .send()
            .await
            .is_ok_and(|response| response.status().is_success());
        (id, ok)
    });
    let results = futures::future::join_all(checks).await;
    let mut state = lock(state);
    for (id, ok) in results {
        if let Some(replica) = state.replicas.iter_mut().find(|r| r.id == id) {
            replica.ready = ok;
        }
    }
    write_files(config, &mut state)
}

async fn poll_readiness(config: PoolConfig, state: Arc<Mutex<State>>, client: reqwest::Client) {
    loop {
        if let Err(error) = refresh_once(&config, &state, &client).await {
            tracing::warn!(%error, "process pool: cannot update its files");
        }
        tokio::time::sleep(config.readiness_interval).await;
    }
}

impl ScaleTarget for ProcessPool {
    async fn replicas(&self, _target: &TargetRef) -> Result<ReplicaState, ScaleError> {
        Ok(self.state())
    }

    async fn set_replicas(&self, _target: &TargetRef, replicas: u32) -> Result<(), ScaleError> {
        self.scale_to(replicas)
            .await
            .map_err(|e| ScaleError::Other(e.to_string()))
    }
}
