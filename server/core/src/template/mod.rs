//! Environment templates: the typed, versioned YAML documents the platform team
//! publishes and developers create environments from. [`Template::parse`] reads and checks
//! a document (YAML errors carry line and column); [`Template::render`] turns parameter
//! values into a [`Spec`]. Rendering only substitutes `${name}` placeholders: it is
//! deterministic and cannot run code. A placeholder that is a whole YAML value keeps the
//! parameter's type (`replicas: "${replicas}"` renders an integer); inside other text it
//! is interpolated; `$${` writes a literal `${`.

mod params;
mod spec;

use std::collections::BTreeMap;
use std::fmt;

use serde::Deserialize;
use serde_json::Value;

pub use params::{MAX_PARAM_NAME, ParamError, ParamType, Parameter, resolve};
pub use spec::{
    Addon, AddonKind, Autoscale, MAX_REPLICAS, Policy, Spec, SpecError, WEB, Workload, cpu_nanos, memory_bytes,
    parse_duration,
};

use crate::names::validate_name;

pub const API_VERSION: &str = "slipway.dev/v1";
pub const KIND: &str = "EnvironmentTemplate";
/// The largest template document accepted.
pub const MAX_TEMPLATE_BYTES: usize = 64 * 1024;

/// A template version `MAJOR.MINOR.PATCH`, ordered numerically.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Version {
    pub major: u32,
    pub minor: u32,
    pub patch: u32,
}

impl Version {
    pub fn parse(text: &str) -> Option<Version> {
        let mut parts = text.split('.');
        let mut next = || {
            let part = parts.next()?;
            // No leading zeros, no signs: one spelling per version.
            // At most nine digits, so that every version the API's pattern allows is one.
            if part.is_empty()
                || part.len() > 9
                || (part.len() > 1 && part.starts_with('0'))
                || !part.bytes().all(|b| b.is_ascii_digit())
            {
                return None;
            }
            part.parse().ok()
        };
        let version = Version { major: next()?, minor: next()?, patch: next()? };
        parts.next().is_none().then_some(version)
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)
    }
}

/// `NAME` or `NAME@VERSION`, as `--template` takes it.
pub fn parse_reference(text: &str) -> Result<(String, Option<Version>), String> {
    let (name, version) = match text.split_once('@') {
        Some((name, version)) => {
            let parsed = Version::parse(version)
                .ok_or_else(|| format!("template version {version:?} is not a version like 1.2.0"))?;
            (name, Some(parsed))
        }
        None => (text, None),
    };
    validate_name(name).map_err(|e| format!("template name {name:?} {e}"))?;
    Ok((name.to_owned(), version))
}

/// Why a template document was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    #[error("line {line}, column {column}: {message}")]
    Yaml { line: usize, column: usize, message: String },
    #[error("the template is larger than {MAX_TEMPLATE_BYTES} bytes")]
    TooLarge,
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    Spec(#[from] SpecError),
}

