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
use axum::routing::{MethodRouter, get, post};
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
    let mut router = Router::new()
        .route("/", get(dashboard::dashboard))
        .route("/login", get(auth::login_page))
        .route("/catalog", get(catalog::catalog))
        .route("/teams/{team}", get(catalog::team))
        .route("/services/{service}", get(services::service))
        .route("/services/{service}/new-environment", get(environments::new_form))
        .route("/services/{service}/envs/{env}", get(environments::environment))
        .route("/runs/{id}", get(runs::run))
        .route("/templates", get(templates::templates))
        .route("/admin", get(admin::admin));
    for (path, handler) in forms() {
        router = router.route(path, handler);
    }
    router
        .route("/static/portal.css", get(|| asset("text/css; charset=utf-8", include_str!("../static/portal.css"))))
        .route(
            "/static/portal.js",
            get(|| asset("text/javascript; charset=utf-8", include_str!("../static/portal.js"))),
        )
        .layer(axum::extract::DefaultBodyLimit::max(MAX_FORM_BODY))
        .layer(axum::middleware::from_fn(session::security_headers))
        .with_state(state)
}

/// Every form the portal accepts (its POST routes) with its handler. The router mounts
/// exactly these, and the e2e test of CSRF and ownership walks [`form_paths`], so a new
/// form cannot escape that test (as a new API route cannot escape the API's).
fn forms() -> Vec<(&'static str, MethodRouter<AppState>)> {
    use pages::{admin, auth, environments, runs, services, templates};
    vec![
        ("/login", post(auth::login)),
        ("/logout", post(auth::logout)),
        ("/teams/{team}/members", post(admin::add_member)),
        ("/teams/{team}/members/{user}/remove", post(admin::remove_member)),
        ("/teams/{team}/quota", post(admin::set_quota)),
        ("/services", post(services::create)),
        ("/services/{service}/new-environment", post(environments::create)),
        ("/services/{service}/envs/{env}/rollback", post(environments::rollback)),
        ("/services/{service}/envs/{env}/scale", post(environments::scale)),
        ("/services/{service}/envs/{env}/destroy", post(environments::destroy)),
        ("/services/{service}/envs/{env}/promote", post(environments::promote)),
        ("/services/{service}/envs/{env}/deploy", post(environments::deploy)),
        ("/runs/{id}/cancel", post(runs::cancel)),
        ("/templates", post(templates::publish)),
        ("/templates/{name}/{version}/deprecate", post(templates::deprecate)),
        ("/admin/users", post(admin::create_user)),
        ("/admin/teams", post(admin::create_team)),
        ("/admin/clusters", post(admin::add_cluster)),
        ("/admin/clusters/{name}/remove", post(admin::remove_cluster)),
    ]
}

/// The path of every portal form, as routed (`/services/{service}/envs/{env}/scale`).
pub fn form_paths() -> Vec<&'static str> {
    forms().into_iter().map(|(path, _)| path).collect()
}

async fn asset(content_type: &'static str, body: &'static str) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, content_type), (header::CACHE_CONTROL, "public, max-age=300")], body)
}

#[cfg(test)]
mod contrast {
    //! The palette in `static/portal.css` keeps text readable: WCAG AA asks 4.5:1 for
    //! body text. The pairs below are every foreground/background the CSS combines.

    fn variable(css: &str, name: &str) -> [f64; 3] {
        let start =
            css.find(&format!("--{name}: #")).unwrap_or_else(|| panic!("--{name} in portal.css")) + name.len() + 5;
        let hex = &css[start..start + 6];
        let channel = |i: usize| f64::from(u8::from_str_radix(&hex[i..i + 2], 16).expect("hex colour")) / 255.0;
        [channel(0), channel(2), channel(4)]
    }

    fn luminance([r, g, b]: [f64; 3]) -> f64 {
        let linear = |c: f64| if c <= 0.03928 { c / 12.92 } else { ((c + 0.055) / 1.055).powf(2.4) };
        0.2126 * linear(r) + 0.7152 * linear(g) + 0.0722 * linear(b)
    }

    fn ratio(a: [f64; 3], b: [f64; 3]) -> f64 {
        let (la, lb) = (luminance(a), luminance(b));
        (la.max(lb) + 0.05) / (la.min(lb) + 0.05)
    }

    #[test]
    fn text_colours_have_at_least_4_5_to_1_contrast() {
        let css = include_str!("../static/portal.css");
        let white = [1.0, 1.0, 1.0];
        let pairs = [
            ("fg", "bg"),
            ("muted", "bg"),
            ("muted", "panel"),
            ("accent", "bg"),
            ("ok-fg", "ok-bg"),
            ("bad-fg", "bad-bg"),
            ("busy-fg", "busy-bg"),
            ("idle-fg", "idle-bg"),
            ("fg", "warn-bg"),
        ];
        for (fg, bg) in pairs {
            let r = ratio(variable(css, fg), variable(css, bg));
            assert!(r >= 4.5, "--{fg} on --{bg} has contrast {r:.2}:1, below 4.5:1");
        }
        for bg in ["accent", "bad-fg"] {
            let r = ratio(white, variable(css, bg));
            assert!(r >= 4.5, "white on --{bg} (buttons) has contrast {r:.2}:1");
        }
        assert!(ratio([0.0; 3], white) > 20.0, "the formula itself: black on white is 21:1");
    }
}
