//! The operator: a kube-runtime `Controller` over `PredictiveAutoscaler`s.
//!
//! One reconcile, step by step (IO marked):
//! 1. **dereference** — namespace and name of the object.
//! 2. **validate** (pure) — [`ScalingSpec::from_resource`]; an invalid spec gets `Ready=False`
//!    (`InvalidSpec`) and a Warning event, and waits for the next change of the object: no scaling.
//! 3. **sync** (IO) — [`reconcile::sync_once`]: fetch new history from Prometheus, refit/forecast/decide
//!    off the async executor, scale through `/scale` unless `ForecastOnly`. Each autoscaler's state sits
//!    behind its own lock, so a slow one never blocks the others.
//! 4. **status** (IO) — [`status_from_report`] builds it (pure, shared with the demo and the local run);
//!    a server-side-apply patch of the status subresource (field manager `prescient`) writes it:
//!    replicas, model, forecast summary, decision reason, conditions.
//! 5. **events** (IO) — one on each scale and each error, through kube-runtime's recorder.
//! 6. **requeue** at the autoscaler's sync period, counted from the start of the sync (so a slow sync
//!    does not stretch the period).
//!
//! At most [`MAX_CONCURRENT_SYNCS`] syncs run at once; the others wait for a slot before any IO.
//!
//! The controller watches the autoscalers untyped ([`DynamicObject`]) and reads each one into the typed
//! struct in [`reconcile_object`]: a stored object the struct cannot read (stored before the schema was
//! tightened, or written through an older CRD) gets `Ready=False` (`InvalidSpec`) and a Warning event,
//! while a typed watch would fail its whole list on that one object and stall every other autoscaler.
//!
//! Failures never scale down: Prometheus down → the core holds and `ForecastHealthy=False`; a missing
//! target → `AbleToScale=False` and a retry at the next period; a 409 is re-read and retried.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use futures::StreamExt;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use kube::{
    Api, Client, Resource, ResourceExt,
    api::{ApiResource, DynamicObject, Patch, PatchParams},
    runtime::{
        Controller, WatchStreamExt,
        controller::Action,
        events::{Event, EventType, Recorder, Reporter},
        reflector, watcher,
    },
};
use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::{
    crd::{PredictiveAutoscaler, PredictiveAutoscalerStatus},
    dashboard::DashboardStore,
    edges::{Clock, MetricsSource, TargetRef, kubernetes::KubeScaleTarget},
    metrics::Metrics,
    reconcile::{self, Autoscaler, SyncReport},
    spec::ScalingSpec,
    status::{conflict_status, invalid_status, reasons, status_from_report},
};

/// When an autoscaler last synced: at which generation, at what instant, with which sync period.
type LastSync = (Option<i64>, Instant, Duration);

/// Field manager of the status patches (server-side apply).
pub const FIELD_MANAGER: &str = "prescient";

/// Requeue after an error the reconciler could not handle (e.g. the status patch failed).
pub const ERROR_REQUEUE: Duration = Duration::from_secs(15);

/// How long running reconciles may take to finish once the controller is told to stop.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// How often the state of deleted autoscalers is dropped.
pub const PRUNE_INTERVAL: Duration = Duration::from_secs(60);

/// How many syncs run at once (see [`Context::with_max_concurrent_syncs`]). The controller starts a
/// reconcile for every autoscaler of its first list at once: unbounded, 10,000 autoscalers were 10,000
/// syncs in flight, each with its own connections to the API server and to Prometheus, and the operator
/// ran out of file descriptors (`client error (Connect)`, Prometheus timeouts) while the API server
/// answered 83,000 requests with 429 (found by scripts/cluster-bench.sh). The slots are taken in the order the syncs asked
/// for them, so under overload every autoscaler still gets its turn. With 64, 1,000 autoscalers at 30 s on
/// the bench's 2-core machine synced at 33.1/s (mean reconcile 0.22 s).
pub const MAX_CONCURRENT_SYNCS: usize = 64;

/// What can make a reconcile fail (as opposed to a condition in the status).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("PredictiveAutoscaler {0} has no namespace")]
    MissingNamespace(String),
    #[error("status patch of {name} failed: {source}")]
    StatusPatch {
        name: String,
        #[source]
        source: kube::Error,
    },
}

type AutoscalerSlot = Arc<tokio::sync::Mutex<Autoscaler>>;

