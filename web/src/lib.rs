//! Slipway's portal: server-rendered pages for people, over the same use cases the API
//! calls (`slipway-service`). Every page works without JavaScript; `static/portal.js`
//! makes run logs stream live and refreshes status where it changes.
//!
//! Start with [`router`] (every path), [`session`] (the cookie, CSRF and who is asking)
//! and [`error::PageError`] (how a failure becomes a friendly page). The HTML lives in
//! `web/templates/` (askama), the CSS and JavaScript in `web/static/`.

use axum::Router;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use slipway_service::AppState;

pub mod ansi;
pub mod error;
pub mod form;
pub mod pages;
pub mod session;
pub mod svg;
pub mod view;

/// Most bytes a portal form may send (a template or a kubeconfig fits easily).
const MAX_FORM_BODY: usize = 256 * 1024;

/// Every portal path. Mounted by `slipwayd` beside the API.
pub fn router(state: AppState) -> Router {
    use pages::{admin, auth, catalog, dashboard, environments, runs, services, templates};
    Router::new()
        .route("/", get(dashboard::dashboard))
        .route("/login", get(auth::login_page).post(auth::login))
        .route("/logout", post(auth::logout))
        .route("/catalog", get(catalog::catalog))
        .route("/teams/{team}", get(catalog::team))
        .route("/teams/{team}/members", post(admin::add_member))
        .route("/teams/{team}/members/{user}/remove", post(admin::remove_member))
        .route("/teams/{team}/quota", post(admin::set_quota))
        .route("/services", post(services::create))
        .route("/services/{service}", get(services::service))
        .route("/services/{service}/new-environment", get(environments::new_form).post(environments::create))
        .route("/services/{service}/envs/{env}", get(environments::environment))
        .route("/services/{service}/envs/{env}/rollback", post(environments::rollback))
        .route("/services/{service}/envs/{env}/scale", post(environments::scale))
        .route("/services/{service}/envs/{env}/destroy", post(environments::destroy))
        .route("/services/{service}/envs/{env}/promote", post(environments::promote))
        .route("/runs/{id}", get(runs::run))
        .route("/runs/{id}/cancel", post(runs::cancel))
        .route("/templates", get(templates::templates).post(templates::publish))
        .route("/templates/{name}/{version}/deprecate", post(templates::deprecate))
        .route("/admin", get(admin::admin))
        .route("/admin/users", post(admin::create_user))
        .route("/admin/teams", post(admin::create_team))
        .route("/admin/clusters", post(admin::add_cluster))
        .route("/admin/clusters/{name}/remove", post(admin::remove_cluster))
        .route("/static/portal.css", get(|| asset("text/css; charset=utf-8", include_str!("../static/portal.css"))))
        .route(
            "/static/portal.js",
            get(|| asset("text/javascript; charset=utf-8", include_str!("../static/portal.js"))),
        )
        .layer(axum::extract::DefaultBodyLimit::max(MAX_FORM_BODY))
        .layer(axum::middleware::from_fn(session::security_headers))
        .with_state(state)
}

async fn asset(content_type: &'static str, body: &'static str) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, content_type), (header::CACHE_CONTROL, "public, max-age=300")], body)
}
