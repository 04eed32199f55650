//! Keyset pagination for every list: `?limit=N&cursor=C`, answering `next_cursor` when
//! more items follow. Cursors are opaque to clients: the last key in lower-case hex, so
//! that every cursor the document's pattern allows (`^([0-9a-f]{2})*$`, and for lists
//! keyed by id `^(3[0-9]){1,18}$`, the hex of a decimal id) names a position; a client
//! cannot make one that fails later.

use serde::Deserialize;

use crate::ServiceError;

pub const DEFAULT_LIMIT: u32 = 50;
pub const MAX_LIMIT: u32 = 200;
/// Longer than any key's hex (a template's `name@version` is under 100 bytes).
pub const MAX_CURSOR_CHARS: usize = 512;

/// The query parameters of a list request.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PageParams {
    pub limit: Option<u32>,
    pub cursor: Option<String>,
}

/// A validated page request: the key to start after and how many rows to fetch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageRequest {
    pub after: String,
    pub limit: u32,
}

impl PageRequest {
    pub fn parse(params: &PageParams) -> Result<Self, ServiceError> {
        let limit = params.limit.unwrap_or(DEFAULT_LIMIT);
        if limit == 0 || limit > MAX_LIMIT {
            return Err(ServiceError::invalid(
                "limit",
                format!("limit must be between 1 and {MAX_LIMIT}, not {limit}"),
            ));
        }
        let after = match &params.cursor {
            None => String::new(),
            Some(cursor) => hex::decode(cursor)
                .ok()
                .filter(|_| cursor.len() <= MAX_CURSOR_CHARS)
                .filter(|_| !cursor.bytes().any(|b| b.is_ascii_uppercase()))
                // A key is compared, never shown: bytes that are not UTF-8 still order;
                // NUL is dropped (PostgreSQL's text cannot hold it).
                .map(|mut bytes| {
                    bytes.retain(|b| *b != 0);
                    String::from_utf8_lossy(&bytes).into_owned()
                })
                .ok_or_else(|| {
                    ServiceError::invalid("cursor", "cursor is not one this server handed out; start again without it")
                })?,
        };
        Ok(PageRequest { after, limit })
    }

    /// For newest-first lists keyed by id (audit log, runs): the id to list below, or
    /// `i64::MAX` on the first page.
    pub fn before_id(&self) -> Result<i64, ServiceError> {
        if self.after.is_empty() {
            return Ok(i64::MAX);
        }
        let digits = self.after.len() <= 18 && self.after.bytes().all(|b| b.is_ascii_digit());
        digits.then(|| self.after.parse().ok()).flatten().ok_or_else(|| {
            ServiceError::invalid("cursor", "cursor is not one this server handed out; start again without it")
        })
    }

    /// One more than the page, to learn whether another page follows.
    pub fn fetch_limit(&self) -> i64 {
        i64::from(self.limit) + 1
    }

    /// Trims the extra row and computes the cursor of the next page.
    pub fn finish<T>(&self, mut rows: Vec<T>, key: impl Fn(&T) -> String) -> (Vec<T>, Option<String>) {
        let more = rows.len() > self.limit as usize;
        rows.truncate(self.limit as usize);
        let next = if more { rows.last().map(|row| encode_cursor(&key(row))) } else { None };
        (rows, next)
    }
}

pub fn encode_cursor(key: &str) -> String {
    hex::encode(key.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_round_trip_through_the_cursor() {
        let page = PageRequest::parse(&PageParams { limit: Some(2), cursor: None }).expect("valid");
        assert_eq!(page.fetch_limit(), 3);
        let (items, next) = page.finish(vec!["a", "b", "c"], |s| s.to_string());
        assert_eq!(items, vec!["a", "b"]);
        let next = PageRequest::parse(&PageParams { limit: Some(2), cursor: next }).expect("valid");
        assert_eq!(next.after, "b");
        let (_, last) = next.finish(vec!["c"], |s| s.to_string());
        assert_eq!(last, None);
    }

    #[test]
    fn id_cursors_page_newest_first() {
        let first = PageRequest::parse(&PageParams { limit: Some(2), cursor: None }).expect("valid");
        assert_eq!(first.before_id().expect("first page"), i64::MAX);
        let (ids, next) = first.finish(vec![9_i64, 8, 7], |id| id.to_string());
        assert_eq!(ids, vec![9, 8]);
        let second = PageRequest::parse(&PageParams { limit: Some(2), cursor: next }).expect("valid");
        assert_eq!(second.before_id().expect("id cursor"), 8);
        let named =
            PageRequest::parse(&PageParams { limit: None, cursor: Some(encode_cursor("shop")) }).expect("valid");
        assert!(named.before_id().is_err(), "a name cursor is not an id cursor");
    }

    #[test]
    fn refuses_bad_limits_and_cursors() {
        for limit in [0, MAX_LIMIT + 1] {
            let err = PageRequest::parse(&PageParams { limit: Some(limit), cursor: None }).expect_err("bad limit");
            assert!(matches!(err, ServiceError::Invalid { ref field, .. } if field == "limit"));
        }
        for cursor in ["%%%", "abc", "AB"] {
            let err = PageRequest::parse(&PageParams { limit: None, cursor: Some(cursor.into()) }).expect_err(cursor);
            assert!(matches!(err, ServiceError::Invalid { ref field, .. } if field == "cursor"));
        }
        // Any pairs of hex digits are a position, even bytes no key holds.
        let odd = PageRequest::parse(&PageParams { limit: None, cursor: Some("ff00".into()) }).expect("a position");
        assert_eq!(odd.after, "\u{fffd}");
        let id = PageRequest::parse(&PageParams { limit: None, cursor: Some("3132".into()) }).expect("an id");
        assert_eq!(id.before_id().expect("12"), 12);
        // An id cursor is decimal digits only: "+1", "-1" and 19 digits are not ids.
        for cursor in ["2b31", "2d31", &"31".repeat(19)] {
            let page = PageRequest::parse(&PageParams { limit: None, cursor: Some(cursor.to_owned()) }).expect("hex");
            assert!(page.before_id().is_err(), "{cursor}");
        }
        let long = "61".repeat(MAX_CURSOR_CHARS / 2 + 1);
        assert!(PageRequest::parse(&PageParams { limit: None, cursor: Some(long) }).is_err(), "a bounded cursor");
    }
}