/// Everything a reconcile needs, shared by all reconciles.
pub struct Context<M> {
    pub client: Client,
    pub metrics_source: M,
    pub scale_target: KubeScaleTarget,
    pub metrics: Arc<Metrics>,
    pub dashboard: DashboardStore,
    pub recorder: Recorder,
    pub clock: Arc<dyn Clock>,
    /// Per-autoscaler state (history cache, fitted model, behavior memory), keyed by namespace/name.
    autoscalers: Mutex<HashMap<(String, String), AutoscalerSlot>>,
    /// When each autoscaler last synced, at which generation, with which period (see [`Context::too_soon`]).
    last_sync: Mutex<HashMap<(String, String), LastSync>>,
    /// The cluster's HorizontalPodAutoscalers, watched by [`run_controller`]: an autoscaler whose target
    /// an HPA also scales does not scale it. `None` (e.g. in reconcile tests) checks nothing.
    hpas: Mutex<Option<reflector::Store<HorizontalPodAutoscaler>>>,
    /// Slots for syncs in flight (see [`MAX_CONCURRENT_SYNCS`]).
    syncs: tokio::sync::Semaphore,
}

impl<M> std::fmt::Debug for Context<M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Context").finish_non_exhaustive()
    }
}

impl<M: MetricsSource> Context<M> {
    pub fn new(
        client: Client,
        metrics_source: M,
        metrics: Arc<Metrics>,
        dashboard: DashboardStore,
        clock: Arc<dyn Clock>,
        reporter: Reporter,
    ) -> Self {
        Self {
            scale_target: KubeScaleTarget::new(client.clone()),
            recorder: Recorder::new(client.clone(), reporter),
            client,
            metrics_source,
            metrics,
            dashboard,
            clock,
            autoscalers: Mutex::new(HashMap::new()),
            last_sync: Mutex::new(HashMap::new()),
            hpas: Mutex::new(None),
            syncs: tokio::sync::Semaphore::new(MAX_CONCURRENT_SYNCS),
        }
    }

    /// At most `n` syncs (reconciles that do IO) at once; the others wait for a slot. At least 1.
    #[must_use]
    pub fn with_max_concurrent_syncs(mut self, n: usize) -> Self {
        self.syncs = tokio::sync::Semaphore::new(n.max(1));
        self
    }

    /// Waits for a sync slot. The semaphore is never closed; if it were, the sync runs unthrottled.
    async fn sync_slot(&self) -> Option<tokio::sync::SemaphorePermit<'_>> {
        self.syncs.acquire().await.ok()
    }

    /// Time left until `pa` is due, when it synced less than a sync period ago at the same generation.
    /// The controller reconciles on every watch event of an autoscaler, and the status patch of a sync is
    /// one: without this each sync was followed at once by another (found against a real API server).
    pub fn too_soon(&self, pa: &PredictiveAutoscaler) -> Option<Duration> {
        let key = (pa.namespace()?, pa.name_any());
        let map = self.last_sync.lock().ok()?;
        let (generation, at, period) = map.get(&key)?;
        if *generation != pa.metadata.generation {
            return None;
        }
        period.checked_sub(at.elapsed()).filter(|left| !left.is_zero())
    }

    /// Records a sync that started at `started` and returns when the next one is due: one period after
    /// that start. (Counting the period from the end of the sync made it the period plus the sync's own
    /// wall time: 1,000 autoscalers at 30 s synced 29.3 times a second, not 33.3.)
    fn synced(
        &self,
        key: &(String, String),
        generation: Option<i64>,
        period: Duration,
        started: Instant,
    ) -> Action {
        if let Ok(mut map) = self.last_sync.lock() {
            map.insert(key.clone(), (generation, started, period));
        }
        Action::requeue(period.saturating_sub(started.elapsed()))
    }

    /// The HorizontalPodAutoscaler in `namespace` that also scales `target`, if the HPA watch knows one.
    pub fn conflicting_hpa(&self, namespace: &str, target: &crate::crd::ScaleTargetRef) -> Option<String> {
        let store = self.hpas.lock().ok()?.clone()?;
        let group = |api_version: &str| api_version.rsplit_once('/').map_or("", |(g, _)| g).to_owned();
        store
            .state()
            .iter()
            .filter(|hpa| hpa.namespace().as_deref() == Some(namespace))
            .find(|hpa| {
                let r = &hpa.spec.scale_target_ref;
                r.kind == target.kind
                    && r.name == target.name
                    && group(r.api_version.as_deref().unwrap_or("")) == group(&target.api_version)
            })
            .map(|hpa| hpa.name_any())
    }

    /// Number of autoscalers with live state.
    pub fn autoscaler_count(&self) -> usize {
        self.autoscalers.lock().map(|map| map.len()).unwrap_or(0)
    }

    fn slot(&self, key: &(String, String), make: impl FnOnce() -> Autoscaler) -> AutoscalerSlot {
        match self.autoscalers.lock() {
            Ok(mut map) => map
                .entry(key.clone())
                .or_insert_with(|| Arc::new(tokio::sync::Mutex::new(make())))
                .clone(),
            // A poisoned map only means another reconcile panicked; start this one afresh.
            Err(_) => Arc::new(tokio::sync::Mutex::new(make())),
        }
    }

    /// Drops the state of autoscalers that no longer exist.
    pub fn prune(&self, live: &std::collections::HashSet<(String, String)>) {
        let gone: Vec<(String, String)> = match self.autoscalers.lock() {
            Ok(map) => map.keys().filter(|key| !live.contains(*key)).cloned().collect(),
            Err(_) => return,
        };
        for key in gone {
            self.forget(&key);
        }
    }

    fn forget(&self, key: &(String, String)) {
        if let Ok(mut map) = self.autoscalers.lock() {
            map.remove(key);
        }
        if let Ok(mut map) = self.last_sync.lock() {
            map.remove(key);
        }
        self.metrics.forget(&key.0, &key.1);
        self.dashboard.remove(&key.0, &key.1);
    }
}

