//! `config set|list|unset`: an environment's config vars and secrets.

use std::collections::BTreeMap;
use std::io::Read;

use slipway_api::{Config, ConfigChange, ConfigChanged};

use super::runs::follow_to_end;
use super::signed_in_client;
use crate::client::{Client, encode};
use crate::error::CliError;
use crate::output;

fn path(service: &str, env: &str) -> String {
    format!("/services/{}/environments/{}/config", encode(service), encode(env))
}

/// `KEY=VALUE` pairs; with `--secret`, a lone `KEY` takes its value from stdin, so a
/// secret need not appear in the shell history or the process list.
fn parse_pairs(pairs: &[String], secret: bool) -> Result<BTreeMap<String, String>, CliError> {
    let mut set = BTreeMap::new();
    let mut from_stdin = None;
    for pair in pairs {
        let (key, value) = match pair.split_once('=') {
            Some((key, value)) => (key.to_owned(), value.to_owned()),
            None if secret && from_stdin.is_none() => {
                from_stdin = Some(pair.clone());
                (pair.clone(), read_stdin()?)
            }
            None if secret => return Err(CliError::usage("only one secret KEY can take its value from stdin")),
            None => return Err(CliError::usage(format!("{pair:?} is not KEY=VALUE"))),
        };
        if key.is_empty() {
            return Err(CliError::usage(format!("{pair:?} has no key before '='")));
        }
        if set.insert(key.clone(), value).is_some() {
            return Err(CliError::usage(format!("{key} is given twice")));
        }
    }
    Ok(set)
}

fn read_stdin() -> Result<String, CliError> {
    let mut value = String::new();
    std::io::stdin()
        .read_to_string(&mut value)
        .map_err(|e| CliError::usage(format!("reading the secret from stdin: {e}")))?;
    Ok(value.strip_suffix('\n').map(|v| v.strip_suffix('\r').unwrap_or(v)).unwrap_or(&value).to_owned())
}

pub async fn list(service: String, env: String, json: bool) -> Result<(), CliError> {
    let config: Config = signed_in_client()?.get(&path(&service, &env)).await?;
    if json {
        return output::json(&config);
    }
    if config.vars.is_empty() {
        eprintln!("{service} {env} has no config vars (set some with `slipway config set {service} {env} KEY=VALUE`)");
        return Ok(());
    }
    let rows = config.vars.into_iter().map(|v| vec![v.key, v.value.unwrap_or_else(|| "(secret)".to_owned())]).collect();
    output::table(&["key", "value"], rows);
    Ok(())
}

pub async fn set(service: String, env: String, pairs: Vec<String>, secret: bool, json: bool) -> Result<(), CliError> {
    let set = parse_pairs(&pairs, secret)?;
    let keys: Vec<String> = set.keys().cloned().collect();
    let change = ConfigChange { set, secret, unset: Vec::new() };
    apply(&service, &env, &change, &format!("Set {}", keys.join(", ")), json).await
}

pub async fn unset(service: String, env: String, keys: Vec<String>, json: bool) -> Result<(), CliError> {
    let message = format!("Unset {}", keys.join(", "));
    let change = ConfigChange { set: BTreeMap::new(), secret: false, unset: keys };
    apply(&service, &env, &change, &message, json).await
}

async fn apply(service: &str, env: &str, change: &ConfigChange, message: &str, json: bool) -> Result<(), CliError> {
    let client: Client = signed_in_client()?;
    let changed: ConfigChanged = client.patch(&path(service, env), change).await?;
    if json {
        return output::json(&changed);
    }
    eprintln!("{message} on {service} {env} (config v{})", changed.config.version);
    match changed.run {
        Some(run) => {
            eprintln!("-----> Run {}: deploying {env} with the new config", run.id);
            follow_to_end(&client, run.id).await
        }
        None => {
            eprintln!("{env} has no release yet; the config applies from its first deploy");
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_split_at_the_first_equals_sign() {
        let set = parse_pairs(&["A=1".into(), "URL=postgres://x?a=b".into(), "EMPTY=".into()], false).unwrap();
        assert_eq!(set["A"], "1");
        assert_eq!(set["URL"], "postgres://x?a=b");
        assert_eq!(set["EMPTY"], "");
        assert!(parse_pairs(&["NOVALUE".into()], false).is_err());
        assert!(parse_pairs(&["=x".into()], false).is_err());
        assert!(parse_pairs(&["A=1".into(), "A=2".into()], false).is_err());
    }
}
