//! `metadataTest` against the image configuration: environment and labels (exact or a pattern), entrypoint and cmd word for word, working directory, user, exposed ports and volumes.

use std::collections::BTreeMap;

use super::ImageConfig;
use crate::spec::structure::{EnvVar, MetadataTest};

/// The failures of a metadata test, in container-structure-test's order.
pub(super) fn judge(config: &ImageConfig, test: &MetadataTest) -> Vec<String> {
    let mut failures = Vec::new();
    pairs(&mut failures, "environment variable", &test.env_vars, &config.env);
    for var in &test.unbound_env_vars {
        if config.env.contains_key(&var.key) {
            failures.push(format!("environment variable {} is set, expected unset", var.key));
        }
    }
    pairs(&mut failures, "label", &test.labels, &config.labels);
    words(&mut failures, "cmd", test.cmd.as_deref(), &config.cmd);
    words(&mut failures, "entrypoint", test.entrypoint.as_deref(), &config.entrypoint);
    if let Some(want) = test.workdir.as_deref().filter(|w| !w.is_empty())
        && want != config.workdir
    {
        failures.push(format!("workdir is {:?}, expected {want:?}", config.workdir));
    }
    if let Some(want) = test.user.as_deref().filter(|u| !u.is_empty())
        && want != config.user
    {
        failures.push(format!("user is {:?}, expected {want:?}", config.user));
    }
    listed(&mut failures, "port", "exposed", &test.exposed_ports, &config.exposed_ports, true);
    listed(&mut failures, "port", "exposed", &test.unexposed_ports, &config.exposed_ports, false);
    listed(&mut failures, "volume", "a volume", &test.volumes, &config.volumes, true);
    listed(&mut failures, "volume", "a volume", &test.unmounted_volumes, &config.volumes, false);
    failures
}

/// Each pair's key must be there with that value (or a value the pattern
/// matches, with `isRegex`).
fn pairs(failures: &mut Vec<String>, what: &str, want: &[EnvVar], have: &BTreeMap<String, String>) {
    for pair in want {
        let Some(value) = have.get(&pair.key) else {
            failures.push(format!("{what} {} is not set", pair.key));
            continue;
        };
        let matched = if pair.is_regex {
            match regex::Regex::new(&pair.value) {
                Ok(pattern) => pattern.is_match(value),
                Err(e) => {
                    failures.push(format!("{what} {}: invalid regular expression: {e}", pair.key));
                    continue;
                }
            }
        } else {
            *value == pair.value
        };
        if !matched {
            let how = if pair.is_regex { "matching" } else { "" };
            failures.push(format!(
                "{what} {} is {value:?}, expected {how}{}{:?}",
                pair.key,
                if how.is_empty() { "" } else { " " },
                pair.value
            ));
        }
    }
}

fn words(failures: &mut Vec<String>, what: &str, want: Option<&[String]>, have: &[String]) {
    if let Some(want) = want
        && want != have
    {
        failures.push(format!("{what} is {have:?}, expected {want:?}"));
    }
}

fn listed(
    failures: &mut Vec<String>,
    what: &str,
    state: &str,
    names: &[String],
    have: &[String],
    present: bool,
) {
    for name in names {
        if have.contains(name) != present {
            let not = if present { " not" } else { "" };
            failures.push(format!("{what} {name} is{not} {state} (the image has {have:?})"));
        }
    }
}
