//! Credentials: argon2id password hashes, signed session tokens (JWT) and API tokens.

pub mod cache;
pub mod jwt;
pub mod password;
pub mod throttle;
pub mod token;
