//! Build image names and garbage collection. Builds are tagged
//! `localhost/slipway/<installation>/<service>:<commit>`, so installations sharing one
//! engine never share a tag. The engine keeps the images of each environment's newest
//! releases (so rollback works) and of runs still going; other images this installation
//! built (its local tags and their registry tags, for commits in its own run history) are
//! removed after every deploy, so a busy server's disk does not fill with old builds.

use std::collections::HashSet;

use bollard::query_parameters::RemoveImageOptionsBuilder;

use crate::Engine;

/// This installation's build images.
#[derive(Debug)]
pub(crate) struct Images {
    /// Builds hold it shared, image collection exclusively.
    pub(crate) lock: tokio::sync::RwLock<()>,
    /// Where this installation's builds are tagged (`localhost/slipway/<installation>`):
    /// one engine may serve several installations, and none may run or remove another's
    /// image because a service name and commit happen to match.
    pub(crate) prefix: String,
}

impl Images {
    pub(crate) fn new(config: &crate::EngineConfig) -> Images {
        Images {
            lock: tokio::sync::RwLock::new(()),
            prefix: format!("localhost/slipway/{}", config.secret_key.installation_id()),
        }
    }
}

/// The tags a build of `service` at `commit` has under each of `prefixes`.
fn build_tags(prefixes: &[String], service: &str, commit: &str) -> Vec<String> {
    let short: String = commit.chars().take(12).collect();
    prefixes.iter().map(|p| format!("{p}/{service}:{short}")).collect()
}

/// The tags to remove: this installation's builds that no kept release or live run uses
/// (base and add-on images, and other installations' builds, are never among them).
pub fn removable(ours: &HashSet<String>, keep: &HashSet<String>) -> Vec<String> {
    let mut tags: Vec<String> = ours.iter().filter(|t| !keep.contains(*t)).cloned().collect();
    tags.sort();
    tags
}

impl Engine {
    /// The local tag of a build of `service` at `commit`.
    pub fn build_tag(&self, service: &str, commit: &str) -> String {
        build_tags(std::slice::from_ref(&self.images().prefix), service, commit).remove(0)
    }

    /// The local image a run deploys: the one it recorded when that is a local tag (a
    /// rollback or promote names the release's image, maybe tagged by an older version),
    /// else the tag its build made (the run may hold the pushed reference instead).
    pub(crate) fn local_image(&self, run: &slipway_store::runs::RunRow) -> String {
        match run.image.as_deref() {
            Some(image) if image.starts_with("localhost/") => image.to_owned(),
            _ => self.build_tag(&run.service, &run.commit_sha),
        }
    }

    /// Whether the local engine still has a container (in any state).
    pub(crate) async fn has_container(&self, id: &str) -> bool {
        self.local().inspect_container(id).await.is_ok()
    }

    /// Whether the local engine still has an image (a release older than the retention
    /// may have lost it).
    pub async fn has_image(&self, image: &str) -> bool {
        self.local().docker().inspect_image(image).await.is_ok()
    }

    /// Removes the build images nothing needs any more; answers how many tags went.
    pub async fn collect_images(&self) -> usize {
        if self.local_engine().is_err() {
            return 0;
        }
        let (releases, runs) = match self.store().images_in_use(self.config().image_retention).await {
            Ok(found) => found,
            Err(err) => {
                tracing::warn!(%err, "listing the images in use");
                return 0;
            }
        };
        let mut prefixes = vec![self.images().prefix.clone()];
        if let Some(registry) = &self.config().registry {
            prefixes.push(registry.location.trim_end_matches('/').to_owned());
        }
        let ours: HashSet<String> = match self.store().built_commits().await {
            Ok(built) => built.iter().flat_map(|(service, commit)| build_tags(&prefixes, service, commit)).collect(),
            Err(err) => {
                tracing::warn!(%err, "listing the builds");
                return 0;
            }
        };
        let mut keep = HashSet::new();
        for image in releases {
            // A pushed release names `repo:tag@digest`: its local tag is `repo:tag`.
            let tag = image.split('@').next().unwrap_or_default().to_owned();
            if let Some((repository, commit)) = tag.rsplit_once(':')
                && let Some(service) = repository.rsplit('/').next()
            {
                keep.insert(format!("{}/{service}:{commit}", self.images().prefix));
            }
            keep.insert(tag);
        }
        for (service, commit) in runs {
            keep.extend(build_tags(&prefixes, &service, &commit));
        }
        // No listing: Podman takes seconds to list a busy engine's images, while the
        // candidates are known. Each is removed once; a gone one (404) counts as removed.
        let candidates = removable(&ours, &keep);
        if candidates.is_empty() {
            return 0;
        }
        // No build of this installation runs while images go.
        let _collecting = self.images().lock.write().await;
        let mut removed = 0;
        for tag in candidates {
            // Not forced: an image a container still runs stays, and is tried again later.
            let options = RemoveImageOptionsBuilder::new().force(false).build();
            let gone = match self.local().docker().remove_image(&tag, Some(options), None).await {
                Ok(_) => {
                    removed += 1;
                    true
                }
                Err(bollard::errors::Error::DockerResponseServerError { status_code: 404, .. }) => true,
                Err(err) => {
                    tracing::debug!(%err, tag, "keeping an image");
                    false
                }
            };
            // A build whose local tag is gone is skipped by later collections.
            if gone
                && let Some((repository, commit)) = tag.rsplit_once(':')
                && let Some(service) = repository.strip_prefix(&format!("{}/", self.images().prefix))
                && let Err(err) = self.store().mark_image_collected(service, commit).await
            {
                tracing::warn!(%err, tag, "recording a collected image");
            }
        }
        if removed > 0 {
            tracing::info!(removed, "removed old build images");
        }
        removed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_our_unused_builds_go() {
        let prefixes = vec!["localhost/slipway".to_owned(), "127.0.0.1:5000/apps".to_owned()];
        let ours: HashSet<String> = ["0123456789abcdef", "ba9876543210fedc"]
            .iter()
            .flat_map(|commit| build_tags(&prefixes, "shop", commit))
            .collect();
        let keep: HashSet<String> = ["localhost/slipway/shop:ba9876543210".to_owned()].into();
        assert_eq!(
            removable(&ours, &keep),
            [
                "127.0.0.1:5000/apps/shop:0123456789ab",
                "127.0.0.1:5000/apps/shop:ba9876543210",
                "localhost/slipway/shop:0123456789ab"
            ],
            "only our builds that no kept release uses"
        );
    }
}
