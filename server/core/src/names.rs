//! Validated names for users, teams and services: DNS labels, so a name can become a
//! host name (`<service>-<env>.localhost`), a Kubernetes namespace and a path segment
//! without escaping.

use std::fmt;

/// The longest name Slipway accepts. Short enough that `<service>-<env>` stays within
/// the 63 characters of a DNS label.
pub const MAX_NAME_LEN: usize = 40;

/// Why a name was refused; the message says how to fix it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    #[error("must not be empty")]
    Empty,
    #[error("is {len} characters long; the maximum is {MAX_NAME_LEN}")]
    TooLong { len: usize },
    #[error("must start with a lower-case letter (a-z)")]
    BadStart,
    #[error("contains {0:?}; use only lower-case letters, digits and '-'")]
    BadChar(char),
    #[error("must not end with '-'")]
    TrailingHyphen,
}

/// Checks the DNS-label rule `[a-z][a-z0-9-]{0,39}` without a trailing hyphen.
pub fn validate_name(name: &str) -> Result<(), NameError> {
    let first = name.chars().next().ok_or(NameError::Empty)?;
    let len = name.chars().count();
    if len > MAX_NAME_LEN {
        return Err(NameError::TooLong { len });
    }
    if !first.is_ascii_lowercase() {
        return Err(NameError::BadStart);
    }
    if let Some(bad) = name.chars().find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-')) {
        return Err(NameError::BadChar(bad));
    }
    if name.ends_with('-') {
        return Err(NameError::TrailingHyphen);
    }
    Ok(())
}

macro_rules! name_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
        #[serde(transparent)]
        pub struct $name(String);

        /// Quoted as users write the name (`"shop"`), not as a Rust value: messages
        /// format names with `{:?}` so that what a user typed is shown escaped.
        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Debug::fmt(self.0.as_str(), f)
            }
        }

        impl $name {
            pub fn parse(s: &str) -> Result<Self, NameError> {
                validate_name(s)?;
                Ok(Self(s.to_owned()))
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }

            pub fn into_string(self) -> String {
                self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }
    };
}

name_type!(
    /// A service's name: also its git repository and part of its environments' host names.
    ServiceName
);
name_type!(
    /// A team's name.
    TeamName
);
name_type!(
    /// A user's login name.
    Username
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_name_in_a_message_reads_as_the_user_wrote_it() {
        let name = ServiceName::parse("shop").unwrap();
        assert_eq!(format!("service {name:?} already exists"), "service \"shop\" already exists");
        assert_eq!(format!("{:?}", TeamName::parse("payments").unwrap()), "\"payments\"");
    }

    #[test]
    fn accepts_dns_labels() {
        for ok in ["a", "shop", "shop-api", "a1", "payments-2", &"a".repeat(40)] {
            assert_eq!(validate_name(ok), Ok(()), "{ok}");
        }
    }

    #[test]
    fn refuses_everything_else_with_the_reason() {
        let cases: &[(&str, NameError)] = &[
            ("", NameError::Empty),
            ("Shop", NameError::BadStart),
            ("1shop", NameError::BadStart),
            ("-shop", NameError::BadStart),
            ("shOp", NameError::BadChar('O')),
            ("shop/api", NameError::BadChar('/')),
            ("..", NameError::BadStart),
            ("a..b", NameError::BadChar('.')),
            ("shop_api", NameError::BadChar('_')),
            ("shop-", NameError::TrailingHyphen),
            ("caf\u{e9}", NameError::BadChar('\u{e9}')),
        ];
        for (input, want) in cases {
            assert_eq!(validate_name(input).as_ref(), Err(want), "{input:?}");
        }
        assert_eq!(validate_name(&"a".repeat(41)), Err(NameError::TooLong { len: 41 }));
    }

    #[test]
    fn typed_names_keep_their_text() {
        let name = ServiceName::parse("shop").expect("valid");
        assert_eq!(name.as_str(), "shop");
        assert_eq!(name.to_string(), "shop");
        assert!(TeamName::parse("Payments").is_err());
    }
}
