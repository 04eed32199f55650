//! `login`, `logout`, `passwd`, `whoami`.

use slipway_api::{ChangePassword, CreateToken, CreatedToken, CurrentUser, LoginRequest, LoginResponse};

use super::{read_password, signed_in_client};
use crate::client::{Client, encode};
use crate::config::{self, StoredLogin};
use crate::error::CliError;
use crate::output;

/// Signs in with a password, then creates an API token for this machine and stores it:
/// the CLI keeps working after the short-lived session token expires, and `logout`
/// revokes exactly this machine's token.
pub async fn login(server: Option<String>, username: String, password_stdin: bool) -> Result<(), CliError> {
    let server = match server {
        Some(server) => config::normalize_server(&server)?,
        None => config::target()?.server,
    };
    let password = read_password(password_stdin, &format!("Password for {username} at {server}: "))?;
    let anonymous = Client::new(&server, None)?;
    let session: LoginResponse =
        anonymous.post("/login", &LoginRequest { username: username.clone(), password }).await?;
    let token_name = format!("cli-{}-{}", machine_name(), unique_suffix());
    let created: CreatedToken = anonymous
        .with_token(session.token)
        .post("/tokens", &CreateToken { name: token_name.clone(), expires_in_days: None })
        .await?;
    let path = config::save(&StoredLogin {
        server: server.clone(),
        username: session.user.username.clone(),
        token: created.token,
        token_name,
    })?;
    println!("Logged in to {server} as {}", session.user.username);
    eprintln!("Credentials saved to {}", path.display());
    Ok(())
}

pub async fn logout() -> Result<(), CliError> {
    let Some(stored) = config::load()? else {
        println!("Not logged in");
        return Ok(());
    };
    let client = Client::new(&stored.server, Some(stored.token.clone()))?;
    // Revoke the server-side token first; a server that is gone must not keep us from
    // forgetting the local credentials.
    if let Err(err) = client.delete(&format!("/tokens/{}", encode(&stored.token_name))).await {
        eprintln!("warning: could not revoke the token on the server: {err}");
    }
    config::remove()?;
    println!("Logged out of {}", stored.server);
    Ok(())
}

/// Changes the signed-in user's password.
pub async fn passwd(password_stdin: bool) -> Result<(), CliError> {
    let client = signed_in_client()?;
    let current_password = read_password(password_stdin, "Current password: ")?;
    let new_password = read_password(password_stdin, "New password: ")?;
    if !password_stdin && read_password(false, "New password again: ")? != new_password {
        return Err(CliError::usage("the two new passwords differ; nothing was changed"));
    }
    let session: LoginResponse =
        client.post("/user/password", &ChangePassword { current_password, new_password }).await?;
    println!("Changed the password of {}; its other sessions have ended", session.user.username);
    Ok(())
}

pub async fn whoami(json: bool) -> Result<(), CliError> {
    let client = signed_in_client()?;
    let me: CurrentUser = client.get("/user").await?;
    if json {
        return output::json(&me);
    }
    let role = if me.admin { " (admin)" } else { "" };
    println!("{}{role} on {}", me.username, client.server());
    if me.teams.is_empty() {
        println!("teams: none");
    } else {
        let teams: Vec<String> = me.teams.iter().map(|m| format!("{} ({})", m.team, m.role)).collect();
        println!("teams: {}", teams.join(", "));
    }
    Ok(())
}

fn machine_name() -> String {
    let raw = std::fs::read_to_string("/etc/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "host".to_owned());
    let clean: String = raw.trim().chars().filter(|c| c.is_ascii_alphanumeric() || *c == '-').take(32).collect();
    if clean.is_empty() { "host".to_owned() } else { clean }
}

fn unique_suffix() -> String {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
    format!("{:x}", nanos ^ u128::from(std::process::id()))
}
