//! Who may clone and push which repository: the git endpoint asks here, through the
//! `slipway_git::GitAccess` trait. Reading takes any signed-in user; pushing takes the
//! owning team's members and admins, as for every other change to a service.

use axum::http::HeaderMap;
use slipway_core::policy::Action;
use slipway_git::{Denial, GitAccess, GitOp, Grant, repos};
use slipway_store::StoreError;

use crate::access::require_in_team;
use crate::actor::{Authentication, authenticate};
use crate::{AppState, ServiceError};

#[derive(Debug, Clone)]
pub struct ServiceGitAccess {
    pub state: AppState,
}

impl GitAccess for ServiceGitAccess {
    async fn authorize(&self, headers: &HeaderMap, repo: &str, op: GitOp) -> Result<Grant, Denial> {
        let state = &self.state;
        let actor = match authenticate(state, headers).await {
            Authentication::Authenticated(actor) => actor,
            Authentication::Anonymous => {
                return Err(Denial::Unauthenticated(
                    "authentication required: use an API token as the password (`slipway tokens create NAME`), \
                     or `git config --global credential.helper '!slipway git-credential'`"
                        .to_owned(),
                ));
            }
            Authentication::Invalid(why) => return Err(Denial::Unauthenticated(why)),
        };
        let service = match state.store.service_by_name(repo).await {
            Ok(service) => service,
            Err(StoreError::NotFound) => return Err(Denial::NotFound(format!("service {repo:?} does not exist"))),
            Err(err) => {
                tracing::error!(%err, "loading a service for git");
                return Err(Denial::Unavailable("the server cannot check access right now; try again".to_owned()));
            }
        };
        if service.catalog_only {
            return Err(Denial::NotFound(format!(
                "service {repo:?} is catalog-only: its code lives at {}, and Slipway hosts no repository for it",
                service.repo_url.as_deref().unwrap_or("another host")
            )));
        }
        if op == GitOp::Push {
            match require_in_team(state, &actor, service.team_id, Action::ChangeService).await {
                Ok(()) => {}
                Err(ServiceError::Forbidden(why)) => {
                    let entry = slipway_store::audit::NewAuditEntry {
                        at: crate::clock::now_ms(),
                        actor: &actor.username,
                        action: "git push",
                        target: &format!("/git/{repo}.git"),
                        outcome: "denied",
                        status: 403,
                    };
                    if let Err(err) = state.store.append_audit(&entry).await {
                        tracing::error!(%err, "writing the audit log");
                    }
                    return Err(Denial::Forbidden(format!("push to {repo} refused: {why} (owner: {})", service.team)));
                }
                Err(err) => {
                    tracing::error!(%err, "checking push access");
                    return Err(Denial::Unavailable("the server cannot check access right now; try again".to_owned()));
                }
            }
        }
        // A service whose repository went missing (a crash between creating the row and
        // the repository, or a restored database) gets an empty one rather than an error.
        let settings = &state.settings;
        let repository = state.service_names.lock(repo).await;
        // A delete may have finished since the row was read: never recreate (and so hand
        // a later service of the same name) a deleted service's repository.
        match state.store.service_by_name(repo).await {
            Ok(now) if now.id == service.id => {}
            Ok(_) | Err(StoreError::NotFound) => {
                return Err(Denial::NotFound(format!("service {repo:?} does not exist")));
            }
            Err(err) => {
                tracing::error!(%err, "loading a service for git");
                return Err(Denial::Unavailable("the server cannot check access right now; try again".to_owned()));
            }
        }
        if !repos::path(&settings.repos_dir, repo).join("HEAD").is_file()
            && let Err(err) = repos::init(&settings.git, &settings.repos_dir, repo).await
        {
            tracing::error!(%err, repo, "recreating a missing repository");
            return Err(Denial::Unavailable("the repository is not available; try again".to_owned()));
        }
        drop(repository);
        let mut env = Vec::new();
        if op == GitOp::Push {
            // The pre-receive hook calls back with this secret; it proves the push was
            // authorised here and says by whom.
            let secret = state.push_grants.mint(&actor.username, service.id, &service.name);
            env.push(("SLIPWAY_HOOK_URL".to_owned(), settings.hook_url.clone()));
            env.push(("SLIPWAY_PUSH_GRANT".to_owned(), secret));
        }
        Ok(Grant { user: actor.username, env })
    }
}
