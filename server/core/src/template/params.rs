//! Typed template parameters: their declaration (type, default, bounds, pattern, enum
//! values) and the checks a given value must pass. Errors name the parameter, the value
//! and the rule.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The longest parameter name.
pub const MAX_PARAM_NAME: usize = 40;
/// The longest string value a parameter takes.
pub const MAX_STRING_VALUE: usize = 1024;
/// Compiled patterns are bounded, so a template cannot make validation slow.
const PATTERN_SIZE_LIMIT: usize = 64 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ParamType {
    String,
    Integer,
    Boolean,
    Enum,
}

impl std::fmt::Display for ParamType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ParamType::String => "string",
            ParamType::Integer => "integer",
            ParamType::Boolean => "boolean",
            ParamType::Enum => "enum",
        })
    }
}

/// One declared parameter.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Parameter {
    #[serde(rename = "type")]
    pub kind: ParamType,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub minimum: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub maximum: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pattern: Option<String>,
    /// The allowed values of an `enum` parameter.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub values: Vec<String>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    #[serde(default)]
    pub required: bool,
}

/// A value a parameter refused, or a parameter that is missing or unknown.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParamError {
    #[error("parameter {name:?} is not declared by the template (it declares: {declared})")]
    Unknown { name: String, declared: String },
    #[error("parameter {name:?} is required; give it with --set {name}=VALUE")]
    Missing { name: String },
    #[error("parameter {name:?}: {value} is not a valid {expected} value")]
    WrongType { name: String, value: String, expected: ParamType },
    #[error("parameter {name:?}: {value} is below the minimum {minimum}")]
    BelowMinimum { name: String, value: i64, minimum: i64 },
    #[error("parameter {name:?}: {value} is above the maximum {maximum}")]
    AboveMaximum { name: String, value: i64, maximum: i64 },
    #[error("parameter {name:?}: {value:?} does not match the pattern {pattern}")]
    PatternMismatch { name: String, value: String, pattern: String },
    #[error("parameter {name:?}: {value:?} is not one of {allowed}")]
    NotAllowed { name: String, value: String, allowed: String },
    #[error("parameter {name:?}: the value is longer than {MAX_STRING_VALUE} characters")]
    TooLong { name: String },
    #[error("parameter {name:?}: the value holds a control character; give one line of text")]
    ControlChar { name: String },
}

impl ParamError {
    /// The parameter the error is about.
    pub fn parameter(&self) -> &str {
        match self {
            ParamError::Unknown { name, .. }
            | ParamError::Missing { name }
            | ParamError::WrongType { name, .. }
            | ParamError::BelowMinimum { name, .. }
            | ParamError::AboveMaximum { name, .. }
            | ParamError::PatternMismatch { name, .. }
            | ParamError::NotAllowed { name, .. }
            | ParamError::TooLong { name }
            | ParamError::ControlChar { name } => name,
        }
    }
}

fn show(value: &Value) -> String {
    match value {
        Value::String(s) => format!("{s:?}"),
        other => other.to_string(),
    }
}

pub(crate) fn compile_pattern(pattern: &str) -> Result<regex::Regex, regex::Error> {
    regex::RegexBuilder::new(pattern).size_limit(PATTERN_SIZE_LIMIT).build()
}

impl Parameter {
    /// Checks the declaration itself; answers why it is malformed.
    pub(crate) fn check_declaration(&self, name: &str) -> Result<(), String> {
        let valid_name = name.len() <= MAX_PARAM_NAME
            && name.chars().next().is_some_and(|c| c.is_ascii_lowercase() || c == '_')
            && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
        if !valid_name {
            return Err(format!(
                "parameter name {name:?} is not valid: use lower-case letters, digits and '_', at most {MAX_PARAM_NAME}"
            ));
        }
        if self.kind != ParamType::Integer && (self.minimum.is_some() || self.maximum.is_some()) {
            return Err(format!("parameter {name:?}: minimum and maximum apply to integer parameters only"));
        }
        if let (Some(min), Some(max)) = (self.minimum, self.maximum)
            && min > max
        {
            return Err(format!("parameter {name:?}: minimum {min} is above maximum {max}"));
        }
        match (&self.pattern, self.kind) {
            (Some(_), kind) if kind != ParamType::String => {
                return Err(format!("parameter {name:?}: pattern applies to string parameters only"));
            }
            (Some(pattern), _) => {
                compile_pattern(pattern)
                    .map_err(|e| format!("parameter {name:?}: pattern {pattern:?} is not valid: {e}"))?;
            }
            _ => {}
        }
        if self.kind == ParamType::Enum && self.values.is_empty() {
            return Err(format!("parameter {name:?}: an enum needs a list of values"));
        }
        if self.kind != ParamType::Enum && !self.values.is_empty() {
            return Err(format!("parameter {name:?}: values apply to enum parameters only"));
        }
        if self.required && self.default.is_some() {
            return Err(format!("parameter {name:?}: a required parameter cannot have a default"));
        }
        if let Some(default) = &self.default {
            self.check(name, default).map_err(|e| format!("the default of {e}"))?;
        }
        Ok(())
    }