fn target_ref(pa: &PredictiveAutoscaler, namespace: &str) -> TargetRef {
    TargetRef {
        namespace: namespace.to_owned(),
        api_version: pa.spec.scale_target_ref.api_version.clone(),
        kind: pa.spec.scale_target_ref.kind.clone(),
        name: pa.spec.scale_target_ref.name.clone(),
    }
}

async fn patch_status<M>(
    ctx: &Context<M>,
    namespace: &str,
    name: &str,
    status: &PredictiveAutoscalerStatus,
) -> Result<(), Error> {
    // Untyped: the answer (the whole object) must not need to be readable, see [`reconcile_object`].
    let api: Api<DynamicObject> = Api::namespaced_with(ctx.client.clone(), namespace, &api_resource());
    let patch = json!({
        "apiVersion": PredictiveAutoscaler::api_version(&()),
        "kind": PredictiveAutoscaler::kind(&()),
        "status": status,
    });
    api.patch_status(
        name,
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(&patch),
    )
    .await
    .map_err(|source| Error::StatusPatch {
        name: format!("{namespace}/{name}"),
        source,
    })?;
    Ok(())
}

async fn publish<M>(
    ctx: &Context<M>,
    pa: &PredictiveAutoscaler,
    type_: EventType,
    reason: &str,
    note: String,
) {
    let event = Event {
        type_,
        reason: reason.to_owned(),
        note: Some(note.chars().take(1000).collect()),
        action: "Autoscale".to_owned(),
        secondary: None,
    };
    if let Err(error) = ctx.recorder.publish(&event, &pa.object_ref(&())).await {
        // An event is a courtesy to people; failing to publish one must not fail the reconcile.
        tracing::warn!(%error, reason, "could not publish event");
    }
}

/// Events for one sync: a Normal one per scale, a Warning one per error.
async fn publish_events<M>(
    ctx: &Context<M>,
    pa: &PredictiveAutoscaler,
    target: &TargetRef,
    report: &SyncReport,
) {
    if let (Some(to), Some(before)) = (report.scaled_to, report.replicas_before) {
        let note = format!(
            "scaled {}/{} from {} to {} replicas: {}",
            target.kind, target.name, before.desired, to, report.outcome.decision.message
        );
        publish(ctx, pa, EventType::Normal, reasons::SCALED, note).await;
    }
    if let Some(error) = &report.metrics_error {
        let note = format!("{error}; replicas held");
        publish(
            ctx,
            pa,
            EventType::Warning,
            reasons::metrics_error_reason(error),
            note,
        )
        .await;
    }
    if let Some(error) = &report.scale_error {
        publish(
            ctx,
            pa,
            EventType::Warning,
            reasons::scale_error_reason(error),
            error.to_string(),
        )
        .await;
    }
}

