//! Slipway's end-to-end tests: one test binary that drives the real `slipwayd` and
//! `slipway` binaries. Suites marked with `both_databases!` run once on SQLite and once
//! on PostgreSQL.

mod api;
mod auth;
mod browser;
mod catalog;
mod cli;
mod config;
mod contract;
mod deploy;
mod environments;
mod git;
mod hardening;
mod isolation;
mod kube_drift;
mod kube_sim;
mod kubernetes;
mod limits;
mod load;
mod ownership;
mod pipeline;
mod portal;
mod release;
mod replicas;
mod router;
mod server;
mod sessions;
mod shutdown;
mod traffic;
mod untrusted;
mod validation;

/// Generates `<name>::sqlite` and `<name>::postgres` tests from one async fn taking a
/// started `TestApp`; `name with ["--flag", "value"]` starts it with extra flags.
#[macro_export]
macro_rules! both_databases {
    ($($name:ident $(with [$($flag:expr),* $(,)?])?),* $(,)?) => {
        $(
            mod $name {
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn sqlite() {
                    let flags: &[&str] = &[$($($flag),*)?];
                    super::$name(slipway_e2e::TestApp::start_with(slipway_e2e::Db::Sqlite, flags).await).await
                }

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn postgres() {
                    let flags: &[&str] = &[$($($flag),*)?];
                    super::$name(slipway_e2e::TestApp::start_with(slipway_e2e::Db::Postgres, flags).await).await
                }
            }
        )*
    };
}

/// Like [`both_databases!`], for an async fn that starts its app itself from the `Db`
/// it is given (flags computed at run time, an in-process server).
#[macro_export]
macro_rules! each_database {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn sqlite() {
                    super::$name(slipway_e2e::Db::Sqlite).await
                }

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn postgres() {
                    super::$name(slipway_e2e::Db::Postgres).await
                }
            }
        )*
    };
}
