//! Byte ranges (RFC 9110 §14): what a `Range` field asks of a file of a given length. Layer 4, the
//! HTTP server.
//!
//! Policy:
//! - One range (`bytes=a-b`, `a-`, `-n`) that is satisfiable gives 206 with `Content-Range`; `b` past
//!   the end is cut to the end and `-n` longer than the file means the whole file.
//! - One range that is not satisfiable (`a` at or past the end, `-0`, or any range of an empty file)
//!   gives 416 with `Content-Range: bytes */length`.
//! - Several ranges give the whole file with 200, which RFC 9110 §14.2 allows (a server may ignore
//!   `Range`): never a 206 carrying only some of them, never a response larger than the file, and no
//!   multipart framing for clients to mis-parse. Browsers and download tools ask for one range.
//! - A syntactically invalid field, or a unit other than `bytes`, is ignored (200), as §14.2 requires.

use super::request::trim;

/// What a `Range` field asks of a file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Ranges {
    /// Send the whole file with 200: no usable range, several ranges, or an invalid field.
    Full,
    /// Send bytes `start..=end` with 206; `start <= end < length`.
    Partial {
        /// The first byte.
        start: u64,
        /// The last byte, inclusive.
        end: u64,
    },
    /// Nothing of the file can be sent: 416.
    Unsatisfiable,
}

/// One `range-spec` of a `bytes` range set.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Spec {
    /// `first-last` or `first-` (`last` = `None`).
    From { first: u64, last: Option<u64> },
    /// `-length`: the final `length` bytes.
    Suffix { length: u64 },
}

/// Evaluates the `Range` field `value` against a file of `length` bytes.
pub(crate) fn evaluate(value: &[u8], length: u64) -> Ranges {
    let Some(set) = strip_unit(trim(value)) else {
        return Ranges::Full;
    };
    let mut specs = set
        .split(|&byte| byte == b',')
        .map(trim)
        .filter(|element| !element.is_empty());
    let Some(first) = specs.next() else {
        return Ranges::Full;
    };
    if specs.next().is_some() {
        return Ranges::Full;
    }
    match parse_spec(first) {
        Some(spec) => satisfy(spec, length),
        None => Ranges::Full,
    }
}

/// The range set after a case-insensitive `bytes=`.
fn strip_unit(value: &[u8]) -> Option<&[u8]> {
    let (unit, set) = value.split_at_checked(6)?;
    unit.eq_ignore_ascii_case(b"bytes=").then_some(set)
}

fn parse_spec(spec: &[u8]) -> Option<Spec> {
    let dash = spec.iter().position(|&byte| byte == b'-')?;
    let (first, last) = (&spec[..dash], &spec[dash + 1..]);
    if first.is_empty() {
        return Some(Spec::Suffix {
            length: parse_number(last)?,
        });
    }
    let first = parse_number(first)?;
    let last = if last.is_empty() {
        None
    } else {
        Some(parse_number(last)?)
    };
    // RFC 9110 §14.1.1: last-pos below first-pos makes the range-spec invalid.
    if last.is_some_and(|last| last < first) {
        return None;
    }
    Some(Spec::From { first, last })
}

/// One or more digits; a value too large for u64 saturates (it is past any file's end anyway).
fn parse_number(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(digits.iter().fold(0u64, |number, &digit| {
        number
            .saturating_mul(10)
            .saturating_add(u64::from(digit - b'0'))
    }))
}

