//! The use cases around deploys, on a runtime that runs nothing (`slipway_engine::fake`)
//! and on both databases: what a rollback, a config change, a failed deploy and a destroy
//! ask of the runtime and leave in the store, without a container engine.

use std::sync::Arc;
use std::time::Duration;

use slipway_api::{ConfigChange, CreateService, CreateTeam};
use slipway_core::run::RunStatus;
use slipway_core::workloads::legacy_spec;
use slipway_engine::fake::FakeRuntime;
use slipway_engine::{Engine, EngineConfig, LocalEngine};
use slipway_service::actor::Actor;
use slipway_service::auth::jwt::JwtKeys;
use slipway_service::error::ServiceError;
use slipway_service::state::{AppState, Settings};
use slipway_service::{config, environments, runs, services, teams};
use slipway_store::releases::NewRelease;
use slipway_store::testing::Fresh;

const SERVICE: &str = "shop";
const ENV: &str = "production";

/// A store with a team `payments`, its service `shop` (and `shop/production`), an
/// engine whose environments run on `fake`, and the admin.
struct World {
    state: AppState,
    fake: Arc<FakeRuntime>,
    admin: Actor,
    fresh: Fresh,
    _dir: tempfile::TempDir,
}

async fn world(fresh: Fresh) -> World {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = fresh.store.clone();
    slipway_service::templates::load_builtin_templates(&store).await.expect("templates");
    let row = store.create_user("admin", "not a hash: nobody signs in here", true, 1).await.expect("admin");
    let admin = Actor { user_id: row.id, username: row.username, is_admin: true };
    let fake = Arc::new(FakeRuntime::default());
    let config = EngineConfig {
        node: "test-node".to_owned(),
        shared_data_dir: false,
        workers: 1,
        contexts_dir: dir.path().join("contexts"),
        build_timeout: Duration::from_secs(60),
        registry: None,
        health_timeout: Duration::from_secs(5),
        drain: Duration::from_secs(5),
        deploy_timeout: Duration::from_secs(30),
        release_timeout: Duration::from_secs(30),
        addon_timeout: Duration::from_secs(5),
        secret_key: slipway_core::secrets::SecretKey::generate(),
        addon_images: Default::default(),
        image_retention: 5,
        clock: Arc::new(slipway_core::clock::SystemClock),
        lease: slipway_engine::LEASE,
        local_engine_down: Some("these tests run on the fake runtime".to_owned()),
    };
    let local = LocalEngine::absent("unix:///nonexistent/podman.sock").expect("a client of no engine");
    let engine = Engine::with_fake_runtime(store.clone(), local, config, fake.clone());
    engine.start().await.expect("engine");
    let settings = Settings {
        public_url: "http://127.0.0.1:1".to_owned(),
        data_dir: dir.path().to_owned(),
        repos_dir: dir.path().join("repos"),
        git: "git".into(),
        hook_url: "http://127.0.0.1:1".to_owned(),
        apps_domain: "localhost".to_owned(),
        apps_port: 1,
        default_runtime: slipway_engine::LOCAL_RUNTIME.to_owned(),
        max_context_bytes: 1 << 20,
    };
    let state = AppState::new(store, JwtKeys::new(&[7; 32], 3600), settings, engine);
    teams::create_team(&state, &admin, CreateTeam { name: "payments".to_owned() }).await.expect("team");
    let service = CreateService { name: SERVICE.to_owned(), team: "payments".to_owned(), ..Default::default() };
    services::create_service(&state, &admin, service).await.expect("service");
    World { state, fake, admin, fresh, _dir: dir }
}

impl World {
    /// Records release `image` of shop/production as a deploy of a build would.
    async fn release(&self, image: &str, commit: &str) -> i32 {
        let store = &self.state.store;
        let service = store.service_by_name(SERVICE).await.expect("service");
        let env = store.environment_by_name(service.id, ENV).await.expect("environment");
        let spec = legacy_spec(8080, "/");
        let new = NewRelease {
            environment_id: env.id,
            run_id: None,
            image,
            image_id: "sha256:0",
            commit_sha: commit,
            port: 8080,
            health: "/",
            config_version: 0,
            template: "web",
            template_version: "1.0.0",
            parameters: "{}",
            spec: &spec,
            created_by: "admin",
        };
        store.create_release(&new, 1).await.expect("release").version
    }

