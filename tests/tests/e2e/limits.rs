//! Costs a push can cause are bounded: descriptors are read only up to 1 MiB (decided
//! from the object header, before any of it is read), and a build context over
//! `--max-context-mb` is refused before it is archived.

use slipway_e2e::{Db, TestApp, borrowed, fixture_app, git, local_repo};

async fn setup(app: &TestApp) -> String {
    app.team("payments").await;
    app.service("shop", "payments").await;
    app.admin_api_token("git").await
}

/// A few KiB on the wire, megabytes once unpacked.
fn compressible(bytes: usize) -> Vec<u8> {
    b"# padding line that compresses very well\n".iter().copied().cycle().take(bytes).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_descriptors_are_refused_unread() {
    let app = TestApp::start(Db::Sqlite).await;
    let token = setup(&app).await;
    let url = app.git_url("shop", &token);

    // A huge catalog-info.yaml: the push goes live, the catalog is left alone.
    let mut files = fixture_app("big catalog\n");
    let mut catalog = b"apiVersion: backstage.io/v1alpha1\nkind: Component\nmetadata:\n  name: shop\n".to_vec();
    catalog.extend(compressible(3 * 1024 * 1024));
    files.push(("catalog-info.yaml", catalog));
    let work = local_repo(&borrowed(&files)).await;
    let out = git(work.path(), &[], &["push", &url, "main"]).await;
    assert_eq!(out.code, 0, "{out:?}");
    assert!(
        out.stderr.contains("warning: catalog-info.yaml is") && out.stderr.contains("at most 1024 KiB is read"),
        "{out:?}"
    );

    // A huge slipway.toml rejects the push, naming the file and the rule.
    let mut files = fixture_app("big config\n");
    files.retain(|(name, _)| *name != "slipway.toml");
    let mut config = b"[web]\nport = 8080\nhealth = \"/\"\n".to_vec();
    config.extend(compressible(2 * 1024 * 1024));
    files.push(("slipway.toml", config));
    let work = local_repo(&borrowed(&files)).await;
    let out = git(work.path(), &[], &["push", "--force", &url, "main"]).await;
    assert_ne!(out.code, 0, "{out:?}");
    assert!(out.stderr.contains("slipway.toml is") && out.stderr.contains("it may be at most 1024 KiB"), "{out:?}");
    let (status, _) = app.admin("GET", "/services/shop", None).await;
    assert_eq!(status, 200, "the server keeps serving");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_context_over_the_limit_is_refused_before_it_is_archived() {
    let app = TestApp::start_with(Db::Sqlite, &["--max-context-mb", "1"]).await;
    let token = setup(&app).await;
    let mut files = fixture_app("heavy\n");
    files.push(("data.txt", compressible(3 * 1024 * 1024)));
    let work = local_repo(&borrowed(&files)).await;
    let out = git(work.path(), &[], &["push", &app.git_url("shop", &token), "main"]).await;
    assert_ne!(out.code, 0, "{out:?}");
    assert!(
        out.stderr.contains("the build context . holds 4 MiB of files; at most 1 MiB is built (--max-context-mb)"),
        "{out:?}"
    );
    // Nothing was archived for it.
    let contexts = app.data_dir.path().join("contexts");
    let left = std::fs::read_dir(&contexts).map(|d| d.count()).unwrap_or(0);
    assert_eq!(left, 0, "no context left in {}", contexts.display());
}