/// Why a rendering failed: a parameter value, or a spec the values made invalid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RenderError {
    #[error("{0}")]
    Parameter(#[from] ParamError),
    #[error("{0}")]
    Spec(#[from] SpecError),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct Document {
    api_version: String,
    kind: String,
    metadata: Metadata,
    #[serde(default)]
    parameters: BTreeMap<String, Parameter>,
    spec: serde_yaml_ng::Value,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Metadata {
    name: String,
    version: String,
    #[serde(default)]
    description: String,
}

/// A checked template.
#[derive(Debug, Clone)]
pub struct Template {
    pub name: String,
    pub version: Version,
    pub description: String,
    pub parameters: BTreeMap<String, Parameter>,
    spec: Value,
}

impl Template {
    /// Reads and checks a template document: its shape, its parameters (defaults obey
    /// their own rules), its placeholders (each names a parameter) and that it renders a
    /// valid spec with default or sample values.
    pub fn parse(source: &str) -> Result<Template, TemplateError> {
        if source.len() > MAX_TEMPLATE_BYTES {
            return Err(TemplateError::TooLarge);
        }
        let doc: Document = serde_yaml_ng::from_str(source).map_err(|e| {
            let (line, column) = e.location().map_or((0, 0), |l| (l.line(), l.column()));
            // The library's message repeats the position; keep the part before it.
            let message = e.to_string();
            let message = message.split(" at line ").next().unwrap_or(&message).to_owned();
            TemplateError::Yaml { line, column, message }
        })?;
        if doc.api_version != API_VERSION {
            return Err(TemplateError::Invalid(format!("apiVersion must be {API_VERSION}, not {:?}", doc.api_version)));
        }
        if doc.kind != KIND {
            return Err(TemplateError::Invalid(format!("kind must be {KIND}, not {:?}", doc.kind)));
        }
        validate_name(&doc.metadata.name)
            .map_err(|e| TemplateError::Invalid(format!("metadata.name {:?} {e}", doc.metadata.name)))?;
        let version = Version::parse(&doc.metadata.version).ok_or_else(|| {
            TemplateError::Invalid(format!("metadata.version {:?} is not a version like 1.2.0", doc.metadata.version))
        })?;
        if doc.metadata.description.chars().count() > 500 {
            return Err(TemplateError::Invalid("metadata.description is longer than 500 characters".to_owned()));
        }
        for (name, parameter) in &doc.parameters {
            parameter.check_declaration(name).map_err(TemplateError::Invalid)?;
        }
        let spec =
            serde_json::to_value(&doc.spec).map_err(|e| TemplateError::Invalid(format!("spec cannot be read: {e}")))?;
        let mut unknown = Vec::new();
        visit_placeholders(&spec, "spec", &mut |path, name| {
            if !doc.parameters.contains_key(name) {
                unknown.push(format!("{path} uses ${{{name}}}, which is not a declared parameter"));
            }
        });
        if let Some(first) = unknown.into_iter().next() {
            return Err(TemplateError::Invalid(first));
        }
        let template = Template {
            name: doc.metadata.name,
            version,
            description: doc.metadata.description,
            parameters: doc.parameters,
            spec,
        };
        let samples = template.parameters.iter().map(|(n, p)| (n.clone(), p.sample())).collect();
        template.render_values(&samples)?;
        Ok(template)
    }

    /// Renders the spec for the given parameter values (typed or text).
    pub fn render(&self, given: &BTreeMap<String, Value>) -> Result<(BTreeMap<String, Value>, Spec), RenderError> {
        let values = resolve(&self.parameters, given)?;
        let spec = self.render_values(&values)?;
        Ok((values, spec))
    }

    fn render_values(&self, values: &BTreeMap<String, Value>) -> Result<Spec, SpecError> {
        let rendered = substitute(&self.spec, values);
        let spec: Spec = serde_path_to_error::deserialize(rendered).map_err(|e| {
            let path = e.path().to_string();
            let path = if path == "." { "spec".to_owned() } else { format!("spec.{path}") };
            SpecError { path, message: e.into_inner().to_string() }
        })?;
        spec.validate()?;
        Ok(spec)
    }
}

/// Calls `found(path, name)` for every `${name}` in the spec's strings.
fn visit_placeholders(value: &Value, path: &str, found: &mut impl FnMut(&str, &str)) {
    match value {
        Value::String(s) => {
            for name in placeholders(s) {
                found(path, name);
            }
        }
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                visit_placeholders(item, &format!("{path}[{i}]"), found);
            }
        }
        Value::Object(map) => {
            for (key, item) in map {
                visit_placeholders(item, &format!("{path}.{key}"), found);
            }
        }
        _ => {}
    }
}

/// The parameter names a string refers to (`$${` escapes).
fn placeholders(text: &str) -> Vec<&str> {
    let mut names = Vec::new();
    let mut rest = text;
    while let Some(at) = rest.find('$') {
        let after = &rest[at + 1..];
        if let Some(escaped) = after.strip_prefix("${") {
            rest = escaped;
        } else if let Some(open) = after.strip_prefix('{') {
            match open.find('}') {
                Some(end) => {
                    names.push(&open[..end]);
                    rest = &open[end + 1..];
                }
                None => break,
            }
        } else {
            rest = after;
        }
    }
    names
}

/// Replaces placeholders: a string that is one placeholder becomes the typed value.
fn substitute(value: &Value, values: &BTreeMap<String, Value>) -> Value {
    match value {
        Value::String(s) => {
            if let Some(name) = s.strip_prefix("${").and_then(|r| r.strip_suffix('}'))
                && !name.contains(['$', '{', '}'])
            {
                return values.get(name).cloned().unwrap_or(Value::Null);
            }
            Value::String(interpolate(s, values))
        }
        Value::Array(items) => Value::Array(items.iter().map(|v| substitute(v, values)).collect()),
        Value::Object(map) => Value::Object(map.iter().map(|(k, v)| (k.clone(), substitute(v, values))).collect()),
        other => other.clone(),
    }
}

fn interpolate(text: &str, values: &BTreeMap<String, Value>) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        if let Some(escaped) = after.strip_prefix("${") {
            out.push_str("${");
            rest = escaped;
        } else if let Some(open) = after.strip_prefix('{')
            && let Some(end) = open.find('}')
        {
            match values.get(&open[..end]) {
                Some(Value::String(s)) => out.push_str(s),
                Some(Value::Null) | None => {}
                Some(other) => out.push_str(&other.to_string()),
            }
            rest = &open[end + 1..];
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests;
