//! A runtime that runs nothing (feature `fake-runtime`, for tests): a deploy records the
//! release it was asked for and succeeds, or fails once when told to, so the use cases
//! around deploys (rollback, config changes, scale, destroy) are testable without a
//! container engine or a cluster. Every environment of an engine made with
//! [`Engine::with_fake_runtime`] runs here, whatever its `runtime` field says.

use std::collections::HashSet;
use std::sync::Mutex;

use slipway_store::environments::EnvironmentState;

use crate::deploy::{record_release, still_serving};
use crate::logger::RunLog;
use crate::runtimes::{DesiredRelease, Runtime};
use crate::{Engine, EngineError, Workload, locked};

/// One deploy the fake runtime was asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Applied {
    pub service: String,
    pub environment: String,
    pub run_id: i64,
    pub image: String,
    /// Config vars and add-on URLs, as a replica would see them.
    pub vars: Vec<(String, String)>,
    pub config_version: i32,
    /// Replicas of every workload of the spec.
    pub total_replicas: u32,
}

/// See the module's doc.
#[derive(Debug, Default)]
pub struct FakeRuntime {
    state: Mutex<FakeState>,
}

#[derive(Debug, Default)]
struct FakeState {
    applied: Vec<Applied>,
    fail_next: Option<String>,
    torn_down: Vec<(String, String)>,
    gone_images: HashSet<String>,
}

impl FakeRuntime {
    /// The deploys that succeeded, oldest first.
    pub fn applied(&self) -> Vec<Applied> {
        locked(&self.state).applied.clone()
    }

    /// The next deploy fails with `why` (and records no release).
    pub fn fail_next_apply(&self, why: &str) {
        locked(&self.state).fail_next = Some(why.to_owned());
    }

    /// The environments torn down, as (service, environment).
    pub fn torn_down(&self) -> Vec<(String, String)> {
        locked(&self.state).torn_down.clone()
    }

    /// `image` can no longer be deployed (as if collected).
    pub fn lose_image(&self, image: &str) {
        locked(&self.state).gone_images.insert(image.to_owned());
    }
}

impl Runtime for &FakeRuntime {
    async fn apply(
        &self,
        engine: &Engine,
        desired: &DesiredRelease<'_>,
        _log: &RunLog,
        _deadline: tokio::time::Instant,
    ) -> Result<String, crate::DeployError> {
        let DesiredRelease { run, state, spec, vars, config_version, .. } = *desired;
        if let Some(why) = locked(&self.state).fail_next.take() {
            return Err(format!("{why}; {}", still_serving(state)).into());
        }
        let image = engine.local_image(run);
        let image_id = run.image_id.clone().unwrap_or_default();
        let release = record_release(engine, state, run, &image, &image_id, spec, config_version).await?;
        locked(&self.state).applied.push(Applied {
            service: state.service.clone(),
            environment: state.name.clone(),
            run_id: run.id,
            image,
            vars: vars.to_vec(),
            config_version,
            total_replicas: spec.total_replicas(),
        });
        Ok(format!("-----> Deploy {} v{} (fake runtime)", state.name, release.version))
    }

    async fn reconcile(&self, _engine: &Engine, _state: &EnvironmentState) -> Result<(), crate::DeployError> {
        Ok(())
    }

    fn status(&self, _engine: &Engine, state: &EnvironmentState) -> Workload {
        let replicas = usize::try_from(state.replicas).unwrap_or(0);
        Workload { ready: replicas, desired: replicas, condition: None }
    }

    async fn has_image(&self, _engine: &Engine, image: &str) -> bool {
        !locked(&self.state).gone_images.contains(image)
    }

    fn addons_in_release(&self) -> bool {
        // Nothing starts add-on containers: the engine only records their passwords.
        true
    }

    async fn tear_down(
        &self,
        _engine: &Engine,
        _environment_id: i64,
        service: &str,
        environment: &str,
    ) -> Result<(), EngineError> {
        locked(&self.state).torn_down.push((service.to_owned(), environment.to_owned()));
        Ok(())
    }
}