/// What the controller watches: `PredictiveAutoscaler`s as untyped objects, read one by one.
pub fn api_resource() -> ApiResource {
    ApiResource::erase::<PredictiveAutoscaler>(&())
}

/// What the controller runs for each object of the watch: the object read into a
/// [`PredictiveAutoscaler`], then [`reconcile_when_due`]. An object that cannot be read is reported on
/// itself (status condition and event) and waits for its next change; the others go on.
pub async fn reconcile_object<M: MetricsSource>(
    obj: Arc<DynamicObject>,
    ctx: Arc<Context<M>>,
) -> Result<Action, Error> {
    match read_autoscaler(&obj) {
        Ok(pa) => reconcile_when_due(Arc::new(pa), ctx).await,
        Err(error) => unreadable(&obj, &error, &ctx).await,
    }
}

/// The object read into the typed struct; the error names the field that failed (`spec.maxReplicas:
/// invalid value …`), which serde alone does not.
fn read_autoscaler(obj: &DynamicObject) -> Result<PredictiveAutoscaler, String> {
    let value = serde_json::to_value(obj).map_err(|error| error.to_string())?;
    serde_path_to_error::deserialize::<_, PredictiveAutoscaler>(value).map_err(|error| {
        match error.path().to_string().as_str() {
            "." | "" => error.inner().to_string(),
            path => format!("{path}: {}", error.inner()),
        }
    })
}

/// An object the typed struct rejects: a logged skip, `Ready=False`/`InvalidSpec` and a Warning event.
async fn unreadable<M: MetricsSource>(
    obj: &DynamicObject,
    error: &str,
    ctx: &Context<M>,
) -> Result<Action, Error> {
    let name = obj.name_any();
    let namespace = obj
        .namespace()
        .ok_or_else(|| Error::MissingNamespace(name.clone()))?;
    tracing::warn!(autoscaler = %format!("{namespace}/{name}"), %error, "cannot read PredictiveAutoscaler; skipped");
    let _slot = ctx.sync_slot().await;
    ctx.forget(&(namespace.clone(), name.clone()));
    ctx.metrics.observe_error(reasons::INVALID_SPEC);
    let message = format!(
        "the operator cannot read this PredictiveAutoscaler ({error}); fix the spec, nothing is scaled until then"
    );
    // The status may be readable when the spec is not; without it the conditions start afresh.
    let previous: Option<PredictiveAutoscalerStatus> = obj
        .data
        .get("status")
        .and_then(|status| serde_json::from_value(status.clone()).ok());
    let status = invalid_status(
        previous.clone().unwrap_or_default(),
        obj.metadata.generation,
        &message,
        ctx.clock.now(),
    );
    let changed = previous.as_ref().map(|s| &s.conditions) != Some(&status.conditions);
    patch_status(ctx, &namespace, &name, &status).await?;
    if changed {
        let event = Event {
            type_: EventType::Warning,
            reason: reasons::INVALID_SPEC.to_owned(),
            note: Some(message.chars().take(1000).collect()),
            action: "Autoscale".to_owned(),
            secondary: None,
        };
        if let Err(error) = ctx
            .recorder
            .publish(&event, &obj.object_ref(&api_resource()))
            .await
        {
            tracing::warn!(%error, reason = reasons::INVALID_SPEC, "could not publish event");
        }
    }
    Ok(Action::await_change())
}

/// What the controller runs for each trigger: [`reconcile`], unless the autoscaler synced less than a
/// sync period ago at the same generation. The watch event of our own status patch (or any other change
/// that is not a new spec) is not a reason to sync again before the period is over; without this check
/// every sync was followed at once by another (found against a real API server, which, unlike the mocked
/// one, sends a watch event for each status patch).
pub async fn reconcile_when_due<M: MetricsSource>(
    pa: Arc<PredictiveAutoscaler>,
    ctx: Arc<Context<M>>,
) -> Result<Action, Error> {
    if let Some(left) = ctx.too_soon(&pa) {
        return Ok(Action::requeue(left));
    }
    reconcile(pa, ctx).await
}

