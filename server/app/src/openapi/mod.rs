//! The OpenAPI document's frame: title, security scheme and tags. Paths and schemas are
//! collected from the handlers by `utoipa_axum` as routes are registered.

use utoipa::Modify;
use utoipa::OpenApi;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};

#[derive(OpenApi)]
#[openapi(
    info(title = "Slipway API", description = "Self-hosted internal developer platform: services, teams, environments and pipelines."),
    modifiers(&BearerAuth),
    tags(
        (name = "session", description = "Signing in"),
        (name = "users", description = "User accounts"),
        (name = "teams", description = "Teams and memberships"),
        (name = "services", description = "Services and their catalog metadata"),
        (name = "tokens", description = "The caller's API tokens"),
        (name = "audit", description = "The audit log"),
        (name = "environments", description = "Environments, releases, rollback, scale and promote"),
        (name = "runs", description = "Pipeline runs: builds triggered by pushes and deploys"),
    )
)]
pub struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("A session token from POST /api/v1/login, or an API token (slp_…)"))
                    .build(),
            ),
        );
    }
}