fn satisfy(spec: Spec, length: u64) -> Ranges {
    let Some(last_byte) = length.checked_sub(1) else {
        return Ranges::Unsatisfiable;
    };
    match spec {
        Spec::From { first, .. } if first >= length => Ranges::Unsatisfiable,
        Spec::From { first, last } => Ranges::Partial {
            start: first,
            end: last.map_or(last_byte, |last| last.min(last_byte)),
        },
        Spec::Suffix { length: 0 } => Ranges::Unsatisfiable,
        Spec::Suffix { length: suffix } => Ranges::Partial {
            start: length.saturating_sub(suffix),
            end: last_byte,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn partial(start: u64, end: u64) -> Ranges {
        Ranges::Partial { start, end }
    }

    #[test]
    fn first_and_last() {
        assert_eq!(evaluate(b"bytes=0-0", 100), partial(0, 0));
        assert_eq!(evaluate(b"bytes=10-19", 100), partial(10, 19));
        assert_eq!(evaluate(b"bytes=0-99", 100), partial(0, 99));
        assert_eq!(
            evaluate(b"bytes=90-200", 100),
            partial(90, 99),
            "last past the end is cut"
        );
        assert_eq!(evaluate(b"bytes=99-99", 100), partial(99, 99));
    }

    #[test]
    fn open_ended() {
        assert_eq!(evaluate(b"bytes=0-", 100), partial(0, 99));
        assert_eq!(evaluate(b"bytes=42-", 100), partial(42, 99));
        assert_eq!(evaluate(b"bytes=99-", 100), partial(99, 99));
    }

    #[test]
    fn suffix() {
        assert_eq!(evaluate(b"bytes=-1", 100), partial(99, 99));
        assert_eq!(evaluate(b"bytes=-10", 100), partial(90, 99));
        assert_eq!(
            evaluate(b"bytes=-500", 100),
            partial(0, 99),
            "a suffix longer than the file is the whole file"
        );
    }

    #[test]
    fn unsatisfiable() {
        assert_eq!(evaluate(b"bytes=100-", 100), Ranges::Unsatisfiable);
        assert_eq!(evaluate(b"bytes=100-200", 100), Ranges::Unsatisfiable);
        assert_eq!(evaluate(b"bytes=-0", 100), Ranges::Unsatisfiable);
        assert_eq!(evaluate(b"bytes=0-", 0), Ranges::Unsatisfiable);
        assert_eq!(evaluate(b"bytes=-5", 0), Ranges::Unsatisfiable);
        assert_eq!(
            evaluate(b"bytes=99999999999999999999999-", 100),
            Ranges::Unsatisfiable
        );
    }

    #[test]
    fn several_ranges_get_the_whole_file() {
        assert_eq!(evaluate(b"bytes=0-0,-1", 100), Ranges::Full);
        assert_eq!(evaluate(b"bytes=0-10, 20-30", 100), Ranges::Full);
        assert_eq!(evaluate(b"bytes=500-600,700-800", 100), Ranges::Full);
    }

    #[test]
    fn empty_list_elements_do_not_count() {
        assert_eq!(evaluate(b"bytes=0-4,", 100), partial(0, 4));
        assert_eq!(evaluate(b"bytes=, ,0-4", 100), partial(0, 4));
        assert_eq!(evaluate(b"bytes= 0-4 ", 100), partial(0, 4));
    }

    #[test]
    fn invalid_fields_are_ignored() {
        for value in [
            &b""[..],
            b"bytes",
            b"bytes=",
            b"bytes=,",
            b"bytes=a-b",
            b"bytes=5",
            b"bytes=--5",
            b"bytes=5-3",
            b"bytes=0-1-2",
            b"bytes=+1-2",
            b"bytes=0x1-2",
            b"bytes=1 -2",
            b"items=0-5",
            b"bytes 0-5",
            b"bytes=-",
        ] {
            assert_eq!(
                evaluate(value, 100),
                Ranges::Full,
                "{}",
                String::from_utf8_lossy(value)
            );
        }
    }

    #[test]
    fn unit_is_case_insensitive() {
        assert_eq!(evaluate(b"Bytes=0-1", 100), partial(0, 1));
        assert_eq!(evaluate(b"BYTES=0-1", 100), partial(0, 1));
    }

    #[test]
    fn huge_numbers_saturate() {
        assert_eq!(
            evaluate(b"bytes=0-99999999999999999999999", 100),
            partial(0, 99)
        );
        assert_eq!(
            evaluate(b"bytes=-99999999999999999999999", 100),
            partial(0, 99)
        );
    }
}
