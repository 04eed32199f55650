//! `slipway git-credential`: git's credential-helper protocol, so that
//! `git config credential.helper '!slipway git-credential'` makes `git push` use the
//! stored API token, as `gh auth git-credential` does. Only `get` answers; `store` and
//! `erase` are accepted and ignored (the token is managed by `login`/`logout`).

use std::io::BufRead;

use crate::config;
use crate::error::CliError;

/// The fields git sends that matter here.
#[derive(Debug, Default, PartialEq, Eq)]
struct Request {
    protocol: String,
    host: String,
}

fn parse(input: impl BufRead) -> Request {
    let mut request = Request::default();
    for line in input.lines().map_while(Result::ok) {
        if line.is_empty() {
            break;
        }
        match line.split_once('=') {
            Some(("protocol", v)) => request.protocol = v.to_owned(),
            Some(("host", v)) => request.host = v.to_owned(),
            _ => {}
        }
    }
    request
}

/// `protocol` and `host[:port]` of the configured server.
fn server_origin(server: &str) -> Option<(String, String)> {
    let url = url::Url::parse(server).ok()?;
    let host = url.host_str()?;
    let host = match url.port() {
        Some(port) => format!("{host}:{port}"),
        None => host.to_owned(),
    };
    Some((url.scheme().to_owned(), host))
}

pub fn run(operation: &str) -> Result<(), CliError> {
    let request = parse(std::io::stdin().lock());
    if operation != "get" {
        return Ok(());
    }
    let target = config::target()?;
    let Some(token) = target.token else {
        // Nothing to offer: git falls through to its other helpers or a prompt.
        return Ok(());
    };
    if server_origin(&target.server) == Some((request.protocol, request.host)) {
        println!("username=slipway\npassword={token}\n");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_git_requests_and_matches_the_server() {
        let input = "protocol=http\nhost=127.0.0.1:7700\npath=git/shop.git\n\n";
        let request = parse(input.as_bytes());
        assert_eq!(request, Request { protocol: "http".into(), host: "127.0.0.1:7700".into() });
        assert_eq!(server_origin("http://127.0.0.1:7700"), Some(("http".to_owned(), "127.0.0.1:7700".to_owned())));
        assert_eq!(server_origin("https://slipway.example.com"), Some(("https".into(), "slipway.example.com".into())));
    }
}
