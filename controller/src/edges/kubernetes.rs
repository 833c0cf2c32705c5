//! The Kubernetes edge: [`KubeScaleTarget`] implements [`ScaleTarget`] through the `/scale`
//! subresource of any workload that has one (Deployment, StatefulSet, ReplicaSet, or a custom kind with
//! a scale subresource).
//!
//! Replicas are read from `/scale` (its `spec.replicas` is authoritative for what is provisioned) and
//! ready replicas from the workload's `status.readyReplicas` (falling back to the scale's
//! `status.replicas` for custom kinds that do not report readiness). Writes replace `/scale` with the
//! `resourceVersion` that was read, so a concurrent change is a 409 instead of a lost update; on a 409 the
//! scale is re-read and the write retried a bounded number of times.

use std::{collections::HashMap, sync::Mutex};

use k8s_openapi::api::autoscaling::v1::{Scale, ScaleSpec};
use kube::{
    Api, Client,
    api::{DynamicObject, PostParams},
    core::{ApiResource, GroupVersionKind},
    discovery,
};

use super::{ScaleError, ScaleTarget, TargetRef};
use crate::core::ReplicaState;

/// How often a conflicting write is re-read and retried before [`ScaleError::Conflict`] is returned.
pub const CONFLICT_RETRIES: usize = 3;

/// Scales workloads through the Kubernetes API.
pub struct KubeScaleTarget {
    client: Client,
    /// Resolved kinds, so discovery runs once per custom kind and not on every sync.
    resources: Mutex<HashMap<(String, String), ApiResource>>,
    /// Held while a kind is discovered, so the syncs of many autoscalers of one new kind (all of them at
    /// start-up) wait for one discovery instead of each sending their own.
    discovering: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for KubeScaleTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KubeScaleTarget").finish_non_exhaustive()
    }
}

/// The well-known scalable kinds, resolved without a discovery round-trip.
fn well_known(api_version: &str, kind: &str) -> Option<ApiResource> {
    let plural = match (api_version, kind) {
        ("apps/v1", "Deployment") => "deployments",
        ("apps/v1", "StatefulSet") => "statefulsets",
        ("apps/v1", "ReplicaSet") => "replicasets",
        ("v1", "ReplicationController") => "replicationcontrollers",
        _ => return None,
    };
    let gvk = gvk_of(api_version, kind);
    Some(ApiResource::from_gvk_with_plural(&gvk, plural))
}

fn gvk_of(api_version: &str, kind: &str) -> GroupVersionKind {
    match api_version.split_once('/') {
        Some((group, version)) => GroupVersionKind::gvk(group, version, kind),
        None => GroupVersionKind::gvk("", api_version, kind),
    }
}

fn describe(target: &TargetRef) -> String {
    format!(
        "{}/{} {}/{}",
        target.api_version, target.kind, target.namespace, target.name
    )
}

/// Maps an API error to the [`ScaleError`] the reconcile loop acts on.
fn scale_error(target: &TargetRef, error: kube::Error) -> ScaleError {
    match error {
        kube::Error::Api(status) => match status.code {
            404 => ScaleError::NotFound(describe(target)),
            409 => ScaleError::Conflict(describe(target)),
            403 => ScaleError::Forbidden(format!("{}: {}", describe(target), status.message)),
            405 => ScaleError::NotScalable(describe(target)),
            code => ScaleError::Other(format!("{}: HTTP {code}: {}", describe(target), status.message)),
        },
        other => ScaleError::Other(format!("{}: {other}", describe(target))),
    }
}

/// Maps a failed discovery: a kind the API server does not serve is not scalable until it is, a refusal
/// is `Forbidden`, anything else (a connection or a timeout) is transient and retried at the next sync.
/// (Before, every failure read "kind not served": a refused connection at start-up made autoscalers of a
/// served kind report `NotScalable`.)
fn discovery_error(target: &TargetRef, error: kube::Error) -> ScaleError {
    match error {
        kube::Error::Api(status) if status.code == 403 => {
            ScaleError::Forbidden(format!("discovery of {}: {}", describe(target), status.message))
        }
        kube::Error::Api(status) if status.code == 404 => ScaleError::KindNotServed(describe(target)),
        kube::Error::Discovery(_) => ScaleError::KindNotServed(describe(target)),
        other => ScaleError::Other(format!("discovery of {}: {other}", describe(target))),
    }
}

fn replicas_of(scale: &Scale) -> u32 {
    let replicas = scale.spec.as_ref().and_then(|s| s.replicas).unwrap_or(0);
    u32::try_from(replicas).unwrap_or(0)
}

impl KubeScaleTarget {
    pub fn new(client: Client) -> Self {
        Self {
            client,
            resources: Mutex::new(HashMap::new()),
            discovering: tokio::sync::Mutex::new(()),
        }
    }

    fn cached(&self, key: &(String, String)) -> Option<ApiResource> {
        self.resources.lock().ok().and_then(|map| map.get(key).cloned())
    }