pub async fn reconcile<M: MetricsSource>(
    pa: Arc<PredictiveAutoscaler>,
    ctx: Arc<Context<M>>,
) -> Result<Action, Error> {
    let _slot = ctx.sync_slot().await;
    // The sync starts once it has a slot: the period and the reconcile's wall time count from here.
    let started = Instant::now();
    let result = reconcile_inner(&pa, &ctx, started).await;
    ctx.metrics.observe_reconcile(started.elapsed());
    result
}

async fn reconcile_inner<M: MetricsSource>(
    pa: &PredictiveAutoscaler,
    ctx: &Context<M>,
    started: Instant,
) -> Result<Action, Error> {
    // 1. dereference
    let name = pa.name_any();
    let namespace = pa
        .namespace()
        .ok_or_else(|| Error::MissingNamespace(name.clone()))?;
    let key = (namespace.clone(), name.clone());
    let now = ctx.clock.now();

    // 2. validate (pure)
    let spec = match ScalingSpec::from_resource(&pa.spec) {
        Ok(spec) => spec,
        Err(invalid) => {
            ctx.forget(&key);
            ctx.metrics.observe_error(reasons::INVALID_SPEC);
            let message = format!("{invalid}; fix the spec, nothing is scaled until then");
            let previous = pa.status.clone().unwrap_or_default();
            let status = invalid_status(previous, pa.metadata.generation, &message, now);
            patch_status(ctx, &namespace, &name, &status).await?;
            publish(ctx, pa, EventType::Warning, reasons::INVALID_SPEC, message).await;
            return Ok(Action::await_change());
        }
    };

    // 2b. one autoscaler per workload: an HPA on the same target would undo every change (and we its).
    if let Some(hpa) = ctx.conflicting_hpa(&namespace, &pa.spec.scale_target_ref) {
        ctx.metrics.observe_error(reasons::CONFLICTING_AUTOSCALER);
        let target = &pa.spec.scale_target_ref;
        let message = format!(
            "HorizontalPodAutoscaler {namespace}/{hpa} also scales {}/{}; nothing is scaled while it exists \
             (delete it, or set mode: ForecastOnly here)",
            target.kind, target.name
        );
        let previous = pa.status.clone().unwrap_or_default();
        let status = conflict_status(previous, pa.metadata.generation, &message, now);
        let changed = pa.status.as_ref().map(|s| &s.conditions) != Some(&status.conditions);
        patch_status(ctx, &namespace, &name, &status).await?;
        if changed {
            publish(
                ctx,
                pa,
                EventType::Warning,
                reasons::CONFLICTING_AUTOSCALER,
                message,
            )
            .await;
        }
        return Ok(ctx.synced(&key, pa.metadata.generation, spec.sync_period, started));
    }

    // 3. sync (IO at both ends, the pure core in between, off the executor)
    let target = target_ref(pa, &namespace);
    let query = pa.spec.metric.query.clone();
    ctx.metrics
        .set_settings(&namespace, &name, spec.lead_time, spec.quantile);
    let sync_period = spec.sync_period;
    let slot = ctx.slot(&key, || {
        Autoscaler::new(spec.clone(), query.clone(), target.clone())
    });
    let mut autoscaler = slot.lock().await;
    if autoscaler.spec != spec || autoscaler.query != query || autoscaler.target != target {
        autoscaler.set_spec(spec, query, target.clone());
    }
    let report = reconcile::sync_once(&mut autoscaler, &ctx.metrics_source, &ctx.scale_target, now).await;

    // 4. status
    let previous = pa.status.clone().unwrap_or_default();
    let status = status_from_report(&report, &previous, pa.metadata.generation, pa.spec.mode);
    ctx.metrics.observe_sync(&namespace, &name, &report);
    ctx.dashboard
        .record(&namespace, &name, &pa.spec, &status, &autoscaler, &report);
    drop(autoscaler);
    patch_status(ctx, &namespace, &name, &status).await?;

    // 5. events
    publish_events(ctx, pa, &target, &report).await;
    if report.metrics_error.is_some() || report.scale_error.is_some() {
        tracing::warn!(
            autoscaler = %format!("{namespace}/{name}"),
            metrics_error = ?report.metrics_error,
            scale_error = ?report.scale_error,
            "sync held replicas"
        );
    } else {
        tracing::info!(
            autoscaler = %format!("{namespace}/{name}"),
            desired = report.outcome.decision.desired_replicas,
            reason = report.outcome.decision.reason.as_str(),
            scaled_to = ?report.scaled_to,
            "synced"
        );
    }

    // 6. requeue: each autoscaler at its own period from the start of this sync; a missing target is
    // retried at the same pace.
    Ok(ctx.synced(&key, pa.metadata.generation, sync_period, started))
}

