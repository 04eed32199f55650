//! One module per command group; each function runs one subcommand.

pub mod audit;
pub mod auth;
pub mod catalog;
pub mod clusters;
pub mod config_vars;
pub mod environments;
pub mod git_credential;
pub mod quotas;
pub mod runs;
pub mod services;
pub mod teams;
pub mod templates;
pub mod tokens;
pub mod users;

use crate::client::Client;
use crate::config;
use crate::error::CliError;

/// A client for a command that needs a signed-in user.
pub fn signed_in_client() -> Result<Client, CliError> {
    let target = config::target()?;
    let token = target.token.ok_or_else(|| {
        CliError::usage("not logged in: run `slipway login --server URL --username NAME` or set SLIPWAY_TOKEN")
    })?;
    Client::new(&target.server, Some(token))
}

/// Reads a password: the first line of stdin with `--password-stdin`, else a prompt on
/// the terminal without echo.
pub fn read_password(from_stdin: bool, prompt: &str) -> Result<String, CliError> {
    let password = if from_stdin {
        let mut line = String::new();
        std::io::stdin()
            .read_line(&mut line)
            .map_err(|e| CliError::usage(format!("reading the password from stdin: {e}")))?;
        line.trim_end_matches(['\r', '\n']).to_owned()
    } else {
        rpassword::prompt_password(prompt)
            .map_err(|_| CliError::usage("no terminal to ask for a password on; pass it with --password-stdin"))?
    };
    if password.is_empty() {
        return Err(CliError::usage("the password is empty"));
    }
    Ok(password)
}
