//! `users create | list` (creating users is for admins).

use slipway_api::{CreateUser, User};

use super::{read_password, signed_in_client};
use crate::error::CliError;
use crate::output::{self, short_time};

pub async fn create(username: String, admin: bool, password_stdin: bool, json: bool) -> Result<(), CliError> {
    let client = signed_in_client()?;
    let password = read_password(password_stdin, &format!("Password for the new user {username}: "))?;
    let user: User = client.post("/users", &CreateUser { username, password, admin }).await?;
    if json {
        return output::json(&user);
    }
    let role = if user.admin { "admin" } else { "developer" };
    println!("Created user {} ({role})", user.username);
    Ok(())
}

pub async fn list(json: bool) -> Result<(), CliError> {
    let users: Vec<User> = signed_in_client()?.list_all("/users").await?;
    if json {
        return output::json(&users);
    }
    let rows = users
        .into_iter()
        .map(|u| vec![u.username, if u.admin { "admin" } else { "developer" }.to_owned(), short_time(&u.created_at)])
        .collect();
    output::table(&["username", "role", "created"], rows);
    Ok(())
}