    /// Waits for a run to end; answers its status and reason.
    async fn ended(&self, run_id: i64) -> (RunStatus, String) {
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            let run = runs::get_run(&self.state, &self.admin, run_id).await.expect("run");
            let status: RunStatus = run.status.parse().expect("a run status");
            if status.is_final() {
                return (status, run.reason);
            }
            assert!(std::time::Instant::now() < deadline, "run {run_id} still {:?} after 30 s", run.status);
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn current_version(&self) -> Option<u32> {
        environments::get_environment(&self.state, &self.admin, SERVICE, ENV).await.expect("env").release
    }
}

async fn rollback_redeploys_the_earlier_image_and_pins(fresh: Fresh) {
    let w = world(fresh).await;
    w.release("localhost/slipway/t/shop:aaa", &"a".repeat(40)).await;
    w.release("localhost/slipway/t/shop:bbb", &"b".repeat(40)).await;

    let run = environments::rollback(&w.state, &w.admin, SERVICE, ENV, None).await.expect("rollback");
    assert_eq!(w.ended(run.id).await.0, RunStatus::Succeeded);
    let applied = w.fake.applied();
    assert_eq!(applied.len(), 1, "{applied:?}");
    assert_eq!(applied[0].image, "localhost/slipway/t/shop:aaa", "v1's image runs again");
    let env = environments::get_environment(&w.state, &w.admin, SERVICE, ENV).await.expect("env");
    assert_eq!((env.release, env.pinned), (Some(3), true), "a new release v3, and the environment pinned");

    // An image that is gone cannot be rolled back to, and nothing is queued.
    w.fake.lose_image("localhost/slipway/t/shop:bbb");
    let refused = environments::rollback(&w.state, &w.admin, SERVICE, ENV, Some(2)).await;
    assert!(matches!(&refused, Err(ServiceError::Conflict(why)) if why.contains("was removed")), "{refused:?}");
    assert_eq!(w.fake.applied().len(), 1);
    w.fresh.finish().await;
}

async fn a_config_change_redeploys_with_it_and_a_failed_deploy_keeps_the_release(fresh: Fresh) {
    let w = world(fresh).await;
    w.release("localhost/slipway/t/shop:aaa", &"a".repeat(40)).await;
    let change = |key: &str, value: &str| ConfigChange {
        set: [(key.to_owned(), value.to_owned())].into(),
        secret: false,
        unset: Vec::new(),
    };

    let changed = config::change_config(&w.state, &w.admin, SERVICE, ENV, change("GREETING", "hello")).await;
    let run = changed.expect("config").run.expect("a running environment is redeployed");
    assert_eq!(w.ended(run.id).await.0, RunStatus::Succeeded);
    let applied = w.fake.applied();
    assert!(applied[0].vars.contains(&("GREETING".to_owned(), "hello".to_owned())), "{applied:?}");
    assert_eq!((applied[0].config_version, w.current_version().await), (1, Some(2)));

    // The runtime refuses the next deploy: the run fails, saying what still serves, and
    // the environment's release is the one before.
    w.fake.fail_next_apply("replica 1 of 2 (web) is not healthy");
    let changed = config::change_config(&w.state, &w.admin, SERVICE, ENV, change("GREETING", "bye")).await;
    let run = changed.expect("config").run.expect("redeployed");
    let (status, reason) = w.ended(run.id).await;
    assert_eq!(status, RunStatus::Failed);
    assert!(reason.contains("not healthy") && reason.contains("the previous release keeps serving"), "{reason}");
    assert_eq!((w.fake.applied().len(), w.current_version().await), (1, Some(2)));
    w.fresh.finish().await;
}

async fn destroying_an_environment_tears_it_down_on_its_runtime(fresh: Fresh) {
    let w = world(fresh).await;
    environments::destroy_environment(&w.state, &w.admin, SERVICE, ENV).await.expect("destroy");
    assert_eq!(w.fake.torn_down(), [(SERVICE.to_owned(), ENV.to_owned())]);
    let gone = environments::get_environment(&w.state, &w.admin, SERVICE, ENV).await;
    assert!(matches!(&gone, Err(e) if e.status() == axum::http::StatusCode::NOT_FOUND), "{gone:?}");
    w.fresh.finish().await;
}

macro_rules! on_both_databases {
    ($($case:ident),* $(,)?) => {
        mod sqlite {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                super::$case(super::Fresh::sqlite().await).await;
            })*
        }
        mod postgres {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                super::$case(super::Fresh::postgres(stringify!($case)).await).await;
            })*
        }
    };
}

on_both_databases!(
    rollback_redeploys_the_earlier_image_and_pins,
    a_config_change_redeploys_with_it_and_a_failed_deploy_keeps_the_release,
    destroying_an_environment_tears_it_down_on_its_runtime,
);
