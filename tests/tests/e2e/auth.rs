//! Credentials: API tokens (hashed, revocable, expiring) and session JWTs (algorithm
//! pinned, expiry, audience and signature checked).

use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::json;
use slipway_e2e::{TestApp, USER_PASSWORD};

crate::both_databases!(
    api_tokens_work_and_revoke_at_once,
    expired_api_token_is_refused,
    session_tokens_are_verified_strictly,
    login_refuses_bad_passwords,
    password_guessing_is_throttled
);

async fn api_tokens_work_and_revoke_at_once(app: TestApp) {
    let ana = app.user("ana").await;
    let (status, created) = app.call("POST", "/tokens", Some(&ana), Some(json!({"name": "laptop"}))).await;
    assert_eq!(status, 201, "{created}");
    let token = created["token"].as_str().expect("token").to_owned();
    assert!(token.starts_with("slp_"));

    let (status, me) = app.call("GET", "/user", Some(&token), None).await;
    assert_eq!((status, me["username"].as_str()), (200, Some("ana")));

    // git sends the token as the HTTP Basic password.
    let basic = STANDARD.encode(format!("anything:{token}"));
    let response =
        app.http.get(app.api("/user")).header("authorization", format!("Basic {basic}")).send().await.expect("request");
    assert_eq!(response.status(), 200);

    // The token is stored hashed: its text appears nowhere in the database.
    assert!(!app.snapshot().await.iter().any(|table| table.contains(&token)));

    // Use is recorded (in the background), and listing never shows the secret.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (status, list) = app.call("GET", "/tokens", Some(&ana), None).await;
        assert_eq!(status, 200);
        let laptop =
            list["items"].as_array().expect("items").iter().find(|t| t["name"] == "laptop").cloned().expect("listed");
        assert!(laptop.get("token").is_none(), "{laptop}");
        if laptop["last_used_at"].is_string() {
            break;
        }
        assert!(Instant::now() < deadline, "last_used_at never recorded: {laptop}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let (status, _) = app.call("POST", "/tokens", Some(&ana), Some(json!({"name": "laptop"}))).await;
    assert_eq!(status, 409);
    let (status, _) = app.call("DELETE", "/tokens/laptop", Some(&ana), None).await;
    assert_eq!(status, 204);
    let (status, problem) = app.call("GET", "/user", Some(&token), None).await;
    assert_eq!(status, 401, "{problem}");
    assert!(problem["detail"].as_str().unwrap_or_default().contains("revoked"), "{problem}");
    let (status, _) = app.call("DELETE", "/tokens/laptop", Some(&ana), None).await;
    assert_eq!(status, 404);
}

async fn expired_api_token_is_refused(app: TestApp) {
    let ana = app.user("ana").await;
    let (status, fresh) =
        app.call("POST", "/tokens", Some(&ana), Some(json!({"name": "fresh", "expires_in_days": 1}))).await;
    assert_eq!(status, 201);
    assert!(fresh["expires_at"].is_string());
    let (_, stale) =
        app.call("POST", "/tokens", Some(&ana), Some(json!({"name": "stale", "expires_in_days": 1}))).await;
    // Expire one of two identical tokens before either is first used.
    app.execute_sql("UPDATE api_tokens SET expires_at = 1000 WHERE name = 'stale'").await;
    let fresh = fresh["token"].as_str().expect("token");
    let stale = stale["token"].as_str().expect("token");
    assert_eq!(app.call("GET", "/user", Some(fresh), None).await.0, 200);
    let (status, problem) = app.call("GET", "/user", Some(stale), None).await;
    assert_eq!(status, 401);
    assert!(problem["detail"].as_str().unwrap_or_default().contains("expired"), "{problem}");

    let (status, problem) =
        app.call("POST", "/tokens", Some(&ana), Some(json!({"name": "x", "expires_in_days": 0}))).await;
    assert_eq!((status, problem["field"].as_str()), (400, Some("expires_in_days")));
}

/// Signs claims with the server's own key (read from its data dir), so that each bad
/// token below differs from a good one in exactly one respect.
fn sign(app: &TestApp, claims: serde_json::Value) -> String {
    let key = std::fs::read(app.data_dir.path().join("session-signing-key")).expect("signing key in data dir");
    jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &EncodingKey::from_secret(&key)).expect("sign")
}

