//! Validators and conditional requests (RFC 9110 §8.8, §13): the `ETag` and `Last-Modified` of a
//! file, `If-None-Match` and `If-Modified-Since` (304) and `If-Range`. Layer 4, the HTTP server.
//!
//! The entity tag is strong: `"<mtime seconds>.<mtime nanoseconds>-<size>"`, each in lowercase hex,
//! e.g. `"6553f1a2.1dcd6500-400"`. It comes from the one `fstat` of the open file, costs no read of
//! the content, and changes whenever the file is rewritten (the nanoseconds catch rewrites within the
//! same second on file systems that keep them). Strong, so `If-Range` can use it to resume downloads
//! (RFC 9110 §13.1.5 accepts only strong tags there); `If-None-Match` compares weakly, so a `W/` form
//! of the same tag matches too.

use std::fs::Metadata;
use std::time::SystemTime;

use crate::sys::stat::FileStat;

use super::request::{Request, trim};

/// The last second `httpdate` can format (31 Dec 9999 23:59:59 UTC); later times are clamped to it.
pub(crate) const LAST_FORMATTABLE_SECOND: u64 = 253_402_300_799;

/// The validators of one version of a file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Validators {
    /// The quoted entity tag, in `etag[..etag_len]`.
    etag: [u8; 48],
    /// How many bytes of `etag` are used.
    etag_len: usize,
    /// The modification time in whole seconds since the epoch, clamped to what HTTP dates can express.
    modified: u64,
}

impl Validators {
    /// The validators of the file `metadata` describes.
    pub(crate) fn new(metadata: &Metadata) -> Validators {
        Validators::from_stat(&FileStat::from(metadata))
    }

    /// The validators of the file `stat` describes (a modification time before 1970 counts as 1970).
    pub(crate) fn from_stat(stat: &FileStat) -> Validators {
        let (seconds, nanoseconds) = match u64::try_from(stat.mtime.0) {
            Ok(seconds) => (seconds, stat.mtime.1),
            Err(_) => (0, 0),
        };
        Validators::from_parts(seconds, nanoseconds, stat.size)
    }

    fn from_parts(seconds: u64, nanoseconds: u32, size: u64) -> Validators {
        let mut etag = [0; 48];
        let mut len = 0;
        let mut push = |byte: u8| {
            etag[len] = byte;
            len += 1;
        };
        push(b'"');
        push_hex(&mut push, seconds);
        push(b'.');
        push_hex(&mut push, u64::from(nanoseconds));
        push(b'-');
        push_hex(&mut push, size);
        push(b'"');
        Validators {
            etag,
            etag_len: len,
            modified: seconds.min(LAST_FORMATTABLE_SECOND),
        }
    }

    /// The entity tag, quotes included, ready for an `ETag` field.
    pub(crate) fn etag(&self) -> &[u8] {
        &self.etag[..self.etag_len]
    }

    /// The modification time in whole seconds since the epoch, as `Last-Modified` states it.
    pub(crate) fn modified(&self) -> u64 {
        self.modified
    }
}

/// At most 16 hex digits for a u64: 2 quotes + 16 + 1 + 8 + 1 + 16 = 44 bytes fit in the array.
fn push_hex(push: &mut impl FnMut(u8), value: u64) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let digits = (64 - value.leading_zeros()).div_ceil(4).max(1);
    for index in (0..digits).rev() {
        push(DIGITS[((value >> (index * 4)) & 0xf) as usize]);
    }
}

/// Whether the request's preconditions say the client's copy is current, so the answer is 304
/// (RFC 9110 §13.2.2, steps 3 and 4; the server does not evaluate `If-Match` or
/// `If-Unmodified-Since`).
///
/// `If-None-Match` decides when present: `*` matches any file, otherwise any listed tag equal to ours
/// under weak comparison; an unparsable list matches nothing. Only without it is `If-Modified-Since`
/// used: 304 when the file was not modified after the given date — a date in the future counts too.
/// An invalid date is ignored.
pub(crate) fn is_not_modified(request: &Request<'_>, validators: &Validators) -> bool {
    if request.has_if_none_match() {
        return request.if_none_match().any(|line| {
            let mut matched = false;
            let valid = for_each_tag(line, |tag| {
                matched |= match tag {
                    Tag::Any => true,
                    Tag::Entity { opaque, .. } => opaque == validators.etag(),
                };
            });
            valid && matched
        });
    }
    match request.if_modified_since().and_then(parse_date) {
        Some(since) => validators.modified() <= since,
        None => false,
    }
}

