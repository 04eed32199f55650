//! Sessions end when asked: signing out revokes the token on the server (a copied token
//! or cookie stops working), and a password change ends every earlier session while API
//! tokens keep working.

use crate::both_databases;
use serde_json::json;
use slipway_e2e::portal::Portal;
use slipway_e2e::{TestApp, USER_PASSWORD};

async fn session(app: &TestApp, username: &str, password: &str) -> (u16, String) {
    let (status, body) =
        app.call("POST", "/login", None, Some(json!({"username": username, "password": password}))).await;
    (status, body["token"].as_str().unwrap_or_default().to_owned())
}

crate::both_databases!(signing_out_and_password_changes_end_sessions);

async fn signing_out_and_password_changes_end_sessions(app: TestApp) {
    app.user("ana").await;
    let (_, first) = session(&app, "ana", USER_PASSWORD).await;
    let (_, second) = session(&app, "ana", USER_PASSWORD).await;
    assert_eq!(app.call("GET", "/user", Some(&first), None).await.0, 200);

    // Signing out ends that session only, at once.
    assert_eq!(app.call("POST", "/logout", Some(&first), None).await.0, 204);
    let (status, problem) = app.call("GET", "/user", Some(&first), None).await;
    assert_eq!(status, 401, "{problem}");
    assert!(problem["detail"].as_str().unwrap_or_default().contains("signed out"), "{problem}");
    assert_eq!(app.call("GET", "/user", Some(&second), None).await.0, 200, "the other session stands");

    // An API token cannot be "signed out"; it is revoked by name.
    let (status, created) = app.call("POST", "/tokens", Some(&second), Some(json!({"name": "laptop"}))).await;
    assert_eq!(status, 201);
    let api_token = created["token"].as_str().expect("token").to_owned();
    assert_eq!(app.call("POST", "/logout", Some(&api_token), None).await.0, 400);

    // A wrong current password changes nothing.
    let wrong = json!({"current_password": "not it at all", "new_password": "brand new password"});
    let (status, problem) = app.call("POST", "/user/password", Some(&second), Some(wrong)).await;
    assert_eq!(status, 400, "{problem}");
    assert_eq!(problem["field"], "current_password");

    // The CLI changes it: earlier sessions end, the API token keeps working.
    let out = app
        .slipway(&api_token, &["passwd", "--password-stdin"], &format!("{USER_PASSWORD}\nbrand new password\n"))
        .await;
    assert_eq!(out.code, 0, "{out:?}");
    let (status, problem) = app.call("GET", "/user", Some(&second), None).await;
    assert_eq!(status, 401, "{problem}");
    assert!(problem["detail"].as_str().unwrap_or_default().contains("password changed"), "{problem}");
    assert_eq!(app.call("GET", "/user", Some(&api_token), None).await.0, 200);
    assert_eq!(session(&app, "ana", USER_PASSWORD).await.0, 401, "the old password is gone");
    let (status, fresh) = session(&app, "ana", "brand new password").await;
    assert_eq!(status, 200);
    assert_eq!(app.call("GET", "/user", Some(&fresh), None).await.0, 200);
}

both_databases!(a_copied_cookie_stops_working_after_signing_out);
/// The portal's sign-out revokes the session: the cookie, copied before, no longer works.
async fn a_copied_cookie_stops_working_after_signing_out(app: TestApp) {
    app.user("ana").await;
    let portal = Portal::sign_in(&app.url, "ana", USER_PASSWORD).await;
    assert_eq!(portal.get("/").await.status, 200);
    let mut copy = Portal::anonymous(&app.url);
    copy.cookie = portal.cookie.clone();
    let page = portal.post("/logout", &[]).await;
    assert_eq!(page.status, 303, "{}", page.html);
    let page = copy.get("/").await;
    assert_eq!(page.status, 303);
    assert_eq!(page.location.as_deref(), Some("/login?next=%2F&expired=1"));
}