    /// The API resource (plural) of the target's kind: built in for the apps kinds, discovered otherwise.
    async fn resource(&self, target: &TargetRef) -> Result<ApiResource, ScaleError> {
        if let Some(known) = well_known(&target.api_version, &target.kind) {
            return Ok(known);
        }
        let key = (target.api_version.clone(), target.kind.clone());
        if let Some(found) = self.cached(&key) {
            return Ok(found);
        }
        let _discovering = self.discovering.lock().await;
        // Another sync may have discovered it while this one waited.
        if let Some(found) = self.cached(&key) {
            return Ok(found);
        }
        let gvk = gvk_of(&target.api_version, &target.kind);
        let (resource, capabilities) = discovery::pinned_kind(&self.client, &gvk)
            .await
            .map_err(|e| discovery_error(target, e))?;
        // Discovery names subresources by their last segment; without `scale` there is nothing to scale.
        if !capabilities
            .subresources
            .iter()
            .any(|(sub, _)| sub.plural == "scale")
        {
            return Err(ScaleError::NotScalable(describe(target)));
        }
        if let Ok(mut map) = self.resources.lock() {
            map.insert(key, resource.clone());
        }
        Ok(resource)
    }

    async fn api(&self, target: &TargetRef) -> Result<Api<DynamicObject>, ScaleError> {
        let resource = self.resource(target).await?;
        Ok(Api::namespaced_with(
            self.client.clone(),
            &target.namespace,
            &resource,
        ))
    }

    /// Ready replicas from the workload's status; `None` when the kind does not report them.
    async fn ready_replicas(
        &self,
        api: &Api<DynamicObject>,
        target: &TargetRef,
    ) -> Result<Option<u32>, ScaleError> {
        let object = api.get(&target.name).await.map_err(|e| scale_error(target, e))?;
        let ready = object
            .data
            .get("status")
            .and_then(|status| status.get("readyReplicas"))
            .and_then(serde_json::Value::as_u64)
            .map(|n| u32::try_from(n).unwrap_or(u32::MAX));
        // A Deployment with no ready pods omits the field entirely: that is zero, not unknown.
        let reports_readiness = object
            .data
            .get("status")
            .is_some_and(|s| s.get("replicas").is_some());
        Ok(ready.or(reports_readiness.then_some(0)))
    }
}

impl ScaleTarget for KubeScaleTarget {
    async fn replicas(&self, target: &TargetRef) -> Result<ReplicaState, ScaleError> {
        let api = self.api(target).await?;
        let scale = api
            .get_scale(&target.name)
            .await
            .map_err(|e| scale_error(target, e))?;
        let desired = replicas_of(&scale);
        let observed = scale
            .status
            .as_ref()
            .map(|s| u32::try_from(s.replicas).unwrap_or(0))
            .unwrap_or(0);
        let ready = self.ready_replicas(&api, target).await?.unwrap_or(observed);
        Ok(ReplicaState { desired, ready })
    }

    async fn set_replicas(&self, target: &TargetRef, replicas: u32) -> Result<(), ScaleError> {
        let api = self.api(target).await?;
        let wanted = i32::try_from(replicas).unwrap_or(i32::MAX);
        let mut attempt = 0;
        loop {
            // Read-modify-write with the read resourceVersion: optimistic concurrency on /scale.
            let current = api
                .get_scale(&target.name)
                .await
                .map_err(|e| scale_error(target, e))?;
            if current.spec.as_ref().and_then(|s| s.replicas) == Some(wanted) {
                return Ok(());
            }
            let update = Scale {
                metadata: current.metadata.clone(),
                spec: Some(ScaleSpec {
                    replicas: Some(wanted),
                }),
                status: None,
            };
            match api
                .replace_scale(&target.name, &PostParams::default(), &update)
                .await
            {
                Ok(_) => return Ok(()),
                Err(kube::Error::Api(status)) if status.code == 409 && attempt < CONFLICT_RETRIES => {
                    attempt += 1;
                    tracing::debug!(target = %describe(target), attempt, "conflict on /scale; re-reading");
                }
                Err(e) => return Err(scale_error(target, e)),
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn resolves_apps_kinds_without_discovery() {
        let deployment = well_known("apps/v1", "Deployment").unwrap();
        assert_eq!(deployment.plural, "deployments");
        assert_eq!(deployment.group, "apps");
        assert_eq!(deployment.version, "v1");
        assert!(well_known("example.com/v1", "Shop").is_none());
    }

    fn shop() -> TargetRef {
        TargetRef {
            namespace: "default".to_owned(),
            api_version: "example.com/v1".to_owned(),
            kind: "Shop".to_owned(),
            name: "web".to_owned(),
        }
    }

    #[test]
    fn a_failed_connection_during_discovery_is_transient_not_an_unscalable_kind() {
        // Seen at 10,000 autoscalers: connections refused at start-up were reported as "kind not served".
        let refused = kube::Error::Service("client error (Connect)".into());
        assert!(matches!(discovery_error(&shop(), refused), ScaleError::Other(_)));
        let not_served = kube::Error::Api(Box::new(
            kube::core::Status::failure("not found", "NotFound").with_code(404),
        ));
        assert!(matches!(
            discovery_error(&shop(), not_served),
            ScaleError::KindNotServed(_)
        ));
        let missing = kube::Error::Discovery(kube::error::DiscoveryError::MissingKind("Shop".to_owned()));
        assert!(matches!(
            discovery_error(&shop(), missing),
            ScaleError::KindNotServed(_)
        ));
        let refused_by_rbac = kube::Error::Api(Box::new(
            kube::core::Status::failure("no", "Forbidden").with_code(403),
        ));
        assert!(matches!(
            discovery_error(&shop(), refused_by_rbac),
            ScaleError::Forbidden(_)
        ));
    }

    #[test]
    fn core_group_kinds_have_an_empty_group() {
        let gvk = gvk_of("v1", "ReplicationController");
        assert_eq!(gvk.group, "");
        assert_eq!(gvk.version, "v1");
    }
}