async fn session_tokens_are_verified_strictly(app: TestApp) {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_secs() as i64;
    let claims = |sub: &str, aud: &str, iat: i64, exp: i64| json!({"sub": sub, "aud": aud, "iss": "slipwayd", "iat": iat, "exp": exp, "jti": format!("test-{sub}-{iat}")});

    // A token made exactly as the server makes them is accepted: the refusals below are
    // about the one thing each changes.
    let good = sign(&app, claims("1", "slipway", now, now + 600));
    assert_eq!(app.call("GET", "/user", Some(&good), None).await.0, 200);

    let (status, problem) = app.call("GET", "/user", None, None).await;
    assert_eq!(status, 401);
    assert!(problem["detail"].as_str().unwrap_or_default().contains("sign in"), "{problem}");

    let expired = sign(&app, claims("1", "slipway", now - 7200, now - 3600));
    let wrong_audience = sign(&app, claims("1", "grafana", now, now + 600));
    let unknown_user = sign(&app, claims("999", "slipway", now, now + 600));
    let other_key = jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims("1", "slipway", now, now + 600),
        &EncodingKey::from_secret(b"some-other-key-that-is-long-enough-1234"),
    )
    .expect("sign");
    let none_header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#);
    let none_body = URL_SAFE_NO_PAD.encode(claims("1", "slipway", now, now + 600).to_string());
    let alg_none = format!("{none_header}.{none_body}.");
    let mut tampered = good.clone();
    tampered.replace_range(tampered.len() - 4.., "AAAA");

    let cases = [
        ("malformed", "not-a-token".to_owned(), "malformed"),
        ("expired", expired, "expired"),
        ("bad signature", other_key, "signature"),
        ("tampered signature", tampered, "signature"),
        ("alg none", alg_none, ""),
        ("wrong audience", wrong_audience, "not issued for Slipway"),
        ("unknown user", unknown_user, "no longer exists"),
        ("malformed API token", "slp_short".to_owned(), "malformed"),
    ];
    for (label, token, detail) in cases {
        let (status, problem) = app.call("GET", "/user", Some(&token), None).await;
        assert_eq!(status, 401, "{label}: {problem}");
        assert!(problem["detail"].as_str().unwrap_or_default().contains(detail), "{label}: {problem}");
    }

    let response = app.http.get(app.api("/user")).header("authorization", "Token abc").send().await.expect("request");
    assert_eq!(response.status(), 401);
    assert!(response.headers().contains_key("www-authenticate"));
}

async fn login_refuses_bad_passwords(app: TestApp) {
    app.user("ana").await;
    let (status, good) =
        app.call("POST", "/login", None, Some(json!({"username": "ana", "password": USER_PASSWORD}))).await;
    assert_eq!(status, 200);
    assert_eq!(good["user"]["username"], "ana");
    assert!(good["expires_at"].is_string());

    let (s1, wrong) =
        app.call("POST", "/login", None, Some(json!({"username": "ana", "password": "nope-nope-nope"}))).await;
    let (s2, unknown) =
        app.call("POST", "/login", None, Some(json!({"username": "zed", "password": "nope-nope-nope"}))).await;
    assert_eq!((s1, s2), (401, 401));
    // The same answer whether or not the user exists.
    assert_eq!(wrong["detail"], unknown["detail"]);
}

async fn password_guessing_is_throttled(app: TestApp) {
    app.user("ana").await;
    app.user("bob").await;
    let attempt = |user: &'static str, password: &'static str| {
        app.http.post(app.api("/login")).json(&json!({"username": user, "password": password})).send()
    };
    // ana's own successful login (in `app.user`) spent one attempt of the burst of ten.
    for _ in 0..9 {
        assert_eq!(attempt("ana", "guess-guess-guess").await.expect("request").status(), 401);
    }
    let refused = attempt("ana", "guess-guess-guess").await.expect("request");
    assert_eq!(refused.status(), 429);
    let retry_after: u64 = refused.headers()["retry-after"].to_str().expect("text").parse().expect("seconds");
    assert!((1..=6).contains(&retry_after), "{retry_after}");
    // Even the right password waits: the throttle answers before any password is checked.
    assert_eq!(attempt("ana", USER_PASSWORD).await.expect("request").status(), 429);
    assert_eq!(attempt("bob", USER_PASSWORD).await.expect("request").status(), 200, "other users are unaffected");
}

/// Two replicas share one PostgreSQL database. A token revoked through one is refused by
/// the other at once, although the other had just cached it: the revocation travels
/// by NOTIFY, well inside the cache's 5-second lifetime.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_revoked_on_one_replica_is_refused_by_another() {
    let a = TestApp::start(slipway_e2e::Db::Postgres).await;
    let other_dir = tempfile::tempdir().expect("tempdir");
    let b = slipway_e2e::start_process(
        &[
            "--listen",
            "127.0.0.1:0",
            "--data-dir",
            other_dir.path().to_str().expect("utf-8"),
            "--database-url",
            &a.database_url,
        ],
        &[],
    )
    .await;
    let (status, created) = a.admin("POST", "/tokens", Some(json!({"name": "shared"}))).await;
    assert_eq!(status, 201);
    let token = created["token"].as_str().expect("token").to_owned();
    let on_b = || a.http.get(format!("{}/api/v1/user", b.url)).bearer_auth(&token).send();
    assert_eq!(on_b().await.expect("request").status(), 200, "b accepts (and caches) the token");

    let (status, _) = a.admin("DELETE", "/tokens/shared", None).await;
    assert_eq!(status, 204);
    let revoked_at = Instant::now();
    loop {
        if on_b().await.expect("request").status() == 401 {
            break;
        }
        assert!(revoked_at.elapsed() < Duration::from_secs(2), "replica b still accepts a revoked token");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