/// Whether an `If-Range` value lets a range request proceed (RFC 9110 §13.1.5): a strong entity tag
/// equal to ours, or an HTTP date equal to our `Last-Modified`. Anything else — a weak tag, another
/// date, garbage — means the client's copy is stale, and the whole file is sent with 200.
pub(crate) fn if_range_holds(value: &[u8], validators: &Validators) -> bool {
    let value = trim(value);
    if value.first() == Some(&b'"') || value.starts_with(b"W/") {
        let mut tags = 0;
        let mut holds = false;
        let valid = for_each_tag(value, |tag| {
            tags += 1;
            holds =
                matches!(tag, Tag::Entity { weak: false, opaque } if opaque == validators.etag());
        });
        return valid && tags == 1 && holds;
    }
    parse_date(value) == Some(validators.modified())
}

/// One member of an `If-None-Match` list.
#[derive(Debug, PartialEq, Eq)]
enum Tag<'a> {
    /// `*`.
    Any,
    /// An entity tag; `opaque` keeps its quotes.
    Entity { weak: bool, opaque: &'a [u8] },
}

/// Calls `each` for every member of a `#entity-tag` list (RFC 9110 §8.8.3); returns false (after
/// reporting the members before it) when the list is malformed.
fn for_each_tag<'a>(mut list: &'a [u8], mut each: impl FnMut(Tag<'a>)) -> bool {
    loop {
        list = trim_start_list(list);
        if list.is_empty() {
            return true;
        }
        if let Some(rest) = list.strip_prefix(b"*") {
            each(Tag::Any);
            list = rest;
        } else {
            let (weak, quoted) = match list.strip_prefix(b"W/") {
                Some(rest) => (true, rest),
                None => (false, list),
            };
            let Some(inside) = quoted.strip_prefix(b"\"") else {
                return false;
            };
            let Some(close) = inside.iter().position(|&byte| byte == b'"') else {
                return false;
            };
            // etagc: '!' and '#'..='~' and obs-text; no spaces or controls.
            if !inside[..close]
                .iter()
                .all(|&byte| byte == b'!' || (byte >= b'#' && byte != 0x7f))
            {
                return false;
            }
            each(Tag::Entity {
                weak,
                opaque: &quoted[..close + 2],
            });
            list = &inside[close + 1..];
        }
        list = trim(list);
        match list.first() {
            None => return true,
            Some(b',') => {}
            Some(_) => return false,
        }
    }
}

fn trim_start_list(mut list: &[u8]) -> &[u8] {
    while let [b' ' | b'\t' | b',', rest @ ..] = list {
        list = rest;
    }
    list
}