    /// Turns a given value into the parameter's type and checks its rules. Strings are
    /// parsed for integer and boolean parameters (`--set replicas=3` arrives as text).
    pub fn check(&self, name: &str, value: &Value) -> Result<Value, ParamError> {
        let wrong = || ParamError::WrongType { name: name.to_owned(), value: show(value), expected: self.kind };
        match self.kind {
            ParamType::Integer => {
                let n = match value {
                    Value::Number(n) => n.as_i64().ok_or_else(wrong)?,
                    Value::String(s) => s.trim().parse::<i64>().map_err(|_| wrong())?,
                    _ => return Err(wrong()),
                };
                if let Some(minimum) = self.minimum
                    && n < minimum
                {
                    return Err(ParamError::BelowMinimum { name: name.to_owned(), value: n, minimum });
                }
                if let Some(maximum) = self.maximum
                    && n > maximum
                {
                    return Err(ParamError::AboveMaximum { name: name.to_owned(), value: n, maximum });
                }
                Ok(Value::from(n))
            }
            ParamType::Boolean => match value {
                Value::Bool(b) => Ok(Value::Bool(*b)),
                Value::String(s) if s == "true" => Ok(Value::Bool(true)),
                Value::String(s) if s == "false" => Ok(Value::Bool(false)),
                _ => Err(wrong()),
            },
            ParamType::String => {
                let Value::String(s) = value else { return Err(wrong()) };
                if s.chars().count() > MAX_STRING_VALUE {
                    return Err(ParamError::TooLong { name: name.to_owned() });
                }
                // A value ends up in a spec, a label or an environment variable, and
                // stored text cannot hold NUL.
                if s.chars().any(char::is_control) {
                    return Err(ParamError::ControlChar { name: name.to_owned() });
                }
                if let Some(pattern) = &self.pattern {
                    // Declarations are checked at publish, so the pattern compiles.
                    let matches = compile_pattern(pattern).map(|re| re.is_match(s)).unwrap_or(false);
                    if !matches {
                        return Err(ParamError::PatternMismatch {
                            name: name.to_owned(),
                            value: s.clone(),
                            pattern: pattern.clone(),
                        });
                    }
                }
                Ok(value.clone())
            }
            ParamType::Enum => {
                let Value::String(s) = value else { return Err(wrong()) };
                if !self.values.contains(s) {
                    return Err(ParamError::NotAllowed {
                        name: name.to_owned(),
                        value: s.clone(),
                        allowed: self.values.join(", "),
                    });
                }
                Ok(value.clone())
            }
        }
    }

    /// The value a rendering check uses before anyone gives values: the default, null for
    /// an optional parameter (what leaving it out renders), else a value of its type.
    pub(crate) fn sample(&self) -> Value {
        if let Some(default) = &self.default {
            return default.clone();
        }
        if !self.required {
            return Value::Null;
        }
        match self.kind {
            ParamType::Integer => {
                let low = self.minimum.unwrap_or(0);
                Value::from(self.maximum.map_or(low, |max| low.min(max)))
            }
            ParamType::Boolean => Value::Bool(false),
            ParamType::Enum => Value::String(self.values.first().cloned().unwrap_or_default()),
            // A pattern-bound string without default: the rendering check still needs a string.
            ParamType::String => Value::String("sample".to_owned()),
        }
    }
}

/// Resolves the values for a set of declared parameters: unknown names are refused, given
/// values checked and typed, missing ones take their default; a required one must be
/// given; an optional one without default renders as null.
pub fn resolve(
    declared: &BTreeMap<String, Parameter>,
    given: &BTreeMap<String, Value>,
) -> Result<BTreeMap<String, Value>, ParamError> {
    if let Some(name) = given.keys().find(|name| !declared.contains_key(*name)) {
        let names: Vec<&str> = declared.keys().map(String::as_str).collect();
        let declared = if names.is_empty() { "none".to_owned() } else { names.join(", ") };
        return Err(ParamError::Unknown { name: name.clone(), declared });
    }
    let mut values = BTreeMap::new();
    for (name, parameter) in declared {
        let value = match (given.get(name), &parameter.default) {
            (Some(value), _) => parameter.check(name, value)?,
            (None, Some(default)) => parameter.check(name, default)?,
            (None, None) if parameter.required => return Err(ParamError::Missing { name: name.clone() }),
            (None, None) => Value::Null,
        };
        values.insert(name.clone(), value);
    }
    Ok(values)
}