/// What to do after a reconcile error: count it and retry soon.
pub fn error_policy<M: MetricsSource>(pa: Arc<DynamicObject>, error: &Error, ctx: Arc<Context<M>>) -> Action {
    tracing::warn!(autoscaler = %pa.name_any(), %error, "reconcile failed");
    ctx.metrics.observe_error(reasons::RECONCILE_FAILED);
    Action::requeue(ERROR_REQUEUE)
}

/// Runs the controller until `stop` is cancelled (leadership lost, SIGTERM), letting running reconciles
/// finish for at most [`SHUTDOWN_GRACE`].
pub async fn run_controller<M: MetricsSource + 'static>(ctx: Arc<Context<M>>, stop: CancellationToken) {
    let resource = api_resource();
    let api: Api<DynamicObject> = Api::all_with(ctx.client.clone(), &resource);
    let controller = Controller::new_with(api, watcher::Config::default().any_semantic(), resource);
    // HorizontalPodAutoscalers, for the one-autoscaler-per-workload check.
    let hpa_task = {
        let (reader, writer) = reflector::store();
        if let Ok(mut slot) = ctx.hpas.lock() {
            *slot = Some(reader);
        }
        let hpas: Api<HorizontalPodAutoscaler> = Api::all(ctx.client.clone());
        tokio::spawn(async move {
            let stream = kube::runtime::reflector(
                writer,
                kube::runtime::watcher(hpas, watcher::Config::default().any_semantic()),
            )
            .default_backoff()
            .touched_objects();
            futures::pin_mut!(stream);
            while let Some(item) = stream.next().await {
                if let Err(error) = item {
                    tracing::warn!(%error, "watching HorizontalPodAutoscalers");
                }
            }
        })
    };
    // Deleted autoscalers are never reconciled again (no finalizer is needed: nothing outside the
    // process holds their state), so their in-memory state is pruned against the controller's cache.
    let store = controller.store();
    let pruner = {
        let ctx = ctx.clone();
        tokio::spawn(async move {
            // Until the first list has arrived an empty cache says nothing about what exists.
            if store.wait_until_ready().await.is_err() {
                return;
            }
            let mut tick = tokio::time::interval(PRUNE_INTERVAL);
            loop {
                tick.tick().await;
                {
                    let live: std::collections::HashSet<(String, String)> = store
                        .state()
                        .iter()
                        .filter_map(|pa| Some((pa.namespace()?, pa.name_any())))
                        .collect();
                    ctx.prune(&live);
                }
            }
        })
    };
    let metrics = ctx.metrics.clone();
    let running = controller
        .graceful_shutdown_on(stop.clone().cancelled_owned())
        .run(reconcile_object, error_policy, ctx)
        .for_each(move |result| {
            // A failed watch reconciles nothing, so it is logged and counted: kube-runtime logs some
            // failures itself (a 403), but nothing counted them, so no alert could see an operator
            // that reconciles nothing (a list/watch missing from a namespaced install, a removed CRD).
            // The watcher backs off (up to 30 s), which bounds these logs. Reconcile errors are logged
            // by `error_policy`.
            match &result {
                Err(kube::runtime::controller::Error::QueueError(error)) => {
                    tracing::warn!(%error, "watching PredictiveAutoscalers failed; retrying");
                    metrics.observe_error(reasons::WATCH_FAILED);
                }
                Err(error) => tracing::debug!(%error, "controller event"),
                Ok(_) => {}
            }
            async {}
        });
    // kube-runtime's graceful shutdown waits for the first list of the watch: with an unreachable API
    // server it would wait forever, so the grace period is bounded here.
    tokio::select! {
        () = running => {},
        () = async {
            stop.cancelled().await;
            tokio::time::sleep(SHUTDOWN_GRACE).await;
        } => tracing::warn!("controller did not stop within {SHUTDOWN_GRACE:?}; dropping it"),
    }
    pruner.abort();
    hpa_task.abort();
}