/// An HTTP date (IMF-fixdate, RFC 850 or asctime form) in whole seconds since the epoch.
fn parse_date(value: &[u8]) -> Option<u64> {
    let text = std::str::from_utf8(trim(value)).ok()?;
    let date = httpdate::parse_http_date(text).ok()?;
    date.duration_since(SystemTime::UNIX_EPOCH)
        .ok()
        .map(|since| since.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::{Parse, parse};

    /// 1994-11-06 08:49:37 UTC, the RFC's example date.
    const MODIFIED: u64 = 784_111_777;

    fn validators() -> Validators {
        Validators::from_parts(MODIFIED, 5, 1024)
    }

    fn not_modified(fields: &str) -> bool {
        let head = format!("GET /f HTTP/1.1\r\nHost: x\r\n{fields}\r\n");
        let Ok(Parse::Complete(request)) = parse(head.as_bytes()) else {
            panic!("bad test head {head:?}");
        };
        is_not_modified(&request, &validators())
    }

    #[test]
    fn etag_format() {
        assert_eq!(validators().etag(), b"\"2ebc98a1.5-400\"");
        assert_eq!(Validators::from_parts(0, 0, 0).etag(), b"\"0.0-0\"");
        let largest = Validators::from_parts(u64::MAX, 999_999_999, u64::MAX);
        assert_eq!(
            largest.etag(),
            b"\"ffffffffffffffff.3b9ac9ff-ffffffffffffffff\""
        );
        assert_eq!(largest.modified(), LAST_FORMATTABLE_SECOND);
    }

    #[test]
    fn if_none_match_matches_our_tag_in_a_list_and_weakly() {
        assert!(not_modified("If-None-Match: \"2ebc98a1.5-400\"\r\n"));
        assert!(not_modified("If-None-Match: \"a\", \"2ebc98a1.5-400\"\r\n"));
        assert!(not_modified("If-None-Match: W/\"2ebc98a1.5-400\"\r\n"));
        assert!(not_modified(
            "If-None-Match: \"a\",,  W/\"2ebc98a1.5-400\" ,\r\n"
        ));
        assert!(not_modified(
            "If-None-Match: \"a\"\r\nIf-None-Match: \"2ebc98a1.5-400\"\r\n"
        ));
        assert!(!not_modified("If-None-Match: \"2ebc98a1.5-401\"\r\n"));
        assert!(!not_modified("If-None-Match: \"a\", \"b\"\r\n"));
        assert!(!not_modified("If-None-Match: 2ebc98a1.5-400\r\n"));
    }

    #[test]
    fn if_none_match_star_matches_any_file() {
        assert!(not_modified("If-None-Match: *\r\n"));
    }

    #[test]
    fn malformed_if_none_match_matches_nothing() {
        assert!(!not_modified("If-None-Match: \"2ebc98a1.5-400\" junk\r\n"));
        assert!(!not_modified("If-None-Match: \"unterminated\r\n"));
        assert!(!not_modified(
            "If-None-Match: \"2ebc98a1.5-400\", \"a b\"\r\n"
        ));
    }

    #[test]
    fn if_modified_since_is_not_modified_since() {
        assert!(not_modified(
            "If-Modified-Since: Sun, 06 Nov 1994 08:49:37 GMT\r\n"
        ));
        assert!(
            not_modified("If-Modified-Since: Mon, 07 Nov 1994 08:49:37 GMT\r\n"),
            "a later date also gives 304"
        );
        assert!(not_modified(
            "If-Modified-Since: Fri, 01 Jan 2100 00:00:00 GMT\r\n"
        ));
        assert!(!not_modified(
            "If-Modified-Since: Sun, 06 Nov 1994 08:49:36 GMT\r\n"
        ));
        assert!(not_modified(
            "If-Modified-Since: Sunday, 06-Nov-94 08:49:37 GMT\r\n"
        ));
        assert!(not_modified(
            "If-Modified-Since: Sun Nov  6 08:49:37 1994\r\n"
        ));
        assert!(!not_modified("If-Modified-Since: yesterday\r\n"));
        assert!(
            !not_modified(
                "If-Modified-Since: Sun, 06 Nov 1994 08:49:37 GMT\r\nIf-Modified-Since: Sun, 06 Nov 1994 08:49:37 GMT\r\n"
            ),
            "a repeated If-Modified-Since is ignored"
        );
    }

    #[test]
    fn if_none_match_wins_over_if_modified_since() {
        assert!(!not_modified(
            "If-None-Match: \"other\"\r\nIf-Modified-Since: Fri, 01 Jan 2100 00:00:00 GMT\r\n"
        ));
        assert!(not_modified(
            "If-Modified-Since: Sat, 01 Jan 1970 00:00:00 GMT\r\nIf-None-Match: \"2ebc98a1.5-400\"\r\n"
        ));
        assert!(!not_modified(
            "If-None-Match: garbage\r\nIf-Modified-Since: Fri, 01 Jan 2100 00:00:00 GMT\r\n"
        ));
    }

    #[test]
    fn if_range_needs_a_strong_equal_tag_or_the_exact_date() {
        let validators = validators();
        assert!(if_range_holds(b"\"2ebc98a1.5-400\"", &validators));
        assert!(if_range_holds(b" \"2ebc98a1.5-400\" ", &validators));
        assert!(!if_range_holds(b"W/\"2ebc98a1.5-400\"", &validators));
        assert!(!if_range_holds(b"\"2ebc98a1.5-401\"", &validators));
        assert!(!if_range_holds(b"\"2ebc98a1.5-400\", \"a\"", &validators));
        assert!(if_range_holds(
            b"Sun, 06 Nov 1994 08:49:37 GMT",
            &validators
        ));
        assert!(!if_range_holds(
            b"Sun, 06 Nov 1994 08:49:38 GMT",
            &validators
        ));
        assert!(!if_range_holds(
            b"Sun, 06 Nov 1994 08:49:36 GMT",
            &validators
        ));
        assert!(!if_range_holds(b"", &validators));
        assert!(!if_range_holds(b"*", &validators));
    }
}
